//! The sweeper finishes intake that died between writing a batch and enqueuing it
//! (and whose client never retried): it enqueues every chunk of each batch still
//! unqueued after a grace period and marks it enqueued. Enqueuing a chunk twice is
//! harmless: the sender claims each message once.

use crate::queue::{ChunkEnvelope, QueueError, SendQueue};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Batches found unqueued past the grace period.
    pub found: usize,
    /// Of those, batches now enqueued.
    pub enqueued: usize,
    /// Chunks put on the queue.
    pub chunks: usize,
    /// Batches that failed this time (the next sweep tries again).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub struct Sweeper {
    store: Store,
    queue: SendQueue,
}

impl Sweeper {
    pub fn new(store: Store, queue: SendQueue) -> Self {
        Self { store, queue }
    }

    /// Enqueues every batch created before `cutoff` (RFC 3339) that is not enqueued.
    /// `now` stamps `enqueued_at`.
    pub async fn sweep(&self, cutoff: &str, now: &str) -> Result<SweepReport, SweepError> {
        let stuck = self.store.unqueued_batches(cutoff).await?;
        let mut report = SweepReport {
            found: stuck.len(),
            ..SweepReport::default()
        };
        for batch in stuck {
            let envelopes: Vec<ChunkEnvelope> = (0..batch.chunk_count)
                .map(|chunk| {
                    ChunkEnvelope::new(&batch.tenant, batch.batch, chunk, &batch.correlation_id)
                })
                .collect();
            let result = async {
                self.queue.enqueue(&envelopes).await?;
                self.store
                    .mark_enqueued(&batch.tenant, batch.batch, now)
                    .await?;
                Ok::<_, SweepError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::warn!(
                        tenant_id = %batch.tenant,
                        batch_id = %batch.batch,
                        correlation_id = %batch.correlation_id,
                        chunks = batch.chunk_count,
                        created_at = %batch.created_at,
                        "sweeper enqueued a batch its request left unqueued"
                    );
                    report.enqueued += 1;
                    report.chunks += envelopes.len();
                }
                Err(e) => {
                    tracing::error!(tenant_id = %batch.tenant, batch_id = %batch.batch, error = %e, "sweeper could not enqueue a batch");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
