//! The sweeper finishes intake that died between writing a batch and enqueuing it
//! (and whose client never retried): it runs intake's tail (`intake::enqueue`) for
//! each batch still unqueued after a grace period.

use crate::clock::Timestamp;
use crate::intake::{self, IntakeError};
use crate::queue::SendQueue;
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
}

pub struct Sweeper {
    store: Store,
    queue: SendQueue,
}

impl Sweeper {
    pub fn new(store: Store, queue: SendQueue) -> Self {
        Self { store, queue }
    }

    /// Enqueues every batch created before `cutoff` that is not enqueued. `now` stamps
    /// `enqueued_at`.
    pub async fn sweep(
        &self,
        cutoff: Timestamp,
        now: Timestamp,
    ) -> Result<SweepReport, SweepError> {
        let stuck = self.store.unqueued_batches(cutoff).await?;
        let mut report = SweepReport {
            found: stuck.len(),
            ..SweepReport::default()
        };
        for batch in stuck {
            let result: Result<(), IntakeError> = intake::enqueue(
                &self.store,
                &self.queue,
                &batch.tenant,
                batch.batch,
                batch.chunk_count,
                &batch.correlation_id,
                now,
            )
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
                    report.chunks += batch.chunk_count as usize;
                }
                Err(e) => {
                    tracing::error!(tenant_id = %batch.tenant, batch_id = %batch.batch, error = %crate::telemetry::error_chain(&e), "sweeper could not enqueue a batch");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
