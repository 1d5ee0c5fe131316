//! The sweeper finishes intake that died between writing a batch and enqueuing it
//! (and whose client never retried): it runs intake's tail (`intake::enqueue`) for
//! each batch still unqueued after a grace period. It also restarts a batch's window
//! of queued chunks that stopped moving (`sweep_windows`, issue 14): a sender that
//! died, or whose enqueue failed, between counting a chunk and queueing the next.

use crate::clock::Timestamp;
use crate::domain::{StalledWindow, StartedBatch, TenantStatus};
use crate::ids::{BatchId, TenantId};
use crate::intake::{self, IntakeError};
use crate::queue::{ChunkEnvelope, QueueError, SendQueue};
use crate::store::{MAX_WINDOW_RESTARTS, Store, StoreError};

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

/// What a sweep of the window list did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowSweepReport {
    /// Batches whose window had not moved since the cutoff.
    pub stalled: usize,
    /// Of those, windows put back on the queue.
    pub restarted: usize,
    /// Chunks put on the queue.
    pub chunks: usize,
    /// Windows of suspended tenants, left as they are (the tenant's work is held).
    pub held: usize,
    /// Windows restarted `MAX_WINDOW_RESTARTS` times in a row without progress, left
    /// to the operator (their chunks wait in the DLQ for a redrive). Such a batch
    /// passes its tenant's turn on.
    pub given_up: usize,
    /// Batches waiting for their tenant's turn, left in line: the batch whose turn it
    /// is still moves.
    pub waiting: usize,
    /// Turns the sweeper passed on: from a batch that finished or was given up without
    /// passing it, or a turn nobody held while batches waited (a pass lost part-way).
    /// The batch that took it had its first window queued.
    pub turns_passed: usize,
    /// Windows that failed this time (the next sweep tries again).
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
            let unqueued = intake::Unqueued {
                tenant: &batch.tenant,
                batch: batch.batch,
                first_window: batch.first_window,
                takes_turns: batch.takes_turns,
                correlation: &batch.correlation_id,
            };
            let result: Result<(), IntakeError> =
                intake::enqueue(&self.store, &self.queue, &unqueued, now).await;
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
                    report.chunks += batch.first_window as usize;
                }
                Err(e) => {
                    tracing::error!(tenant_id = %batch.tenant, batch_id = %batch.batch, error = %crate::telemetry::error_chain(&e), "sweeper could not enqueue a batch");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Restarts every window that has not moved since `cutoff`: puts the batch's first
    /// `window` uncounted chunks on the queue (those already there run twice, which
    /// the sender makes harmless) and moves its frontier past them, so the chunks they
    /// count queue the rest. `now` stamps the restart, so the next sweep waits a whole
    /// stall period again.
    pub async fn sweep_windows(
        &self,
        cutoff: Timestamp,
        now: Timestamp,
    ) -> Result<WindowSweepReport, SweepError> {
        let listed = self.store.stalled_windows(cutoff).await?;
        let (waiting, stalled): (Vec<StalledWindow>, Vec<StalledWindow>) =
            listed.into_iter().partition(|w| w.waiting);
        let mut report = WindowSweepReport {
            stalled: stalled.len(),
            waiting: waiting.len(),
            ..WindowSweepReport::default()
        };
        // One look at each line a waiting batch is in (after the restarts, which may
        // give a batch up and so free its turn).
        let mut lines: Vec<&TenantId> = waiting.iter().map(|w| &w.tenant).collect();
        lines.sort_by_key(|t| t.as_str());
        lines.dedup();
        let mut given_up = Vec::new();
        for window in stalled {
            match self.restart(&window, now).await {
                Ok(Restart::Queued(chunks)) => {
                    tracing::warn!(
                        tenant_id = %window.tenant,
                        batch_id = %window.batch,
                        correlation_id = %window.correlation_id,
                        chunks,
                        "sweeper restarted a stalled window"
                    );
                    report.restarted += 1;
                    report.chunks += chunks;
                }
                Ok(Restart::Held) => report.held += 1,
                Ok(Restart::GivenUp) => {
                    tracing::error!(tenant_id = %window.tenant, batch_id = %window.batch, restarts = window.restarts, "a window stalled again after its restarts; left to the operator (see the send DLQ)");
                    report.given_up += 1;
                    given_up.push(window.batch);
                }
                Ok(Restart::Moved) => {}
                Err(e) => {
                    tracing::error!(tenant_id = %window.tenant, batch_id = %window.batch, error = %crate::telemetry::error_chain(&e), "sweeper could not restart a window");
                    report.failed += 1;
                }
            }
        }
        for tenant in lines {
            match self.unblock_line(tenant, &given_up, now).await {
                Ok(Some(started)) => {
                    tracing::warn!(
                        tenant_id = %tenant,
                        batch_id = %started.batch,
                        correlation_id = %started.correlation_id,
                        chunks = started.first_window,
                        "sweeper passed on a turn its holder left; the next batch started"
                    );
                    report.turns_passed += 1;
                    report.chunks += started.first_window as usize;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tenant_id = %tenant, error = %crate::telemetry::error_chain(&e), "sweeper could not look at a tenant's line");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Passes the tenant's turn on when its holder no longer uses it: gone, finished,
    /// or stalled again after its last restart (`given_up` in this sweep); or when
    /// nobody holds it while batches wait. A holder still sending, or a suspended
    /// tenant, keeps the line as it is. Answers the batch that started.
    async fn unblock_line(
        &self,
        tenant: &TenantId,
        given_up: &[BatchId],
        now: Timestamp,
    ) -> Result<Option<StartedBatch>, IntakeError> {
        let profile = self.store.get_tenant(tenant).await?;
        if profile.is_some_and(|p| p.status == TenantStatus::Suspended) {
            return Ok(None);
        }
        let line = self.store.line(tenant).await?;
        if let Some(holder) = line.sending
            && !given_up.contains(&holder)
        {
            let window = self.store.window(tenant, holder).await?;
            if window.is_some_and(|w| !w.finished) {
                return Ok(None);
            }
        }
        let Some(started) = self.store.pass_turn(tenant, line.sending, now).await? else {
            return Ok(None);
        };
        let envelopes: Vec<ChunkEnvelope> = (0..started.first_window)
            .map(|chunk| ChunkEnvelope::new(tenant, started.batch, chunk, &started.correlation_id))
            .collect();
        // A failure here leaves the batch holding the turn with nothing queued: the
        // next sweep finds its window stalled and restarts it.
        self.queue.enqueue(&envelopes).await?;
        Ok(Some(started))
    }

    async fn restart(
        &self,
        window: &StalledWindow,
        now: Timestamp,
    ) -> Result<Restart, IntakeError> {
        let tenant = &window.tenant;
        let profile = self.store.get_tenant(tenant).await?;
        if profile.is_some_and(|p| p.status == TenantStatus::Suspended) {
            return Ok(Restart::Held);
        }
        if window.restarts >= MAX_WINDOW_RESTARTS {
            return Ok(Restart::GivenUp);
        }
        let chunks = self
            .store
            .uncounted_chunks(tenant, window.batch, window.window.max(1) as usize)
            .await?;
        let next = chunks.last().map_or(window.window_next, |last| last + 1);
        // The frontier first: had the enqueue come first and this write failed, a
        // sender counting one of them would queue a chunk queued here again.
        if !self
            .store
            .restart_window(tenant, window.batch, window, next, now)
            .await?
        {
            return Ok(Restart::Moved);
        }
        let envelopes: Vec<ChunkEnvelope> = chunks
            .iter()
            .map(|chunk| ChunkEnvelope::new(tenant, window.batch, *chunk, &window.correlation_id))
            .collect();
        self.queue
            .enqueue(&envelopes)
            .await
            .map_err(|e: QueueError| IntakeError::Queue(e))?;
        Ok(Restart::Queued(envelopes.len()))
    }
}

enum Restart {
    /// These many chunks are on the queue again.
    Queued(usize),
    /// The tenant is suspended.
    Held,
    /// Restarted too often in a row.
    GivenUp,
    /// The window moved (or the batch finished) since the list was read.
    Moved,
}
