//! Rotation of the Twilio-compatible provider's credentials (issue 20), as a Secrets
//! Manager rotation function. The provider secret keeps the account's SID and auth
//! token (which sign webhooks and manage keys) and gains an API key that messages are
//! sent with; each rotation makes a new key:
//!
//! - `createSecret`: a new API key at the provider, stored as the `AWSPENDING` version;
//! - `setSecret`: nothing (the provider made the key live when it created it);
//! - `testSecret`: the pending key fetches the account (a harmless authenticated call);
//! - `finishSecret`: the key `AWSCURRENT` held is marked for retirement after the grace
//!   period, then `AWSCURRENT` moves to the new version.
//!
//! Each step is idempotent, keyed by the `ClientRequestToken`. A key is deleted at the
//! provider only once its grace period is over, by `retire` (the same function on a
//! schedule): a rotation step cannot wait that long (`docs/decisions.md`, issue 20).

use std::time::Duration;

use herald::clock::SharedClock;
use herald::config::{ConfigError, Settings};
use herald::provider::twilio_keys::{KeysClient, KeysError};
use serde::Deserialize;

mod retire;
mod versions;

pub use retire::{Retirement, retire};
use versions::{CURRENT, PENDING, Versions};

#[derive(Debug, Clone)]
pub struct RotatorConfig {
    pub provider_secret_id: String,
    pub sms_api_base: String,
    /// How long a replaced key keeps working: every warm reader's cache must have
    /// expired (and its last request ended) before it is deleted.
    pub grace: Duration,
    pub provider_timeout: Duration,
}

impl RotatorConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            provider_secret_id: settings.required("HERALD_PROVIDER_SECRET_ID")?,
            sms_api_base: settings.required("HERALD_SMS_API_BASE")?,
            grace: Duration::from_secs(settings.number("HERALD_ROTATION_GRACE_SECONDS", 900)?),
            provider_timeout: Duration::from_millis(
                settings.number("HERALD_PROVIDER_TIMEOUT_MS", 10_000)?,
            ),
        })
    }
}

pub struct Deps {
    pub config: RotatorConfig,
    secrets: herald::aws::SecretsManagerClient,
    keys: KeysClient,
    clock: SharedClock,
}

impl Deps {
    pub fn from_config(
        config: RotatorConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Result<Self, KeysError> {
        Ok(Self {
            keys: KeysClient::new(&config.sms_api_base, config.provider_timeout)?,
            secrets: clients.secrets_manager(),
            config,
            clock,
        })
    }
}

/// One step as Secrets Manager invokes the function.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepEvent {
    pub step: Step,
    pub secret_id: String,
    pub client_request_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];
}

/// What the function was invoked for: a rotation step, or the schedule's tick.
pub enum Invocation {
    Step(StepEvent),
    Retire,
}

