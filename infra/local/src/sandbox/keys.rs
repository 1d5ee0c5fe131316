//! The part of Twilio's Keys API a credential rotation uses: create, list and delete
//! an API key, and authenticate requests with a key's SID and secret as Basic auth, as
//! Twilio does. As at Twilio, only the account's own credentials (its SID and auth
//! token) manage keys — a standard key cannot create or delete keys — and a key's
//! secret is shown once, in the answer that creates it. `GET /Accounts/{sid}.json`
//! answers any valid credential: it is the harmless authenticated call a rotation
//! tests a new key with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{Sandbox, twilio_error};

/// A request's credentials, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The account SID and its auth token.
    Account,
    /// A live API key (its SID).
    Key(String),
}

impl Credential {
    /// The name the ledger records: the account SID or the key SID.
    pub fn name(&self, sandbox: &Sandbox) -> String {
        match self {
            Self::Account => sandbox.account_sid.clone(),
            Self::Key(sid) => sid.clone(),
        }
    }
}

struct Key {
    secret: String,
    friendly_name: String,
    date_created: String,
}

/// The account's API keys, and how many requests were refused for their credentials.
#[derive(Default)]
pub(super) struct Keys {
    live: std::sync::Mutex<BTreeMap<String, Key>>,
    refused: AtomicUsize,
}

impl Sandbox {
    /// Requests refused for their credentials (401/403) so far, on any route.
    pub fn refused_credentials(&self) -> usize {
        self.keys.refused.load(Ordering::Relaxed)
    }

