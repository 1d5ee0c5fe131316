//! Tenant profiles: the plan and limits every request and send is held to, whether
//! the tenant may use Herald at all, and where it may send texts.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{
    Country, Limits, NumberType, SenderRate, SmsPolicy, SmsSender, TenantProfile, TenantStatus,
};
use crate::ids::TenantId;
use crate::item::{
    Item, corrupt, dynamo, get_n, get_named, get_s, get_time, is_condition_failure, key_item, n,
    name, s, time, with_key,
};
use crate::keys::{self, SCHEMA_VERSION};

impl Store {
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<TenantProfile>, StoreError> {
        let key = keys::tenant_profile(tenant);
        let out = self.get(&key, true).await?;
        out.map(|item| parse_tenant(tenant, &item)).transpose()
    }

    /// Creates the profile; `false` when the tenant already exists (left unchanged).
    #[tracing::instrument(skip_all, fields(tenant_id = %profile.tenant))]
    pub async fn create_tenant(&self, profile: &TenantProfile) -> Result<bool, StoreError> {
        self.put_new(profile_item(profile)).await
    }

    /// Replaces an existing tenant's SMS policy (a part set to `None` goes back to the
    /// platform's default); `None` when there is no such tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn set_sms_policy(
        &self,
        tenant: &TenantId,
        policy: &SmsPolicy,
        at: Timestamp,
    ) -> Result<Option<TenantProfile>, StoreError> {
        let key = keys::tenant_profile(tenant);
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", time(at));
        let placeholders = [":countries", ":types"];
        let values = sms_policy_values(policy)
            .into_iter()
            .zip(placeholders)
            .map(|((name, value), placeholder)| (name, placeholder, value));
        let result = set_or_remove(request, &["updated_at = :at"], values)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        updated_profile(tenant, result)
    }

    /// Sets (or, with `None`, clears) the tenant's own SMS sender and its rate (`None`:
    /// the kind's default); `None` when there is no such tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn set_sms_sender(
        &self,
        tenant: &TenantId,
        sender: Option<&SmsSender>,
        rate: Option<SenderRate>,
        at: Timestamp,
    ) -> Result<Option<TenantProfile>, StoreError> {
        let key = keys::tenant_profile(tenant);
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(
                ":gsi1pk",
                s(keys::sms_sender_partition(sender.map(SmsSender::as_str))),
            )
            .expression_attribute_values(":gsi1sk", s(tenant.as_str()));
        let values = [
            (
                "sms_sender",
                ":sender",
                sender.map(|sender| s(sender.as_str())),
            ),
            (
                "sms_sender_rate",
                ":rate",
                rate.map(|rate| n(rate.per_second())),
            ),
        ];
        let always = ["updated_at = :at", "gsi1pk = :gsi1pk", "gsi1sk = :gsi1sk"];
        let result = set_or_remove(request, &always, values)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        updated_profile(tenant, result)
    }

    /// The tenants whose texts go out from `sender` (`None`: the platform's own
    /// sender, shared by every tenant without one of its own).
    #[tracing::instrument(skip_all, fields(sender = sender.unwrap_or("platform")))]
    pub async fn tenants_sending_from(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<TenantId>, StoreError> {
        let mut tenants = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(keys::sms_sender_partition(sender)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            tenants.extend(
                out.items()
                    .iter()
                    .filter_map(|item| get_s(item, "gsi1sk"))
                    .filter_map(|t| TenantId::parse(t).ok()),
            );
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(tenants);
            }
        }
    }

    /// Suspends or resumes an existing tenant; `None` when there is no such tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %status))]
    pub async fn set_tenant_status(
        &self,
        tenant: &TenantId,
        status: TenantStatus,
        at: Timestamp,
    ) -> Result<Option<TenantProfile>, StoreError> {
        let key = keys::tenant_profile(tenant);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("SET #status = :status, updated_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", name(status))
            .expression_attribute_values(":at", time(at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        updated_profile(tenant, result)
    }
}

/// The profile an update of an existing tenant wrote, or `None` when its
/// `attribute_exists(pk)` condition found no such tenant.
fn updated_profile<R>(
    tenant: &TenantId,
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Result<Option<TenantProfile>, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => parse_tenant(tenant, &out.attributes.unwrap_or_default()).map(Some),
        Err(e) if is_condition_failure(&e) => Ok(None),
        Err(e) => Err(dynamo(e)),
    }
}

/// The update `SET`s what `always` says and each value given, and `REMOVE`s each
/// attribute whose value is `None` (back to its default).
fn set_or_remove(
    mut request: UpdateItemFluentBuilder,
    always: &[&str],
    values: impl IntoIterator<Item = (&'static str, &'static str, Option<AttributeValue>)>,
) -> UpdateItemFluentBuilder {
    let mut set: Vec<String> = always.iter().map(|s| (*s).to_owned()).collect();
    let mut remove = Vec::new();
    for (name, placeholder, value) in values {
        match value {
            Some(value) => {
                set.push(format!("{name} = {placeholder}"));
                request = request.expression_attribute_values(placeholder, value);
            }
            None => remove.push(name),
        }
    }
    let mut update = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    request.update_expression(update)
}

