//! Twilio's Keys API, as a credential rotation uses it: create a standard API key,
//! list and delete keys (with the account's own SID and auth token: a standard key
//! cannot manage keys), and a harmless authenticated call (fetch the account) that
//! tests a key before it is trusted with messages.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("the provider refused the credentials ({status})")]
    Refused { status: u16 },
    #[error("the provider answered {status}")]
    Unexpected { status: u16 },
    #[error("the provider could not be reached or its answer was unreadable")]
    Transport(#[from] reqwest::Error),
}

/// A key just created: its secret is shown this once.
pub struct NewKey {
    pub sid: String,
    pub secret: SecretString,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KeySummary {
    pub sid: String,
    #[serde(default)]
    pub friendly_name: String,
}

/// The account whose keys are managed, and its auth token.
pub struct Account<'a> {
    pub sid: &'a str,
    pub auth_token: &'a SecretString,
}

pub struct KeysClient {
    http: reqwest::Client,
    api_base: String,
}

impl KeysClient {
    pub fn new(api_base: &str, timeout: Duration) -> Result<Self, KeysError> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            api_base: api_base.trim_end_matches('/').to_owned(),
        })
    }

    fn account_url(&self, account: &str, rest: &str) -> String {
        format!("{}/2010-04-01/Accounts/{account}{rest}", self.api_base)
    }

    pub async fn create(
        &self,
        account: &Account<'_>,
        friendly_name: &str,
    ) -> Result<NewKey, KeysError> {
        #[derive(Deserialize)]
        struct Created {
            sid: String,
            secret: String,
        }
        let answer = self
            .http
            .post(self.account_url(account.sid, "/Keys.json"))
            .basic_auth(account.sid, Some(account.auth_token.expose_secret()))
            .form(&[("FriendlyName", friendly_name)])
            .send()
            .await?;
        let created: Created = expect_success(answer)?.json().await?;
        Ok(NewKey {
            sid: created.sid,
            secret: SecretString::from(created.secret),
        })
    }

    /// Every key of the account, following Twilio's pages.
    pub async fn list(&self, account: &Account<'_>) -> Result<Vec<KeySummary>, KeysError> {
        #[derive(Deserialize)]
        struct Page {
            keys: Vec<KeySummary>,
            #[serde(default)]
            next_page_uri: Option<String>,
        }
        let mut keys = Vec::new();
        let mut url = self.account_url(account.sid, "/Keys.json?PageSize=100");
        loop {
            let answer = self
                .http
                .get(&url)
                .basic_auth(account.sid, Some(account.auth_token.expose_secret()))
                .send()
                .await?;
            let page: Page = expect_success(answer)?.json().await?;
            keys.extend(page.keys);
            match page.next_page_uri {
                Some(next) if !next.is_empty() => url = format!("{}{next}", self.api_base),
                _ => return Ok(keys),
            }
        }
    }

    /// Deletes a key; `false` if the provider had no such key (already deleted).
    pub async fn delete(&self, account: &Account<'_>, key_sid: &str) -> Result<bool, KeysError> {
        let answer = self
            .http
            .delete(self.account_url(account.sid, &format!("/Keys/{key_sid}.json")))
            .basic_auth(account.sid, Some(account.auth_token.expose_secret()))
            .send()
            .await?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        expect_success(answer).map(|_| true)
    }

    /// Fetches the account with a key: `Ok` when the provider takes the key.
    pub async fn check(
        &self,
        account_sid: &str,
        key_sid: &str,
        key_secret: &SecretString,
    ) -> Result<(), KeysError> {
        let answer = self
            .http
            .get(self.account_url(account_sid, ".json"))
            .basic_auth(key_sid, Some(key_secret.expose_secret()))
            .send()
            .await?;
        expect_success(answer).map(|_| ())
    }
}

fn expect_success(answer: reqwest::Response) -> Result<reqwest::Response, KeysError> {
    let status = answer.status().as_u16();
    match status {
        200..=299 => Ok(answer),
        401 | 403 => Err(KeysError::Refused { status }),
        _ => Err(KeysError::Unexpected { status }),
    }
}