    /// The SIDs of the account's live API keys.
    pub fn key_sids(&self) -> Vec<String> {
        self.keys
            .live
            .lock()
            .expect("keys lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Who a request to `account`'s resources authenticates as, if anyone: the
    /// account's SID and auth token, or a live key's SID and secret (Basic auth).
    pub(super) fn authenticate(&self, account: &str, headers: &HeaderMap) -> Option<Credential> {
        let credential = self.basic_auth(headers).and_then(|(user, password)| {
            if user == self.account_sid {
                (password == self.auth_token).then_some(Credential::Account)
            } else {
                let live = self.keys.live.lock().expect("keys lock");
                live.get(&user)
                    .filter(|key| key.secret == password)
                    .map(|_| Credential::Key(user))
            }
        });
        let credential = credential.filter(|_| account == self.account_sid);
        if credential.is_none() {
            self.keys.refused.fetch_add(1, Ordering::Relaxed);
        }
        credential
    }

    fn basic_auth(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let encoded = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// The refusal of anything but the account's own credentials, as Twilio refuses
    /// a standard key on the Keys resource; `None` lets the request through.
    fn refuse_unless_account(&self, account: &str, headers: &HeaderMap) -> Option<Response> {
        match self.authenticate(account, headers) {
            Some(Credential::Account) => None,
            Some(Credential::Key(_)) => {
                self.keys.refused.fetch_add(1, Ordering::Relaxed);
                Some(twilio_error(
                    StatusCode::FORBIDDEN,
                    20403,
                    "Standard API keys cannot manage keys",
                ))
            }
            None => Some(unauthenticated()),
        }
    }
}

pub(super) fn unauthenticated() -> Response {
    twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateKeyForm {
    friendly_name: Option<String>,
}

/// `POST /2010-04-01/Accounts/{account}/Keys.json`: a new standard key, with its secret.
pub(super) async fn create_key(
    State(sandbox): State<Arc<Sandbox>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CreateKeyForm>,
) -> Response {
    if let Some(refused) = sandbox.refuse_unless_account(&account, &headers) {
        return refused;
    }
    let sid = format!("SK{}", crate::random_hex(32));
    let key = Key {
        secret: crate::random_token(32),
        friendly_name: form.friendly_name.unwrap_or_default(),
        date_created: herald::Timestamp::from_epoch_millis(now_ms()).to_string(),
    };
    let answer = json!({
        "sid": sid,
        "friendly_name": key.friendly_name,
        "date_created": key.date_created,
        "secret": key.secret,
    });
    sandbox
        .keys
        .live
        .lock()
        .expect("keys lock")
        .insert(sid, key);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `GET /2010-04-01/Accounts/{account}/Keys.json`: every key, without secrets.
pub(super) async fn list_keys(
    State(sandbox): State<Arc<Sandbox>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = sandbox.refuse_unless_account(&account, &headers) {
        return refused;
    }
    let live = sandbox.keys.live.lock().expect("keys lock");
    let keys: Vec<_> = live
        .iter()
        .map(|(sid, key)| {
            json!({ "sid": sid, "friendly_name": key.friendly_name, "date_created": key.date_created })
        })
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

/// `DELETE /2010-04-01/Accounts/{account}/Keys/{sid}.json`: 204, or 404 if unknown.
pub(super) async fn delete_key(
    State(sandbox): State<Arc<Sandbox>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = sandbox.refuse_unless_account(&account, &headers) {
        return refused;
    }
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    match sandbox.keys.live.lock().expect("keys lock").remove(sid) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        ),
    }
}

/// `GET /2010-04-01/Accounts/{sid}.json`: the account, to any valid credential.
pub(super) async fn fetch_account(
    State(sandbox): State<Arc<Sandbox>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = file.strip_suffix(".json").unwrap_or(&file);
    if sandbox.authenticate(account, &headers).is_none() {
        return unauthenticated();
    }
    Json(json!({ "sid": sandbox.account_sid, "status": "active", "type": "Full" })).into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::super::router;
    use super::*;
    use tower::ServiceExt;

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    async fn call(
        sandbox: &Arc<Sandbox>,
        method: &str,
        path: &str,
        auth: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let answer = router(sandbox.clone()).oneshot(request).await.unwrap();
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    const SEND: &str = "To=%2B14155552000&From=%2B15005550006&Body=hi";
    const MESSAGES: &str = "/2010-04-01/Accounts/AC1/Messages.json";
    const KEYS: &str = "/2010-04-01/Accounts/AC1/Keys.json";

    #[tokio::test]
    async fn a_created_key_sends_until_it_is_deleted() {
        let sandbox = Sandbox::new("AC1", "token");
        let account = basic("AC1", "token");
        let (status, key) = call(&sandbox, "POST", KEYS, &account, "FriendlyName=herald-1").await;
        assert_eq!(status, StatusCode::CREATED);
        let sid = key["sid"].as_str().unwrap().to_owned();
        let secret = key["secret"].as_str().unwrap().to_owned();
        assert!(sid.starts_with("SK"));
        let with_key = basic(&sid, &secret);

        let (status, _) = call(&sandbox, "POST", MESSAGES, &with_key, SEND).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            sandbox.ledger()[0].credential,
            sid,
            "the ledger names the key"
        );
        let (status, _) = call(
            &sandbox,
            "GET",
            "/2010-04-01/Accounts/AC1.json",
            &with_key,
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        // Listed without its secret.
        let (status, listed) = call(&sandbox, "GET", KEYS, &account, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            listed["keys"],
            json!([{ "sid": sid, "friendly_name": "herald-1", "date_created": key["date_created"] }])
        );

        let key_path = format!("/2010-04-01/Accounts/AC1/Keys/{sid}.json");
        let (status, _) = call(&sandbox, "DELETE", &key_path, &account, "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = call(&sandbox, "DELETE", &key_path, &account, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "already gone");

        assert_eq!(sandbox.refused_credentials(), 0);
        let (status, _) = call(&sandbox, "POST", MESSAGES, &with_key, SEND).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted key is refused");
        assert_eq!(sandbox.refused_credentials(), 1);
        assert_eq!(sandbox.ledger().len(), 1);
        assert!(sandbox.key_sids().is_empty());
    }

    #[tokio::test]
    async fn only_the_account_credentials_manage_keys_and_a_wrong_secret_is_refused() {
        let sandbox = Sandbox::new("AC1", "token");
        let account = basic("AC1", "token");
        let (_, key) = call(&sandbox, "POST", KEYS, &account, "").await;
        let sid = key["sid"].as_str().unwrap();
        let with_key = basic(sid, key["secret"].as_str().unwrap());

        let (status, _) = call(&sandbox, "POST", KEYS, &with_key, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a key cannot create keys");
        let (status, _) = call(&sandbox, "GET", KEYS, &with_key, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "nor list them");
        let (status, _) = call(&sandbox, "POST", KEYS, &basic("AC1", "wrong"), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&sandbox, "POST", MESSAGES, &basic(sid, "wrong"), SEND).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Another account's URL with this account's key.
        let (status, _) = call(
            &sandbox,
            "POST",
            "/2010-04-01/Accounts/AC2/Messages.json",
            &with_key,
            SEND,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(sandbox.refused_credentials(), 5);
        assert_eq!(sandbox.key_sids(), [sid]);
        assert!(sandbox.ledger().is_empty());
    }
}
