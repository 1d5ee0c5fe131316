//! A tenant's own usage and audit log, and the operator routes that create, suspend and
//! resume tenants and read any tenant's audit log. Operator routes name their tenant in
//! the path: they are the platform-level exception to "the tenant comes from the token".

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::auth::Principal;
use herald::domain::{
    AuditEntry, Limits, Plan, SmsProviderKind, TenantProfile, TenantStatus, one_of,
};
use herald::problem::Problem;
use herald::redrive::RedriveReport;
use herald::{Day, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::intake::{self, FieldErrors, IdempotencyKeyHeader, Route};
use crate::openapi::{
    BodyTooLarge, IdempotencyKeyReused, InvalidRequest, NotFound, RequestInProgress,
    UnsupportedMediaType,
};
use crate::{ApiError, App, Correlation};

#[derive(Debug, Serialize, ToSchema)]
struct Usage {
    tenant_id: String,
    plan: Plan,
    /// The UTC day counted.
    #[schema(value_type = String, format = Date)]
    day: Day,
    sends: SendUsage,
    rate_limit: RateLimit,
}

#[derive(Debug, Serialize, ToSchema)]
struct SendUsage {
    used: u32,
    limit: u32,
    remaining: u32,
    /// The next UTC midnight.
    #[schema(value_type = String, format = DateTime)]
    resets_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
struct RateLimit {
    requests_per_second: u32,
}

/// `GET /v1/usage`: today's sends against the quota, and the request rate limit.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "tenant",
    operation_id = "getUsage",
    summary = "Today's usage and limits",
    description = "Messages accepted today (UTC) against the daily quota, and the request rate limit.",
    responses((status = 200, description = "Your tenant's usage.", body = Usage)),
)]
pub async fn usage(
    State(app): State<Arc<App>>,
    Extension(profile): Extension<TenantProfile>,
) -> Result<Response, Response> {
    let day = app.clock.timestamp().day();
    let used = app
        .store
        .sends_on(&profile.tenant, day)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let limit = profile.limits.sends_per_day;
    Ok(axum::Json(Usage {
        tenant_id: profile.tenant.to_string(),
        plan: profile.plan,
        day,
        sends: SendUsage {
            used,
            limit,
            remaining: limit.saturating_sub(used),
            resets_at: day.next_midnight(),
        },
        rate_limit: RateLimit {
            requests_per_second: profile.limits.api_requests_per_second,
        },
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// The UTC day to read; today when absent.
    #[param(format = Date)]
    day: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AuditLog {
    tenant_id: String,
    #[schema(value_type = String, format = Date)]
    day: Day,
    /// In time order; at most 500.
    entries: Vec<AuditEntry>,
}

/// `GET /v1/audit?day=YYYY-MM-DD`: the caller's own tenant's log (admins).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "tenant",
    operation_id = "getOwnAudit",
    summary = "Your tenant's audit log",
    description = "Who changed what in your tenant on one UTC day.",
    params(AuditQuery),
    responses(
        (status = 200, description = "The day's entries.", body = AuditLog),
        (status = 400, response = InvalidRequest),
    ),
)]
pub async fn own_audit(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    audit_of(&app, principal.tenant().clone(), query).await
}

/// `GET /v1/tenants/{id}/audit?day=YYYY-MM-DD`: any tenant's log (operators).
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/audit",
    tag = "operator",
    operation_id = "getTenantAudit",
    summary = "Any tenant's audit log",
    description = "Who changed what in the tenant on one UTC day.",
    params(("id" = String, Path, description = "The tenant id."), AuditQuery),
    responses(
        (status = 200, description = "The day's entries.", body = AuditLog),
        (status = 400, response = InvalidRequest),
    ),
)]
pub async fn audit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    let tenant = path_tenant(&id)?;
    audit_of(&app, tenant, query).await
}

