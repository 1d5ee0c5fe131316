//! The sandbox SMS provider: a Twilio-compatible Messages API with a ledger of every
//! message it accepted and switchable faults, so tests can count duplicates and losses
//! while the provider misbehaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

/// Misbehaviour to inject. Rates are probabilities per request, checked in the order
/// throttle, error, timeout. `only_to`, when set, limits every fault to those numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
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
}

pub struct Sandbox {
    account_sid: String,
    auth_token: String,
    ledger: Mutex<Vec<LedgerEntry>>,
    faults: Mutex<Faults>,
    injected: Mutex<Injected>,
}

impl Sandbox {
    pub fn new(account_sid: &str, auth_token: &str) -> Arc<Self> {
        Arc::new(Self {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            ledger: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            injected: Mutex::new(Injected::default()),
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

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("faults lock") = faults;
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

    let faults = sandbox.faults.lock().expect("faults lock").clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let applies = faults.only_to.is_empty() || faults.only_to.contains(&to);
    if applies && rand::random::<f64>() < faults.throttle_rate {
        sandbox.count(|i| i.throttles += 1);
        let mut response = twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        response.headers_mut().insert(
            header::RETRY_AFTER,
            faults.retry_after_secs.to_string().parse().expect("digits"),
        );
        return response;
    }
    if applies && rand::random::<f64>() < faults.error_rate {
        sandbox.count(|i| i.errors += 1);
        let status = faults
            .error_status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return twilio_error(status, 20500, "An internal server error has occurred");
    }

    let entry = LedgerEntry {
        sid: format!("SM{}", crate::random_hex(32)),
        to,
        from,
        body,
        received_at: herald::clock::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        ),
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
    sandbox.set_faults(faults.clone());
    Json(faults).into_response()
}
