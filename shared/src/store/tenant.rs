//! Tenant profiles: the plan and limits every request and send is held to, and
//! whether the tenant may use Herald at all.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{
    Item, Store, StoreError, dynamo, get_n, get_s, is_condition_failure, key_item, n, s, with_key,
};
use crate::ids::TenantId;
use crate::keys::{self, SCHEMA_VERSION};
use crate::provider::SmsProviderKind;

// The API answers `as_str`, which is the lowercase variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    /// Requests get 403 and queued work is held, not sent.
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Active, Self::Suspended]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// API requests per second, across every Lambda instance.
    pub api_requests_per_second: u32,
    /// Messages accepted per UTC day.
    pub sends_per_day: u32,
}

/// The plans a tenant can be created on; an operator may override either limit.
pub const PLANS: &[(&str, Limits)] = &[
    (
        "starter",
        Limits {
            api_requests_per_second: 10,
            sends_per_day: 10_000,
        },
    ),
    (
        "growth",
        Limits {
            api_requests_per_second: 50,
            sends_per_day: 250_000,
        },
    ),
    (
        "enterprise",
        Limits {
            api_requests_per_second: 200,
            sends_per_day: 5_000_000,
        },
    ),
];

pub fn plan_limits(plan: &str) -> Option<Limits> {
    PLANS
        .iter()
        .find(|(name, _)| *name == plan)
        .map(|(_, l)| *l)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantProfile {
    pub tenant: TenantId,
    pub plan: String,
    pub status: TenantStatus,
    pub limits: Limits,
    pub sms_provider: SmsProviderKind,
    pub created_at: String,
    pub updated_at: String,
}

impl Store {
    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<TenantProfile>, StoreError> {
        let key = keys::tenant_profile(tenant);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(|item| parse_tenant(tenant, &item)).transpose()
    }

    /// Creates the profile; `false` when the tenant already exists (left unchanged).
    pub async fn create_tenant(&self, profile: &TenantProfile) -> Result<bool, StoreError> {
        let key = keys::tenant_profile(&profile.tenant);
        let item = with_key(
            &key,
            [
                ("tenant_id", s(profile.tenant.as_str())),
                ("plan", s(&profile.plan)),
                ("status", s(profile.status.as_str())),
                (
                    "api_requests_per_second",
                    n(profile.limits.api_requests_per_second),
                ),
                ("sends_per_day", n(profile.limits.sends_per_day)),
                ("sms_provider", s(profile.sms_provider.as_str())),
                ("created_at", s(&profile.created_at)),
                ("updated_at", s(&profile.updated_at)),
                ("schema_version", n(SCHEMA_VERSION)),
            ],
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Suspends or resumes an existing tenant; `None` when there is no such tenant.
    pub async fn set_tenant_status(
        &self,
        tenant: &TenantId,
        status: TenantStatus,
        at: &str,
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
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => parse_tenant(tenant, &out.attributes.unwrap_or_default()).map(Some),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(dynamo(e)),
        }
    }
}

fn parse_tenant(tenant: &TenantId, item: &Item) -> Result<TenantProfile, StoreError> {
    let key = keys::tenant_profile(tenant);
    let corrupt = |reason: &str| StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    };
    Ok(TenantProfile {
        tenant: tenant.clone(),
        plan: get_s(item, "plan").unwrap_or_default().to_owned(),
        status: get_s(item, "status")
            .and_then(TenantStatus::parse)
            .ok_or_else(|| corrupt("unknown status"))?,
        limits: Limits {
            api_requests_per_second: get_n(item, "api_requests_per_second")
                .ok_or_else(|| corrupt("no request rate"))?,
            sends_per_day: get_n(item, "sends_per_day").ok_or_else(|| corrupt("no daily quota"))?,
        },
        // Profiles written before providers were chosen per tenant have none: Twilio.
        sms_provider: match get_s(item, "sms_provider") {
            None => SmsProviderKind::default(),
            Some(raw) => {
                SmsProviderKind::parse(raw).ok_or_else(|| corrupt("unknown SMS provider"))?
            }
        },
        created_at: get_s(item, "created_at").unwrap_or_default().to_owned(),
        updated_at: get_s(item, "updated_at").unwrap_or_default().to_owned(),
    })
}
