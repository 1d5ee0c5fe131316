//! Tenant profiles: the plan and limits every request and send is held to, and
//! whether the tenant may use Herald at all.

use aws_sdk_dynamodb::types::ReturnValue;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{Limits, TenantProfile, TenantStatus};
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
        let key = keys::tenant_profile(&profile.tenant);
        let item = with_key(
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
            ],
        );
        self.put_new(item).await
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
        match result {
            Ok(out) => parse_tenant(tenant, &out.attributes.unwrap_or_default()).map(Some),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(dynamo(e)),
        }
    }
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
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        updated_at: get_time(item, "updated_at").ok_or_else(|| corrupt("no update time"))?,
    })
}
