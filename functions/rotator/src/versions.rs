//! The provider secret's versions and staging labels, its values as credentials, and
//! the retirement marks (tags on the secret: `herald:retire:{key sid}` = the epoch
//! second after which the key may be deleted). Tags keep the whole rotation in the
//! secret itself: no table, and an operator reads the marks with `describe-secret`.

use std::collections::HashMap;

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::types::Tag;
use herald::Timestamp;
use herald::provider::twilio_keys::Account;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{Deps, RotationError};

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";
const RETIRE_TAG: &str = "herald:retire:";

/// Whether a step's `SecretId` (an ARN or a name) names the configured secret.
pub fn names_secret(given: &str, configured: &str) -> bool {
    given == configured
        || (given.starts_with("arn:") && given.contains(&format!(":secret:{configured}-")))
        || (configured.starts_with("arn:") && configured.contains(&format!(":secret:{given}-")))
}

/// A Secrets Manager failure, named by its operation, with the SDK's whole context.
fn sm_error<E, R>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_secretsmanager::error::SdkError<E, R>) -> RotationError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| RotationError::SecretsManager {
        operation,
        source: Box::new(e),
    }
}

/// Each version's labels, and the retirement marks.
pub struct Versions {
    stages: HashMap<String, Vec<String>>,
    retirements: Vec<(String, u64)>,
}

impl Versions {
    pub async fn read(deps: &Deps) -> Result<Self, RotationError> {
        let out = deps
            .secrets
            .describe_secret()
            .secret_id(&deps.config.provider_secret_id)
            .send()
            .await
            .map_err(sm_error("DescribeSecret"))?;
        let retirements = out
            .tags()
            .iter()
            .filter_map(|tag| {
                let sid = tag.key()?.strip_prefix(RETIRE_TAG)?;
                Some((sid.to_owned(), tag.value()?.parse().ok()?))
            })
            .collect();
        Ok(Self {
            stages: out.version_ids_to_stages.unwrap_or_default(),
            retirements,
        })
    }

    pub fn contains(&self, version: &str) -> bool {
        self.stages.contains_key(version)
    }

    pub fn has(&self, version: &str, label: &str) -> bool {
        self.stages
            .get(version)
            .is_some_and(|labels| labels.iter().any(|l| l == label))
    }

    pub fn current(&self) -> Option<String> {
        self.stages
            .keys()
            .find(|version| self.has(version, CURRENT))
            .cloned()
    }

    /// A version other than `token` that is pending and not current: a rotation that
    /// has not finished.
    pub fn pending_other_than(&self, token: &str) -> Option<String> {
        self.stages
            .keys()
            .find(|v| *v != token && self.has(v, PENDING) && !self.has(v, CURRENT))
            .cloned()
    }

    /// Keys marked for retirement, with the epoch second after which they may go.
    pub fn retirements(&self) -> &[(String, u64)] {
        &self.retirements
    }
}

/// One version's value: the provider credentials as JSON, kept whole so fields this
/// function does not know (`from`, `previous_auth_token`) pass to the new version.
pub struct Credentials(Map<String, Value>);

/// The account's SID and auth token, which manage keys.
pub struct AccountCredentials {
    pub sid: String,
    auth_token: SecretString,
}

impl AccountCredentials {
    pub fn as_account(&self) -> Account<'_> {
        Account {
            sid: &self.sid,
            auth_token: &self.auth_token,
        }
    }
}

impl Credentials {
    fn parse(raw: &str) -> Result<Self, RotationError> {
        match serde_json::from_str(raw) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(RotationError::BadSecret("not a JSON object".into())),
        }
    }

    fn text(&self, field: &str) -> Option<&str> {
        self.0.get(field)?.as_str().filter(|v| !v.is_empty())
    }

    pub fn account(&self) -> Result<AccountCredentials, RotationError> {
        match (self.text("account_sid"), self.text("auth_token")) {
            (Some(sid), Some(token)) => Ok(AccountCredentials {
                sid: sid.to_owned(),
                auth_token: SecretString::from(token.to_owned()),
            }),
            _ => Err(RotationError::BadSecret(
                "account_sid and auth_token are required".into(),
            )),
        }
    }

    /// The API key messages are sent with, if the secret holds one.
    pub fn key(&self) -> Option<(String, SecretString)> {
        Some((
            self.text("api_key_sid")?.to_owned(),
            SecretString::from(self.text("api_key_secret")?.to_owned()),
        ))
    }

    pub fn with_key(&self, sid: &str, secret: &SecretString) -> Self {
        let mut map = self.0.clone();
        map.insert("api_key_sid".into(), Value::from(sid));
        map.insert("api_key_secret".into(), Value::from(secret.expose_secret()));
        Self(map)
    }
}

