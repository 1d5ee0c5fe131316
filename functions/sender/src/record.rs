//! One SQS record: its envelope and its span, and what its end means for the queue. A
//! record that can never succeed (poison) is parked in the DLQ at once with its reason;
//! one that failed or panicked is handed back to the queue; neither touches another
//! record of the same invocation.

use std::panic::AssertUnwindSafe;

use aws_lambda_events::event::sqs::SqsMessage;
use futures::FutureExt;
use herald::metrics::Record;
use herald::queue::{ChunkEnvelope, EnvelopeError, QueueError};
use herald::store::StoreError;
use herald::telemetry::error_chain;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{Deps, chunk};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("chunk {chunk} of batch {batch} does not exist for this tenant")]
    MissingChunk { batch: String, chunk: u32 },
    /// Held, not dropped: SQS redelivers the chunk after its visibility timeout and,
    /// past maxReceiveCount, keeps it in the DLQ for a redrive once the tenant resumes.
    #[error("the tenant is suspended; its work is held")]
    TenantSuspended,
    #[error("batch {batch} does not exist for this tenant")]
    MissingBatch { batch: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} recipients are not finished and will be retried")]
    Unfinished(usize),
    /// The chunk could not be queued to wait for its number: it comes back after the
    /// visibility timeout instead.
    #[error("the chunk could not be queued again")]
    Requeue(#[source] QueueError),
}

impl RecordError {
    /// Errors no retry can fix: the record goes to the DLQ at once.
    fn is_poison(&self) -> bool {
        matches!(
            self,
            RecordError::Envelope(_)
                | RecordError::MissingChunk { .. }
                | RecordError::MissingBatch { .. }
        )
    }
}

/// Runs one record to its end; `Some(id)` when the queue must deliver it again.
pub(crate) async fn process(deps: &Deps, record: &SqsMessage, deadline: Instant) -> Option<String> {
    let id = record.message_id.clone().unwrap_or_default();
    let span = tracing::info_span!(
        "chunk",
        sqs_message_id = %id,
        tenant_id = tracing::field::Empty,
        batch_id = tracing::field::Empty,
        chunk = tracing::field::Empty,
        // The attribute until the body is read: a body that cannot be read is still
        // logged under the request that queued it.
        correlation_id = record
            .message_attributes
            .get("correlation_id")
            .and_then(|a| a.string_value.as_deref()),
    );
    let result = AssertUnwindSafe(run(deps, record, deadline).instrument(span.clone()))
        .catch_unwind()
        .await;
    // The outcome is logged (and the record parked) inside the record's span.
    async move {
        match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) if error.is_poison() => {
                let reason = error_chain(&error);
                match park(deps, record, &reason).await {
                    Ok(()) => {
                        deps.metrics.emit(
                            Record::new("sender")
                                .count("PoisonParked", 1)
                                .property("reason", reason.as_str()),
                        );
                        tracing::error!(error = %reason, "record can never succeed; parked in the DLQ");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %reason, park_error = %error_chain(&e), "record can never succeed and could not be parked; leaving it to the redrive policy");
                        Some(id)
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error_chain(&error), "chunk not finished; handing it back to the queue");
                Some(id)
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "chunk processing panicked");
                Some(id)
            }
        }
    }
    .instrument(span)
    .await
}

/// Reads the envelope, names the record's span after it, and runs its chunk.
async fn run(deps: &Deps, record: &SqsMessage, deadline: Instant) -> Result<(), RecordError> {
    let envelope = ChunkEnvelope::parse(record.body.as_deref().unwrap_or_default())?;
    let span = tracing::Span::current();
    span.record("tenant_id", envelope.tenant_id.as_str());
    span.record("batch_id", envelope.batch_id.to_string());
    span.record("chunk", envelope.chunk);
    span.record("correlation_id", envelope.correlation_id.as_str());
    chunk::run(deps, &envelope, deadline).await
}

async fn park(deps: &Deps, record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
    deps.dead_letters.park_record(record, reason).await
}
