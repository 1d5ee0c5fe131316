//! The audit log: who changed what, when, under which request. One partition per
//! tenant and UTC day, entries sorted by time and read newest first, a page at a time.

use aws_sdk_dynamodb::types::Put;

use super::{Store, StoreError};
use crate::clock::Day;
use crate::domain::{AuditEntry, Page};
use crate::ids::TenantId;
use crate::item::{Item, corrupt, dynamo, get_s, get_time, key_item, n, s, time, with_key};
use crate::keys;

/// Audit entries are kept for 400 days (TTL), past a yearly review.
const AUDIT_TTL_SECS: u64 = 400 * 24 * 3600;

impl Store {
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, action = %entry.action))]
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

    /// Up to `limit` of a tenant's entries of one UTC day, newest first, from after
    /// the entry whose sort key is `after` (a page's `after`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %day))]
    pub async fn audit_page(
        &self,
        tenant: &TenantId,
        day: Day,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let partition = keys::audit_partition(tenant, day);
        let (items, after) = self
            .page(
                |query| {
                    query
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", s(&partition))
                },
                after,
                limit,
                "sk",
                |sk| {
                    key_item(&keys::Key {
                        pk: partition.clone(),
                        sk: sk.to_owned(),
                    })
                },
            )
            .await?;
        let items = items.iter().map(parse_entry).collect::<Result<_, _>>()?;
        Ok(Page { items, after })
    }
}

fn audit_item(tenant: &TenantId, entry: &AuditEntry, now_epoch: u64) -> Item {
    let key = keys::audit(tenant, entry.at, &ulid::Ulid::new().to_string());
    with_key(
        &key,
        [
            ("tenant_id", s(tenant.as_str())),
            ("at", time(entry.at)),
            ("actor", s(&entry.actor)),
            ("action", s(&entry.action)),
            ("target", s(&entry.target)),
            ("request_id", s(&entry.request_id)),
            ("expires_at", n(now_epoch + AUDIT_TTL_SECS)),
        ],
    )
}

fn parse_entry(item: &Item) -> Result<AuditEntry, StoreError> {
    let field = |name: &str| get_s(item, name).unwrap_or_default().to_owned();
    let key = crate::keys::Key {
        pk: field("pk"),
        sk: field("sk"),
    };
    Ok(AuditEntry {
        at: get_time(item, "at").ok_or_else(|| corrupt(&key, "no time"))?,
        actor: field("actor"),
        action: field("action"),
        target: field("target"),
        request_id: field("request_id"),
    })
}
