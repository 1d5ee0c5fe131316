//! Webhooks in: what the receiver (`functions/webhooks`) puts on the events queue after
//! verifying a provider's request, and how the events function (`functions/events`)
//! reads it back as a `ProviderEvent`. The envelope keeps the provider's own verified
//! parameters, not Herald's reading of them, so a parser fixed later reads events
//! queued before the fix.
//!
//! A provider is added here by a `source` (its `EventSource`), a parser below, and a
//! route in the receiver that verifies its requests (Twilio: its form signature; SES:
//! SNS's message signature, `sns`; SNS's SMS delivery logs: a CloudWatch Logs
//! subscription, which IAM authorises, `sns_logs`); the events function applies
//! `ProviderEvent`s whatever their source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::domain::{EventSource, ProviderEvent};
use crate::ids::CorrelationId;
use crate::queue::QueueError;

pub mod ses;
pub mod sns;
pub mod sns_logs;
pub mod twilio;

pub const ENVELOPE_VERSION: u32 = 1;

/// One verified event on the events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    pub v: u32,
    pub source: EventSource,
    /// Which of the source's requests it was (Twilio: `status`, `inbound`).
    pub kind: EventKind,
    pub received_at: Timestamp,
    pub correlation_id: CorrelationId,
    /// The request URL's query parameters (Twilio: the status callback's tenant and
    /// message id), as signed.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The request's form parameters, as signed.
    #[serde(default)]
    pub form: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A message's status callback.
    Status,
    /// A text sent to one of the sender numbers.
    Inbound,
    /// An SNS notification (SES: one event record in its `Message`); `form` holds the
    /// notification's signed fields.
    Notification,
    /// A record of a log group a subscription filter delivered (SNS's SMS delivery
    /// status logs); `form` holds the record, its group and its log event id.
    DeliveryLog,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event envelope is malformed: {0}")]
    Malformed(String),
    #[error("event envelope version {0} is not supported")]
    Version(u32),
    #[error("the event is not one Herald can read: {0}")]
    Invalid(String),
}

impl EventEnvelope {
    pub fn parse(body: &str) -> Result<Self, EventError> {
        let envelope: Self =
            serde_json::from_str(body).map_err(|e| EventError::Malformed(e.to_string()))?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(EventError::Version(envelope.v));
        }
        Ok(envelope)
    }

    /// What the event says, read by its source's parser.
    pub fn event(&self) -> Result<ProviderEvent, EventError> {
        match (self.source, self.kind) {
            (EventSource::Twilio, EventKind::Status) => {
                twilio::parse_status(&self.query, &self.form, self.received_at)
            }
            (EventSource::Twilio, EventKind::Inbound) => {
                twilio::parse_inbound(&self.form, self.received_at)
            }
            (EventSource::Ses, EventKind::Notification) => {
                ses::parse_event(&self.form, self.received_at)
            }
            (EventSource::Sns, EventKind::DeliveryLog) => {
                sns_logs::parse_record(&self.form, self.received_at)
            }
            (source, kind) => Err(EventError::Invalid(format!(
                "{source} sends no {kind:?} events"
            ))),
        }
    }
}

/// The events queue: the receiver's one write. The events function reads it.
#[derive(Clone)]
pub struct EventsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl EventsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    #[tracing::instrument(skip_all, fields(source = %envelope.source))]
    pub async fn enqueue(&self, envelope: &EventEnvelope) -> Result<(), QueueError> {
        let body = serde_json::to_string(envelope).map_err(|e| QueueError::Sqs(e.into()))?;
        let correlation = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(envelope.correlation_id.as_str())
            .build()
            .map_err(|e| QueueError::Sqs(e.into()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("correlation_id", correlation)
            .set_message_system_attributes(
                crate::queue::invocation_trace()
                    .map(|trace| crate::queue::trace_attribute(&trace))
                    .transpose()?
                    .map(|value| {
                        [(
                            aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                            value,
                        )]
                        .into()
                    }),
            )
            .send()
            .await
            .map_err(|e| QueueError::Sqs(e.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_refuse_other_shapes() {
        let envelope = EventEnvelope {
            v: ENVELOPE_VERSION,
            source: EventSource::Twilio,
            kind: EventKind::Inbound,
            received_at: Timestamp::from_epoch_millis(5),
            correlation_id: CorrelationId::new(),
            query: BTreeMap::new(),
            form: BTreeMap::from([("Body".to_owned(), "STOP".to_owned())]),
        };
        let body = serde_json::to_string(&envelope).unwrap();
        assert_eq!(EventEnvelope::parse(&body).unwrap(), envelope);
        assert!(matches!(
            EventEnvelope::parse(&body.replace("\"v\":1", "\"v\":2")),
            Err(EventError::Version(2))
        ));
        assert!(EventEnvelope::parse("{}").is_err());
        assert!(EventEnvelope::parse(&body.replace("\"kind\"", "\"x\":1,\"kind\"")).is_err());
        // Verified, but missing what an inbound text needs.
        assert!(matches!(envelope.event(), Err(EventError::Invalid(_))));
    }
}
