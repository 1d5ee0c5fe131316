//! The send queue: one SQS message per chunk of recipients, never per recipient, which
//! keeps SQS requests per message far below one and the queue small.
//!
//! Every message Herald queues carries the X-Ray trace of the invocation that queued it
//! as SQS's `AWSTraceHeader` system attribute, which Lambda links the consumer's trace
//! to; a parked or redriven message keeps the trace it came with.

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use serde::{Deserialize, Serialize};

use crate::ids::{BatchId, CorrelationId, TenantId};

pub const ENVELOPE_VERSION: u32 = 1;

/// The SQS system attribute that carries an X-Ray trace header with a message.
pub const TRACE_ATTRIBUTE: &str = "AWSTraceHeader";

/// The running invocation's X-Ray trace header. Lambda's runtime sets
/// `_X_AMZN_TRACE_ID` for each invocation when tracing is active (and the SDK's
/// recursion-detection interceptor sends it as `X-Amzn-Trace-Id`, which SQS also
/// honours); Herald sets the attribute itself, which SQS prefers to the header, so the
/// trace does not depend on an interceptor's defaults. Outside Lambda: none.
pub fn invocation_trace() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|header| !header.is_empty())
}

/// `header` as the value of the `AWSTraceHeader` system attribute.
pub fn trace_attribute(header: &str) -> Result<MessageSystemAttributeValue, QueueError> {
    MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .map_err(|e| QueueError::Sqs(e.into()))
}

/// The body of a send-queue message. The recipients themselves stay in DynamoDB (the
/// durable copy); the envelope only points at them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEnvelope {
    pub v: u32,
    pub tenant_id: TenantId,
    pub batch_id: BatchId,
    pub chunk: u32,
    pub correlation_id: CorrelationId,
}

impl ChunkEnvelope {
    pub fn new(tenant: &TenantId, batch: BatchId, chunk: u32, correlation: &CorrelationId) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            tenant_id: tenant.clone(),
            batch_id: batch,
            chunk,
            correlation_id: correlation.clone(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, EnvelopeError> {
        let envelope: Self = serde_json::from_str(body).map_err(EnvelopeError::Malformed)?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(envelope.v));
        }
        Ok(envelope)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("chunk envelope is malformed: {0}")]
    Malformed(serde_json::Error),
    #[error("chunk envelope version {0} is not supported")]
    Version(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("sending to the queue failed")]
    Sqs(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the queue refused {failed} of {total} messages: {reason}")]
    Refused {
        failed: usize,
        total: usize,
        reason: String,
    },
}

/// The express lane (issue 14): a queue of its own, taken by sender instances of their
/// own, for batches of at most `max_recipients` (`docs/concurrency.md`, "The express
/// lane").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressLane {
    pub queue_url: String,
    pub max_recipients: usize,
}

#[derive(Clone)]
pub struct SendQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    express: Option<ExpressLane>,
}

impl SendQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            express: None,
        }
    }

    /// Small batches start on `lane` (`first_for`).
    pub fn with_express_lane(mut self, lane: ExpressLane) -> Self {
        self.express = Some(lane);
        self
    }

    /// The queue a batch of `recipients` starts on: the express lane's when there is
    /// one and the batch is small enough for it, else this one. Only the first pass
    /// takes the lane: the sender queues every later one (the window's next chunk, a
    /// pass that must wait) on the bulk queue.
    pub fn first_for(&self, recipients: usize) -> SendQueue {
        match &self.express {
            Some(lane) if self.is_express_for(recipients) => {
                SendQueue::new(self.client.clone(), &lane.queue_url)
            }
            _ => self.clone(),
        }
    }

    /// Whether a batch of `recipients` starts on the express lane; the others take
    /// their tenant's turns (`docs/concurrency.md`, "Turns").
    pub fn is_express_for(&self, recipients: usize) -> bool {
        self.express
            .as_ref()
            .is_some_and(|lane| recipients <= lane.max_recipients)
    }

    /// Sends every envelope, ten per request, re-sending entries SQS reports as failed
    /// (it may accept part of a batch).
    pub async fn enqueue(&self, envelopes: &[ChunkEnvelope]) -> Result<(), QueueError> {
        self.enqueue_after(envelopes, std::time::Duration::ZERO)
            .await
    }

    /// As `enqueue`, each envelope delivered no sooner than `delay` from now (SQS's
    /// delivery delay, whole seconds, at most 15 minutes).
    #[tracing::instrument(skip_all, fields(count = envelopes.len(), delay_s = delay.as_secs()))]
    pub async fn enqueue_after(
        &self,
        envelopes: &[ChunkEnvelope],
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        let delay_seconds = delay.as_secs().min(900) as i32;
        let trace = invocation_trace();
        for group in envelopes.chunks(10) {
            let mut pending: Vec<(usize, &ChunkEnvelope)> = group.iter().enumerate().collect();
            for attempt in 0..3 {
                let entries = pending
                    .iter()
                    .map(|(i, e)| entry(*i, e, trace.as_deref(), delay_seconds))
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| QueueError::Sqs(e.into()))?;
                let failed: Vec<String> = out.failed.iter().map(|f| f.id.clone()).collect();
                if failed.is_empty() {
                    pending.clear();
                    break;
                }
                let sender_fault = out.failed.iter().find(|f| f.sender_fault);
                if let Some(fault) = sender_fault {
                    return Err(QueueError::Refused {
                        failed: failed.len(),
                        total: group.len(),
                        reason: fault.message.clone().unwrap_or_else(|| fault.code.clone()),
                    });
                }
                pending.retain(|(i, _)| failed.contains(&i.to_string()));
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            if !pending.is_empty() {
                return Err(QueueError::Refused {
                    failed: pending.len(),
                    total: group.len(),
                    reason: "still failing after retries".into(),
                });
            }
        }
        Ok(())
    }
}

