//! The operator routes that create, show, suspend and resume tenants (and, in
//! `sms_policy`, set where one may text; in `sms_sender`, the number it texts from). Operator routes name their tenant in the
//! path: they are the platform-level exception to "the tenant comes from the token".
//!
//! One room on purpose: the operator's tenant routes share their request and answer
//! types; splitting by route would scatter them.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::{
    Country, Limits, Plan, SenderRate, SmsProviderKind, SmsSender, TenantProfile, TenantRole,
    TenantStatus, TenantUser, one_of,
};
use herald::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody, object, whole_number};
use crate::intake;
use crate::openapi::{ReadProblems, TenantChangeProblems, TenantCreateProblems};
use crate::sms_policy::{self, SmsPolicyBody, SmsPolicyField};
use crate::users::{self, UserBody};
use crate::{ApiError, App, FieldErrors};

/// The tenant named in an operator route's path.
pub(crate) fn path_tenant(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(id).map_err(|e| ApiError::InvalidId {
        what: "tenant",
        reason: e.to_string(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    #[schema(value_type = herald::TenantId)]
    tenant_id: String,
    #[schema(value_type = Plan)]
    plan: String,
    /// Overrides of the plan's limits.
    #[serde(default, deserialize_with = "object::optional")]
    limits: Option<LimitsField>,
    /// `twilio` (the default) or `sns`.
    #[serde(default)]
    #[schema(value_type = Option<SmsProviderKind>)]
    sms_provider: Option<String>,
    /// Where it may send texts; absent: the platform's default.
    #[serde(default, deserialize_with = "object::optional")]
    sms_policy: Option<SmsPolicyField>,
    /// The tenant's own SMS sender: a number in E.164 form, a short code (5 or 6
    /// digits) or a Twilio messaging service id (`MG...`). Without one, its texts go
    /// out from the platform's number, shared with other tenants (a STOP to it then
    /// stops texts of every tenant on it).
    #[serde(default)]
    #[schema(value_type = Option<SmsSender>)]
    sms_sender: Option<String>,
    /// Texts per second its sender may send (0.1 to 1000), across every instance;
    /// only with `sms_sender`. Absent: what carriers allow its kind of number: a long
    /// code 1, a toll-free number 3, a short code 100, a messaging service no limit of
    /// its own (the provider paces its pool).
    #[serde(default)]
    #[schema(minimum = 0.1, maximum = 1000)]
    sms_sender_rate_per_second: Option<f64>,
    /// The tenant's first admin, invited with the tenant: Cognito emails them a
    /// temporary password.
    #[serde(default, deserialize_with = "object::optional")]
    first_admin: Option<FirstAdmin>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirstAdmin {
    #[schema(value_type = herald::EmailAddress)]
    email: String,
    /// 1 to 100 characters, no control characters.
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,100}$")]
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedTenant)]
pub(crate) struct CreatedTenantBody {
    #[serde(flatten)]
    tenant: TenantBody,
    /// The first admin invited with it, when the request named one.
    first_admin: Option<UserBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LimitOverrides)]
pub(crate) struct LimitsField {
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 10_000)]
    api_requests_per_second: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    sends_per_day: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub(crate) struct TenantBody {
    tenant_id: String,
    plan: Plan,
    status: TenantStatus,
    limits: LimitsBody,
    sms_provider: SmsProviderKind,
    sms_policy: SmsPolicyBody,
    /// Its own SMS sender; `null`: the platform's shared one.
    #[schema(value_type = Option<String>)]
    sms_sender: Option<SmsSender>,
    /// Texts per second its own sender sends at most, as set or by the kind of number;
    /// `null`: no limit besides the provider account's (the platform's sender, or a
    /// messaging service).
    sms_sender_rate_per_second: Option<f64>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Limits)]
pub(crate) struct LimitsBody {
    api_requests_per_second: u32,
    sends_per_day: u32,
}

