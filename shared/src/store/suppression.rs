//! Suppression entries: one item per tenant and address, listed (while active) on
//! gsi1 by channel, reason and address. Lifting an entry leaves it inactive, with a
//! TTL, rather than deleting it: an opt-out and an opt-in can arrive out of order, and
//! each write is conditional on being newer (`changed_at`) than what the item holds,
//! so a STOP sent before a START never wins over it.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Store, StoreError};
use crate::address::Address;
use crate::clock::Timestamp;
use crate::domain::{
    Channel, LiftOutcome, SuppressOutcome, Suppression, SuppressionPage, SuppressionReason,
};
use crate::ids::TenantId;
use crate::item::{Item, corrupt, dynamo, get_named, get_s, get_time, n, name, s, time};
use crate::keys::{self, Key, SCHEMA_VERSION};

/// How long a lifted entry is kept, to order a late opt-out after the opt-in that
/// lifted it.
const LIFTED_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who lifts an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifter {
    /// The recipient, by texting an opt-in keyword at `at`: lifts only an opt-out.
    Recipient { at: Timestamp },
    /// A tenant admin: lifts anything but an opt-out.
    Admin { subject: String, at: Timestamp },
}

impl Store {
    /// Puts an address on the tenant's list. A recipient's or provider's event
    /// (`by_event`) applies only if newer than the entry's last change, and never turns
    /// an active opt-out into a weaker reason; an admin's addition applies only where
    /// the address is not suppressed already.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, reason = %entry.reason))]
    pub async fn suppress(
        &self,
        tenant: &TenantId,
        entry: &Suppression,
        by_event: bool,
    ) -> Result<SuppressOutcome, StoreError> {
        let key = keys::suppression(tenant, &entry.address);
        let channel = entry.channel();
        let request = self
            .update(&key)
            .set_expression_attribute_names(Some(attribute_names(&[
                "address", "channel", "reason", "source", "detail", "active",
            ])))
            .update_expression(
                "SET tenant_id = :tenant, #address = :address, #channel = :channel, \
                 #reason = :reason, #source = :source, #detail = :detail, \
                 created_at = if_not_exists(created_at, :at), changed_at = :at, #active = :yes, \
                 gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, schema_version = :v \
                 REMOVE expires_at, lifted_at, lifted_by",
            )
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":address", s(entry.address.as_str()))
            .expression_attribute_values(":channel", name(channel))
            .expression_attribute_values(":reason", name(entry.reason))
            .expression_attribute_values(":source", s(&entry.source))
            .expression_attribute_values(
                ":detail",
                entry
                    .detail
                    .as_deref()
                    .map_or(AttributeValue::Null(true), s),
            )
            .expression_attribute_values(":at", time(entry.changed_at))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":gsi1pk", s(keys::suppressions_partition(tenant)))
            .expression_attribute_values(
                ":gsi1sk",
                s(keys::suppression_listing(
                    channel.into(),
                    entry.reason.into(),
                    &entry.address,
                )),
            )
            .expression_attribute_values(":v", n(SCHEMA_VERSION));
        let request = if by_event {
            request
                .condition_expression(
                    "attribute_not_exists(pk) OR (changed_at < :at AND \
                     (#active = :no OR #reason <> :optout OR :reason = :optout))",
                )
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .expression_attribute_values(":optout", name(SuppressionReason::OptOut))
        } else {
            request
                .condition_expression("attribute_not_exists(pk) OR #active = :no")
                .expression_attribute_values(":no", AttributeValue::Bool(false))
        };
        let result = request
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(SuppressOutcome::Suppressed(parse(
                &key,
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(e) => {
                let old = old_item(e)?;
                let existing = parse(&key, &old)?;
                Ok(if existing.changed_at >= entry.changed_at && by_event {
                    SuppressOutcome::Superseded
                } else {
                    SuppressOutcome::AlreadySuppressed(existing)
                })
            }
        }
    }

    /// Takes an address off the tenant's list (see `Lifter` for who may lift what).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn lift_suppression(
        &self,
        tenant: &TenantId,
        address: &Address,
        by: &Lifter,
    ) -> Result<LiftOutcome, StoreError> {
        let key = keys::suppression(tenant, address);
        let (at, lifted_by) = match by {
            Lifter::Recipient { at } => (*at, "recipient"),
            Lifter::Admin { subject, at } => (*at, subject.as_str()),
        };
        let request = self
            .update(&key)
            .set_expression_attribute_names(Some(attribute_names(&[
                "address", "channel", "reason", "source", "active",
            ])))
            .update_expression(
                "SET tenant_id = :tenant, #address = :address, #channel = :channel, \
                 #reason = if_not_exists(#reason, :optout), #source = if_not_exists(#source, :by), \
                 created_at = if_not_exists(created_at, :at), changed_at = :at, #active = :no, \
                 lifted_at = :at, lifted_by = :by, expires_at = :expires, schema_version = :v \
                 REMOVE gsi1pk, gsi1sk",
            )
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":address", s(address.as_str()))
            .expression_attribute_values(":channel", name(address.channel()))
            .expression_attribute_values(":optout", name(SuppressionReason::OptOut))
            .expression_attribute_values(":by", s(lifted_by))
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":expires", n(at.plus(LIFTED_TTL).epoch_seconds()))
            .expression_attribute_values(":v", n(SCHEMA_VERSION));
        // A recipient's opt-in is remembered even where there was no opt-out (a STOP
        // still on its way must not win over it); an admin lifts only what is there.
        let request = match by {
            Lifter::Recipient { .. } => request.condition_expression(
                "attribute_not_exists(pk) OR (changed_at < :at AND #reason = :optout)",
            ),
            Lifter::Admin { .. } => request
                .condition_expression("#active = :yes AND #reason <> :optout")
                .expression_attribute_values(":yes", AttributeValue::Bool(true)),
        };
        let result = request
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let was_active = old.get("active").and_then(|v| v.as_bool().ok()) == Some(&true);
                Ok(match was_active {
                    true => LiftOutcome::Lifted(parse(&key, &old)?),
                    false => LiftOutcome::NotSuppressed,
                })
            }
            Err(e) => {
                let old = old_item(e)?;
                if old.is_empty() || old.get("active").and_then(|v| v.as_bool().ok()) != Some(&true)
                {
                    return Ok(match by {
                        Lifter::Admin { .. } => LiftOutcome::NotSuppressed,
                        Lifter::Recipient { .. } => LiftOutcome::Superseded,
                    });
                }
                let existing = parse(&key, &old)?;
                Ok(match by {
                    Lifter::Recipient { at } if existing.changed_at >= *at => {
                        LiftOutcome::Superseded
                    }
                    _ => LiftOutcome::Refused(existing),
                })
            }
        }
    }

    /// The active entries among `addresses` (at most 100), by folded address: what the
    /// sender checks before a chunk. Read consistently: an opt-out applied a moment ago
    /// stops the next chunk.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, addresses = addresses.len()))]
    pub async fn suppressed_among(
        &self,
        tenant: &TenantId,
        addresses: &[&Address],
    ) -> Result<HashMap<String, Suppression>, StoreError> {
        let mut keys: Vec<Key> = addresses
            .iter()
            .map(|a| keys::suppression(tenant, a))
            .collect();
        keys.sort_by(|a, b| a.pk.cmp(&b.pk));
        keys.dedup_by(|a, b| a.pk == b.pk);
        let mut found = HashMap::new();
        for item in self.get_many(&keys, true).await? {
            if item.get("active").and_then(|v| v.as_bool().ok()) != Some(&true) {
                continue;
            }
            let key = Key {
                pk: get_s(&item, "pk").unwrap_or_default().to_owned(),
                sk: get_s(&item, "sk").unwrap_or_default().to_owned(),
            };
            let entry = parse(&key, &item)?;
            found.insert(entry.address.folded(), entry);
        }
        Ok(found)
    }

    /// One page of the tenant's active entries, by channel, reason and address; only
    /// `channel`'s and `reason`'s when given. `after` is a previous page's `next`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn list_suppressions(
        &self,
        tenant: &TenantId,
        channel: Option<Channel>,
        reason: Option<SuppressionReason>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<SuppressionPage, StoreError> {
        let partition = keys::suppressions_partition(tenant);
        let prefix = match (channel, reason) {
            (Some(c), Some(r)) => format!("{c}#{r}#"),
            (Some(c), None) => format!("{c}#"),
            (None, _) => String::new(),
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .expression_attribute_values(":pk", s(&partition))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        // DynamoDB refuses an empty prefix: no channel, no prefix.
        query = match prefix.is_empty() {
            true => query.key_condition_expression("gsi1pk = :pk"),
            false => query
                .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
        };
        // A reason without a channel is filtered, so such a page may be short.
        if let (None, Some(reason)) = (channel, reason) {
            query = query
                .set_expression_attribute_names(Some(attribute_names(&["reason"])))
                .filter_expression("#reason = :reason")
                .expression_attribute_values(":reason", name(reason));
        }
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(start_key(&partition, tenant, after)?));
        }
        let out = query.send().await.map_err(dynamo)?;
        let entries = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let key = crate::keys::Key {
                    pk: get_s(item, "pk").unwrap_or_default().to_owned(),
                    sk: "SUPPRESSION".into(),
                };
                parse(&key, item)
            })
            .collect::<Result<_, _>>()?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| get_s(k, "gsi1sk"))
            .map(str::to_owned);
        Ok(SuppressionPage { entries, next })
    }
}

