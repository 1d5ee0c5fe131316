//! The operator routes that create, show, suspend and resume tenants. Operator routes
//! name their tenant in the path: they are the platform-level exception to "the tenant
//! comes from the token".

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::{
    Limits, Plan, SmsProviderKind, SmsSender, TenantProfile, TenantStatus, one_of,
};
use herald::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{ReadProblems, TenantChangeProblems, TenantCreateProblems};
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
    tenant_id: String,
    #[schema(value_type = Plan)]
    plan: String,
    /// Overrides of the plan's limits.
    #[serde(default)]
    limits: Option<LimitsField>,
    /// `twilio` (the default) or `sns`.
    #[serde(default)]
    sms_provider: Option<String>,
    /// The tenant's own SMS sender: a number in E.164 form or a Twilio messaging
    /// service id (`MG...`). Without one, its texts go out from the platform's number,
    /// shared with other tenants (a STOP to it then stops texts of every tenant on it).
    #[serde(default)]
    sms_sender: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LimitOverrides)]
pub(crate) struct LimitsField {
    #[schema(minimum = 1)]
    api_requests_per_second: Option<u32>,
    #[schema(minimum = 1)]
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
    /// Its own SMS sender; `null`: the platform's shared one.
    #[schema(value_type = Option<String>)]
    sms_sender: Option<SmsSender>,
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

impl From<TenantProfile> for TenantBody {
    fn from(p: TenantProfile) -> Self {
        Self {
            tenant_id: p.tenant.to_string(),
            plan: p.plan,
            status: p.status,
            limits: LimitsBody {
                api_requests_per_second: p.limits.api_requests_per_second,
                sends_per_day: p.limits.sends_per_day,
            },
            sms_provider: p.sms_provider,
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
    description = "A new tenant on a plan, with optional overrides of the plan's limits.",
    params(IdempotencyKeyHeader),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created.", body = TenantBody, headers(
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
    for (field, value) in [
        (
            "api_requests_per_second",
            overrides.and_then(|l| l.api_requests_per_second),
        ),
        ("sends_per_day", overrides.and_then(|l| l.sends_per_day)),
    ] {
        if value == Some(0) {
            errors.add(format!("/limits/{field}"), "must be at least 1");
        }
    }
    let sms_provider = match request.sms_provider.as_deref() {
        None => Some(SmsProviderKind::default()),
        Some(raw) => raw.parse().ok(),
    };
    if sms_provider.is_none() {
        errors.add("/sms_provider", one_of::<SmsProviderKind>());
    }
    let sms_sender = request
        .sms_sender
        .as_deref()
        .map(SmsSender::parse)
        .transpose()
        .inspect_err(|e| errors.add("/sms_sender", e.to_string()))
        .ok()
        .flatten();
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
    let canonical = serde_json::json!({
        "tenant_id": tenant.as_str(),
        "plan": plan,
        "limits": [limits.api_requests_per_second, limits.sends_per_day],
        "sms_provider": sms_provider,
        "sms_sender": sms_sender,
    });
    let (app, caller) = (&app, &caller);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let now = app.clock.timestamp();
        let profile = TenantProfile {
            tenant: tenant.clone(),
            plan,
            status: TenantStatus::Active,
            limits,
            sms_provider,
            sms_sender,
            created_at: now,
            updated_at: now,
        };
        if !app.store.create_tenant(&profile).await? {
            return Err(ApiError::TenantExists);
        }
        intake::audit(app, &tenant, caller, "tenant.created", tenant.as_str()).await?;
        let location = format!("/v1/tenants/{tenant}");
        Ok(intake::stored_json(
            StatusCode::CREATED,
            &TenantBody::from(profile),
            Some(location),
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "operator",
    operation_id = "getTenant",
    summary = "A tenant's profile",
    params(("id" = String, Path, description = "The tenant id.")),
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
    Ok(Json(TenantBody::from(profile)))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/suspend",
    tag = "operator",
    operation_id = "suspendTenant",
    summary = "Suspend a tenant",
    description = "Its requests are refused with 403 and its queued messages are held, not \
        sent, until it is resumed.",
    params(("id" = String, Path, description = "The tenant id."), IdempotencyKeyHeader),
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
    params(("id" = String, Path, description = "The tenant id."), IdempotencyKeyHeader),
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
            &TenantBody::from(profile),
            Some(format!("/v1/tenants/{tenant}")),
        ))
    })
    .await
}
