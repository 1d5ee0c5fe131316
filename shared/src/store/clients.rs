//! A tenant's machine clients: which Cognito app client belongs to which tenant, with
//! which scopes, and whether it was revoked. A token is accepted only while its client
//! is here and not revoked, so revoking takes effect at once, before the Cognito client
//! is deleted and whatever tokens it already issued expire.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::{Store, StoreError};
use crate::auth::Scope;
use crate::domain::{AuditEntry, ClientFilter, MachineClient, Page, Registration, Revocation};
use crate::ids::TenantId;
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_s, get_time, key_item, n, s, time, with_key,
};
use crate::keys::{self, SCHEMA_VERSION};

impl Store {
    /// Records a new client, counts it against the tenant's `limit` of active clients
    /// and writes `audit`: all or nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %client.tenant, client_id = %client.client_id))]
    pub async fn register_client(
        &self,
        client: &MachineClient,
        limit: u32,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<Registration, StoreError> {
        let audit = self.audit_put(&client.tenant, audit, now_epoch)?;
        let counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::machine_client_count(&client.tenant))))
            .update_expression("ADD active :one SET tenant_id = :tenant")
            .condition_expression("attribute_not_exists(active) OR active < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":tenant", s(client.tenant.as_str()))
            .build()
            .map_err(dynamo)?;
        let item = with_key(
            &keys::machine_client(&client.client_id),
            [
                ("tenant_id", s(client.tenant.as_str())),
                ("client_id", s(&client.client_id)),
                ("name", s(&client.name)),
                ("scopes", scopes_value(&client.scopes)),
                ("created_at", time(client.created_at)),
                ("created_by", s(&client.created_by)),
                ("gsi1pk", s(keys::machine_clients_partition(&client.tenant))),
                (
                    "gsi1sk",
                    s(format!("{}#{}", client.created_at, client.client_id)),
                ),
                ("schema_version", n(SCHEMA_VERSION)),
            ],
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(counter).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().put(audit).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Registration::Registered),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) {
                    Ok(Registration::LimitReached { limit })
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// The client a token names, whatever its tenant: the caller learns the tenant
    /// from it. Revoked clients are returned too, marked.
    #[tracing::instrument(skip_all, fields(%client_id))]
    pub async fn machine_client(
        &self,
        client_id: &str,
    ) -> Result<Option<MachineClient>, StoreError> {
        if !well_formed(client_id) {
            return Ok(None);
        }
        let out = self.get(&keys::machine_client(client_id), true).await?;
        out.map(|item| parse_client(&item)).transpose()
    }

    /// One of `tenant`'s clients; another tenant's is `None`, like a missing one.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %client_id))]
    pub async fn tenant_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Option<MachineClient>, StoreError> {
        Ok(self
            .machine_client(client_id)
            .await?
            .filter(|c| &c.tenant == tenant))
    }

    /// Up to `limit` of the tenant's clients that pass `filter`, newest first, from
    /// after the one whose listing position is `after` (a page's `after`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %filter))]
    pub async fn client_page(
        &self,
        tenant: &TenantId,
        filter: ClientFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<MachineClient>, StoreError> {
        let partition = keys::machine_clients_partition(tenant);
        let revoked = match filter {
            ClientFilter::All => None,
            ClientFilter::Active => Some("attribute_not_exists(revoked_at)"),
            ClientFilter::Revoked => Some("attribute_exists(revoked_at)"),
        };
        let (items, after) = self
            .page(
                |query| {
                    query
                        .index_name("gsi1")
                        .key_condition_expression("gsi1pk = :p")
                        .set_filter_expression(revoked.map(str::to_owned))
                        .expression_attribute_values(":p", s(&partition))
                },
                after,
                limit,
                // `{created_at}#{client_id}`; a start key on an index also names the
                // item's own key.
                "gsi1sk",
                |position| {
                    let client_id = position.rsplit_once('#').map_or(position, |(_, id)| id);
                    let mut key = key_item(&keys::machine_client(client_id));
                    key.insert("gsi1pk".to_owned(), s(&partition));
                    key.insert("gsi1sk".to_owned(), s(position));
                    key
                },
            )
            .await?;
        let items = items
            .iter()
            .map(parse_client)
            .filter(|c| c.as_ref().map_or(true, |c| &c.tenant == tenant))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, after })
    }

    /// Marks the client revoked, frees its place in the tenant's limit and writes
    /// `audit`, once: all or nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %client_id))]
    pub async fn revoke_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<Revocation, StoreError> {
        let at = audit.at;
        let Some(mut client) = self.tenant_client(tenant, client_id).await? else {
            return Ok(Revocation::NotFound);
        };
        if client.revoked_at.is_some() {
            return Ok(Revocation::AlreadyRevoked(client));
        }
        let revoke = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::machine_client(client_id))))
            .update_expression("SET revoked_at = :at")
            .condition_expression("tenant_id = :tenant AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .build()
            .map_err(dynamo)?;
        let counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::machine_client_count(tenant))))
            .update_expression("ADD active :minus_one")
            .expression_attribute_values(":minus_one", n(-1))
            .build()
            .map_err(dynamo)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(revoke).build())
            .transact_items(TransactWriteItem::builder().update(counter).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.audit_put(tenant, audit, now_epoch)?)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                client.revoked_at = Some(at);
                Ok(Revocation::Revoked(client))
            }
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                // A concurrent revoke won: the client is revoked either way.
                match self.tenant_client(tenant, client_id).await? {
                    Some(current)
                        if cancelled.condition_failed(0) && current.revoked_at.is_some() =>
                    {
                        Ok(Revocation::AlreadyRevoked(current))
                    }
                    _ => Err(cancelled.into()),
                }
            }
        }
    }
}

/// Cognito app client ids are letters and digits; anything else names no client.
fn well_formed(client_id: &str) -> bool {
    (1..=128).contains(&client_id.len()) && client_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn scopes_value(scopes: &[Scope]) -> AttributeValue {
    AttributeValue::L(scopes.iter().map(|scope| s(scope.to_string())).collect())
}

fn parse_client(item: &Item) -> Result<MachineClient, StoreError> {
    let client_id = get_s(item, "client_id").unwrap_or_default().to_owned();
    let key = keys::machine_client(&client_id);
    let corrupt = |reason: &str| corrupt(&key, reason);
    let tenant = get_s(item, "tenant_id")
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or_else(|| corrupt("no valid tenant"))?;
    let scopes = match item.get("scopes") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| v.as_s().ok().and_then(|raw| raw.parse::<Scope>().ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("unknown scope"))?,
        _ => return Err(corrupt("no scopes")),
    };
    Ok(MachineClient {
        tenant,
        name: get_s(item, "name").unwrap_or_default().to_owned(),
        scopes,
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        created_by: get_s(item, "created_by").unwrap_or_default().to_owned(),
        revoked_at: get_time(item, "revoked_at"),
        client_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_letters_and_digits() {
        assert!(well_formed("4q2mb3j0v1e8r5cpn2a6mumtkd"));
        assert!(!well_formed(""));
        assert!(!well_formed("abc#TENANT"));
        assert!(!well_formed(&"a".repeat(129)));
    }
}
