//! Twilio-compatible Messages API adapter (Twilio itself, or the local sandbox).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Outbound, OutboundSms, Provider, SendOutcome, retry_after, wrong_channel};
use crate::secrets::SecretsCache;

/// The provider secret's JSON shape.
#[derive(Deserialize)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// The auth token before the last rotation, kept in the secret while Twilio may
    /// still sign webhooks with it; webhooks signed with either are accepted.
    #[serde(default)]
    pub previous_auth_token: Option<SecretString>,
    /// The platform's sender number or messaging service (`MG...`): texts of tenants
    /// without their own go out from it.
    pub from: String,
    /// The API key messages are sent with (`SK...`), once a rotation made one; the
    /// auth token then only signs webhooks and manages keys (issue 20).
    #[serde(default)]
    pub api_key_sid: Option<String>,
    #[serde(default)]
    pub api_key_secret: Option<SecretString>,
}

impl TwilioCredentials {
    pub fn parse(secret: &SecretString) -> Result<Self, serde_json::Error> {
        serde_json::from_str(secret.expose_secret())
    }

    /// The Basic auth that sends messages: the API key when the secret holds one,
    /// else the account SID and auth token.
    pub fn sending_auth(&self) -> (&str, &str) {
        match (&self.api_key_sid, &self.api_key_secret) {
            (Some(sid), Some(secret)) => (sid, secret.expose_secret()),
            _ => (&self.account_sid, self.auth_token.expose_secret()),
        }
    }
}

pub struct TwilioProvider {
    http: reqwest::Client,
    api_base: String,
    secret_id: String,
    secrets: Arc<SecretsCache>,
    /// The secret last read, parsed, with the Messages URL of its account: parsed
    /// again only when the secret's value changes (a rotation), not per message.
    prepared: std::sync::Mutex<Option<(SecretString, Arc<Prepared>)>>,
}

/// What a send needs from the provider secret.
struct Prepared {
    credentials: TwilioCredentials,
    messages_url: reqwest::Url,
}

impl TwilioProvider {
    pub fn new(
        api_base: &str,
        secret_id: &str,
        secrets: Arc<SecretsCache>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2).min(timeout))
            .timeout(timeout)
            // The Messages API does not redirect; an answer that does is not one to
            // follow with the account's credentials (it is classified, not chased).
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_id: secret_id.to_owned(),
            secrets,
            prepared: std::sync::Mutex::new(None),
        })
    }

    async fn send_sms(&self, message: &OutboundSms) -> SendOutcome {
        // One retry after refreshing the secret: a 401 right after rotation means the
        // cached token is stale, not that the message is bad.
        for refreshed in [false, true] {
            let credentials = match self.credentials().await {
                Ok(c) => c,
                Err(reason) => {
                    return SendOutcome::Transient {
                        reason,
                        retry_after: None,
                    };
                }
            };
            match self.post(&credentials, message).await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Unauthorized if !refreshed => {
                    self.secrets.invalidate(&self.secret_id).await;
                }
                Attempt::Unauthorized => break,
            }
        }
        SendOutcome::Transient {
            reason: "provider rejected the credentials".into(),
            retry_after: None,
        }
    }

    async fn credentials(&self) -> Result<Arc<Prepared>, String> {
        let secret = self
            .secrets
            .get(&self.secret_id)
            .await
            .map_err(|e| format!("provider credentials unavailable: {e}"))?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, prepared)) = prepared.as_ref()
            && seen.expose_secret() == secret.expose_secret()
        {
            return Ok(prepared.clone());
        }
        let credentials = TwilioCredentials::parse(&secret)
            .map_err(|e| format!("provider secret is not valid JSON credentials: {e}"))?;
        let messages_url = reqwest::Url::parse(&format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, credentials.account_sid
        ))
        .map_err(|e| format!("provider secret's account makes no URL: {e}"))?;
        let fresh = Arc::new(Prepared {
            credentials,
            messages_url,
        });
        *prepared = Some((secret, fresh.clone()));
        Ok(fresh)
    }

    async fn post(&self, prepared: &Prepared, message: &OutboundSms) -> Attempt {
        let credentials = &prepared.credentials;
        let url = prepared.messages_url.clone();
        let from = message.from.as_deref().unwrap_or(&credentials.from);
        let mut form = vec![
            ("To", message.to.as_str()),
            (sender_parameter(from), from),
            ("Body", message.body.as_str()),
        ];
        if let Some(callback) = &message.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let (user, password) = credentials.sending_auth();
        let response = self
            .http
            .post(url)
            .basic_auth(user, Some(password))
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return Attempt::Done(classify_transport_error(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after::parse(v, SystemTime::now()));
        let body = response.bytes().await;
        classify_answer(
            status,
            retry_after,
            body.as_deref().map_err(|e| e.to_string()),
        )
    }
}