async fn audit_of(
    app: &App,
    tenant: TenantId,
    query: Option<String>,
) -> Result<Response, Response> {
    let query: AuditQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| single_error("query", e.to_string()))?;
    let day = match query.day.as_deref().map(Day::parse) {
        None => app.clock.timestamp().day(),
        Some(Ok(day)) => day,
        Some(Err(_)) => return Err(single_error("day", "must be a date as YYYY-MM-DD")),
    };
    let entries = app
        .store
        .audit_log(&tenant, day)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    Ok(axum::Json(AuditLog {
        tenant_id: tenant.to_string(),
        day,
        entries,
    })
    .into_response())
}

fn single_error(field: &str, message: impl Into<String>) -> Response {
    let mut errors = FieldErrors::default();
    errors.add(field, message);
    errors.check().expect_err("an error was added")
}

fn path_tenant(id: &str) -> Result<TenantId, Response> {
    TenantId::parse(id).map_err(|e| single_error("id", e.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    tenant_id: String,
    #[schema(value_type = Plan)]
    plan: String,
    /// Overrides of the plan's limits.
    #[serde(default)]
    limits: Option<LimitsField>,
    /// `twilio` (the default) or `sns`.
    #[serde(default)]
    sms_provider: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LimitOverrides)]
struct LimitsField {
    #[schema(minimum = 1)]
    api_requests_per_second: Option<u32>,
    #[schema(minimum = 1)]
    sends_per_day: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
struct TenantBody {
    tenant_id: String,
    plan: Plan,
    status: TenantStatus,
    limits: LimitsBody,
    sms_provider: SmsProviderKind,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Limits)]
struct LimitsBody {
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
        (status = 400, response = InvalidRequest),
        (status = 409, description = "`tenant-exists`: the tenant id is taken. \
            `request-in-progress`: a request with this `Idempotency-Key` has not finished; \
            retry after `Retry-After`.", body = Problem, content_type = "application/problem+json", headers(
            ("Retry-After" = u64, description = "With `request-in-progress`: seconds to wait before retrying."),
        )),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = IdempotencyKeyReused),
    ),
)]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    route: Route,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let key = intake::idempotency_key(&headers)?;
    let request: CreateTenant = intake::parse_json(&headers, &body, app.config.max_body_bytes)?;
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
    });
    let (app, principal, correlation) = (&app, &principal, &correlation);
    intake::once(app, principal, &key, &route, &canonical, |_| async move {
        let now = app.clock.timestamp();
        let profile = TenantProfile {
            tenant: tenant.clone(),
            plan,
            status: TenantStatus::Active,
            limits,
            sms_provider,
            created_at: now,
            updated_at: now,
        };
        let created = app
            .store
            .create_tenant(&profile)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        if !created {
            return Err(
                Problem::new(StatusCode::CONFLICT, "tenant-exists", "Tenant exists")
                    .detail("A tenant with this id exists already.")
                    .field("/tenant_id", "is taken")
                    .into_response(),
            );
        }
        intake::audit(
            app,
            &tenant,
            principal,
            correlation,
            "tenant.created",
            tenant.as_str(),
        )
        .await?;
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
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let tenant = path_tenant(&id)?;
    let profile = app
        .store
        .get_tenant(&tenant)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| {
            Problem::not_found()
                .detail("No such tenant.")
                .into_response()
        })?;
    Ok(axum::Json(TenantBody::from(profile)).into_response())
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
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
        (status = 409, response = RequestInProgress),
        (status = 422, response = IdempotencyKeyReused),
    ),
)]
pub async fn suspend(
    state: State<Arc<App>>,
    principal: Extension<Principal>,
    correlation: Extension<Correlation>,
    route: Route,
    id: Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    set_status(
        state,
        principal,
        correlation,
        route,
        id,
        headers,
        TenantStatus::Suspended,
    )
    .await
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
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
        (status = 409, response = RequestInProgress),
        (status = 422, response = IdempotencyKeyReused),
    ),
)]
pub async fn resume(
    state: State<Arc<App>>,
    principal: Extension<Principal>,
    correlation: Extension<Correlation>,
    route: Route,
    id: Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    set_status(
        state,
        principal,
        correlation,
        route,
        id,
        headers,
        TenantStatus::Active,
    )
    .await
}

