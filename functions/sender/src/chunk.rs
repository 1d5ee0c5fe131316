//! One chunk's run: load the chunk, its tenant and its batch; send (or cancel) every
//! recipient with bounded parallelism; count the chunk into its batch once every
//! recipient is final; and queue the batch's next chunk (its window, issue 14).
//!
//! A chunk left unfinished only for lack of time goes on at once at the back of the
//! queue, rather than after the visibility timeout. A chunk whose texts go out from a
//! number with its own rate (a long code's one a second) is cut that way on purpose:
//! it claims for a slice (10 s by default), so a slow number never holds an instance
//! other tenants' chunks are waiting for (`docs/concurrency.md`, "A sender's own rate").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use herald::domain::{
    BatchStatus, Channel, Chunk, ChunkCounts, Counted, Recipient, SenderRate, SmsSender,
    StartedBatch, TenantStatus,
};
use herald::keys::{self, Key, Platform};
use herald::metrics::{Record, Unit};
use herald::provider::Provider;
use herald::queue::ChunkEnvelope;
use herald::store::{Hold, StoreError, Unsent};
use herald::telemetry::error_chain;
use herald::{Address, BatchId, CorrelationId, MessageId, TenantId};
use tokio::time::Instant;

use crate::claim::{self, Done};
use crate::record::RecordError;
use crate::retry::{ProviderStats, SETTLE_MARGIN};
use crate::{Deps, SharedRate};

/// What every recipient of one chunk shares while the chunk runs: the one value the
/// claim and the retry loop are handed.
pub(crate) struct ChunkRun<'a> {
    pub deps: &'a Deps,
    pub tenant: &'a TenantId,
    /// The request that sent the batch: its receipts carry it back.
    pub correlation: &'a CorrelationId,
    pub chunk: &'a Chunk,
    /// The adapter for this chunk's channel and tenant.
    pub provider: &'a dyn Provider,
    /// The tenant's own SMS sender, when it has one.
    pub sms_sender: Option<&'a SmsSender>,
    /// That sender's own rate, when it has one: each text waits for its slot first.
    pub sender_rate: Option<Arc<SharedRate>>,
    /// The invocation's end, or the slice's: no claim is made that could not be
    /// settled before it.
    pub deadline: Instant,
    pub stats: ProviderStats,
    /// Recipients left unsent only because the deadline came (before their claim, or
    /// before their slot): when they are all that is left, the chunk goes on at once.
    pub cut: AtomicUsize,
}

