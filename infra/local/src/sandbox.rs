//! The sandbox SMS provider: a Twilio-compatible Messages API with a ledger of every
//! message it accepted, switchable faults, and an optional account rate limit, so tests
//! and the benchmark can count duplicates and losses while the provider misbehaves.
//! Like Twilio it calls back: signed status callbacks for what it took (when the
//! message names a `StatusCallback`), and inbound texts on request
//! (`POST /sandbox/inbound`), see `callbacks`. Requests authenticate with the
//! account's auth token or an API key made through its Keys API (`keys`), which a
//! credential rotation uses. Over 400 lines: the Messages API and its faults are one
//! request path, read top to bottom.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod callbacks;
mod faults;
mod keys;

pub use callbacks::{CallbackLog, UNDELIVERED_CODE, UNDELIVERED_NUMBER};
use faults::Bucket;
pub use faults::{Faults, Injected};
pub use keys::Credential;

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
    /// Where its status callbacks go, when it asked for them.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Who sent it: the account SID, or the API key's SID when a key authenticated it.
    #[serde(default)]
    pub credential: String,
}

pub struct Sandbox {
    account_sid: String,
    auth_token: String,
    ledger: Mutex<Vec<LedgerEntry>>,
    faults: Mutex<Faults>,
    injected: Mutex<Injected>,
    /// The rate limit's state; `None` while there is no limit.
    bucket: Mutex<Option<Bucket>>,
    /// Each sender's rate limit's state, made at its first message.
    sender_buckets: Mutex<HashMap<String, Bucket>>,
    callbacks: callbacks::Callbacks,
    callback_log: Mutex<CallbackLog>,
    /// The receiver's base URL inbound texts are posted to.
    webhooks_base: Mutex<Option<String>>,
    /// The account's API keys (`keys`).
    keys: keys::Keys,
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
            sender_buckets: Mutex::default(),
            callbacks: Default::default(),
            callback_log: Mutex::new(CallbackLog::default()),
            webhooks_base: Mutex::new(None),
            keys: Default::default(),
        })
    }

    /// What its webhooks did so far.
    pub fn callback_log(&self) -> CallbackLog {
        self.callback_log.lock().expect("callback log lock").clone()
    }

    fn log(&self, change: impl FnOnce(&mut CallbackLog)) {
        change(&mut self.callback_log.lock().expect("callback log lock"));
    }

    /// Where inbound texts go: the receiver's base URL (`http://127.0.0.1:3000`).
    pub fn set_webhooks_base(&self, base: &str) {
        *self.webhooks_base.lock().expect("webhooks lock") =
            Some(base.trim_end_matches('/').to_owned());
    }

    /// Sends a text from `from` to `to` as Twilio posts one to a number's webhook,
    /// signed; the receiver's status.
    pub async fn inbound(&self, from: &str, to: &str, body: &str) -> Result<u16, String> {
        let base = self
            .webhooks_base
            .lock()
            .expect("webhooks lock")
            .clone()
            .ok_or("no webhooks base URL is set")?;
        let url = format!("{base}{}", herald::webhook::twilio::INBOUND_PATH);
        let form: Vec<(String, String)> = [
            ("AccountSid", self.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("Body", body),
            ("From", from),
            ("FromCity", ""),
            ("MessageSid", &format!("SM{}", crate::random_hex(32))),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("To", to),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        callbacks::post_signed(self, &url, &form).await
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.ledger.lock().expect("ledger lock").clone()
    }

    pub fn injected(&self) -> Injected {
        self.injected.lock().expect("injected lock").clone()
    }

    fn count<T>(&self, fault: impl FnOnce(&mut Injected) -> T) -> T {
        fault(&mut self.injected.lock().expect("injected lock"))
    }

    /// Replaces the faults; a rate limit starts again with a full bucket.
    pub fn set_faults(&self, faults: Faults) {
        *self.bucket.lock().expect("bucket lock") = (faults.rate_limit_per_second > 0.0)
            .then(|| Bucket::full(faults.rate_limit_per_second, Instant::now()));
        self.sender_buckets.lock().expect("bucket lock").clear();
        *self.faults.lock().expect("faults lock") = faults;
    }

    /// Whether `from` may send one more message now; if not, how long until it may.
    fn admit_sender(&self, from: &str) -> Result<(), Duration> {
        let limit = self
            .faults
            .lock()
            .expect("faults lock")
            .sender_rate_limits
            .get(from)
            .copied();
        let Some(per_second) = limit else {
            return Ok(());
        };
        let now = Instant::now();
        self.sender_buckets
            .lock()
            .expect("bucket lock")
            .entry(from.to_owned())
            .or_insert_with(|| Bucket::for_sender(per_second, now))
            .take(now)
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
        .route("/sandbox/callbacks", get(get_callbacks))
        .route("/sandbox/inbound", post(post_inbound))
        .route("/2010-04-01/Accounts/{file}", get(keys::fetch_account))
        .route(
            "/2010-04-01/Accounts/{account}/Keys.json",
            post(keys::create_key).get(keys::list_keys),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Keys/{file}",
            axum::routing::delete(keys::delete_key),
        )
        .with_state(sandbox)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateMessageForm {
    to: Option<String>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: Option<String>,
    status_callback: Option<String>,
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

async fn create_message(
    State(sandbox): State<Arc<Sandbox>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CreateMessageForm>,
) -> Response {
    let Some(credential) = sandbox.authenticate(&account, &headers) else {
        return keys::unauthenticated();
    };
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

    if let Err(wait) = sandbox.admit_sender(&from) {
        sandbox.count(|i| i.sender_rate_limited += 1);
        return too_many_requests(wait.as_secs_f64().ceil().max(1.0) as u64);
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
        status_callback: form.status_callback.filter(|u| !u.is_empty()),
        credential: credential.name(&sandbox),
    };
    sandbox
        .ledger
        .lock()
        .expect("ledger lock")
        .push(entry.clone());
    // Taken: whatever the answer below, the message goes on and its statuses are told.
    if let Some(url) = &entry.status_callback {
        callbacks::schedule(&sandbox, &faults, &entry.sid, &entry.to, &entry.from, url);
    }
    if applies && rand::random::<f64>() < faults.accept_then_error_rate {
        let status =
            sandbox.count(|i| i.next_accepted_then_error(&faults.accept_then_error_statuses));
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return twilio_error(status, 20500, "An internal server error has occurred");
    }
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

async fn get_callbacks(State(sandbox): State<Arc<Sandbox>>) -> Json<CallbackLog> {
    Json(sandbox.callback_log())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundText {
    from: String,
    to: String,
    body: String,
}

/// `POST /sandbox/inbound {from, to, body}`: a recipient's text, posted to the
/// receiver signed as Twilio's.
async fn post_inbound(
    State(sandbox): State<Arc<Sandbox>>,
    Json(text): Json<InboundText>,
) -> Response {
    match sandbox.inbound(&text.from, &text.to, &text.body).await {
        Ok(status) => Json(json!({ "webhook_status": status })).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": error }))).into_response(),
    }
}

async fn get_faults(State(sandbox): State<Arc<Sandbox>>) -> Json<Faults> {
    Json(sandbox.faults.lock().expect("faults lock").clone())
}

async fn put_faults(State(sandbox): State<Arc<Sandbox>>, Json(faults): Json<Faults>) -> Response {
    if let Err(error) = faults.check() {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    }
    sandbox.set_faults(faults.clone());
    Json(faults).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::collections::BTreeMap;

    /// Posts `count` messages to the sandbox's Messages API and returns its answers.
    async fn post_messages(sandbox: &Arc<Sandbox>, count: usize) -> Vec<Response> {
        use tower::ServiceExt;

        let auth = base64::engine::general_purpose::STANDARD.encode("AC1:secret");
        let mut answers = Vec::new();
        for _ in 0..count {
            let request = axum::http::Request::post("/2010-04-01/Accounts/AC1/Messages.json")
                .header(header::AUTHORIZATION, format!("Basic {auth}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(
                    "To=%2B14155552000&From=%2B15005550006&Body=hi",
                ))
                .unwrap();
            answers.push(router(sandbox.clone()).oneshot(request).await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn past_the_account_rate_the_provider_answers_429_with_retry_after() {
        let sandbox = Sandbox::new("AC1", "secret");
        sandbox.set_faults(Faults {
            rate_limit_per_second: 2.0,
            ..Faults::default()
        });
        let answers = post_messages(&sandbox, 3).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
        assert_eq!(statuses, [201, 201, 429]);
        assert_eq!(answers[2].headers()[header::RETRY_AFTER], "1");
        assert_eq!(sandbox.injected().rate_limited, 1);
        assert_eq!(sandbox.ledger().len(), 2);
    }

    #[tokio::test]
    async fn accept_then_error_takes_the_message_and_answers_each_status_in_turn() {
        let sandbox = Sandbox::new("AC1", "secret");
        sandbox.set_faults(Faults {
            accept_then_error_rate: 1.0,
            accept_then_error_statuses: vec![500, 502, 504],
            ..Faults::default()
        });
        let answers = post_messages(&sandbox, 4).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
        assert_eq!(statuses, [500, 502, 504, 500]);
        assert_eq!(sandbox.ledger().len(), 4, "every one was taken");
        let injected = sandbox.injected();
        assert_eq!(
            injected.accepted_then_errors,
            BTreeMap::from([(500, 2), (502, 1), (504, 1)])
        );
        assert_eq!(injected.accepted_then_errors_total(), 4);
        assert_eq!(injected.errors, 0);

        // With no statuses named, a 500.
        sandbox.set_faults(Faults {
            accept_then_error_rate: 1.0,
            ..Faults::default()
        });
        let answers = post_messages(&sandbox, 1).await;
        assert_eq!(answers[0].status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(sandbox.ledger().len(), 5);
    }

    #[tokio::test]
    async fn fault_statuses_outside_5xx_are_refused() {
        use tower::ServiceExt;

        let sandbox = Sandbox::new("AC1", "secret");
        for faults in [
            json!({ "accept_then_error_rate": 0.5, "accept_then_error_statuses": [200] }),
            json!({ "accept_then_error_rate": 0.5, "accept_then_error_statuses": [500, 429] }),
            json!({ "accept_then_error_rate": 1.5 }),
        ] {
            let request = axum::http::Request::post("/sandbox/faults")
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(faults.to_string()))
                .unwrap();
            let answer = router(sandbox.clone()).oneshot(request).await.unwrap();
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{faults}");
        }
        assert_eq!(sandbox.faults.lock().unwrap().clone(), Faults::default());
    }
}
