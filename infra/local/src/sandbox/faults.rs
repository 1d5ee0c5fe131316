//! What the sandbox provider can be told to get wrong (`Faults`), what it counts of
//! what it did (`Injected`), and the account's rate limit (`Bucket`): the state behind
//! the sandbox's answers, apart from the HTTP API that gives them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Misbehaviour to inject. Rates are probabilities per request, checked in the order
/// throttle, error (both before the message is taken), then accept-then-error and
/// timeout (both after it is in the ledger). `only_to`, when set, limits every fault to
/// those numbers.
/// The account rate limit is checked before them all and applies to every number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Messages per second the account accepts (0: no limit). Past it the sandbox
    /// answers 429 with `Retry-After`, as a provider enforcing its account's rate does.
    /// A token bucket holding one second of messages, so a sender at the rate with
    /// some jitter is not refused, and one that bursts above it is.
    pub rate_limit_per_second: f64,
    /// Messages per second each named sender (`From` or messaging service) accepts,
    /// as carriers pace a number: a bucket per sender holding one second of messages
    /// and one more, so a sender at the rate whose texts go up to half a second late is
    /// not refused. Twilio queues what a number cannot take yet; the sandbox answers 429
    /// instead, so a test can count each excess. Senders not named: no limit.
    pub sender_rate_limits: BTreeMap<String, f64>,
    pub error_rate: f64,
    /// Status for injected errors (default 500).
    pub error_status: Option<u16>,
    pub throttle_rate: f64,
    pub retry_after_secs: u64,
    pub latency_ms: u64,
    /// Accept the message (it is in the ledger) but answer only after `timeout_ms`,
    /// later than the caller waits.
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Take the message (it is in the ledger), then answer with a server error instead
    /// of 201: an answer lost after acceptance, as a 500 after the provider's write or
    /// a proxy's 502 or 504 would be.
    pub accept_then_error_rate: f64,
    /// The statuses those answers use, in turn (default: 500 alone).
    pub accept_then_error_statuses: Vec<u16>,
    pub only_to: Vec<String>,
    /// Each status callback is sent this many times (0 and 1: once).
    pub callback_copies: u32,
    /// Each callback waits this long before it is sent.
    pub callback_delay_ms: u64,
    /// A message's callbacks (statuses and copies) go in random order, each at a
    /// random time within a second `callback_delay_ms`.
    pub callback_reorder: bool,
    /// Share of callback requests never sent.
    pub callback_drop_rate: f64,
    /// Numbers whose messages end `undelivered` (besides `UNDELIVERED_NUMBER`).
    pub undelivered_to: Vec<String>,
}

/// How many of each fault the sandbox has injected, so tests can predict outcomes
/// exactly rather than statistically.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Injected {
    pub throttles: usize,
    /// Server errors answered before the message was taken (not in the ledger).
    pub errors: usize,
    /// Messages taken (in the ledger) and answered with a server error, per status.
    pub accepted_then_errors: BTreeMap<u16, usize>,
    /// Messages accepted (in the ledger) whose answer came too late.
    pub timeouts: usize,
    /// Requests refused with 429 for going over `rate_limit_per_second`.
    pub rate_limited: usize,
    /// Requests refused with 429 for going over their sender's `sender_rate_limits`.
    pub sender_rate_limited: usize,
}

/// The account's token bucket: `capacity` tokens, refilled at `per_second`.
pub(super) struct Bucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Injected {
    /// Messages taken and answered with a server error, whatever the status.
    pub fn accepted_then_errors_total(&self) -> usize {
        self.accepted_then_errors.values().sum()
    }

    /// Counts one more accept-then-error answer and says its status: `statuses` in
    /// turn, so a run of a few answers already has each status.
    pub(super) fn next_accepted_then_error(&mut self, statuses: &[u16]) -> u16 {
        let statuses = if statuses.is_empty() {
            &[500][..]
        } else {
            statuses
        };
        let status = statuses[self.accepted_then_errors_total() % statuses.len()];
        *self.accepted_then_errors.entry(status).or_default() += 1;
        status
    }
}

impl Bucket {
    pub(super) fn full(per_second: f64, now: Instant) -> Self {
        Self::holding(per_second, per_second.max(1.0), now)
    }

    /// A sender's bucket: a second of messages and one more.
    pub(super) fn for_sender(per_second: f64, now: Instant) -> Self {
        Self::holding(per_second, per_second + 1.0, now)
    }

    fn holding(per_second: f64, capacity: f64, now: Instant) -> Self {
        Self {
            per_second,
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub(super) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

impl Faults {
    /// Rates are probabilities; a rate limit is a number of messages a second; the
    /// statuses of answers after acceptance are server errors.
    pub fn check(&self) -> Result<(), &'static str> {
        let rates = [
            self.error_rate,
            self.throttle_rate,
            self.timeout_rate,
            self.accept_then_error_rate,
            self.callback_drop_rate,
        ];
        if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
            return Err("rates must be between 0 and 1");
        }
        if !(self.rate_limit_per_second.is_finite() && self.rate_limit_per_second >= 0.0) {
            return Err("rate_limit_per_second must be a number of at least 0");
        }
        if !self
            .sender_rate_limits
            .values()
            .all(|r| r.is_finite() && *r > 0.0)
        {
            return Err("sender_rate_limits must be positive numbers");
        }
        if self
            .accept_then_error_statuses
            .iter()
            .any(|s| !(500..=599).contains(s))
        {
            return Err("accept_then_error_statuses must be between 500 and 599");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_a_second_of_messages_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(4.0, start);
        for _ in 0..4 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        assert_eq!(bucket.take(start), Err(Duration::from_millis(250)));
        let later = start + Duration::from_millis(250);
        assert_eq!(bucket.take(later), Ok(()));
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn a_senders_bucket_holds_one_message_more_than_a_second() {
        let start = Instant::now();
        let mut bucket = Bucket::for_sender(1.0, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(Duration::from_secs(1)));
        assert_eq!(bucket.take(start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_rate_below_one_per_second_still_admits_one_message() {
        let start = Instant::now();
        let mut bucket = Bucket::full(0.5, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(Duration::from_secs(2)));
    }
}
