//! The sender: one SQS record is one chunk of recipients. Per recipient it claims the
//! message (conditional write), sends it through the provider, and settles it
//! (conditional on still holding the claim). Redelivering a chunk any number of times
//! sends each recipient at most once.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt, stream};
use herald::clock::SharedClock;
use herald::config::SenderConfig;
use herald::provider::ses::SesProvider;
use herald::provider::sns::SnsProvider;
use herald::provider::twilio::TwilioProvider;
use herald::provider::{
    Outbound, OutboundEmail, OutboundSms, Provider, SendOutcome, SmsProviderKind,
};
use herald::queue::{ChunkEnvelope, DeadLetterQueue, EnvelopeError};
use herald::secrets::SecretsCache;
use herald::store::{
    BatchStatus, Channel, Chunk, ChunkCounts, ClaimOutcome, Lease, Recipient, Settlement, Store,
    StoreError, TenantStatus,
};
use herald::telemetry::error_chain;
use herald::{Address, MessageId, MessageStatus, TenantId};
use std::sync::atomic::{AtomicUsize, Ordering};

use herald::metrics::{Metrics, Record, Unit};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

mod pacer;

pub use pacer::Pacer;

/// Time kept back from the invocation deadline for the writes that end a claim.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(3);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

pub struct Deps {
    pub config: SenderConfig,
    pub store: Store,
    pub dead_letters: DeadLetterQueue,
    pub providers: Providers,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pacer: Pacer,
    in_flight: Semaphore,
}

impl Deps {
    /// Everything the sender needs, built once per process: by `main` in Lambda, by
    /// the local cloud from the template-derived environment.
    pub fn from_config(
        config: SenderConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let secrets = Arc::new(SecretsCache::new(
            clients.secrets_manager(),
            Duration::from_secs(300),
        ));
        let provider = TwilioProvider::new(
            &config.sms_api_base,
            &config.provider_secret_id,
            secrets,
            config.provider_timeout,
        )?;
        let store = Store::new(clients.dynamodb(), &config.table);
        let dead_letters = DeadLetterQueue::new(clients.sqs(), &config.dead_letter_queue_url);
        let sns = SnsProvider::new(clients.sns_config(), config.provider_timeout);
        let ses = SesProvider::new(
            clients.ses_config(),
            config.email_from.clone(),
            config.provider_timeout,
        );
        Ok(Self::new(
            config,
            store,
            dead_letters,
            Providers::new(Arc::new(provider), Arc::new(sns), Arc::new(ses)),
            clock,
        ))
    }

    pub fn new(
        config: SenderConfig,
        store: Store,
        dead_letters: DeadLetterQueue,
        providers: Providers,
        clock: SharedClock,
    ) -> Self {
        Self {
            metrics: Metrics::stdout(clock.clone()),
            pacer: Pacer::per_second(config.instance_rate_per_second()),
            in_flight: Semaphore::new(config.parallelism),
            config,
            store,
            dead_letters,
            providers,
            clock,
        }
    }
}

impl Deps {
    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// One adapter per SMS provider a tenant may be on, and the email adapter.
pub struct Providers {
    twilio: Arc<dyn Provider>,
    sns: Arc<dyn Provider>,
    ses: Arc<dyn Provider>,
}

impl Providers {
    pub fn new(twilio: Arc<dyn Provider>, sns: Arc<dyn Provider>, ses: Arc<dyn Provider>) -> Self {
        Self { twilio, sns, ses }
    }

    /// The same adapter for every channel and whatever the tenant chose (a test's
    /// provider with faults).
    pub fn all(provider: Arc<dyn Provider>) -> Self {
        Self::new(provider.clone(), provider.clone(), provider)
    }

