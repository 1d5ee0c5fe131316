//! The sandbox SMS provider: a Twilio-compatible Messages API with a ledger of every
//! message it accepted, switchable faults, and an optional account rate limit, so tests
//! and the benchmark can count duplicates and losses while the provider misbehaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Twilio's magic test number that is always rejected as invalid.
pub const INVALID_NUMBER: &str = "+15005550001";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerEntry {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub received_at: String,
    /// `received_at` in milliseconds since the epoch, for timing deliveries.
    pub received_at_ms: u64,
}

/// Misbehaviour to inject. Rates are probabilities per request, checked in the order
/// throttle, error, timeout. `only_to`, when set, limits every fault to those numbers.
/// The account rate limit is checked before them all and applies to every number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Messages per second the account accepts (0: no limit). Past it the sandbox
    /// answers 429 with `Retry-After`, as a provider enforcing its account's rate does.
    /// A token bucket holding one second of messages, so a sender at the rate with
    /// some jitter is not refused, and one that bursts above it is.
    pub rate_limit_per_second: f64,
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
    pub only_to: Vec<String>,
}

/// How many of each fault the sandbox has injected, so tests can predict outcomes
/// exactly rather than statistically.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Injected {
    pub throttles: usize,
    pub errors: usize,
    /// Messages accepted (in the ledger) whose answer came too late.
    pub timeouts: usize,
    /// Requests refused with 429 for going over `rate_limit_per_second`.
    pub rate_limited: usize,
}

/// The account's token bucket: `capacity` tokens, refilled at `per_second`.
struct Bucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_second: f64, now: Instant) -> Self {
        let capacity = per_second.max(1.0);
        Self {
            per_second,
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    /// Takes a token at `now`, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
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

pub struct Sandbox {
    account_sid: String,
    auth_token: String,
    ledger: Mutex<Vec<LedgerEntry>>,
    faults: Mutex<Faults>,
    injected: Mutex<Injected>,
    /// The rate limit's state; `None` while there is no limit.
    bucket: Mutex<Option<Bucket>>,
}

impl Sandbox {
    pub fn new(account_sid: &str, auth_token: &str) -> Arc<Self> {
        Arc::new(Self {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            ledger: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            injected: Mutex::new(Injected::default()),
            bucket: Mutex::new(None),
        })
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.ledger.lock().expect("ledger lock").clone()
    }

    pub fn injected(&self) -> Injected {
        *self.injected.lock().expect("injected lock")
    }

    fn count(&self, fault: impl FnOnce(&mut Injected)) {
        fault(&mut self.injected.lock().expect("injected lock"));
    }

    /// Replaces the faults; a rate limit starts again with a full bucket.
    pub fn set_faults(&self, faults: Faults) {
        *self.bucket.lock().expect("bucket lock") = (faults.rate_limit_per_second > 0.0)
            .then(|| Bucket::full(faults.rate_limit_per_second, Instant::now()));
        *self.faults.lock().expect("faults lock") = faults;
    }

    /// Whether the account may send one more message now; if not, how long until it may.
    fn admit(&self) -> Result<(), Duration> {
        match self.bucket.lock().expect("bucket lock").as_mut() {
            Some(bucket) => bucket.take(Instant::now()),
            None => Ok(()),
        }
    }
}

pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(create_message),
        )
        .route(
            "/sandbox/messages",
            get(list_messages).delete(clear_messages),
        )
        .route("/sandbox/faults", get(get_faults).post(put_faults))
        .with_state(sandbox)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateMessageForm {
    to: Option<String>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: Option<String>,
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
    response.headers_mut().insert(
        header::RETRY_AFTER,
        retry_after_secs.to_string().parse().expect("digits"),
    );
    response
}

fn authorized(sandbox: &Sandbox, headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", sandbox.account_sid, sandbox.auth_token));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given.as_bytes() == expected.as_bytes())
}

async fn create_message(
    State(sandbox): State<Arc<Sandbox>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CreateMessageForm>,
) -> Response {
    if account != sandbox.account_sid || !authorized(&sandbox, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(to) = form.to.filter(|t| !t.is_empty()) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let Some(body) = form.body.filter(|b| !b.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    let Some(from) = form.from.or(form.messaging_service_sid) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        );
    };
    if to == INVALID_NUMBER || !to.starts_with('+') {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }

    if let Err(wait) = sandbox.admit() {
        sandbox.count(|i| i.rate_limited += 1);
        // Whole seconds, as Twilio sends it, rounded up so a caller that waits that
        // long finds a token.
        return too_many_requests(wait.as_secs_f64().ceil().max(1.0) as u64);
    }
    let faults = sandbox.faults.lock().expect("faults lock").clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let applies = faults.only_to.is_empty() || faults.only_to.contains(&to);
    if applies && rand::random::<f64>() < faults.throttle_rate {
        sandbox.count(|i| i.throttles += 1);
        return too_many_requests(faults.retry_after_secs);
    }
    if applies && rand::random::<f64>() < faults.error_rate {
        sandbox.count(|i| i.errors += 1);
        let status = faults
            .error_status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return twilio_error(status, 20500, "An internal server error has occurred");
    }

    let received_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let entry = LedgerEntry {
        sid: format!("SM{}", crate::random_hex(32)),
        to,
        from,
        body,
        received_at: herald::Timestamp::from_epoch_millis(received_at_ms).to_string(),
        received_at_ms,
    };
    sandbox
        .ledger
        .lock()
        .expect("ledger lock")
        .push(entry.clone());
    if applies && rand::random::<f64>() < faults.timeout_rate {
        sandbox.count(|i| i.timeouts += 1);
        tokio::time::sleep(Duration::from_millis(faults.timeout_ms)).await;
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "sid": entry.sid,
            "account_sid": sandbox.account_sid,
            "to": entry.to,
            "from": entry.from,
            "body": entry.body,
            "status": "queued",
            "date_created": entry.received_at,
            "num_segments": "1",
        })),
    )
        .into_response()
}

