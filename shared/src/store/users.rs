//! A tenant's people as Herald records them beside Cognito: their role, whether they
//! were removed, since when their tokens stand, and how many active admins the tenant
//! has (the last one cannot be removed or demoted). Cognito holds the sign-in; this is
//! what the API checks on every request and what the user listing pages through.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::{Store, StoreError};
use crate::domain::{
    AuditEntry, Page, TenantProfile, TenantRole, TenantUser, UserChange, UserStatus,
};
use crate::ids::TenantId;
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_n, get_named, get_s, get_time, key_item, n, name, s,
    time, with_key,
};
use crate::keys::{self, SCHEMA_VERSION};

/// What a change does to the user's item: the new role, or removal.
enum Change {
    Role(TenantRole),
    Remove,
}

impl Store {
    /// Records a user Cognito holds (invited through the API, or made outside it),
    /// counts an admin, and writes `audit` when given: all or nothing. `false` when
    /// the user is recorded already (nothing written).
    #[tracing::instrument(skip_all, fields(tenant_id = %user.tenant))]
    pub async fn record_user(
        &self,
        user: &TenantUser,
        audit: Option<&AuditEntry>,
        now_epoch: u64,
    ) -> Result<bool, StoreError> {
        let mut writes = self.user_writes(user)?;
        if let Some(audit) = audit {
            let audit = self.audit_put(&user.tenant, audit, now_epoch)?;
            writes.push(TransactWriteItem::builder().put(audit).build());
        }
        self.write_new(writes).await
    }

    /// A new tenant with its first admin and `audit`, all or nothing: an operator's
    /// one request. `false` when the tenant exists (nothing written).
    #[tracing::instrument(skip_all, fields(tenant_id = %profile.tenant))]
    pub async fn create_tenant_with_admin(
        &self,
        profile: &TenantProfile,
        admin: &TenantUser,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<bool, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::tenant::profile_item(profile)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let mut writes = vec![TransactWriteItem::builder().put(put).build()];
        writes.extend(self.user_writes(admin)?);
        let audit = self.audit_put(&profile.tenant, audit, now_epoch)?;
        writes.push(TransactWriteItem::builder().put(audit).build());
        self.write_new(writes).await
    }

    /// Writes all of `writes` or none; `false` when the first, which creates an item,
    /// found it there already.
    async fn write_new(&self, writes: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) {
                    Ok(false)
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// The writes that record a new user: their item, and the admin count for an
    /// active admin.
    fn user_writes(&self, user: &TenantUser) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item = with_key(
            &keys::tenant_user(&user.tenant, &user.user_id),
            [
                ("tenant_id", s(user.tenant.as_str())),
                ("user_id", s(&user.user_id)),
                ("email", s(&user.email)),
                ("role", name(user.role)),
                ("status", name(user.status)),
                ("created_at", time(user.created_at)),
                ("created_by", s(&user.created_by)),
                ("tokens_after", n(user.tokens_after)),
                ("gsi1pk", s(keys::tenant_users_partition(&user.tenant))),
                ("gsi1sk", s(format!("{}#{}", user.created_at, user.user_id))),
                ("schema_version", n(SCHEMA_VERSION)),
            ],
        );
        if let Some(display) = &user.name {
            item.insert("name".to_owned(), s(display));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let mut writes = vec![TransactWriteItem::builder().put(put).build()];
        if user.role == TenantRole::Admin && user.status == UserStatus::Active {
            writes.push(self.admin_count_change(&user.tenant, 1)?);
        }
        Ok(writes)
    }

    /// One of `tenant`'s users; another tenant's is `None`, like a missing one.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn tenant_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<TenantUser>, StoreError> {
        if !well_formed(user_id) {
            return Ok(None);
        }
        let out = self.get(&keys::tenant_user(tenant, user_id), true).await?;
        out.map(|item| parse_user(tenant, &item)).transpose()
    }