pub async fn current_value(deps: &Deps) -> Result<Credentials, RotationError> {
    let out = deps
        .secrets
        .get_secret_value()
        .secret_id(&deps.config.provider_secret_id)
        .version_stage(CURRENT)
        .send()
        .await
        .map_err(sm_error("GetSecretValue (AWSCURRENT)"))?;
    Credentials::parse(out.secret_string().ok_or(RotationError::NoCurrent)?)
}

/// The pending value stored under `version`, if there is one.
pub async fn value(deps: &Deps, version: &str) -> Result<Option<Credentials>, RotationError> {
    let out = deps
        .secrets
        .get_secret_value()
        .secret_id(&deps.config.provider_secret_id)
        .version_id(version)
        .version_stage(PENDING)
        .send()
        .await;
    match out {
        Ok(out) => out.secret_string().map(Credentials::parse).transpose(),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetSecretValueError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(sm_error("GetSecretValue (AWSPENDING)")(e)),
    }
}

pub async fn put_pending(
    deps: &Deps,
    token: &str,
    value: &Credentials,
) -> Result<(), RotationError> {
    let text = serde_json::to_string(&value.0).expect("a JSON map serialises");
    deps.secrets
        .put_secret_value()
        .secret_id(&deps.config.provider_secret_id)
        .client_request_token(token)
        .secret_string(text)
        .version_stages(PENDING)
        .send()
        .await
        .map_err(sm_error("PutSecretValue"))?;
    Ok(())
}

pub async fn mark_for_retirement(
    deps: &Deps,
    key_sid: &str,
    after: Timestamp,
) -> Result<(), RotationError> {
    let tag = Tag::builder()
        .key(format!("{RETIRE_TAG}{key_sid}"))
        .value(after.epoch_seconds().to_string())
        .build();
    deps.secrets
        .tag_resource()
        .secret_id(&deps.config.provider_secret_id)
        .tags(tag)
        .send()
        .await
        .map_err(sm_error("TagResource"))?;
    Ok(())
}

pub async fn unmark(deps: &Deps, key_sid: &str) -> Result<(), RotationError> {
    deps.secrets
        .untag_resource()
        .secret_id(&deps.config.provider_secret_id)
        .tag_keys(format!("{RETIRE_TAG}{key_sid}"))
        .send()
        .await
        .map_err(sm_error("UntagResource"))?;
    Ok(())
}

/// Moves `AWSCURRENT` from `previous` to `token` (Secrets Manager gives `previous`
/// `AWSPREVIOUS`), then takes `AWSPENDING` off `token`: the rotation is over.
pub async fn make_current(deps: &Deps, token: &str, previous: &str) -> Result<(), RotationError> {
    deps.secrets
        .update_secret_version_stage()
        .secret_id(&deps.config.provider_secret_id)
        .version_stage(CURRENT)
        .move_to_version_id(token)
        .remove_from_version_id(previous)
        .send()
        .await
        .map_err(sm_error("UpdateSecretVersionStage (AWSCURRENT)"))?;
    deps.secrets
        .update_secret_version_stage()
        .secret_id(&deps.config.provider_secret_id)
        .version_stage(PENDING)
        .remove_from_version_id(token)
        .send()
        .await
        .map_err(sm_error("UpdateSecretVersionStage (AWSPENDING)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_names_the_secret_by_name_or_arn() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ProviderSecret-AbCdEf";
        assert!(names_secret("ProviderSecret", "ProviderSecret"));
        assert!(names_secret(arn, "ProviderSecret"));
        assert!(names_secret("ProviderSecret", arn));
        assert!(names_secret(arn, arn));
        assert!(!names_secret("CursorSecret", arn));
        assert!(!names_secret(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ProviderSecretX-AbCdEf",
            "ProviderSecret"
        ));
    }

    #[test]
    fn a_new_key_keeps_every_other_field_of_the_secret() {
        let current = Credentials::parse(
            r#"{"account_sid": "AC1", "auth_token": "t", "from": "+1",
                "previous_auth_token": "p", "api_key_sid": "SK0", "api_key_secret": "s0"}"#,
        )
        .unwrap();
        let next = current.with_key("SK1", &SecretString::from("s1"));
        assert_eq!(
            Value::Object(next.0),
            serde_json::json!({"account_sid": "AC1", "auth_token": "t", "from": "+1",
                "previous_auth_token": "p", "api_key_sid": "SK1", "api_key_secret": "s1"})
        );
        assert_eq!(current.account().unwrap().sid, "AC1");
        assert!(Credentials::parse("[]").is_err());
        let no_token = Credentials::parse(r#"{"account_sid": "AC1"}"#).unwrap();
        assert!(no_token.account().is_err());
        assert!(no_token.key().is_none());
    }
}
