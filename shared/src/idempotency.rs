//! Idempotency keys: the first request with a key does the work; a retry with the same
//! key and body gets the first answer back; the same key with another body is refused.
//! The record also pins the batch id, so a retry after a crash finishes the same batch
//! instead of starting a second one.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use sha2::{Digest, Sha256};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::{BatchId, TenantId};
use crate::item::{dynamo, n, s};
use crate::keys::{self, SCHEMA_VERSION};
use crate::store::StoreError;

/// How long a completed answer is kept for replay.
pub const RETENTION_SECONDS: u64 = 24 * 60 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Idempotency-Key must be 1-255 visible ASCII characters")]
pub struct InvalidKey;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1 to 255 visible ASCII characters.
    pub const PATTERN: &str = "[!-~]{1,255}";

    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned())).ok_or(InvalidKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        crate::schema::done(crate::schema::string(1, 255, Self::PATTERN))
    }
}

impl ToSchema for IdempotencyKey {}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key is scoped to besides its tenant: the route the request was registered
/// under (method and path template, as the router matched it), so the same key and
/// body sent to two routes are two requests. Written `POST /v1/batches/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyScope(String);

impl KeyScope {
    pub fn new(method: &str, route: &str) -> Self {
        Self(format!("{method} {route}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hash of the route and the canonical form of the parsed request (never the raw
/// bytes: the same request with other whitespace or key order is the same request).
pub fn request_hash(scope: &KeyScope, canonical_request: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(canonical_request.to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Do the work, for this batch id (new, or taken over from a request that died).
    Proceed { batch: BatchId },
    /// Done before: answer with this.
    Replay(StoredResponse),
    /// The first request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

pub struct Idempotency {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Idempotency {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims the key for this request until `lock_until` (epoch seconds). A record
    /// left in progress by a request that died can be taken over once its lock ends,
    /// by the same request only.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn begin(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        hash: &str,
        now_epoch: u64,
        lock_until: u64,
    ) -> Result<Begin, StoreError> {
        let record_key = keys::idempotency(tenant, key.as_str());
        let batch = BatchId::new();
        let item = HashMap::from([
            ("pk".to_owned(), s(&record_key.pk)),
            ("sk".to_owned(), s(&record_key.sk)),
            ("tenant_id".to_owned(), s(tenant.as_str())),
            ("state".to_owned(), s("in_progress")),
            ("request_hash".to_owned(), s(hash)),
            ("batch_id".to_owned(), s(batch.to_string())),
            ("locked_until".to_owned(), n(lock_until)),
            ("expires_at".to_owned(), n(now_epoch + RETENTION_SECONDS)),
            ("schema_version".to_owned(), n(SCHEMA_VERSION)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now_epoch))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(Begin::Proceed { batch }),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let PutItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                failure.item.unwrap_or_default()
            }
            Err(e) => return Err(dynamo(e)),
        };
        let text = |name: &str| old.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number = |name: &str| -> Option<u64> {
            old.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        };
        if text("request_hash").as_deref() != Some(hash) {
            return Ok(Begin::Mismatch);
        }
        if text("state").as_deref() == Some("completed") {
            return Ok(Begin::Replay(StoredResponse {
                status: number("response_status").unwrap_or(200) as u16,
                body: text("response_body").unwrap_or_default(),
                location: text("response_location"),
            }));
        }
        let old_lock = number("locked_until").unwrap_or(u64::MAX);
        let Some(old_batch) = text("batch_id").and_then(|b| b.parse().ok()) else {
            return Err(StoreError::Corrupt {
                pk: record_key.pk,
                sk: record_key.sk,
                reason: "in-progress record without a batch id".into(),
            });
        };
        if old_lock >= now_epoch {
            return Ok(Begin::InFlight);
        }
        // The request that held the key died. Take its lock over (only if nobody else
        // did first) and finish its batch.
        let takeover = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&record_key.pk))
            .key("sk", s(&record_key.sk))
            .update_expression("SET locked_until = :lock")
            .condition_expression("#state = :in_progress AND locked_until = :old_lock")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":old_lock", n(old_lock))
            .expression_attribute_values(":lock", n(lock_until))
            .send()
            .await;
        match takeover {
            Ok(_) => Ok(Begin::Proceed { batch: old_batch }),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(Begin::InFlight)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Stores the answer for replay and ends the lock.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn complete(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        hash: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let record_key = keys::idempotency(tenant, key.as_str());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&record_key.pk))
            .key("sk", s(&record_key.sk))
            .condition_expression("request_hash = :hash AND #state = :in_progress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":hash", s(hash))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":status", n(response.status))
            .expression_attribute_values(":body", s(&response.body));
        let mut expression =
            "SET #state = :completed, response_status = :status, response_body = :body".to_owned();
        if let Some(location) = &response.location {
            update = update.expression_attribute_values(":location", s(location));
            expression.push_str(", response_location = :location");
        }
        update
            .update_expression(format!("{expression} REMOVE locked_until"))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    /// Ends the lock early after a failure, keeping the record and its batch id, so
    /// the client's retry takes over at once and finishes the same batch.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn release(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        hash: &str,
    ) -> Result<(), StoreError> {
        let record_key = keys::idempotency(tenant, key.as_str());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&record_key.pk))
            .key("sk", s(&record_key.sk))
            .update_expression("SET locked_until = :released")
            .condition_expression("request_hash = :hash AND #state = :in_progress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":hash", s(hash))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":released", n(0))
            .send()
            .await;
        match result {
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            other => other.map(|_| ()).map_err(dynamo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42:retry").is_ok());
        for bad in [
            "",
            "has space",
            "tab\t",
            "é",
            &"k".repeat(256),
            &"k".repeat(1000),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_hash_ignores_formatting_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"to":"+1","body":"x"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{ \"body\": \"x\",\n \"to\": \"+1\" }").unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"to":"+1","body":"y"}"#).unwrap();
        let messages = KeyScope::new("POST", "/v1/messages");
        let batches = KeyScope::new("POST", "/v1/batches");
        assert_eq!(request_hash(&messages, &a), request_hash(&messages, &b));
        assert_ne!(request_hash(&messages, &a), request_hash(&messages, &c));
        assert_ne!(request_hash(&messages, &a), request_hash(&batches, &a));
        // Keys stored before scopes were typed hash as they did.
        assert_eq!(messages.as_str(), "POST /v1/messages");
    }
}