    /// The adapter for a chunk: email goes through SES; SMS through the provider the
    /// tenant's profile names.
    pub fn for_chunk(&self, channel: Channel, sms: SmsProviderKind) -> &dyn Provider {
        match (channel, sms) {
            (Channel::Email, _) => self.ses.as_ref(),
            (Channel::Sms, SmsProviderKind::Twilio) => self.twilio.as_ref(),
            (Channel::Sms, SmsProviderKind::Sns) => self.sns.as_ref(),
        }
    }
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

#[derive(Debug, thiserror::Error)]
enum RecordError {
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
}

/// Processes one SQS batch. Records run concurrently; each one's failure, error or
/// panic is reported as that record's batch item failure and touches no other record.
pub async fn handle(deps: &Deps, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let failures = futures::future::join_all(event.records.iter().map(|record| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "chunk",
            sqs_message_id = %id,
            tenant_id = tracing::field::Empty,
            batch_id = tracing::field::Empty,
            chunk = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        let result = AssertUnwindSafe(process_record(deps, record, deadline).instrument(span.clone()))
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
                            deps.metrics.emit(Record::new("sender").count("PoisonParked", 1).property("reason", reason.as_str()));
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
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failures.into_iter().flatten() {
        // An empty id fails the whole batch in Lambda, which is the safe reading of a
        // record we cannot name.
        response.add_failure(id);
    }
    response
}

async fn park(
    deps: &Deps,
    record: &SqsMessage,
    reason: &str,
) -> Result<(), herald::queue::QueueError> {
    let attributes: Vec<(String, String)> = record
        .message_attributes
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .collect();
    deps.dead_letters
        .park(
            record.body.as_deref().unwrap_or_default(),
            &attributes,
            reason,
        )
        .await
}

async fn process_record(
    deps: &Deps,
    record: &SqsMessage,
    deadline: Instant,
) -> Result<(), RecordError> {
    let envelope = ChunkEnvelope::parse(record.body.as_deref().unwrap_or_default())?;
    let span = tracing::Span::current();
    span.record("tenant_id", envelope.tenant_id.as_str());
    span.record("batch_id", envelope.batch_id.to_string());
    span.record("chunk", envelope.chunk);
    span.record("correlation_id", envelope.correlation_id.as_str());

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
        profile.map(|p| p.sms_provider).unwrap_or_default(),
    );
    let cancelled = deps
        .store
        .get_batch(tenant, batch)
        .await?
        .ok_or_else(|| RecordError::MissingBatch {
            batch: batch.to_string(),
        })?
        .status
        == BatchStatus::Cancelled;

    // Owned pairs: a stream over borrowed ones trips the compiler's `Send` analysis.
    let recipients: Vec<(MessageId, Recipient)> = chunk
        .messages(batch)
        .map(|(id, r)| (id, r.clone()))
        .collect();
    let chunk = &chunk;
    let stats = &ProviderStats::default();
    let outcomes: Vec<Result<Done, StoreError>> = stream::iter(recipients)
        .map(|(id, recipient)| async move {
            if cancelled {
                cancel_one(deps, tenant, chunk, id, &recipient.to).await
            } else {
                send_one(
                    deps, provider, stats, tenant, chunk, id, &recipient, deadline,
                )
                .await
            }
        })
        .buffer_unordered(deps.config.parallelism)
        .collect()
        .await;

    // Counted once per chunk, when every recipient is final: the pass that finishes
    // the chunk knows every status (its own outcomes and those found settled), and the
    // store adds them to the batch under a per-chunk marker, so neither a crash mid-way
    // nor a duplicate delivery can skew the batch's counts.
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
        unfinished,
        "chunk processed"
    );
    deps.metrics.emit(
        Record::new("sender")
            .count("Sent", settled_now.sent as usize)
            .count("Failed", settled_now.failed as usize)
            .count("Unknown", settled_now.unknown as usize)
            .count("Cancelled", settled_now.cancelled as usize)
            .count("ProviderRetries", stats.retries.load(Ordering::Relaxed))
            .samples(
                "ProviderLatency",
                Unit::Milliseconds,
                stats.take_latencies(),
            )
            .property("tenant_id", tenant.as_str())
            .property("batch_id", batch.to_string())
            .property("chunk", chunk.index),
    );
    match (store_error, unfinished) {
        (Some(e), _) => Err(e.into()),
        (None, 0) => {
            deps.store
                .count_chunk(
                    tenant,
                    batch,
                    chunk.index,
                    counts,
                    deps.clock.epoch_millis(),
                )
                .await?;
            Ok(())
        }
        (None, n) => Err(RecordError::Unfinished(n)),
    }
}

enum Done {
    /// This pass put the message in this final status.
    Settled(MessageStatus),
    /// The message was found in this final status.
    Final(MessageStatus),
    /// Not final yet (not sent, or held by another delivery); the chunk must come back.
    Retry,
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id))]
async fn cancel_one(
    deps: &Deps,
    tenant: &TenantId,
    chunk: &Chunk,
    id: MessageId,
    to: &Address,
) -> Result<Done, StoreError> {
    let outcome = deps
        .store
        .cancel_message(tenant, id, chunk, to, &deps.clock.rfc3339())
        .await?;
    Ok(match outcome {
        None => Done::Settled(MessageStatus::Cancelled),
        Some(status) if status.is_settled() => Done::Final(status),
        // Claimed before the cancel landed: its sender finishes it, and a later pass
        // over the chunk counts it.
        Some(_) => Done::Retry,
    })
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id))]
#[allow(clippy::too_many_arguments)]
async fn send_one(
    deps: &Deps,
    provider: &dyn Provider,
    stats: &ProviderStats,
    tenant: &TenantId,
    chunk: &Chunk,
    id: MessageId,
    recipient: &Recipient,
    deadline: Instant,
) -> Result<Done, StoreError> {
    let to = &recipient.to;
    // A claim made now must be settled before the invocation ends: a provider call at
    // its longest, then the settle write. Past that point, leave the message unclaimed
    // for the chunk's redelivery (a claim cut off by the timeout would become unknown).
    // The permit is taken first, so an invocation holding several chunks never has
    // more claims outstanding than it can send at once.
    let _permit = deps
        .in_flight
        .acquire()
        .await
        .expect("semaphore is never closed");
    if !time_to_send(deps, deadline) {
        return Ok(Done::Retry);
    }
    let now_epoch = deps.clock.epoch_seconds();
    let lease = Lease {
        now: deps.clock.rfc3339(),
        now_epoch,
        until_epoch: now_epoch + deps.config.lease.as_secs(),
    };
    let claim = deps.store.claim(tenant, id, chunk, to, &lease).await?;
    let token = match claim {
        ClaimOutcome::Claimed { token } => token,
        ClaimOutcome::Settled(status) => return Ok(Done::Final(status)),
        ClaimOutcome::HeldElsewhere {
            lease_expired: false,
            ..
        } => return Ok(Done::Retry),
        ClaimOutcome::HeldElsewhere {
            lease_expired: true,
            token,
        } => {
            // The holder stopped after claiming and never settled: it may or may not
            // have sent. Re-sending could text someone twice, so it becomes unknown.
            let unknown = Settlement::Unknown {
                reason: "the sender stopped between claiming and recording the outcome".into(),
            };
            return settle(deps, tenant, id, &token, unknown).await;
        }
    };

    let rendered = chunk
        .body_for(recipient)
        .and_then(|body| Ok((body, chunk.subject_for(recipient)?)));
    let (body, subject) = match rendered {
        Ok(rendered) => rendered,
        // The API renders every recipient before accepting a batch, so only a chunk
        // written some other way gets here; it must not send a half-filled text.
        Err(missing) => {
            let failed = Settlement::Failed {
                code: "template".into(),
                reason: missing.to_string(),
            };
            return settle(deps, tenant, id, &token, failed).await;
        }
    };
    let message = match (to, subject) {
        (Address::Phone(to), None) => Outbound::Sms(OutboundSms {
            message_id: id,
            to: to.clone(),
            body,
        }),
        (Address::Email(to), Some(subject)) => Outbound::Email(OutboundEmail {
            message_id: id,
            to: to.clone(),
            subject,
            body,
        }),
        // The chunk's reader checks that only email chunks carry a subject and parses
        // each address for the chunk's channel, so this is a chunk written some other
        // way: nothing can be sent for it.
        (to, _) => {
            let failed = Settlement::Failed {
                code: "channel".into(),
                reason: format!(
                    "a {} address in a {} chunk",
                    to.channel().as_str(),
                    chunk.channel.as_str()
                ),
            };
            return settle(deps, tenant, id, &token, failed).await;
        }
    };
    let mut attempt = 0;
    let settlement = loop {
        attempt += 1;
        deps.pacer.wait().await;
        if !time_to_send(deps, deadline) {
            // Known not sent: give the claim back for the chunk's redelivery.
            deps.store
                .release(
                    tenant,
                    id,
                    &token,
                    "out of invocation time",
                    &deps.clock.rfc3339(),
                )
                .await?;
            return Ok(Done::Retry);
        }
        let started = Instant::now();
        let outcome = provider.send(&message).await;
        stats.record_latency(started.elapsed());
        match outcome {
            SendOutcome::Accepted { provider_ref } => {
                break Settlement::Sent {
                    provider: provider.name().to_owned(),
                    provider_ref,
                };
            }
            SendOutcome::Rejected { code, reason } => break Settlement::Failed { code, reason },
            SendOutcome::Ambiguous { reason } => break Settlement::Unknown { reason },
            SendOutcome::Transient {
                reason,
                retry_after,
            } => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = backoff(attempt, retry_after);
                let out_of_time = !time_to_send_after(deps, delay, deadline);
                if attempt >= deps.config.max_attempts || out_of_time {
                    tracing::info!(attempt, %reason, "provider still failing; releasing the claim");
                    deps.store
                        .release(tenant, id, &token, &reason, &deps.clock.rfc3339())
                        .await?;
                    return Ok(Done::Retry);
                }
                tracing::debug!(attempt, %reason, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    };
    settle(deps, tenant, id, &token, settlement).await
}

/// What one chunk's provider calls looked like, for its metric line.
#[derive(Default)]
struct ProviderStats {
    latencies: std::sync::Mutex<Vec<f64>>,
    /// Transient answers (5xx, 429, refused connections) that led to a retry or a
    /// release.
    retries: AtomicUsize,
}

impl ProviderStats {
    fn record_latency(&self, elapsed: Duration) {
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(elapsed.as_secs_f64() * 1000.0);
    }

    fn take_latencies(&self) -> Vec<f64> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whether a provider call started now can still be settled before `deadline`.
fn time_to_send(deps: &Deps, deadline: Instant) -> bool {
    time_to_send_after(deps, Duration::ZERO, deadline)
}

/// Whether a provider call started after waiting `wait` can still be settled before
/// `deadline`.
fn time_to_send_after(deps: &Deps, wait: Duration, deadline: Instant) -> bool {
    fits(Instant::now(), wait, deps.config.provider_timeout, deadline)
}

/// `now + wait + provider_timeout + SETTLE_MARGIN <= deadline`, in checked arithmetic:
/// the wait comes from a provider's `Retry-After` and may be of any size, and one too
/// large for an `Instant` means "not in this invocation", not a panic.
fn fits(now: Instant, wait: Duration, provider_timeout: Duration, deadline: Instant) -> bool {
    wait.checked_add(provider_timeout)
        .and_then(|d| d.checked_add(SETTLE_MARGIN))
        .and_then(|d| now.checked_add(d))
        .is_some_and(|end| end <= deadline)
}

async fn settle(
    deps: &Deps,
    tenant: &TenantId,
    id: MessageId,
    token: &str,
    settlement: Settlement,
) -> Result<Done, StoreError> {
    let settled = deps
        .store
        .settle(tenant, id, token, &settlement, &deps.clock.rfc3339())
        .await?;
    if settled {
        tracing::info!(status = settlement.status().as_str(), "message settled");
        Ok(Done::Settled(settlement.status()))
    } else {
        // The claim was taken over (its lease ran out): whoever took it records the
        // outcome, and a later pass reads and counts it.
        Ok(Done::Retry)
    }
}

/// Exponential backoff with full jitter; a provider's Retry-After is a floor.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_CAP);
    let jitter = ceiling.mul_f64(rand::random::<f64>());
    retry_after.map_or(jitter, |floor| floor.max(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_cap_and_honours_retry_after() {
        for attempt in 1..40 {
            assert!(backoff(attempt, None) <= BACKOFF_CAP);
        }
        let floor = Duration::from_secs(2);
        assert!(backoff(1, Some(floor)) >= floor);
    }

    #[test]
    fn a_wait_of_any_size_is_out_of_time_never_a_panic() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        let timeout = Duration::from_secs(5);
        assert!(fits(now, Duration::ZERO, timeout, deadline));
        assert!(fits(now, Duration::from_secs(22), timeout, deadline));
        assert!(!fits(now, Duration::from_secs(23), timeout, deadline));
        // `Retry-After: 18446744073709551615`, had an adapter passed it on unclamped.
        for wait in [Duration::from_secs(u64::MAX), Duration::MAX] {
            let delay = backoff(1, Some(wait));
            assert_eq!(delay, wait);
            assert!(!fits(now, delay, timeout, deadline));
        }
        // A deadline already passed.
        assert!(!fits(deadline, Duration::ZERO, timeout, now));
    }
}