impl Invocation {
    pub fn read(event: serde_json::Value) -> Result<Self, serde_json::Error> {
        if event.get("Step").is_some() {
            serde_json::from_value(event).map(Self::Step)
        } else {
            Ok(Self::Retire)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("secret {secret} is not the provider secret this function rotates")]
    WrongSecret { secret: String },
    #[error("version {token} is not a version of the secret")]
    UnknownVersion { token: String },
    #[error("version {token} is not pending rotation")]
    NotPending { token: String },
    #[error("another rotation is in progress (version {pending} is pending)")]
    InProgress { pending: String },
    #[error("the secret has no AWSCURRENT version")]
    NoCurrent,
    #[error("the secret's value is not provider credentials: {0}")]
    BadSecret(String),
    #[error("Secrets Manager refused {operation}")]
    SecretsManager {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the provider's Keys API failed")]
    Provider(#[from] KeysError),
}

/// One rotation step. Steps already done answer `Ok` again; a step of a version that
/// is already `AWSCURRENT` does nothing.
#[tracing::instrument(skip_all, fields(step = ?event.step, token = %event.client_request_token))]
pub async fn step(deps: &Deps, event: &StepEvent) -> Result<(), RotationError> {
    if !versions::names_secret(&event.secret_id, &deps.config.provider_secret_id) {
        return Err(RotationError::WrongSecret {
            secret: event.secret_id.clone(),
        });
    }
    let token = event.client_request_token.as_str();
    let versions = Versions::read(deps).await?;
    if versions.has(token, CURRENT) {
        tracing::info!("already the current version");
        return Ok(());
    }
    match event.step {
        Step::CreateSecret => create(deps, &versions, token).await,
        _ if !versions.contains(token) => Err(RotationError::UnknownVersion {
            token: token.into(),
        }),
        _ if !versions.has(token, PENDING) => Err(RotationError::NotPending {
            token: token.into(),
        }),
        Step::SetSecret => Ok(()),
        Step::TestSecret => test(deps, token).await,
        Step::FinishSecret => finish(deps, &versions, token).await,
    }
}

/// A new key, stored as the pending version under `token`. A key left by an attempt
/// that died before storing it (same friendly name) is deleted first: its secret was
/// shown once and is lost.
async fn create(deps: &Deps, versions: &Versions, token: &str) -> Result<(), RotationError> {
    if let Some(pending) = versions.pending_other_than(token) {
        return Err(RotationError::InProgress { pending });
    }
    if versions.has(token, PENDING) && versions::value(deps, token).await?.is_some() {
        tracing::info!("the pending version exists");
        return Ok(());
    }
    let current = versions::current_value(deps).await?;
    let account = current.account()?;
    let name = key_name(token);
    for orphan in deps.keys.list(&account.as_account()).await? {
        if orphan.friendly_name == name {
            deps.keys.delete(&account.as_account(), &orphan.sid).await?;
        }
    }
    let key = deps.keys.create(&account.as_account(), &name).await?;
    let pending = current.with_key(&key.sid, &key.secret);
    if let Err(e) = versions::put_pending(deps, token, &pending).await {
        // Not stored: nobody will ever use it.
        let _ = deps.keys.delete(&account.as_account(), &key.sid).await;
        return Err(e);
    }
    tracing::info!(key_sid = %key.sid, "created a new API key as the pending version");
    Ok(())
}

async fn test(deps: &Deps, token: &str) -> Result<(), RotationError> {
    let pending = versions::value(deps, token)
        .await?
        .ok_or_else(|| RotationError::NotPending {
            token: token.into(),
        })?;
    let (sid, secret) = pending
        .key()
        .ok_or_else(|| RotationError::BadSecret("the pending version holds no API key".into()))?;
    deps.keys
        .check(&pending.account()?.sid, &sid, &secret)
        .await?;
    Ok(())
}

/// Marks the current key for retirement, then makes `token` current. Marking first: if
/// the move fails, the mark is dropped by `retire` (the key is still current) and the
/// retried step marks it again with a later deadline.
async fn finish(deps: &Deps, versions: &Versions, token: &str) -> Result<(), RotationError> {
    let current = versions.current().ok_or(RotationError::NoCurrent)?;
    let old = versions::current_value(deps).await?;
    if let Some((old_sid, _)) = old.key() {
        let deadline = deps.clock.timestamp().plus(deps.config.grace);
        versions::mark_for_retirement(deps, &old_sid, deadline).await?;
    }
    versions::make_current(deps, token, &current).await?;
    tracing::info!(previous = %current, "the new key is current");
    Ok(())
}

/// The friendly name of the key created for one rotation.
fn key_name(token: &str) -> String {
    format!("herald-rotation-{token}")
}

/// What Secrets Manager's `RotateSecret` does, for the local cloud (which has no
/// Lambda to invoke): refuses while another rotation is pending, then runs the four
/// steps in order under one token, stopping at the first failure.
pub async fn rotate_now(deps: &Deps, token: &str) -> Result<(), RotationError> {
    let versions = Versions::read(deps).await?;
    if let Some(pending) = versions.pending_other_than(token) {
        return Err(RotationError::InProgress { pending });
    }
    for step_kind in Step::ALL {
        step(
            deps,
            &StepEvent {
                step: step_kind,
                secret_id: deps.config.provider_secret_id.clone(),
                client_request_token: token.to_owned(),
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_managers_steps_and_the_schedules_tick_are_told_apart() {
        let step = Invocation::read(serde_json::json!({
            "Step": "testSecret", "SecretId": "arn:x", "ClientRequestToken": "t"
        }))
        .unwrap();
        assert!(matches!(step, Invocation::Step(e) if e.step == Step::TestSecret));
        let tick = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert!(matches!(
            Invocation::read(tick).unwrap(),
            Invocation::Retire
        ));
        let unknown =
            serde_json::json!({"Step": "dropSecret", "SecretId": "x", "ClientRequestToken": "t"});
        assert!(Invocation::read(unknown).is_err());
    }
}
