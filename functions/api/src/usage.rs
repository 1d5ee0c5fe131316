//! `GET /v1/usage`: a tenant's sends today against its daily quota, and its request rate.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use herald::domain::Plan;
use herald::{Day, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Profile;
use crate::{ApiError, App};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Usage {
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
    let day = app.clock.timestamp().day();
    let used = app.store.sends_on(&profile.tenant, day).await?;
    let limit = profile.limits.sends_per_day;
    Ok(Json(Usage {
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
    }))
}