/// What an HTTP answer from the Messages API means for the message. Only an answer
/// that proves the message was not taken is retried: 401/403 (the credentials), 429
/// and 503 (the provider turned the request away). A 5xx other than 503 may come from
/// a proxy after the provider stored the message, or from the provider after it did,
/// so it is `Ambiguous`; so is any status Twilio does not answer this call with.
fn classify_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: Result<&[u8], String>,
) -> Attempt {
    Attempt::Done(match status {
        200..=299 => match body.map(serde_json::from_slice::<MessageResource>) {
            Ok(Ok(m)) if !m.sid.is_empty() => SendOutcome::Accepted {
                provider_ref: m.sid,
            },
            Ok(_) => SendOutcome::Ambiguous {
                reason: format!("provider answered {status} without a message sid"),
            },
            Err(e) => SendOutcome::Ambiguous {
                reason: format!("provider answered {status} but the answer was cut off: {e}"),
            },
        },
        401 | 403 => return Attempt::Unauthorized,
        429 | 503 => SendOutcome::Transient {
            reason: format!("provider turned the request away ({status})"),
            retry_after,
        },
        400..=499 => match body {
            Ok(body) => {
                let error = serde_json::from_slice::<ErrorResource>(body).unwrap_or_default();
                SendOutcome::Rejected {
                    code: error
                        .code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| status.to_string()),
                    reason: error
                        .message
                        .unwrap_or_else(|| format!("provider answered {status}")),
                }
            }
            // Refused, but without the reason: nothing was taken, so it can be tried again.
            Err(e) => SendOutcome::Transient {
                reason: format!("provider answer {status} unreadable: {e}"),
                retry_after,
            },
        },
        _ => SendOutcome::Ambiguous {
            reason: format!("provider answered {status} after the request was sent"),
        },
    })
}

/// A messaging service (`MG...`) is named with its own parameter; a number with `From`.
fn sender_parameter(from: &str) -> &'static str {
    if from.starts_with("MG") {
        "MessagingServiceSid"
    } else {
        "From"
    }
}

enum Attempt {
    Done(SendOutcome),
    Unauthorized,
}

/// A failure to connect means the request never left: safe to retry. Anything after
/// the connection was made (a timeout waiting for the answer, a reset mid-response)
/// may have reached the provider.
fn classify_transport_error(error: &reqwest::Error) -> SendOutcome {
    if error.is_connect() || error.is_builder() {
        SendOutcome::Transient {
            reason: format!("could not reach the provider: {error}"),
            retry_after: None,
        }
    } else {
        SendOutcome::Ambiguous {
            reason: format!("no answer from the provider after sending: {error}"),
        }
    }
}

#[derive(Deserialize)]
struct MessageResource {
    #[serde(default)]
    sid: String,
}

#[derive(Deserialize, Default)]
struct ErrorResource {
    code: Option<u64>,
    message: Option<String>,
}

impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, SendOutcome> {
        match message {
            Outbound::Sms(sms) => self.send_sms(sms).boxed(),
            Outbound::Email(_) => {
                futures::future::ready(wrong_channel(self.name(), message)).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, retry_after: Option<Duration>, body: &str) -> SendOutcome {
        match classify_answer(status, retry_after, Ok(body.as_bytes())) {
            Attempt::Done(outcome) => outcome,
            Attempt::Unauthorized => panic!("{status} read as a credentials problem"),
        }
    }

    #[test]
    fn a_created_message_is_accepted_with_its_sid() {
        assert_eq!(
            outcome(201, None, r#"{"sid": "SM1", "status": "queued"}"#),
            SendOutcome::Accepted {
                provider_ref: "SM1".into()
            }
        );
    }

    #[test]
    fn a_success_without_a_sid_or_cut_off_is_unknown() {
        for body in ["", "{}", r#"{"sid": ""}"#, "<html>"] {
            assert!(
                matches!(outcome(201, None, body), SendOutcome::Ambiguous { .. }),
                "{body:?}"
            );
        }
        let cut = classify_answer(200, None, Err("connection reset".into()));
        assert!(matches!(cut, Attempt::Done(SendOutcome::Ambiguous { .. })));
    }

    #[test]
    fn throttled_or_unavailable_is_retried_with_the_providers_wait() {
        let wait = Some(Duration::from_secs(3));
        for status in [429, 503] {
            for retry_after in [None, wait] {
                assert_eq!(
                    outcome(status, retry_after, r#"{"code": 20429}"#),
                    SendOutcome::Transient {
                        reason: format!("provider turned the request away ({status})"),
                        retry_after,
                    }
                );
            }
        }
        // Even when the body of the refusal is lost, the status says nothing was taken.
        let cut = classify_answer(503, wait, Err("connection reset".into()));
        assert!(matches!(
            cut,
            Attempt::Done(SendOutcome::Transient { retry_after, .. }) if retry_after == wait
        ));
    }

    /// A 500 may be answered after the provider stored the message; a 502 or 504 comes
    /// from a proxy that may have passed the request on. Sending again could text twice.
    #[test]
    fn any_other_server_error_is_unknown_never_retried() {
        for status in [500, 501, 502, 504, 505, 507, 520, 599] {
            assert!(
                matches!(outcome(status, None, ""), SendOutcome::Ambiguous { .. }),
                "{status}"
            );
            assert!(
                matches!(
                    classify_answer(status, None, Err("cut".into())),
                    Attempt::Done(SendOutcome::Ambiguous { .. })
                ),
                "{status} unreadable"
            );
        }
    }

    #[test]
    fn statuses_the_api_never_answers_with_are_unknown() {
        for status in [100, 304, 307, 308, 600, 999] {
            assert!(
                matches!(outcome(status, None, ""), SendOutcome::Ambiguous { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn a_refused_request_fails_with_twilios_code_or_the_status() {
        assert_eq!(
            outcome(
                400,
                None,
                r#"{"code": 21211, "message": "The 'To' number is not valid."}"#
            ),
            SendOutcome::Rejected {
                code: "21211".into(),
                reason: "The 'To' number is not valid.".into()
            }
        );
        assert_eq!(
            outcome(404, None, "not json"),
            SendOutcome::Rejected {
                code: "404".into(),
                reason: "provider answered 404".into()
            }
        );
        // Refused without a readable reason: nothing was taken, so it is tried again.
        assert!(matches!(
            classify_answer(400, None, Err("cut".into())),
            Attempt::Done(SendOutcome::Transient { .. })
        ));
    }

    #[test]
    fn messages_go_with_the_api_key_when_the_secret_holds_one() {
        let secret = |json: &str| TwilioCredentials::parse(&SecretString::from(json)).unwrap();
        let token_only = secret(r#"{"account_sid": "AC1", "auth_token": "t", "from": "+1"}"#);
        assert_eq!(token_only.sending_auth(), ("AC1", "t"));
        let with_key = secret(
            r#"{"account_sid": "AC1", "auth_token": "t", "from": "+1",
                "api_key_sid": "SK1", "api_key_secret": "s"}"#,
        );
        assert_eq!(with_key.sending_auth(), ("SK1", "s"));
        // Half a key is no key.
        let half = secret(
            r#"{"account_sid": "AC1", "auth_token": "t", "from": "+1", "api_key_sid": "SK1"}"#,
        );
        assert_eq!(half.sending_auth(), ("AC1", "t"));
    }

    #[test]
    fn unauthorized_or_forbidden_asks_for_fresh_credentials() {
        for status in [401, 403] {
            assert!(matches!(
                classify_answer(status, None, Ok(b"{}")),
                Attempt::Unauthorized
            ));
        }
    }
}