/// The profile's item, as `create_tenant` writes it.
pub(super) fn profile_item(profile: &TenantProfile) -> Item {
    let key = keys::tenant_profile(&profile.tenant);
    let mut item = with_key(
        &key,
        [
            ("tenant_id", s(profile.tenant.as_str())),
            ("plan", name(profile.plan)),
            ("status", name(profile.status)),
            (
                "api_requests_per_second",
                n(profile.limits.api_requests_per_second),
            ),
            ("sends_per_day", n(profile.limits.sends_per_day)),
            ("sms_provider", name(profile.sms_provider)),
            ("created_at", time(profile.created_at)),
            ("updated_at", time(profile.updated_at)),
            ("schema_version", n(SCHEMA_VERSION)),
            // Listed under its SMS sender, for inbound texts to find it.
            (
                "gsi1pk",
                s(keys::sms_sender_partition(
                    profile.sms_sender.as_ref().map(SmsSender::as_str),
                )),
            ),
            ("gsi1sk", s(profile.tenant.as_str())),
        ],
    );
    // A part the policy leaves unset is not written: it follows the platform's default.
    for (name, value) in sms_policy_values(&profile.sms_policy) {
        if let Some(value) = value {
            item.insert(name.to_owned(), value);
        }
    }
    if let Some(sender) = &profile.sms_sender {
        item.insert("sms_sender".into(), s(sender.as_str()));
    }
    if let Some(rate) = profile.sms_sender_rate {
        item.insert("sms_sender_rate".into(), n(rate.per_second()));
    }
    item
}

fn parse_tenant(tenant: &TenantId, item: &Item) -> Result<TenantProfile, StoreError> {
    let key = keys::tenant_profile(tenant);
    let corrupt = |reason: &str| corrupt(&key, reason);
    Ok(TenantProfile {
        tenant: tenant.clone(),
        plan: get_named(item, "plan").ok_or_else(|| corrupt("unknown plan"))?,
        status: get_named(item, "status").ok_or_else(|| corrupt("unknown status"))?,
        limits: Limits {
            api_requests_per_second: get_n(item, "api_requests_per_second")
                .ok_or_else(|| corrupt("no request rate"))?,
            sends_per_day: get_n(item, "sends_per_day").ok_or_else(|| corrupt("no daily quota"))?,
        },
        // Profiles written before providers were chosen per tenant have none: Twilio.
        sms_provider: match get_s(item, "sms_provider") {
            None => Default::default(),
            Some(raw) => raw.parse().map_err(|_| corrupt("unknown SMS provider"))?,
        },
        // Profiles written before SMS policies existed have none: the platform's default.
        sms_policy: SmsPolicy {
            countries: names(item, "sms_countries", |raw| Country::parse(raw).ok())
                .map_err(|_| corrupt("unknown SMS country"))?,
            number_types: names(item, "sms_number_types", |raw| {
                raw.parse::<NumberType>().ok()
            })
            .map_err(|_| corrupt("unknown SMS number type"))?,
        },
        sms_sender: get_s(item, "sms_sender")
            .map(|raw| SmsSender::parse(raw).map_err(|_| corrupt("invalid SMS sender")))
            .transpose()?,
        sms_sender_rate: item
            .contains_key("sms_sender_rate")
            .then(|| {
                get_n::<f64>(item, "sms_sender_rate")
                    .and_then(|rate| SenderRate::new(rate).ok())
                    .ok_or_else(|| corrupt("invalid SMS sender rate"))
            })
            .transpose()?,
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        updated_at: get_time(item, "updated_at").ok_or_else(|| corrupt("no update time"))?,
    })
}

/// The policy's parts as the attributes that hold them; `None` for a part left unset.
/// Lists, not string sets: an empty list (text nowhere, text no kind) is a choice.
fn sms_policy_values(policy: &SmsPolicy) -> [(&'static str, Option<AttributeValue>); 2] {
    fn list<T: ToString>(items: &BTreeSet<T>) -> AttributeValue {
        AttributeValue::L(items.iter().map(|item| s(item.to_string())).collect())
    }
    [
        ("sms_countries", policy.countries.as_ref().map(list)),
        ("sms_number_types", policy.number_types.as_ref().map(list)),
    ]
}

/// A list attribute of names read through `parse`: `Ok(None)` when absent, `Err` when
/// it holds something `parse` does not know.
fn names<T: Ord>(
    item: &Item,
    attribute: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<BTreeSet<T>>, ()> {
    let Some(value) = item.get(attribute) else {
        return Ok(None);
    };
    let list = value.as_l().map_err(|_| ())?;
    list.iter()
        .map(|v| v.as_s().ok().and_then(|raw| parse(raw)).ok_or(()))
        .collect::<Result<BTreeSet<T>, ()>>()
        .map(Some)
}