pub(crate) async fn run(
    deps: &Deps,
    envelope: &ChunkEnvelope,
    deadline: Instant,
) -> Result<(), RecordError> {
    let tenant = &envelope.tenant_id;
    let batch = envelope.batch_id;
    let chunk = deps
        .store
        .load_chunk(tenant, batch, envelope.chunk)
        .await?
        .ok_or_else(|| RecordError::MissingChunk {
            batch: batch.to_string(),
            chunk: envelope.chunk,
        })?;

    // Read per chunk, not per message: a suspension or a cancel stops every chunk that
    // starts after it.
    let profile = deps.store.get_tenant(tenant).await?;
    if profile
        .as_ref()
        .is_some_and(|p| p.status == TenantStatus::Suspended)
    {
        return Err(RecordError::TenantSuspended);
    }
    let provider = deps.providers.for_chunk(
        chunk.channel,
        profile.as_ref().map(|p| p.sms_provider).unwrap_or_default(),
    );
    let cancelled = deps
        .store
        .batch_record(tenant, batch)
        .await?
        .ok_or_else(|| RecordError::MissingBatch {
            batch: batch.to_string(),
        })?
        .status
        == BatchStatus::Cancelled;

    // Read per chunk in one request: a recipient who opted out a moment ago is not
    // sent to by any chunk that starts after it.
    let suppressed = if cancelled {
        Default::default()
    } else {
        let addresses: Vec<&Address> = chunk.recipients.iter().map(|r| &r.to).collect();
        deps.store.suppressed_among(tenant, &addresses).await?
    };
    let paced = match (&profile, chunk.channel) {
        (Some(profile), Channel::Sms) if !cancelled => profile.sender_rate(),
        _ => None,
    };
    let slice_end =
        Instant::now() + deps.config.sender_slice + deps.config.provider_timeout + SETTLE_MARGIN;
    let sliced = paced.is_some() && slice_end < deadline;
    let number = match paced {
        Some((sender, _)) => {
            match take_number(deps, sender, envelope, slice_end.min(deadline)).await? {
                Some(number) => Some(number),
                None => return Ok(()),
            }
        }
        None => None,
    };
    let run = ChunkRun {
        deps,
        tenant,
        correlation: &envelope.correlation_id,
        chunk: &chunk,
        provider,
        sms_sender: profile.as_ref().and_then(|p| p.sms_sender.as_ref()),
        sender_rate: paced.map(|(sender, rate)| deps.sender_rate(sender, rate)),
        deadline: if sliced { slice_end } else { deadline },
        stats: ProviderStats::default(),
        cut: AtomicUsize::new(0),
    };
    // Owned pairs: a stream over borrowed ones trips the compiler's `Send` analysis.
    let recipients: Vec<(MessageId, Recipient)> = chunk
        .messages(batch)
        .map(|(id, r)| (id, r.clone()))
        .collect();
    let (run, suppressed) = (&run, &suppressed);
    let outcomes: Vec<Result<Done, StoreError>> = stream::iter(recipients)
        .map(|(id, recipient)| async move {
            let unsent = match suppressed.get(&recipient.to.folded()) {
                _ if cancelled => Some(Unsent::Cancelled),
                Some(entry) => Some(Unsent::Suppressed {
                    reason: format!(
                        "the recipient is on the suppression list ({})",
                        entry.reason
                    ),
                }),
                None => None,
            };
            match unsent {
                Some(why) => claim::end_unsent(run, id, &recipient.to, why).await,
                None => claim::send_one(run, id, &recipient).await,
            }
        })
        .buffer_unordered(parallelism(deps, paced.map(|(_, rate)| rate)))
        .collect()
        .await;
    if let Some(number) = number {
        number.let_go(deps).await;
    }
    match count(run, batch, outcomes).await {
        Ok(Counted::Now {
            link: next,
            started,
        }) => link(deps, envelope, next, started).await,
        Ok(Counted::Before) => {}
        Err(RecordError::Unfinished(left)) if left == run.cut.load(Ordering::Relaxed) => {
            return go_on(deps, envelope, left).await;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A paced number, held by this pass (`Store::hold_rate_item`).
struct HeldNumber {
    key: Key,
    holder: String,
}

/// Holds `sender` for this pass until `until`; or, when another pass holds it, queues
/// the chunk again for when that pass ends and says so with `None`.
async fn take_number(
    deps: &Deps,
    sender: &SmsSender,
    envelope: &ChunkEnvelope,
    until: Instant,
) -> Result<Option<HeldNumber>, RecordError> {
    let key = keys::sender_rate(Platform::operations(), sender);
    let holder = format!("{:032x}", rand::random::<u128>());
    let now_us = epoch_us();
    let until_us = now_us + until.saturating_duration_since(Instant::now()).as_micros() as u64;
    match deps
        .store
        .hold_rate_item(&key, &holder, now_us, until_us)
        .await?
    {
        Hold::Held => Ok(Some(HeldNumber { key, holder })),
        Hold::BusyUntil(busy_until) => {
            let wait = Duration::from_micros(busy_until.saturating_sub(now_us))
                .max(Duration::from_secs(1));
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "the number is sending another chunk; this one waits in the queue"
            );
            deps.queue
                .enqueue_after(std::slice::from_ref(envelope), wait)
                .await
                .map(|()| None)
                .map_err(RecordError::Requeue)
        }
    }
}

impl HeldNumber {
    /// Best effort: a hold not given back ends by itself at its time.
    async fn let_go(self, deps: &Deps) {
        if let Err(e) = deps.store.let_go_rate_item(&self.key, &self.holder).await {
            tracing::warn!(error = %error_chain(&e), "could not give the number back; its hold ends by itself");
        }
    }
}

fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Calls in flight for one chunk: a number with its own rate needs about one a second
/// per text a second it allows (its slot, then the provider's answer); more would
/// only hold claims waiting for its slots.
fn parallelism(deps: &Deps, sender_rate: Option<SenderRate>) -> usize {
    let most = deps.config.parallelism;
    sender_rate.map_or(most, |rate| {
        (rate.per_second().ceil() as usize + 1).min(most)
    })
}

/// Ends a pass cut short by its deadline (the invocation's, or its slice's): the chunk
/// goes to the back of the queue to go on from where it is (its claims make a second
/// copy harmless), and this record is done with. Recipients left for any other reason
/// (held by another delivery, a provider failing) wait for the visibility timeout
/// instead, as its backoff. When the chunk cannot be queued, the record is handed back.
async fn go_on(deps: &Deps, envelope: &ChunkEnvelope, left: usize) -> Result<(), RecordError> {
    match deps.queue.enqueue(std::slice::from_ref(envelope)).await {
        Ok(()) => {
            tracing::info!(
                left,
                "out of time; the chunk goes on at the back of the queue"
            );
            deps.metrics.emit(
                Record::new("sender")
                    .count("ChunkContinued", 1)
                    .property("tenant_id", envelope.tenant_id.as_str()),
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "could not queue the chunk's next pass");
            Err(RecordError::Unfinished(left))
        }
    }
}

/// Queues the batch's next chunk, which this chunk's count made room for in its
/// window, and the first window of the tenant's batch this batch passed its turn to
/// (`docs/concurrency.md`, "Turns"): one request for both. A failure is not the
/// chunk's: the chunk is counted and its record is done with, and a redelivery would
/// not link again (only the pass that counts links). A window left short is found
/// stalled by the sweeper and restarted.
async fn link(
    deps: &Deps,
    envelope: &ChunkEnvelope,
    next: Option<u32>,
    started: Option<StartedBatch>,
) {
    let mut envelopes: Vec<ChunkEnvelope> = next
        .map(|next| {
            ChunkEnvelope::new(
                &envelope.tenant_id,
                envelope.batch_id,
                next,
                &envelope.correlation_id,
            )
        })
        .into_iter()
        .collect();
    if let Some(started) = &started {
        tracing::info!(next_batch = %started.batch, chunks = started.first_window, "the batch passed its tenant's turn on");
        envelopes.extend((0..started.first_window).map(|chunk| {
            ChunkEnvelope::new(
                &started.tenant,
                started.batch,
                chunk,
                &started.correlation_id,
            )
        }));
    }
    if envelopes.is_empty() {
        return;
    }
    if let Err(e) = deps.queue.enqueue(&envelopes).await {
        tracing::error!(next_chunk = ?next, next_batch = ?started.as_ref().map(|s| s.batch.to_string()), error = %error_chain(&e), "could not queue the window's next chunks; the sweeper restarts the window");
        deps.metrics.emit(
            Record::new("sender")
                .count("WindowLinkFailed", 1)
                .property("tenant_id", envelope.tenant_id.as_str())
                .property("batch_id", envelope.batch_id.to_string()),
        );
    }
}

/// Counted once per chunk, when every recipient is final: the pass that finishes the
/// chunk knows every status (its own outcomes and those found settled), and the store
/// adds them to the batch under a per-chunk marker, so neither a crash mid-way nor a
/// duplicate delivery can skew the batch's counts.
async fn count(
    run: &ChunkRun<'_>,
    batch: BatchId,
    outcomes: Vec<Result<Done, StoreError>>,
) -> Result<Counted, RecordError> {
    let deps = run.deps;
    let mut counts = ChunkCounts::default();
    // Only what this pass settled: a redelivered chunk must not count its messages again.
    let mut settled_now = ChunkCounts::default();
    let mut unfinished = 0;
    let mut store_error = None;
    for outcome in outcomes {
        match outcome {
            Ok(Done::Final(status)) => counts.record(status),
            Ok(Done::Settled(status)) => {
                counts.record(status);
                settled_now.record(status);
            }
            Ok(Done::Retry) => unfinished += 1,
            Err(e) => {
                unfinished += 1;
                store_error = Some(e);
            }
        }
    }
    tracing::info!(
        sent = counts.sent,
        failed = counts.failed,
        unknown = counts.unknown,
        cancelled = counts.cancelled,
        suppressed = counts.suppressed,
        unfinished,
        "chunk processed"
    );
    deps.metrics.emit(
        Record::new("sender")
            .count("Sent", settled_now.sent as usize)
            .count("Failed", settled_now.failed as usize)
            .count("Unknown", settled_now.unknown as usize)
            .count("Cancelled", settled_now.cancelled as usize)
            .count("Suppressed", settled_now.suppressed as usize)
            .count("ProviderRetries", run.stats.retries())
            .samples(
                "ProviderLatency",
                Unit::Milliseconds,
                run.stats.take_latencies(),
            )
            .property("tenant_id", run.tenant.as_str())
            .property("batch_id", batch.to_string())
            .property("chunk", run.chunk.index),
    );
    match (store_error, unfinished) {
        (Some(e), _) => Err(e.into()),
        (None, 0) => Ok(deps
            .store
            .count_chunk(
                run.tenant,
                batch,
                run.chunk.index,
                counts,
                deps.clock.timestamp(),
            )
            .await?),
        (None, n) => Err(RecordError::Unfinished(n)),
    }
}