async fn set_status(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    route: Route,
    Path(id): Path<String>,
    headers: HeaderMap,
    status: TenantStatus,
) -> Result<Response, Response> {
    let key = intake::idempotency_key(&headers)?;
    let tenant = path_tenant(&id)?;
    let canonical = serde_json::json!({ "tenant_id": tenant.as_str(), "status": status });
    let (app, principal, correlation) = (&app, &principal, &correlation);
    intake::once(app, principal, &key, &route, &canonical, |_| async move {
        let profile = app
            .store
            .set_tenant_status(&tenant, status, app.clock.timestamp())
            .await
            .map_err(|e| ApiError::from(e).into_response())?
            .ok_or_else(|| {
                Problem::not_found()
                    .detail("No such tenant.")
                    .into_response()
            })?;
        let action = match status {
            TenantStatus::Suspended => "tenant.suspended",
            TenantStatus::Active => "tenant.resumed",
        };
        tracing::info!(target_tenant = %tenant, action, "tenant status changed");
        intake::audit(
            app,
            &tenant,
            principal,
            correlation,
            action,
            tenant.as_str(),
        )
        .await?;
        Ok(intake::stored_json(
            StatusCode::OK,
            &TenantBody::from(profile),
            Some(format!("/v1/tenants/{tenant}")),
        ))
    })
    .await
}

/// Longest an operator's redrive runs inside one API request (API Gateway gives up at
/// 30 s); what it did not reach waits for the next run or the schedule.
const REDRIVE_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// `POST /v1/operator/redrive`: one redrive run of the send DLQ, now. Its report is
/// the answer; a run with failures answers 502 with the report in the problem.
#[utoipa::path(
    post,
    path = "/v1/operator/redrive",
    tag = "operator",
    operation_id = "redriveDeadLetters",
    summary = "Redrive the send dead-letter queue now",
    description = "One run of the redriver, bounded to 20 seconds: moves dead letters back to \
        the send queue, and parks those already redriven too often.",
    params(IdempotencyKeyHeader),
    responses(
        (status = 200, description = "What the run did.", body = RedriveReport),
        (status = 400, response = InvalidRequest),
        (status = 409, response = RequestInProgress),
        (status = 422, response = IdempotencyKeyReused),
        (status = 502, description = "`redrive-incomplete`: some messages could not be moved \
            (or the DLQ could not be read); `detail` has the counts, and the failed messages are \
            still in the DLQ.", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn redrive(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    route: Route,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let key = intake::idempotency_key(&headers)?;
    // Each run is new work: the key only guards against a retried request running twice.
    let canonical = serde_json::json!({ "key": key.as_str() });
    let (app, principal, correlation) = (&app, &principal, &correlation);
    intake::once(app, principal, &key, &route, &canonical, |_| async move {
        let report = app
            .redriver
            .run(tokio::time::Instant::now() + REDRIVE_BUDGET)
            .await;
        tracing::info!(
            moved = report.moved,
            parked = report.parked,
            failed = report.failed,
            "operator redrive"
        );
        intake::audit(
            app,
            principal.tenant(),
            principal,
            correlation,
            "dlq.redriven",
            "SendDLQ",
        )
        .await?;
        if !report.is_clean() {
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "redrive-incomplete",
                "Redrive incomplete",
            )
            .detail(format!(
                "{} moved, {} parked, {} failed; the failed messages are still in the DLQ.",
                report.moved, report.parked, report.failed
            ))
            .into_response());
        }
        Ok(intake::stored_json(StatusCode::OK, &report, None))
    })
    .await
}
