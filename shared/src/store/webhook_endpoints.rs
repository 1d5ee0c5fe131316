//! A tenant's webhook endpoints (issue 15), keyed under the tenant
//! (`TENANT#{t}#WEBHOOK#{id}`) and listed newest first through gsi1. Every change
//! reads the endpoint, decides in Rust, and writes the whole item back on condition
//! that its `version` is still the one read, in one transaction with its audit entry:
//! two admins changing one endpoint at once cannot lose either change silently (the
//! loser reads again). A deleted endpoint keeps its item, without its secret, until its
//! TTL (`DELETED_KEPT`) removes it; it is never read, listed or changed again.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::{Store, StoreError};
use crate::domain::{
    AuditEntry, DisabledReason, EndpointChange, EndpointStatus, EventType, Page, WebhookEndpoint,
};
use crate::ids::TenantId;
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_n, get_named, get_s, get_time, key_item, n, name, s,
    time, with_key,
};
use crate::keys::{self, SCHEMA_VERSION};

/// How long a deleted endpoint's item stays (for the audit trail's sake) before TTL.
const DELETED_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Reads and writes of one change, at most, when others keep changing the endpoint.
const ATTEMPTS: u32 = 5;

impl Store {
    /// Records a new endpoint and its audit entry: all or nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %endpoint.tenant, endpoint_id = %endpoint.id))]
    pub async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(endpoint_item(endpoint, 1, None)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.audit_put(&endpoint.tenant, audit, now_epoch)?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| match Cancelled::from_error(e) {
                Ok(cancelled) => cancelled.into(),
                Err(e) => e,
            })?;
        Ok(())
    }

    /// One of `tenant`'s endpoints; another tenant's, a deleted or a malformed id is
    /// `None`, like a missing one.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %endpoint_id))]
    pub async fn webhook_endpoint(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self
            .read_endpoint(tenant, endpoint_id)
            .await?
            .map(|(endpoint, _)| endpoint))
    }

    /// The endpoint and the version its item holds.
    async fn read_endpoint(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
    ) -> Result<Option<(WebhookEndpoint, u64)>, StoreError> {
        if !well_formed(endpoint_id) {
            return Ok(None);
        }
        let Some(item) = self
            .get(&keys::webhook_endpoint(tenant, endpoint_id), true)
            .await?
        else {
            return Ok(None);
        };
        if item.contains_key("deleted_at") {
            return Ok(None);
        }
        let version = get_n(&item, "version").unwrap_or(0);
        Ok(Some((parse_endpoint(&item)?, version)))
    }

    /// Up to `limit` of the tenant's endpoints, newest first, from after the one whose
    /// listing position is `after`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn webhook_endpoint_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<WebhookEndpoint>, StoreError> {
        let partition = keys::webhook_endpoints_partition(tenant);
        let (items, after) = self
            .page(
                |query| {
                    query
                        .index_name("gsi1")
                        .key_condition_expression("gsi1pk = :p")
                        .filter_expression("attribute_not_exists(deleted_at)")
                        .expression_attribute_values(":p", s(&partition))
                },
                after,
                limit,
                // `{created_at}#{endpoint_id}`.
                "gsi1sk",
                |position| {
                    let id = position.rsplit_once('#').map_or(position, |(_, id)| id);
                    let mut key = key_item(&keys::webhook_endpoint(tenant, id));
                    key.insert("gsi1pk".to_owned(), s(&partition));
                    key.insert("gsi1sk".to_owned(), s(position));
                    key
                },
            )
            .await?;
        let items = items.iter().map(parse_endpoint).collect::<Result<_, _>>()?;
        Ok(Page { items, after })
    }

    /// Applies `change` to the endpoint as it is now and writes the result with
    /// `audit`, unless `change` leaves it as it was (nothing written). `change` may run
    /// more than once, on a fresh read each time, when other writes come between.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %endpoint_id, action = %audit.action))]
    pub async fn change_webhook_endpoint(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        audit: &AuditEntry,
        now_epoch: u64,
        change: impl Fn(&WebhookEndpoint) -> WebhookEndpoint,
    ) -> Result<EndpointChange, StoreError> {
        self.write_change(tenant, endpoint_id, audit, now_epoch, None, change)
            .await
    }

    /// Deletes the endpoint (its secret at once, its item after `DELETED_KEPT`) with
    /// `audit`; `None` when there is no such endpoint.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %endpoint_id))]
    pub async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let deleted = Some(now_epoch + DELETED_KEPT.as_secs());
        let change = self
            .write_change(tenant, endpoint_id, audit, now_epoch, deleted, Clone::clone)
            .await?;
        Ok(match change {
            EndpointChange::Changed(endpoint) | EndpointChange::Unchanged(endpoint) => {
                Some(endpoint)
            }
            EndpointChange::NotFound => None,
        })
    }

    /// Read, change, conditional write, again on a lost race. `deleted_until`: the
    /// write deletes the endpoint, kept until that epoch second.
    async fn write_change(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        audit: &AuditEntry,
        now_epoch: u64,
        deleted_until: Option<u64>,
        change: impl Fn(&WebhookEndpoint) -> WebhookEndpoint,
    ) -> Result<EndpointChange, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some((current, version)) = self.read_endpoint(tenant, endpoint_id).await? else {
                return Ok(EndpointChange::NotFound);
            };
            let mut changed = change(&current);
            if deleted_until.is_none() && changed == current {
                return Ok(EndpointChange::Unchanged(current));
            }
            changed.updated_at = audit.at;
            let mut item = endpoint_item(&changed, version + 1, deleted_until);
            if deleted_until.is_some() {
                item.remove("secret");
                item.remove("previous_secret");
                item.insert("deleted_at".to_owned(), time(audit.at));
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("version = :read AND attribute_not_exists(deleted_at)")
                .expression_attribute_values(":read", n(version))
                .build()
                .map_err(dynamo)?;
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .put(self.audit_put(tenant, audit, now_epoch)?)
                        .build(),
                )
                .send()
                .await;
            match written {
                Ok(_) => return Ok(EndpointChange::Changed(changed)),
                Err(e) => {
                    let cancelled = Cancelled::from_error(e)?;
                    if !cancelled.condition_failed(0) {
                        return Err(cancelled.into());
                    }
                }
            }
        }
        Err(StoreError::Contended(ATTEMPTS))
    }
}

