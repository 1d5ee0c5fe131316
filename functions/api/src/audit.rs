//! Audit logs: a tenant admin reads their own tenant's (`GET /v1/audit`), an operator
//! any tenant's (`GET /v1/tenants/{id}/audit`), one UTC day at a time, newest first, a
//! page at a time (`paging`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use herald::domain::AuditEntry;
use herald::{Day, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{self, Caller};
use crate::openapi::{QueryProblems, TenantAuditProblems};
use crate::paging::{self, Listing};
use crate::tenants::path_tenant;
use crate::{ApiError, App, FieldErrors};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// The UTC day to read; today when absent.
    #[param(format = Date)]
    day: Option<String>,
    /// Where to go on: the `next_cursor` of the previous page (of the same day).
    cursor: Option<String>,
    /// Entries per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditLog {
    tenant_id: String,
    #[schema(value_type = String, format = Date)]
    day: Day,
    /// Newest first; at most `limit`.
    entries: Vec<AuditEntry>,
    /// Absent on the last page of the day.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

/// The caller's own tenant's log (admins).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "tenant",
    operation_id = "getOwnAudit",
    summary = "Your tenant's audit log",
    description = "Who changed what in your tenant on one UTC day, newest first, a page at a time.",
    params(AuditQuery),
    responses(
        (status = 200, description = "The day's entries.", body = AuditLog),
        QueryProblems,
    ),
)]
pub async fn own_audit(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditLog>, ApiError> {
    let tenant = caller.principal.tenant().clone();
    let path = route.as_str().to_owned();
    audit_of(&app, &route, tenant, path, query).await
}

/// Any tenant's log (operators).
#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/audit",
    tag = "operator",
    operation_id = "getTenantAudit",
    summary = "Any tenant's audit log",
    description = "Who changed what in the tenant on one UTC day, newest first, a page at a time.",
    params(("id" = herald::TenantId, Path, description = "The tenant id."), AuditQuery),
    responses(
        (status = 200, description = "The day's entries.", body = AuditLog),
        TenantAuditProblems,
    ),
)]
pub async fn any_tenant(
    State(app): State<Arc<App>>,
    route: MatchedPath,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditLog>, ApiError> {
    let tenant = path_tenant(&id)?;
    let path = format!("/v1/tenants/{tenant}/audit");
    audit_of(&app, &route, tenant, path, query).await
}

/// One page of `tenant`'s log; `path` is the route's path as the caller asked for it.
async fn audit_of(
    app: &App,
    route: &MatchedPath,
    tenant: TenantId,
    path: String,
    query: Option<String>,
) -> Result<Json<AuditLog>, ApiError> {
    let query: AuditQuery = extract::query(query.as_deref())?;
    let mut errors = FieldErrors::default();
    let day = match query.day.as_deref().map(Day::parse) {
        None => app.clock.timestamp().day(),
        Some(Ok(day)) => day,
        Some(Err(_)) => {
            errors.add("day", "must be a date as YYYY-MM-DD");
            app.clock.timestamp().day()
        }
    };
    let limit = paging::page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    // The day is part of the list: a cursor of one day does not page through another.
    let params = vec![("day", day.to_string())];
    let listing = Listing::new(route, tenant.clone(), path, params, limit, query.cursor);
    let after = listing.start(&app.cursors).await?;
    let page = app
        .store
        .audit_page(&tenant, day, after.as_deref(), limit)
        .await?;
    let (next_cursor, next_url) = listing.next(&app.cursors, page.after.as_deref()).await?;
    Ok(Json(AuditLog {
        tenant_id: tenant.to_string(),
        day,
        entries: page.items,
        next_cursor,
        next_url,
    }))
}
