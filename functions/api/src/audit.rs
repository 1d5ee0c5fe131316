//! Audit logs: a tenant admin reads their own tenant's (`GET /v1/audit`), an operator
//! any tenant's (`GET /v1/tenants/{id}/audit`), one UTC day at a time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use herald::domain::AuditEntry;
use herald::{Day, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{self, Caller};
use crate::openapi::{QueryProblems, TenantAuditProblems};
use crate::tenants::path_tenant;
use crate::{ApiError, App, FieldErrors};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// The UTC day to read; today when absent.
    #[param(format = Date)]
    day: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditLog {
    tenant_id: String,
    #[schema(value_type = String, format = Date)]
    day: Day,
    /// In time order; at most 500.
    entries: Vec<AuditEntry>,
}

/// The caller's own tenant's log (admins).
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
        QueryProblems,
    ),
)]
pub async fn own_audit(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditLog>, ApiError> {
    audit_of(&app, caller.principal.tenant().clone(), query).await
}

/// Any tenant's log (operators).
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/audit",
    tag = "operator",
    operation_id = "getTenantAudit",
    summary = "Any tenant's audit log",
    description = "Who changed what in the tenant on one UTC day.",
    params(("id" = herald::TenantId, Path, description = "The tenant id."), AuditQuery),
    responses(
        (status = 200, description = "The day's entries.", body = AuditLog),
        TenantAuditProblems,
    ),
)]
pub async fn any_tenant(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditLog>, ApiError> {
    let tenant = path_tenant(&id)?;
    audit_of(&app, tenant, query).await
}

async fn audit_of(
    app: &App,
    tenant: TenantId,
    query: Option<String>,
) -> Result<Json<AuditLog>, ApiError> {
    let query: AuditQuery = extract::query(query.as_deref())?;
    let day = match query.day.as_deref().map(Day::parse) {
        None => app.clock.timestamp().day(),
        Some(Ok(day)) => day,
        Some(Err(_)) => {
            let errors = FieldErrors::one("day", "must be a date as YYYY-MM-DD");
            return Err(ApiError::InvalidFields(errors));
        }
    };
    let entries = app.store.audit_log(&tenant, day).await?;
    Ok(Json(AuditLog {
        tenant_id: tenant.to_string(),
        day,
        entries,
    }))
}
