//! SQS queues from `AWS::SQS::Queue`. Created in two steps: every queue first, then
//! their attributes, because a redrive policy names its dead-letter queue's ARN.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use aws_sdk_sqs as sqs;
use serde_json::Value;

use super::{Options, text};
use crate::template::{ACCOUNT_ID, Physical, REGION};

pub(super) async fn create_queue(client: &sqs::Client, name: &str) -> Result<Physical> {
    let url = match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url.unwrap_or_default(),
        Err(_) => client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| anyhow!(sqs::error::DisplayErrorContext(e).to_string()))?
            .queue_url
            .unwrap_or_default(),
    };
    let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}");
    Ok(Physical {
        reference: url.clone(),
        attributes: HashMap::from([
            ("Arn".to_owned(), arn),
            ("QueueName".to_owned(), name.to_owned()),
            ("QueueUrl".to_owned(), url),
        ]),
    })
}

pub(super) async fn configure_queue(
    client: &sqs::Client,
    queue: &Physical,
    props: &Value,
    options: &Options,
) -> Result<()> {
    use sqs::types::QueueAttributeName as A;
    let mut attributes = HashMap::new();
    if let Some(v) = options
        .visibility_timeout
        .map(|v| v.to_string())
        .or_else(|| text(&props["VisibilityTimeout"]))
    {
        attributes.insert(A::VisibilityTimeout, v);
    }
    if let Some(v) = text(&props["MessageRetentionPeriod"]) {
        attributes.insert(A::MessageRetentionPeriod, v);
    }
    if let Some(policy) = props.get("RedrivePolicy") {
        let policy = serde_json::json!({
            "deadLetterTargetArn": policy["deadLetterTargetArn"],
            "maxReceiveCount": text(&policy["maxReceiveCount"]).unwrap_or_default().parse::<u32>()?,
        });
        attributes.insert(A::RedrivePolicy, policy.to_string());
    }
    if attributes.is_empty() {
        return Ok(());
    }
    client
        .set_queue_attributes()
        .queue_url(&queue.reference)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| anyhow!(sqs::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}
