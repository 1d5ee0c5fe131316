//! `GET /v1/usage`: a tenant's sends today against its daily quota, and its request rate.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use herald::store::PLANS;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::Type;
use utoipa::openapi::schema::{Object, ObjectBuilder};

use crate::extract::Profile;
use crate::{ApiError, App};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Usage {
    tenant_id: String,
    #[schema(schema_with = plan_schema)]
    plan: String,
    /// The UTC day counted.
    #[schema(format = Date)]
    day: String,
    sends: SendUsage,
    rate_limit: RateLimit,
}

#[derive(Debug, Serialize, ToSchema)]
struct SendUsage {
    used: u32,
    limit: u32,
    remaining: u32,
    /// The next UTC midnight.
    #[schema(format = DateTime)]
    resets_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct RateLimit {
    requests_per_second: u32,
}

/// The plan names, from the plan table.
pub(crate) fn plan_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(PLANS.iter().map(|(name, _)| *name)))
        .build()
}

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
    Profile(profile): Profile,
) -> Result<Json<Usage>, ApiError> {
    let now = app.clock.rfc3339();
    let day = now[..10].to_owned();
    let used = app.store.sends_on(&profile.tenant, &day).await?;
    let midnight = (app.clock.epoch_seconds() / 86_400 + 1) * 86_400;
    let limit = profile.limits.sends_per_day;
    Ok(Json(Usage {
        tenant_id: profile.tenant.to_string(),
        plan: profile.plan,
        day,
        sends: SendUsage {
            used,
            limit,
            remaining: limit.saturating_sub(used),
            resets_at: herald::clock::rfc3339(midnight * 1000),
        },
        rate_limit: RateLimit {
            requests_per_second: profile.limits.api_requests_per_second,
        },
    }))
}
