//! The provider loop for one claimed message: calls in slots of the sender number's
//! own rate, when it has one, and of the shared provider rate (`rate`), retried with exponential backoff and full jitter while the answer
//! proves nothing was taken, as long as a call and its settle still fit before the
//! invocation's deadline. It ends with an outcome to settle, or with "not sent" for
//! the claim to be released; it writes nothing itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::domain::Settlement;
use herald::provider::{Outbound, SendOutcome, lost_text_to};
use tokio::time::Instant;

use crate::Deps;
use crate::chunk::ChunkRun;

/// Time kept back from the invocation deadline for the writes that end a claim.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(3);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// How the provider loop ended.
pub(crate) enum Attempted {
    /// The provider answered with something to record.
    Answered(Settlement),
    /// Known not sent, and no attempt or time left for another call.
    NotSent { reason: String },
    /// Not sent: its slot came too late to send and settle before the deadline.
    OutOfTime,
}

pub(crate) async fn send(run: &ChunkRun<'_>, message: &Outbound) -> Attempted {
    let deps = run.deps;
    let mut attempt = 0;
    loop {
        // The number's slot first: the account's slots are a fiftieth of a second
        // apart, so waiting for one after leaves the number's slot on time, while the
        // other way round would keep an account slot waiting up to a second.
        let sender_slot = match &run.sender_rate {
            Some(gate) => match gate.wait().await {
                Ok(slot) => Some(slot),
                Err(reason) => return Attempted::NotSent { reason },
            },
            None => None,
        };
        if let Err(reason) = deps.rate.wait().await {
            return Attempted::NotSent { reason };
        }
        if !time_to_send(deps, run.deadline) {
            return Attempted::OutOfTime;
        }
        if sender_slot.is_some_and(|slot| slot.is_late()) {
            // The account's gate held the text past its number's slot: going now could
            // bunch it with the number's next one. The slot is lost; take another.
            continue;
        }
        attempt += 1;
        let started = Instant::now();
        let outcome = run.provider.send(message).await;
        run.stats.record_latency(started.elapsed());
        match outcome {
            SendOutcome::Accepted { provider_ref } => {
                return Attempted::Answered(Settlement::Sent {
                    provider: run.provider.name().to_owned(),
                    provider_ref,
                });
            }
            SendOutcome::Rejected { code, reason } => {
                return Attempted::Answered(Settlement::Failed { code, reason });
            }
            SendOutcome::Ambiguous { reason } => {
                let lost = match message {
                    Outbound::Sms(sms) => {
                        lost_text_to(run.provider, &herald::Address::Phone(sms.to.clone()))
                    }
                    Outbound::Email(_) => None,
                };
                return Attempted::Answered(Settlement::Unknown {
                    reason,
                    lost_text_to: lost,
                });
            }
            SendOutcome::Transient {
                reason,
                retry_after,
            } => {
                run.stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = backoff(attempt, retry_after);
                let out_of_time = !time_to_send_after(deps, delay, run.deadline);
                if attempt >= deps.config.max_attempts || out_of_time {
                    tracing::info!(attempt, %reason, "provider still failing; releasing the claim");
                    return Attempted::NotSent { reason };
                }
                tracing::debug!(attempt, %reason, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// What one chunk's provider calls looked like, for its metric line.
#[derive(Default)]
pub(crate) struct ProviderStats {
    latencies: std::sync::Mutex<Vec<f64>>,
    /// Transient answers (429, 503, refused connections...) that led to a retry or a
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

    pub(crate) fn take_latencies(&self) -> Vec<f64> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }
}

/// Whether a provider call started now can still be settled before `deadline`.
pub(crate) fn time_to_send(deps: &Deps, deadline: Instant) -> bool {
    time_to_send_after(deps, Duration::ZERO, deadline)
}

/// Whether a provider call started after waiting `wait` can still be settled before
/// `deadline`.
fn time_to_send_after(deps: &Deps, wait: Duration, deadline: Instant) -> bool {
    // A settle may wait its linger for others before its write.
    let answered = deps.config.provider_timeout + deps.config.settle_linger;
    fits(Instant::now(), wait, answered, deadline)
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
