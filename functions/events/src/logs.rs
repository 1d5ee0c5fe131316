//! SNS's SMS delivery status logs: a CloudWatch Logs subscription filter on both of
//! SNS's log groups invokes the function with a batch of records (gzip and base64,
//! decoded by `LogsEvent`). The function only persists them here: each record goes
//! onto the events queue as an envelope and is applied from there by the same path as
//! every other receipt (dedupe, a receipt that came early handed back, orphans, the
//! DLQ). Applying them in this invocation would lose that: CloudWatch Logs invokes
//! asynchronously, and Lambda retries a failed asynchronous invocation only twice,
//! within minutes, before it drops the event. A record the queue did not take fails
//! the invocation, so it comes again (the queued ones are then duplicates, applied
//! once); a record that cannot be read is logged and counted, as nothing could ever
//! read it.

use aws_lambda_events::event::cloudwatch_logs::{LogEntry, LogsEvent};
use aws_lambda_events::event::sqs::SqsEvent;
use futures::StreamExt;
use herald::CorrelationId;
use herald::domain::EventSource;
use herald::metrics::Record;
use herald::webhook::sns_logs::{LOG_EVENT_FIELD, LOG_GROUP_FIELD, MESSAGE_FIELD};
use herald::webhook::{ENVELOPE_VERSION, EventEnvelope, EventKind};

use crate::Deps;

/// Records put on the queue at once.
const CONCURRENT_PUTS: usize = 10;

/// What the function can be invoked with.
#[derive(Debug)]
pub enum Invocation {
    Sqs(SqsEvent),
    Logs(LogsEvent),
}

impl Invocation {
    /// The payload read by its shape: a subscription filter's has `awslogs`.
    pub fn read(payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        if payload.get("awslogs").is_some() {
            // From text: `LogsEvent`'s reader borrows its keys, which a `Value` cannot
            // lend.
            serde_json::from_str(&payload.to_string()).map(Self::Logs)
        } else {
            serde_json::from_value(payload).map(Self::Sqs)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the invocation is neither an SQS batch nor a log subscription's: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("{0} of the delivery logs could not be queued")]
    NotQueued(usize),
}

/// One invocation of either kind; the SQS batch's answer (partial failures), or
/// nothing for a log batch.
pub async fn invoke(
    deps: &Deps,
    payload: serde_json::Value,
) -> Result<serde_json::Value, InvokeError> {
    match Invocation::read(payload)? {
        Invocation::Sqs(event) => {
            let answer = crate::handle(deps, event).await;
            Ok(serde_json::to_value(answer)?)
        }
        Invocation::Logs(event) => {
            handle_logs(deps, event).await?;
            Ok(serde_json::Value::Null)
        }
    }
}

/// A log batch that failed its asynchronous invocation, went to the events DLQ as it
/// came (Lambda's dead-letter queue keeps the payload) and was redriven onto the
/// events queue: read as a batch again.
pub(crate) fn redriven(body: &str) -> Option<LogsEvent> {
    match Invocation::read(serde_json::from_str(body).ok()?) {
        Ok(Invocation::Logs(batch)) => Some(batch),
        _ => None,
    }
}

/// Puts every readable record of a log batch on the events queue.
pub async fn handle_logs(deps: &Deps, event: LogsEvent) -> Result<(), InvokeError> {
    let data = event.aws_logs.data;
    let group = data.log_group;
    let received_at = deps.clock.timestamp();
    let mut unreadable = 0;
    let mut envelopes = Vec::new();
    for entry in data.log_events {
        match envelope(&group, &entry, received_at) {
            Ok(envelope) => envelopes.push(envelope),
            Err(reason) => {
                tracing::error!(%group, log_event_id = %entry.id, %reason, "delivery log record cannot be read; dropped");
                unreadable += 1;
            }
        }
    }
    let queued = envelopes.len();
    let failed = futures::stream::iter(envelopes)
        .map(|envelope| {
            let queue = deps.queue.clone();
            async move { queue.enqueue(&envelope).await.err() }
        })
        .buffer_unordered(CONCURRENT_PUTS)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    for error in &failed {
        tracing::warn!(error = %herald::telemetry::error_chain(error), "a delivery log was not queued");
    }
    deps.metrics.emit(
        Record::new("events")
            .count("DeliveryLogsQueued", queued - failed.len())
            .count("DeliveryLogsUnreadable", unreadable),
    );
    match failed.len() {
        0 => Ok(()),
        n => Err(InvokeError::NotQueued(n)),
    }
}

/// The envelope of one record, if it is one SNS wrote and Herald can read.
fn envelope(
    group: &str,
    entry: &LogEntry,
    received_at: herald::Timestamp,
) -> Result<EventEnvelope, String> {
    if !(group.ends_with("/DirectPublishToPhoneNumber")
        || group.ends_with("/DirectPublishToPhoneNumber/Failure"))
    {
        return Err(format!(
            "{group} is not one of SNS's SMS delivery log groups"
        ));
    }
    let envelope = EventEnvelope {
        v: ENVELOPE_VERSION,
        source: EventSource::Sns,
        kind: EventKind::DeliveryLog,
        received_at,
        correlation_id: CorrelationId::new(),
        query: Default::default(),
        form: [
            (MESSAGE_FIELD, entry.message.as_str()),
            (LOG_GROUP_FIELD, group),
            (LOG_EVENT_FIELD, entry.id.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    envelope.event().map_err(|e| e.to_string())?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use base64::Engine;
    use serde_json::json;

    use super::*;

    /// A payload as CloudWatch Logs sends it (Amazon CloudWatch Logs user guide,
    /// "Subscription filters with AWS Lambda"): the `DATA_MESSAGE` gzipped, then base64.
    fn subscription_payload(data: &serde_json::Value) -> serde_json::Value {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(data.to_string().as_bytes()).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(gzip.finish().unwrap());
        json!({ "awslogs": { "data": encoded } })
    }

    #[test]
    fn a_subscriptions_payload_reads_as_a_log_batch_and_anything_else_as_sqs() {
        let data = json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "sns/us-east-1/123456789012/DirectPublishToPhoneNumber",
            "logStream": "s",
            "subscriptionFilters": ["f"],
            "logEvents": [{ "id": "1", "timestamp": 1, "message": "{}" }],
        });
        let payload = subscription_payload(&data);
        match Invocation::read(payload.clone()).unwrap() {
            Invocation::Logs(event) => {
                assert_eq!(event.aws_logs.data.log_events.len(), 1);
                assert_eq!(event.aws_logs.data.log_group, data["logGroup"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(redriven(&payload.to_string()).is_some());
        assert!(redriven(r#"{"v":1}"#).is_none());
        let sqs = json!({ "Records": [] });
        assert!(matches!(Invocation::read(sqs), Ok(Invocation::Sqs(_))));
        assert!(Invocation::read(json!({ "awslogs": { "data": "not base64" } })).is_err());
    }

    #[test]
    fn only_snss_delivery_log_groups_are_taken() {
        let entry: LogEntry =
            serde_json::from_value(json!({ "id": "1", "timestamp": 1, "message": "{}" })).unwrap();
        let at = herald::Timestamp::from_epoch_millis(1);
        let unreadable = envelope("sns/us-east-1/1/DirectPublishToPhoneNumber", &entry, at);
        assert!(unreadable.is_err(), "not a delivery record");
        let elsewhere = envelope("/aws/lambda/other", &entry, at).unwrap_err();
        assert!(elsewhere.contains("not one of SNS's"), "{elsewhere}");
    }
}
