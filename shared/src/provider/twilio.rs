//! Twilio-compatible Messages API adapter (Twilio itself, or the local sandbox).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Outbound, OutboundSms, Provider, SendOutcome, wrong_channel};
use crate::secrets::SecretsCache;

/// The provider secret's JSON shape.
#[derive(Deserialize)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// Sender number or messaging service (`MG...`) messages go out from.
    pub from: String,
}

impl TwilioCredentials {
    pub fn parse(secret: &SecretString) -> Result<Self, serde_json::Error> {
        serde_json::from_str(secret.expose_secret())
    }
}

pub struct TwilioProvider {
    http: reqwest::Client,
    api_base: String,
    secret_id: String,
    secrets: Arc<SecretsCache>,
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
            .build()?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_id: secret_id.to_owned(),
            secrets,
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

    async fn credentials(&self) -> Result<TwilioCredentials, String> {
        let secret = self
            .secrets
            .get(&self.secret_id)
            .await
            .map_err(|e| format!("provider credentials unavailable: {e}"))?;
        TwilioCredentials::parse(&secret)
            .map_err(|e| format!("provider secret is not valid JSON credentials: {e}"))
    }

    async fn post(&self, credentials: &TwilioCredentials, message: &OutboundSms) -> Attempt {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, credentials.account_sid
        );
        let response = self
            .http
            .post(url)
            .basic_auth(
                &credentials.account_sid,
                Some(credentials.auth_token.expose_secret()),
            )
            .form(&[
                ("To", message.to.as_str()),
                (
                    sender_parameter(&credentials.from),
                    credentials.from.as_str(),
                ),
                ("Body", message.body.as_str()),
            ])
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
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => {
                return Attempt::Done(SendOutcome::Ambiguous {
                    reason: format!("provider accepted but the answer was cut off: {e}"),
                });
            }
            Err(e) => {
                return Attempt::Done(SendOutcome::Transient {
                    reason: format!("provider answer {status} unreadable: {e}"),
                    retry_after,
                });
            }
        };
        Attempt::Done(match status {
            200..=299 => match serde_json::from_slice::<MessageResource>(&body) {
                Ok(m) if !m.sid.is_empty() => SendOutcome::Accepted {
                    provider_ref: m.sid,
                },
                _ => SendOutcome::Ambiguous {
                    reason: format!("provider answered {status} without a message sid"),
                },
            },
            401 | 403 => return Attempt::Unauthorized,
            429 => SendOutcome::Transient {
                reason: "provider throttled the request (429)".into(),
                retry_after,
            },
            400..=499 => {
                let error = serde_json::from_slice::<ErrorResource>(&body).unwrap_or_default();
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
            _ => SendOutcome::Transient {
                reason: format!("provider answered {status}"),
                retry_after,
            },
        })
    }
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