    /// The tenant's profile and the calling user's record, read at once (two
    /// consistent reads in parallel): what every request of a person needs.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn tenant_with_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<(Option<TenantProfile>, Option<TenantUser>), StoreError> {
        let (profile, user) =
            tokio::join!(self.get_tenant(tenant), self.tenant_user(tenant, user_id));
        Ok((profile?, user?))
    }

    /// Up to `limit` of the tenant's users, newest first, from after the one whose
    /// listing position is `after` (a page's `after`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn user_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TenantUser>, StoreError> {
        let partition = keys::tenant_users_partition(tenant);
        let (items, after) = self
            .page(
                |query| {
                    query
                        .index_name("gsi1")
                        .key_condition_expression("gsi1pk = :p")
                        .expression_attribute_values(":p", s(&partition))
                },
                after,
                limit,
                // `{created_at}#{user_id}`; a start key on an index also names the
                // item's own key.
                "gsi1sk",
                |position| {
                    let user_id = position.rsplit_once('#').map_or(position, |(_, id)| id);
                    let mut key = key_item(&keys::tenant_user(tenant, user_id));
                    key.insert("gsi1pk".to_owned(), s(&partition));
                    key.insert("gsi1sk".to_owned(), s(position));
                    key
                },
            )
            .await?;
        let items = items
            .iter()
            .map(|item| parse_user(tenant, item))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, after })
    }

    /// Gives `user` (as the caller read it) `role`, refuses their earlier tokens and
    /// writes `audit`, unless that would leave the tenant without an active admin.
    #[tracing::instrument(skip_all, fields(tenant_id = %user.tenant))]
    pub async fn change_user_role(
        &self,
        user: &TenantUser,
        role: TenantRole,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<UserChange, StoreError> {
        if user.role == role || user.status == UserStatus::Removed {
            return Ok(UserChange::Unchanged(user.clone()));
        }
        self.change(user, Change::Role(role), audit, now_epoch)
            .await
    }

    /// Marks `user` (as the caller read it) removed, refuses all their tokens and
    /// writes `audit`, unless they are the tenant's last active admin.
    #[tracing::instrument(skip_all, fields(tenant_id = %user.tenant))]
    pub async fn remove_user(
        &self,
        user: &TenantUser,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<UserChange, StoreError> {
        if user.status == UserStatus::Removed {
            return Ok(UserChange::Unchanged(user.clone()));
        }
        self.change(user, Change::Remove, audit, now_epoch).await
    }

    /// One change of an active user, conditional on the role and status the caller
    /// read, with the admin count moved in the same transaction.
    async fn change(
        &self,
        user: &TenantUser,
        change: Change,
        audit: &AuditEntry,
        now_epoch: u64,
    ) -> Result<UserChange, StoreError> {
        let tenant = &user.tenant;
        let tokens_after = audit.at.epoch_seconds();
        let mut changed = user.clone();
        changed.tokens_after = tokens_after;
        changed.changed_at = Some(audit.at);
        let (expression, admins_after) = match change {
            Change::Role(role) => {
                changed.role = role;
                ("SET #role = :new_role", role == TenantRole::Admin)
            }
            Change::Remove => {
                changed.status = UserStatus::Removed;
                ("SET #status = :removed", false)
            }
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::tenant_user(tenant, &user.user_id))))
            .update_expression(format!(
                "{expression}, tokens_after = :after, changed_at = :at"
            ))
            .condition_expression("#role = :old_role AND #status = :active")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":new_role", name(changed.role))
            .expression_attribute_values(":old_role", name(user.role))
            .expression_attribute_values(":active", name(UserStatus::Active))
            .expression_attribute_values(":removed", name(UserStatus::Removed))
            .expression_attribute_values(":after", n(tokens_after))
            .expression_attribute_values(":at", time(audit.at))
            .build()
            .map_err(dynamo)?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        let admin_before = user.role == TenantRole::Admin;
        if admin_before && !admins_after {
            writes.push(self.admin_count_change(tenant, -1)?);
        } else if !admin_before && admins_after {
            writes.push(self.admin_count_change(tenant, 1)?);
        }
        let audit = self.audit_put(tenant, audit, now_epoch)?;
        writes.push(TransactWriteItem::builder().put(audit).build());
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        let cancelled = match result {
            Ok(_) => return Ok(UserChange::Changed(changed)),
            Err(e) => Cancelled::from_error(e)?,
        };
        if admin_before && !admins_after && cancelled.condition_failed(1) {
            return Ok(UserChange::LastAdmin);
        }
        // Another change won the race: answer with the user as it is now.
        match self.tenant_user(tenant, &user.user_id).await? {
            None => Ok(UserChange::NotFound),
            Some(current) if cancelled.condition_failed(0) => Ok(UserChange::Unchanged(current)),
            Some(_) => Err(cancelled.into()),
        }
    }

    /// `delta` on the tenant's count of active admins; taking one away needs two.
    fn admin_count_change(
        &self,
        tenant: &TenantId,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::admin_count(tenant))))
            .update_expression("ADD admins :delta SET tenant_id = :tenant")
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":tenant", s(tenant.as_str()));
        if delta < 0 {
            update = update
                .condition_expression("admins >= :two")
                .expression_attribute_values(":two", n(2));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(dynamo)?)
            .build())
    }

    /// How many active admins the tenant has, as counted.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn admin_count(&self, tenant: &TenantId) -> Result<u32, StoreError> {
        let item = self.get(&keys::admin_count(tenant), true).await?;
        Ok(item.and_then(|i| get_n(&i, "admins")).unwrap_or(0))
    }
}

/// Cognito's `sub` is a UUID; anything else names no user.
fn well_formed(user_id: &str) -> bool {
    (1..=64).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_user(tenant: &TenantId, item: &Item) -> Result<TenantUser, StoreError> {
    let user_id = get_s(item, "user_id").unwrap_or_default().to_owned();
    let key = keys::tenant_user(tenant, &user_id);
    let corrupt = |reason: &str| corrupt(&key, reason);
    if get_s(item, "tenant_id") != Some(tenant.as_str()) {
        return Err(corrupt("another tenant's user"));
    }
    Ok(TenantUser {
        tenant: tenant.clone(),
        email: get_s(item, "email")
            .ok_or_else(|| corrupt("no email"))?
            .to_owned(),
        name: get_s(item, "name").map(str::to_owned),
        role: get_named(item, "role").ok_or_else(|| corrupt("no valid role"))?,
        status: get_named(item, "status").ok_or_else(|| corrupt("no valid status"))?,
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        created_by: get_s(item, "created_by").unwrap_or_default().to_owned(),
        tokens_after: get_n(item, "tokens_after").unwrap_or(0),
        changed_at: get_time(item, "changed_at"),
        user_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_uuids_or_alike() {
        assert!(well_formed("6f1c2a3e-0b7d-4f7e-9c55-3a1d2e4b5c6d"));
        assert!(!well_formed(""));
        assert!(!well_formed("a#TENANT#b"));
        assert!(!well_formed(&"a".repeat(65)));
    }
}
