//! What the functions of a provisioned stack see: their environment, their queue
//! triggers and the HTTP API's routes and authorizer, all read from the template.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use crate::provision::Stack;
use crate::template::Resolver;

/// An SQS trigger as Lambda's event source mapping would run it.
#[derive(Debug, Clone)]
pub struct QueueTrigger {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub max_concurrency: usize,
    pub function_timeout_secs: u64,
    pub report_batch_item_failures: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

impl Stack {
    fn resolver(&self) -> Result<Resolver<'_>> {
        Resolver::new(
            &self.template,
            &self.name,
            &self.parameters,
            &self.resources,
        )
    }

    /// A resource's `Properties` with every intrinsic resolved for this stack.
    pub fn properties(&self, id: &str) -> Result<Value> {
        self.resolver()?
            .resolve(&self.template.resource(id)?["Properties"])
    }

    fn function(&self, id: &str) -> Result<Value> {
        self.properties(id)
    }

    fn globals(&self) -> Result<Value> {
        self.resolver()?
            .resolve(&self.template.body["Globals"]["Function"])
    }

    fn setting(&self, function: &Value, name: &str) -> Result<Value> {
        Ok(match function.get(name) {
            Some(v) => v.clone(),
            None => self.globals()?.get(name).cloned().unwrap_or(Value::Null),
        })
    }

    /// The function's environment: `Globals` merged with its own variables.
    pub fn function_env(&self, id: &str) -> Result<HashMap<String, String>> {
        let mut env = HashMap::new();
        for source in [self.globals()?, self.function(id)?] {
            for (k, v) in source["Environment"]["Variables"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                env.insert(k.clone(), v);
            }
        }
        Ok(env)
    }

    pub fn function_timeout_secs(&self, id: &str) -> Result<u64> {
        let function = self.function(id)?;
        Ok(self.setting(&function, "Timeout")?.as_u64().unwrap_or(3))
    }

    /// The period of the function's `Schedule` event, when it has one (`rate(...)`
    /// only; the local cloud has no cron).
    pub fn schedule_period(&self, id: &str) -> Result<Option<std::time::Duration>> {
        let function = self.function(id)?;
        let Some(expression) = function["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .find(|e| e["Type"] == "Schedule")
            .and_then(|e| e["Properties"]["Schedule"].as_str())
        else {
            return Ok(None);
        };
        let inner = expression
            .strip_prefix("rate(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| anyhow!("{id}'s schedule {expression:?} is not a rate(...)"))?;
        let (amount, unit) = inner
            .split_once(' ')
            .ok_or_else(|| anyhow!("{id}'s schedule {expression:?} has no unit"))?;
        let amount: u64 = amount.parse()?;
        let seconds = match unit.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => bail!("{id}'s schedule has an unknown unit {other:?}"),
        };
        Ok(Some(std::time::Duration::from_secs(amount * seconds)))
    }

    /// The function's SQS trigger.
    pub fn queue_trigger(&self, id: &str) -> Result<QueueTrigger> {
        let function = self.function(id)?;
        let event = function["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .find(|e| e["Type"] == "SQS")
            .ok_or_else(|| anyhow!("{id} has no SQS event"))?;
        let props = &event["Properties"];
        let arn = props["Queue"].as_str().unwrap_or_default().to_owned();
        let queue = self
            .resources
            .values()
            .find(|r| r.attributes.get("Arn") == Some(&arn))
            .ok_or_else(|| anyhow!("{id}'s queue {arn} is not provisioned"))?;
        let number = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        Ok(QueueTrigger {
            queue_url: queue.reference.clone(),
            queue_arn: arn,
            batch_size: number(&props["BatchSize"]).unwrap_or(10) as i32,
            // Lambda's default without a cap is "as many as it takes"; five is its
            // starting poller count.
            max_concurrency: number(&props["ScalingConfig"]["MaximumConcurrency"]).unwrap_or(5)
                as usize,
            function_timeout_secs: self.function_timeout_secs(id)?,
            report_batch_item_failures: props["FunctionResponseTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
        })
    }

    /// The function's HTTP API routes.
    pub fn http_routes(&self, id: &str) -> Result<Vec<HttpRoute>> {
        let function = self.function(id)?;
        Ok(function["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .filter(|e| e["Type"] == "HttpApi")
            .map(|e| HttpRoute {
                method: e["Properties"]["Method"]
                    .as_str()
                    .unwrap_or("ANY")
                    .to_uppercase(),
                path: e["Properties"]["Path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect())
    }

    pub fn reference(&self, id: &str) -> Result<&str> {
        self.resources
            .get(id)
            .map(|r| r.reference.as_str())
            .ok_or_else(|| anyhow!("{id} is not provisioned"))
    }
}