async fn list_messages(State(sandbox): State<Arc<Sandbox>>) -> Json<serde_json::Value> {
    let messages = sandbox.ledger();
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *per_recipient.entry(m.to.as_str()).or_default() += 1;
    }
    let duplicates = per_recipient.values().filter(|n| **n > 1).count();
    Json(
        json!({ "count": messages.len(), "recipients_with_duplicates": duplicates, "messages": messages }),
    )
}

async fn clear_messages(State(sandbox): State<Arc<Sandbox>>) -> StatusCode {
    sandbox.ledger.lock().expect("ledger lock").clear();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(sandbox): State<Arc<Sandbox>>) -> Json<Faults> {
    Json(sandbox.faults.lock().expect("faults lock").clone())
}

async fn put_faults(State(sandbox): State<Arc<Sandbox>>, Json(faults): Json<Faults>) -> Response {
    let rates = [faults.error_rate, faults.throttle_rate, faults.timeout_rate];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "rates must be between 0 and 1"})),
        )
            .into_response();
    }
    if !(faults.rate_limit_per_second.is_finite() && faults.rate_limit_per_second >= 0.0) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "rate_limit_per_second must be a number of at least 0"})),
        )
            .into_response();
    }
    sandbox.set_faults(faults.clone());
    Json(faults).into_response()
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

    #[tokio::test]
    async fn past_the_account_rate_the_provider_answers_429_with_retry_after() {
        use tower::ServiceExt;

        let sandbox = Sandbox::new("AC1", "secret");
        sandbox.set_faults(Faults {
            rate_limit_per_second: 2.0,
            ..Faults::default()
        });
        let auth = base64::engine::general_purpose::STANDARD.encode("AC1:secret");
        let mut answers = Vec::new();
        for _ in 0..3 {
            let request = axum::http::Request::post("/2010-04-01/Accounts/AC1/Messages.json")
                .header(header::AUTHORIZATION, format!("Basic {auth}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(
                    "To=%2B14155552000&From=%2B15005550006&Body=hi",
                ))
                .unwrap();
            answers.push(router(sandbox.clone()).oneshot(request).await.unwrap());
        }
        let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
        assert_eq!(statuses, [201, 201, 429]);
        assert_eq!(answers[2].headers()[header::RETRY_AFTER], "1");
        assert_eq!(sandbox.injected().rate_limited, 1);
        assert_eq!(sandbox.ledger().len(), 2);
    }

    #[test]
    fn a_rate_below_one_per_second_still_admits_one_message() {
        let start = Instant::now();
        let mut bucket = Bucket::full(0.5, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(Duration::from_secs(2)));
    }
}
