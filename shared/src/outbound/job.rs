//! One delivery on the deliveries queue: one event for one endpoint, and which attempt
//! it is. The fan-out queues attempt 1; the deliverer queues each retry as the next
//! attempt of the same event (the same id, so the same `webhook-id`), due at
//! `not_before`. SQS delays a message at most 15 minutes: a retry due later is queued
//! with the longest delay and queued again, still waiting, each time it comes back
//! early, so no invocation waits and nothing else has to remember it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::OutboundEvent;
use crate::clock::Timestamp;
use crate::domain::EventType;
use crate::ids::TenantId;

/// SQS's longest delay on a message.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub tenant: TenantId,
    pub endpoint_id: String,
    /// `webhook-id`.
    pub event_id: String,
    pub event_type: EventType,
    /// The event's exact body (JSON text): the bytes signed are the bytes sent.
    pub body: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Not to be attempted before this time (a retry's due time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

impl DeliveryJob {
    /// The first attempt of `event` to `endpoint_id`.
    pub fn first(tenant: &TenantId, endpoint_id: &str, event: &OutboundEvent) -> Self {
        Self {
            tenant: tenant.clone(),
            endpoint_id: endpoint_id.to_owned(),
            event_id: event.id.clone(),
            event_type: event.event_type,
            body: String::from_utf8_lossy(&event.body).into_owned(),
            attempt: 1,
            not_before: None,
        }
    }

    /// The event, as signed and sent.
    pub fn event(&self) -> OutboundEvent {
        OutboundEvent {
            id: self.event_id.clone(),
            event_type: self.event_type,
            body: self.body.clone().into_bytes(),
        }
    }

    /// The next attempt, due at `due`.
    pub fn retry(&self, due: Timestamp) -> Self {
        Self {
            attempt: self.attempt + 1,
            not_before: Some(due),
            ..self.clone()
        }
    }

    /// How long the queue should hold this job before handing it over at `now`: until
    /// it is due, at most SQS's longest delay (whole seconds, rounded up).
    pub fn queue_delay(&self, now: Timestamp) -> Duration {
        let Some(due) = self.not_before else {
            return Duration::ZERO;
        };
        let wait_ms = due.epoch_millis().saturating_sub(now.epoch_millis());
        Duration::from_secs(wait_ms.div_ceil(1000)).min(MAX_QUEUE_DELAY)
    }

    /// Whether it is due at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.not_before.is_none_or(|due| due <= now)
    }
}

/// The deliveries queue, as the fan-out, the deliverer and the API's recover and test
/// routes send to it.
#[derive(Clone)]
pub struct DeliveryQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("queueing deliveries failed: {0}")]
pub struct QueueError(String);

impl DeliveryQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            sqs,
            url: url.into(),
        }
    }

    /// Queues `jobs`, ten per request, each delayed until it is due (at most 15
    /// minutes); any refused is an error (whoever sent them sends them again, and a
    /// receiver deduplicates what arrives twice on `webhook-id`).
    pub async fn send(&self, jobs: &[DeliveryJob], now: Timestamp) -> Result<(), QueueError> {
        for group in jobs.chunks(10) {
            let entries = group
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(job).expect("plain JSON data"))
                        .delay_seconds(job.queue_delay(now).as_secs() as i32)
                        .build()
                        .map_err(|e| QueueError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = self
                .sqs
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            if !sent.failed.is_empty() {
                return Err(QueueError(format!(
                    "{} of {} deliveries refused",
                    sent.failed.len(),
                    group.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> DeliveryJob {
        DeliveryJob {
            tenant: TenantId::parse("acme").unwrap(),
            endpoint_id: "ep_1".into(),
            event_id: "01JQ0000000000000000000000.3.sent".into(),
            event_type: EventType::MessageSent,
            body: "{}".into(),
            attempt: 1,
            not_before: None,
        }
    }

    #[test]
    fn a_retry_is_the_same_event_later_and_waits_on_the_queue_at_most_15_minutes() {
        let now = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let first = job();
        assert!(first.is_due(now));
        assert_eq!(first.queue_delay(now), Duration::ZERO);
        let soon = first.retry(now.plus(Duration::from_millis(4_200)));
        assert_eq!(
            (soon.attempt, soon.event_id.as_str()),
            (2, first.event_id.as_str())
        );
        assert_eq!(soon.queue_delay(now), Duration::from_secs(5));
        assert!(!soon.is_due(now));
        let later = soon.retry(now.plus(Duration::from_secs(5 * 3600)));
        assert_eq!(later.queue_delay(now), MAX_QUEUE_DELAY);
        assert!(later.is_due(now.plus(Duration::from_secs(5 * 3600))));
        let json = serde_json::to_string(&later).unwrap();
        assert_eq!(serde_json::from_str::<DeliveryJob>(&json).unwrap(), later);
    }
}