/// Endpoint ids are `ep_` and a ULID; anything else names no endpoint.
fn well_formed(endpoint_id: &str) -> bool {
    endpoint_id
        .strip_prefix("ep_")
        .is_some_and(|rest| rest.parse::<ulid::Ulid>().is_ok() && rest.len() == 26)
}

fn endpoint_item(endpoint: &WebhookEndpoint, version: u64, expires_at: Option<u64>) -> Item {
    let mut item = with_key(
        &keys::webhook_endpoint(&endpoint.tenant, &endpoint.id),
        [
            ("tenant_id", s(endpoint.tenant.as_str())),
            ("endpoint_id", s(&endpoint.id)),
            ("url", s(&endpoint.url)),
            (
                "event_types",
                AttributeValue::L(endpoint.event_types.iter().map(|e| name(*e)).collect()),
            ),
            ("description", s(&endpoint.description)),
            ("status", name(endpoint.status)),
            ("created_at", time(endpoint.created_at)),
            ("created_by", s(&endpoint.created_by)),
            ("updated_at", time(endpoint.updated_at)),
            ("secret", s(&endpoint.sealed_secret)),
            ("version", n(version)),
            (
                "gsi1pk",
                s(keys::webhook_endpoints_partition(&endpoint.tenant)),
            ),
            (
                "gsi1sk",
                s(format!("{}#{}", endpoint.created_at, endpoint.id)),
            ),
            ("schema_version", n(SCHEMA_VERSION)),
        ],
    );
    if let Some(limit) = endpoint.rate_limit_per_second {
        item.insert("rate_limit_per_second".to_owned(), n(limit));
    }
    if let Some(reason) = endpoint.disabled_reason {
        item.insert("disabled_reason".to_owned(), name(reason));
    }
    if let Some((previous, until)) = &endpoint.previous_secret {
        item.insert("previous_secret".to_owned(), s(previous));
        item.insert("previous_until".to_owned(), time(*until));
    }
    if let Some(expires_at) = expires_at {
        item.insert("expires_at".to_owned(), n(expires_at));
    }
    if let Some(since) = endpoint.failing_since {
        item.insert("failing_since".to_owned(), time(since));
    }
    item
}

pub(super) fn parse_endpoint(item: &Item) -> Result<WebhookEndpoint, StoreError> {
    let id = get_s(item, "endpoint_id").unwrap_or_default().to_owned();
    let tenant = get_s(item, "tenant_id")
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or_else(|| StoreError::Corrupt {
            pk: get_s(item, "pk").unwrap_or_default().to_owned(),
            sk: "WEBHOOK".to_owned(),
            reason: "no valid tenant".to_owned(),
        })?;
    let key = keys::webhook_endpoint(&tenant, &id);
    let corrupt = |reason: &str| corrupt(&key, reason);
    let event_types = match item.get("event_types") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| v.as_s().ok().and_then(|raw| raw.parse::<EventType>().ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("unknown event type"))?,
        _ => return Err(corrupt("no event types")),
    };
    Ok(WebhookEndpoint {
        url: get_s(item, "url")
            .ok_or_else(|| corrupt("no url"))?
            .to_owned(),
        event_types,
        description: get_s(item, "description").unwrap_or_default().to_owned(),
        rate_limit_per_second: get_n(item, "rate_limit_per_second"),
        status: get_named::<EndpointStatus>(item, "status")
            .ok_or_else(|| corrupt("no valid status"))?,
        disabled_reason: get_named::<DisabledReason>(item, "disabled_reason"),
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        created_by: get_s(item, "created_by").unwrap_or_default().to_owned(),
        updated_at: get_time(item, "updated_at").ok_or_else(|| corrupt("no update time"))?,
        sealed_secret: get_s(item, "secret").unwrap_or_default().to_owned(),
        previous_secret: get_s(item, "previous_secret")
            .zip(get_time(item, "previous_until"))
            .map(|(sealed, until)| (sealed.to_owned(), until)),
        failing_since: get_time(item, "failing_since"),
        tenant,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ids_are_ep_and_a_ulid() {
        assert!(well_formed("ep_01JQ0000000000000000000000"));
        assert!(!well_formed("01JQ0000000000000000000000"));
        assert!(!well_formed("ep_"));
        assert!(!well_formed("ep_01JQ0000000000000000000000#X"));
        assert!(!well_formed("ep_not-a-ulid"));
    }
}
