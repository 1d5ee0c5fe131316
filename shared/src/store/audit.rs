//! The audit log: who changed what, when, under which request. One partition per
//! tenant and UTC day, entries sorted by time.

use aws_sdk_dynamodb::types::Put;

use super::{Item, Store, StoreError, dynamo, get_s, s, with_key};
use crate::ids::TenantId;
use crate::keys;

/// Audit entries are kept for 400 days (TTL), past a yearly review.
const AUDIT_TTL_SECS: u64 = 400 * 24 * 3600;
/// Entries returned by one read of a day.
const MAX_ENTRIES: i32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: String,
    /// The token subject of whoever acted (a user or a machine client).
    pub actor: String,
    /// What they did, as `noun.verb`: `batch.created`, `tenant.suspended`...
    pub action: String,
    /// What it was done to: a batch id, a tenant id...
    pub target: String,
    /// The correlation id of the request, to find its logs.
    pub request_id: String,
}

impl Store {
    pub async fn record_audit(
        &self,
        tenant: &TenantId,
        entry: &AuditEntry,
        now_epoch: u64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(tenant, entry, now_epoch)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    /// The entry as one write of a transaction, for changes audited atomically.
    pub(super) fn audit_put(
        &self,
        tenant: &TenantId,
        entry: &AuditEntry,
        now_epoch: u64,
    ) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit_item(tenant, entry, now_epoch)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)
    }

    /// A tenant's entries of one UTC day (`YYYY-MM-DD`), oldest first.
    pub async fn audit_log(
        &self,
        tenant: &TenantId,
        day: &str,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::audit_partition(tenant, day)))
            .limit(MAX_ENTRIES)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .map(parse_entry)
            .collect())
    }
}

fn audit_item(tenant: &TenantId, entry: &AuditEntry, now_epoch: u64) -> Item {
    let day = &entry.at[..entry.at.len().min(10)];
    let key = keys::audit(tenant, day, &entry.at, &ulid::Ulid::new().to_string());
    with_key(
        &key,
        [
            ("tenant_id", s(tenant.as_str())),
            ("at", s(&entry.at)),
            ("actor", s(&entry.actor)),
            ("action", s(&entry.action)),
            ("target", s(&entry.target)),
            ("request_id", s(&entry.request_id)),
            ("expires_at", super::n(now_epoch + AUDIT_TTL_SECS)),
        ],
    )
}

fn parse_entry(item: &Item) -> AuditEntry {
    let field = |name: &str| get_s(item, name).unwrap_or_default().to_owned();
    AuditEntry {
        at: field("at"),
        actor: field("actor"),
        action: field("action"),
        target: field("target"),
        request_id: field("request_id"),
    }
}
