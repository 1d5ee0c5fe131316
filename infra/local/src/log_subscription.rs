//! The template's CloudWatch Logs subscription filters (`AWS::Logs::SubscriptionFilter`
//! to the events function), played locally as CloudWatch Logs runs them: every new log
//! event of the subscribed groups is handed to the function in batches, one per log
//! stream, as `{"awslogs": {"data": base64(gzip(json))}}` with the documented
//! `DATA_MESSAGE` fields, and the function reads that payload as it would in Lambda.
//! CloudWatch Logs invokes asynchronously: a failed invocation is tried twice more
//! (Lambda's asynchronous retries), then sent as it came to the function's dead-letter
//! queue (its `DeadLetterQueue`).
//!
//! The emulator has no subscription of its own to a function it does not run, so the
//! events are read from its CloudWatch Logs (`FilterLogEvents`) a few times a second.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::template::{ACCOUNT_ID, REGION};

pub type LogsHandler =
    std::sync::Arc<dyn Fn(Value) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

const POLL_EVERY: Duration = Duration::from_millis(250);
/// Lambda's asynchronous invocations: the first and two retries.
const ATTEMPTS: usize = 3;
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub struct LogSubscription {
    pub emulator: String,
    /// The subscribed groups and each one's filter name.
    pub groups: Vec<(String, String)>,
    pub handler: LogsHandler,
    pub sqs: aws_sdk_sqs::Client,
    /// Where an invocation that failed every attempt goes.
    pub dead_letter_queue_url: String,
    /// Only events from this time on (epoch milliseconds): a subscription delivers
    /// what is logged after it is created.
    pub since: u64,
    pub http: reqwest::Client,
    seen: Mutex<HashSet<String>>,
}

impl LogSubscription {
    pub fn new(
        emulator: &str,
        groups: Vec<(String, String)>,
        handler: LogsHandler,
        sqs: aws_sdk_sqs::Client,
        dead_letter_queue_url: String,
        since: u64,
    ) -> Self {
        Self {
            emulator: emulator.to_owned(),
            groups,
            handler,
            sqs,
            dead_letter_queue_url,
            since,
            http: reqwest::Client::new(),
            seen: Mutex::new(HashSet::new()),
        }
    }

    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %format!("{e:#}"), "log subscription poll failed");
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Delivers every event logged since the last poll; how many.
    pub async fn poll_once(&self) -> Result<usize> {
        let mut delivered = 0;
        for (group, filter) in &self.groups {
            let mut by_stream: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for event in self.new_events(group).await? {
                let stream = event["logStreamName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                by_stream.entry(stream).or_default().push(json!({
                    "id": event["eventId"],
                    "timestamp": event["timestamp"],
                    "message": event["message"],
                }));
            }
            for (stream, events) in by_stream {
                delivered += events.len();
                let data = json!({
                    "messageType": "DATA_MESSAGE",
                    "owner": ACCOUNT_ID,
                    "logGroup": group,
                    "logStream": stream,
                    "subscriptionFilters": [filter],
                    "logEvents": events,
                });
                self.invoke(payload(&data)?).await?;
            }
        }
        Ok(delivered)
    }

    /// The group's events not delivered before, oldest first.
    async fn new_events(&self, group: &str) -> Result<Vec<Value>> {
        let events =
            filter_log_events(&self.http, &self.emulator, REGION, group, self.since).await?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        Ok(events
            .into_iter()
            // The emulator numbers events within their stream.
            .filter(|event| {
                seen.insert(format!(
                    "{}/{}",
                    event["logStreamName"].as_str().unwrap_or_default(),
                    event["eventId"].as_str().unwrap_or_default()
                ))
            })
            .collect())
    }

    async fn invoke(&self, payload: Value) -> Result<()> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            match (self.handler)(payload.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        tracing::error!(error = %last, "log batch failed every attempt; sent to the function's dead-letter queue");
        self.sqs
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(payload.to_string())
            .send()
            .await
            .context("sending a failed log batch to the dead-letter queue")?;
        Ok(())
    }
}

/// Every event of `group` in the emulator's CloudWatch Logs of `region` logged since
/// `since` (epoch milliseconds), oldest first; none while the group does not exist
/// (SNS creates it with its first record). A plain JSON request: the emulator checks
/// no signature, and reads the region from the credential scope.
pub async fn filter_log_events(
    http: &reqwest::Client,
    emulator: &str,
    region: &str,
    group: &str,
    since: u64,
) -> Result<Vec<Value>> {
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential=local/20260101/{region}/logs/aws4_request, SignedHeaders=host, Signature=0"
    );
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = json!({"logGroupName": group, "startTime": since});
        if let Some(token) = &token {
            request["nextToken"] = json!(token);
        }
        let answer = http
            .post(emulator)
            .header("X-Amz-Target", "Logs_20140328.FilterLogEvents")
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("Authorization", &scope)
            .body(request.to_string())
            .send()
            .await
            .context("FilterLogEvents")?;
        let status = answer.status();
        let body: Value = answer.json().await.context("FilterLogEvents' answer")?;
        if !status.is_success() {
            if body["__type"]
                .as_str()
                .unwrap_or_default()
                .contains("ResourceNotFound")
            {
                return Ok(events);
            }
            anyhow::bail!("FilterLogEvents answered {status}: {body}");
        }
        events.extend(body["events"].as_array().into_iter().flatten().cloned());
        match body["nextToken"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(events),
        }
    }
}

/// A subscription's payload as CloudWatch Logs sends it: the data gzipped, then in
/// standard (padded) base64.
pub fn payload(data: &Value) -> Result<Value> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(data.to_string().as_bytes())?;
    let zipped = gzip.finish()?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(zipped);
    Ok(json!({"awslogs": {"data": encoded}}))
}

/// The groups the template subscribes `function` to, by name, with each filter's name.
pub fn subscribed_groups(
    stack: &crate::provision::Stack,
    function: &str,
) -> Result<Vec<(String, String)>> {
    let mut groups = Vec::new();
    for (id, filter) in stack
        .template
        .resources_of_type("AWS::Logs::SubscriptionFilter")
    {
        let props = &filter["Properties"];
        let target = props["DestinationArn"]["Ref"].as_str().unwrap_or_default();
        if target.split('.').next() != Some(function) {
            continue;
        }
        let group = props["LogGroupName"]["Ref"]
            .as_str()
            .with_context(|| format!("{id}'s LogGroupName is not a Ref to a group"))?;
        let name = stack.properties(group)?["LogGroupName"]
            .as_str()
            .with_context(|| format!("{group} has no LogGroupName"))?
            .to_owned();
        groups.push((name, format!("{}-{id}", stack.name)));
    }
    Ok(groups)
}

/// What a deploy does once per account (docs/deploy.md, "SMS delivery status logs"):
/// the SMS attributes that make SNS log every text's delivery status with the
/// template's role.
pub async fn enable_sms_delivery_logs(
    sns: &aws_sdk_sns::Client,
    stack: &crate::provision::Stack,
) -> Result<()> {
    let role = format!(
        "arn:aws:iam::{ACCOUNT_ID}:role/{}-SnsDeliveryStatusRole",
        stack.name
    );
    sns.set_sms_attributes()
        .attributes("DeliveryStatusIAMRole", role)
        .attributes("DeliveryStatusSuccessSamplingRate", "100")
        .send()
        .await
        .context("setting the SMS delivery status attributes")?;
    Ok(())
}
