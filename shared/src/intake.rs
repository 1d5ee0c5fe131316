//! Intake: the one path from a validated submission to the queue, for the API's single
//! messages and batches alike, and its tail for the sweeper. Build the batch, check
//! its tenant's line has room (bulk batches), count it against the tenant's quota,
//! write its chunks and record, put it in its tenant's line and, when the turn is its
//! own, its first window of chunks on the queue, mark it enqueued, audit it, count it
//! accepted. A failure part-way leaves the batch `accepted`: a retry with the same
//! idempotency key (the same batch id) or the sweeper finishes it, and every step is
//! safe to repeat.

use crate::clock::{Clock, Timestamp};
use crate::domain::{AuditEntry, NewBatch, Reservation, Submission, Submitter, TenantProfile};
use crate::ids::{BatchId, CorrelationId, TenantId};
use crate::metrics::{Metrics, Record};
use crate::queue::{ChunkEnvelope, QueueError, SendQueue};
use crate::store::{Store, StoreError, Turn};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Nothing was written: the batch would take the tenant past its daily quota.
    #[error("{requested} sends would pass the daily quota of {limit} ({used} used)")]
    QuotaExceeded {
        limit: u32,
        used: u32,
        requested: u32,
        /// Until the quota resets, at the next UTC midnight (at least one second).
        retry_after_secs: u64,
    },
    /// Nothing was written: as many of the tenant's bulk batches as its line holds
    /// wait for their turn already.
    #[error("{waiting} of the tenant's batches wait for their turn already")]
    LineFull { waiting: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A batch that is written, queued and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub batch: BatchId,
    pub total: usize,
    pub chunks: usize,
}

/// What intake works with, borrowed from the function that runs it.
pub struct Intake<'a> {
    pub store: &'a Store,
    pub queue: &'a SendQueue,
    pub clock: &'a dyn Clock,
    pub metrics: &'a Metrics,
    /// Chunks of one batch on the queue at once (`docs/concurrency.md`).
    pub window: u32,
    /// Batches that may wait in a tenant's line (`docs/concurrency.md`, "Turns").
    pub max_waiting: usize,
}

impl Intake<'_> {
    /// Takes `submission` from `by` as batch `id` (the id the request's idempotency
    /// key pins, so a retry finishes the same batch).
    #[tracing::instrument(skip_all, fields(tenant_id = %profile.tenant, batch_id = %id))]
    pub async fn accept(
        &self,
        profile: &TenantProfile,
        by: &Submitter,
        id: BatchId,
        submission: Submission,
    ) -> Result<Accepted, IntakeError> {
        let now = self.clock.timestamp();
        let total = submission.recipients.len();
        let takes_turns = !self.queue.is_express_for(total);
        let batch = NewBatch::new(id, by, submission, now)
            .windowed(self.window)
            .taking_turns(takes_turns);
        if takes_turns {
            self.check_line(&batch.tenant, id).await?;
        }
        self.reserve(profile, id, total, now).await?;
        self.store.create_batch(&batch).await?;
        enqueue(
            self.store,
            &self.queue.first_for(total),
            &Unqueued {
                tenant: &batch.tenant,
                batch: id,
                first_window: batch.first_window(),
                takes_turns,
                correlation: &by.correlation_id,
            },
            self.clock.timestamp(),
        )
        .await?;
        let audit = AuditEntry {
            at: self.clock.timestamp(),
            actor: by.subject.clone(),
            action: "batch.created".to_owned(),
            target: id.to_string(),
            request_id: by.correlation_id.as_str().to_owned(),
        };
        self.store
            .record_audit(&batch.tenant, &audit, self.clock.epoch_seconds())
            .await?;
        // Counted once the request has done everything but answer: a retry that
        // finishes a failed attempt counts them then, not twice.
        self.metrics.emit(
            Record::new("api")
                .count("MessagesAccepted", total)
                .property("tenant_id", batch.tenant.as_str()),
        );
        let chunks = batch.chunks.len();
        tracing::info!(total, chunks, window = batch.window, "batch accepted");
        Ok(Accepted {
            batch: id,
            total,
            chunks: batch.chunks.len(),
        })
    }

    /// Refuses a new batch while `max_waiting` of the tenant's batches wait for their
    /// turn (a retry of one of them passes). Read before anything is written, so a
    /// refusal changes nothing; two requests at once may both pass, which the line's
    /// item has room for.
    async fn check_line(&self, tenant: &TenantId, id: BatchId) -> Result<(), IntakeError> {
        let line = self.store.line(tenant).await?;
        let waiting = line.waiting.len();
        if waiting >= self.max_waiting && line.sending != Some(id) && !line.waiting.contains(&id) {
            return Err(IntakeError::LineFull { waiting });
        }
        Ok(())
    }

    /// Counts the batch's sends against the tenant's daily quota, all or nothing. A
    /// retry finishing the same batch was counted already and passes.
    async fn reserve(
        &self,
        profile: &TenantProfile,
        batch: BatchId,
        total: usize,
        now: Timestamp,
    ) -> Result<(), IntakeError> {
        let limit = profile.limits.sends_per_day;
        let requested = u32::try_from(total).unwrap_or(u32::MAX);
        let reservation = self
            .store
            .reserve_sends(&profile.tenant, batch, requested, limit, now)
            .await?;
        match reservation {
            Reservation::Reserved { .. } | Reservation::AlreadyReserved => Ok(()),
            Reservation::Exceeded { used } => Err(IntakeError::QuotaExceeded {
                limit,
                used,
                requested,
                retry_after_secs: now.until(now.day().next_midnight()).as_secs().max(1),
            }),
        }
    }
}

/// A written batch whose first window may not be on the queue yet.
pub struct Unqueued<'a> {
    pub tenant: &'a TenantId,
    pub batch: BatchId,
    /// Chunks of its first window.
    pub first_window: u32,
    /// It waits for its tenant's turn (`docs/concurrency.md`, "Turns").
    pub takes_turns: bool,
    pub correlation: &'a CorrelationId,
}

/// Puts a written batch in its tenant's line, and its first window (its first
/// `first_window` chunks; each chunk the sender counts queues the next) on the queue
/// when the turn is its own; then marks it enqueued (stamped `now`). A batch that waits
/// is queued by the batch before it, when that one passes the turn on. The tail of
/// `Intake::accept`, and all the sweeper does for a batch its request left behind.
/// Enqueuing a chunk twice is harmless: the sender claims each message once and counts
/// each chunk once. Intake passes the batch's first queue (`SendQueue::first_for`:
/// small batches take the express lane); the sweeper its own, the bulk one: the batch
/// is late already, and its list does not carry its size.
#[tracing::instrument(skip_all, fields(tenant_id = %batch.tenant, batch_id = %batch.batch, chunks = batch.first_window))]
pub async fn enqueue(
    store: &Store,
    queue: &SendQueue,
    batch: &Unqueued<'_>,
    now: Timestamp,
) -> Result<(), IntakeError> {
    let turn = match batch.takes_turns {
        true => store.take_turn(batch.tenant, batch.batch).await?,
        false => Turn::Taken,
    };
    if turn == Turn::Taken {
        let envelopes: Vec<ChunkEnvelope> = (0..batch.first_window)
            .map(|chunk| ChunkEnvelope::new(batch.tenant, batch.batch, chunk, batch.correlation))
            .collect();
        queue.enqueue(&envelopes).await?;
    }
    store.mark_enqueued(batch.tenant, batch.batch, now).await?;
    Ok(())
}