/// Where records that can never succeed are parked, with the reason, so they neither
/// loop through retries nor disappear.
#[derive(Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Parks an SQS record as it came (body and string attributes), with `reason`.
    pub async fn park_record(
        &self,
        record: &aws_lambda_events::event::sqs::SqsMessage,
        reason: &str,
    ) -> Result<(), QueueError> {
        let attributes: Vec<(String, String)> = record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
            .collect();
        // The record's own trace, not this invocation's: the parked message stays part
        // of the request that queued it.
        let trace = record.attributes.get(TRACE_ATTRIBUTE).cloned();
        self.park(
            record.body.as_deref().unwrap_or_default(),
            &attributes,
            trace.or_else(invocation_trace).as_deref(),
            reason,
        )
        .await
    }

    /// Puts the record's body and string attributes on the DLQ, adding `herald_reason`,
    /// with the trace header `trace`.
    pub async fn park(
        &self,
        body: &str,
        attributes: &[(String, String)],
        trace: Option<&str>,
        reason: &str,
    ) -> Result<(), QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            // SQS refuses an empty body; an empty record is parked as a marker.
            .message_body(if body.is_empty() { "(empty)" } else { body })
            .message_attributes("herald_reason", text_attribute(reason)?);
        if let Some(trace) = trace {
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                trace_attribute(trace)?,
            );
        }
        // SQS allows ten attributes; the reason takes one.
        for (name, value) in attributes
            .iter()
            .filter(|(n, _)| n != "herald_reason")
            .take(9)
        {
            request = request.message_attributes(name, text_attribute(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| QueueError::Sqs(e.into()))?;
        Ok(())
    }
}

fn text_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Sqs(e.into()))
}

fn entry(
    index: usize,
    envelope: &ChunkEnvelope,
    trace: Option<&str>,
    delay_seconds: i32,
) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let body = serde_json::to_string(envelope).map_err(|e| QueueError::Sqs(e.into()))?;
    let trace = trace.map(trace_attribute).transpose()?;
    SendMessageBatchRequestEntry::builder()
        .set_message_system_attributes(
            trace.map(|value| [(MessageSystemAttributeNameForSends::AwsTraceHeader, value)].into()),
        )
        .id(index.to_string())
        .message_body(body)
        .set_delay_seconds((delay_seconds > 0).then_some(delay_seconds))
        .message_attributes("tenant_id", text_attribute(envelope.tenant_id.as_str())?)
        .message_attributes(
            "correlation_id",
            text_attribute(envelope.correlation_id.as_str())?,
        )
        .build()
        .map_err(|e| QueueError::Sqs(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_unknown_shapes() {
        let tenant = TenantId::parse("acme").unwrap();
        let e = ChunkEnvelope::new(&tenant, BatchId::new(), 3, &CorrelationId::new());
        let body = serde_json::to_string(&e).unwrap();
        assert_eq!(ChunkEnvelope::parse(&body).unwrap(), e);
        assert!(ChunkEnvelope::parse("not json").is_err());
        assert!(ChunkEnvelope::parse(&body.replace("\"v\":1", "\"v\":9")).is_err());
        assert!(ChunkEnvelope::parse(&body.replace("\"chunk\"", "\"x\":1,\"chunk\"")).is_err());
        assert!(ChunkEnvelope::parse(&body.replace("acme", "ACME#2")).is_err());
    }

    #[test]
    fn an_entry_carries_the_trace_header_as_a_system_attribute_and_none_without_one() {
        let tenant = TenantId::parse("acme").unwrap();
        let e = ChunkEnvelope::new(&tenant, BatchId::new(), 0, &CorrelationId::new());
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let traced = entry(0, &e, Some(header), 0).unwrap();
        let attribute = &traced.message_system_attributes.unwrap()
            [&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(attribute.string_value.as_deref(), Some(header));
        assert_eq!(attribute.data_type, "String");
        assert!(
            entry(0, &e, None, 0)
                .unwrap()
                .message_system_attributes
                .is_none()
        );
    }
}