/// The placeholders of `names` (several of the entry's attributes are DynamoDB
/// reserved words); DynamoDB refuses a placeholder an expression does not use.
fn attribute_names(names: &[&str]) -> HashMap<String, String> {
    names
        .iter()
        .map(|name| (format!("#{name}"), (*name).to_owned()))
        .collect()
}

/// The item a failed conditional update found (empty when there was none).
fn old_item<R>(error: SdkError<UpdateItemError, R>) -> Result<Item, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception() => {
            match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failure) => {
                    Ok(failure.item.unwrap_or_default())
                }
                _ => unreachable!("checked above"),
            }
        }
        other => Err(dynamo(other)),
    }
}

/// A listing cursor (the last entry's gsi1 sort key) as the query's start key.
/// The key a page starts after, from the listing position (the last entry's `gsi1sk`).
fn start_key(partition: &str, tenant: &TenantId, sort: &str) -> Result<Item, StoreError> {
    let invalid = || StoreError::InvalidCursor;
    let sort = sort.to_owned();
    let mut parts = sort.splitn(3, '#');
    let (Some(channel), Some(_reason), Some(address)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let channel: Channel = channel.parse().map_err(|_| invalid())?;
    let address = Address::parse(channel, address).map_err(|_| invalid())?;
    let key = keys::suppression(tenant, &address);
    Ok(HashMap::from([
        ("pk".to_owned(), s(key.pk)),
        ("sk".to_owned(), s(key.sk)),
        ("gsi1pk".to_owned(), s(partition)),
        ("gsi1sk".to_owned(), s(sort)),
    ]))
}

fn parse(key: &crate::keys::Key, item: &Item) -> Result<Suppression, StoreError> {
    let corrupt = |reason: &str| corrupt(key, reason);
    let channel: Channel = get_named(item, "channel").ok_or_else(|| corrupt("unknown channel"))?;
    let address = get_s(item, "address")
        .and_then(|raw| Address::parse(channel, raw).ok())
        .ok_or_else(|| corrupt("no address of its channel"))?;
    Ok(Suppression {
        address,
        reason: get_named(item, "reason").ok_or_else(|| corrupt("unknown reason"))?,
        source: get_s(item, "source").unwrap_or_default().to_owned(),
        detail: get_s(item, "detail").map(str::to_owned),
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        changed_at: get_time(item, "changed_at").ok_or_else(|| corrupt("no change time"))?,
    })
}