impl TenantBody {
    /// The profile as answered, its SMS policy in force (the platform's default
    /// countries where it names none).
    pub(crate) fn new(p: TenantProfile, default_countries: &BTreeSet<Country>) -> Self {
        Self {
            tenant_id: p.tenant.to_string(),
            plan: p.plan,
            status: p.status,
            limits: LimitsBody {
                api_requests_per_second: p.limits.api_requests_per_second,
                sends_per_day: p.limits.sends_per_day,
            },
            sms_provider: p.sms_provider,
            sms_policy: SmsPolicyBody::new(&p.sms_policy, default_countries),
            sms_sender_rate_per_second: p.sender_rate().map(|(_, rate)| rate.per_second()),
            sms_sender: p.sms_sender,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `POST /v1/tenants`: a new tenant on a plan, with optional overrides of its limits.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "operator",
    operation_id = "createTenant",
    summary = "Create a tenant",
    description = "A new tenant on a plan, with optional overrides of the plan's limits, \
        and optionally its first admin, invited in the same request (one audit entry).",
    params(IdempotencyKeyHeader),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created.", body = CreatedTenantBody, headers(
            ("Location" = String, description = "The tenant's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        TenantCreateProblems,
    ),
)]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<CreateTenant>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let tenant = TenantId::parse(&request.tenant_id)
        .inspect_err(|e| errors.add("/tenant_id", e.to_string()))
        .ok();
    let plan = request
        .plan
        .parse::<Plan>()
        .inspect_err(|_| errors.add("/plan", one_of::<Plan>()))
        .ok();
    let overrides = request.limits.as_ref();
    for (field, value, max) in [
        (
            "api_requests_per_second",
            overrides.and_then(|l| l.api_requests_per_second),
            Limits::MAX_API_REQUESTS_PER_SECOND,
        ),
        (
            "sends_per_day",
            overrides.and_then(|l| l.sends_per_day),
            Limits::MAX_SENDS_PER_DAY,
        ),
    ] {
        if value.is_some_and(|v| v == 0 || v > max) {
            errors.add(format!("/limits/{field}"), format!("must be 1 to {max}"));
        }
    }
    let sms_provider = match request.sms_provider.as_deref() {
        None => Some(SmsProviderKind::default()),
        Some(raw) => raw.parse().ok(),
    };
    if sms_provider.is_none() {
        errors.add("/sms_provider", one_of::<SmsProviderKind>());
    }
    let sms_policy = request
        .sms_policy
        .as_ref()
        .map(|field| field.parse("/sms_policy", &mut errors))
        .unwrap_or_default();
    let (sms_sender, sms_sender_rate) = own_sender(
        request.sms_sender.as_deref(),
        request.sms_sender_rate_per_second,
        &mut errors,
    );
    let first_admin = request.first_admin.map(|admin| {
        let email = users::person(
            "/first_admin",
            &admin.email,
            admin.name.as_deref(),
            &mut errors,
        );
        (email.unwrap_or_default(), admin.name)
    });
    errors.check()?;
    let (tenant, plan) = (tenant.expect("checked"), plan.expect("checked"));
    let sms_provider = sms_provider.expect("checked");
    let defaults = plan.limits();
    let limits = Limits {
        api_requests_per_second: overrides
            .and_then(|l| l.api_requests_per_second)
            .unwrap_or(defaults.api_requests_per_second),
        sends_per_day: overrides
            .and_then(|l| l.sends_per_day)
            .unwrap_or(defaults.sends_per_day),
    };
    let mut canonical = serde_json::json!({
        "tenant_id": tenant.as_str(),
        "plan": plan,
        "limits": [limits.api_requests_per_second, limits.sends_per_day],
        "sms_provider": sms_provider,
        "sms_sender": sms_sender,
    });
    // Only when given, so a request without one hashes as it always has.
    if request.sms_policy.is_some() {
        canonical["sms_policy"] = sms_policy::canonical(&sms_policy);
    }
    if let Some(rate) = sms_sender_rate {
        canonical["sms_sender_rate_per_second"] = rate.per_second().into();
    }
    if let Some((email, name)) = &first_admin {
        canonical["first_admin"] = serde_json::json!({ "email": email, "name": name });
    }
    let (app, caller) = (&app, &caller);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let now = app.clock.timestamp();
        let profile = TenantProfile {
            tenant: tenant.clone(),
            plan,
            status: TenantStatus::Active,
            limits,
            sms_provider,
            sms_policy,
            sms_sender,
            sms_sender_rate,
            created_at: now,
            updated_at: now,
        };
        let admin = match first_admin {
            None => {
                if !app.store.create_tenant(&profile).await? {
                    return Err(ApiError::TenantExists);
                }
                intake::audit(app, &tenant, caller, "tenant.created", tenant.as_str()).await?;
                None
            }
            Some((email, name)) => {
                Some(with_first_admin(app, caller, &profile, email, name).await?)
            }
        };
        let location = format!("/v1/tenants/{tenant}");
        let body = CreatedTenantBody {
            tenant: TenantBody::new(profile, &app.config.default_sms_countries),
            first_admin: admin.map(UserBody::from),
        };
        Ok(intake::stored_json(
            StatusCode::CREATED,
            &body,
            Some(location),
        ))
    })
    .await
}

/// The sender and its rate a request sets: a sender of its own, and a rate only with
/// one, in range.
pub(crate) fn own_sender(
    sender: Option<&str>,
    rate: Option<f64>,
    errors: &mut FieldErrors,
) -> (Option<SmsSender>, Option<SenderRate>) {
    let parsed = sender
        .map(SmsSender::parse)
        .transpose()
        .inspect_err(|e| errors.add("/sms_sender", e.to_string()))
        .ok()
        .flatten();
    let field = "/sms_sender_rate_per_second";
    let rate = match rate {
        None => None,
        Some(_) if sender.is_none() => {
            errors.add(
                field,
                "needs an sms_sender: the platform's sender has no rate of a tenant's",
            );
            None
        }
        Some(rate) => SenderRate::new(rate)
            .inspect_err(|e| errors.add(field, e.to_string()))
            .ok(),
    };
    (parsed, rate)
}

/// Creates `profile` with its first admin: Cognito's user first (the tenant is checked
/// free before), then the profile, the admin's record and one audit entry in one
/// transaction. A Cognito user the transaction does not record is deleted again.
async fn with_first_admin(
    app: &App,
    caller: &Caller,
    profile: &TenantProfile,
    email: String,
    name: Option<String>,
) -> Result<TenantUser, ApiError> {
    let tenant = &profile.tenant;
    if app.store.get_tenant(tenant).await?.is_some() {
        return Err(ApiError::TenantExists);
    }
    let role = TenantRole::Admin;
    let user_id = users::send_invitation(app, tenant, &email, role, "/first_admin/email").await?;
    let action = format!("tenant.created_with_admin:{user_id}");
    let audit = intake::audit_entry(app, caller, &action, tenant.as_str());
    let admin = users::invited(caller, tenant, user_id, email, name, role, &audit);
    let created = app
        .store
        .create_tenant_with_admin(profile, &admin, &audit, app.clock.epoch_seconds())
        .await;
    match created {
        Ok(true) => Ok(admin),
        Ok(false) => {
            users::forget(app, &admin).await;
            Err(ApiError::TenantExists)
        }
        Err(e) => {
            users::forget(app, &admin).await;
            Err(e.into())
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "operator",
    operation_id = "getTenant",
    summary = "A tenant's profile",
    params(("id" = herald::TenantId, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The tenant.", body = TenantBody),
        ReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<TenantBody>, ApiError> {
    let tenant = path_tenant(&id)?;
    let profile = app
        .store
        .get_tenant(&tenant)
        .await?
        .ok_or(ApiError::NotFound("No such tenant."))?;
    Ok(Json(TenantBody::new(
        profile,
        &app.config.default_sms_countries,
    )))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/suspend",
    tag = "operator",
    operation_id = "suspendTenant",
    summary = "Suspend a tenant",
    description = "Its requests are refused with 403 and its queued messages are held, not \
        sent, until it is resumed.",
    params(("id" = herald::TenantId, Path, description = "The tenant id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The tenant, suspended.", body = TenantBody, headers(
            ("Location" = String, description = "The tenant's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        TenantChangeProblems,
    ),
)]
pub async fn suspend(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    set_status(&app, &caller, &id, &idempotent, TenantStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/resume",
    tag = "operator",
    operation_id = "resumeTenant",
    summary = "Resume a suspended tenant",
    description = "Its requests are served again and its held messages are sent.",
    params(("id" = herald::TenantId, Path, description = "The tenant id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The tenant, active.", body = TenantBody, headers(
            ("Location" = String, description = "The tenant's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        TenantChangeProblems,
    ),
)]
pub async fn resume(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    set_status(&app, &caller, &id, &idempotent, TenantStatus::Active).await
}

async fn set_status(
    app: &App,
    caller: &Caller,
    id: &str,
    idempotent: &Idempotent,
    status: TenantStatus,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(id)?;
    let canonical = serde_json::json!({ "tenant_id": tenant.as_str(), "status": status });
    intake::once(app, caller, idempotent, &canonical, |_| async {
        let profile = app
            .store
            .set_tenant_status(&tenant, status, app.clock.timestamp())
            .await?
            .ok_or(ApiError::NotFound("No such tenant."))?;
        let action = match status {
            TenantStatus::Suspended => "tenant.suspended",
            TenantStatus::Active => "tenant.resumed",
        };
        tracing::info!(target_tenant = %tenant, action, "tenant status changed");
        intake::audit(app, &tenant, caller, action, tenant.as_str()).await?;
        Ok(intake::stored_json(
            StatusCode::OK,
            &TenantBody::new(profile, &app.config.default_sms_countries),
            Some(format!("/v1/tenants/{tenant}")),
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(body: &str) -> Result<LimitsField, serde_json::Error> {
        serde_json::from_str(body)
    }

    #[test]
    fn a_limit_is_any_json_integer_and_nothing_else() {
        let read = limits(r#"{"api_requests_per_second": 2721.0, "sends_per_day": 5}"#).unwrap();
        assert_eq!(read.api_requests_per_second, Some(2721));
        assert_eq!(read.sends_per_day, Some(5));
        assert_eq!(limits("{}").unwrap().sends_per_day, None);
        for bad in ["2721.5", "-1", "4294967296", "\"5\"", "1e300"] {
            let body = format!(r#"{{"sends_per_day": {bad}}}"#);
            assert!(limits(&body).is_err(), "{bad}");
        }
    }
}
