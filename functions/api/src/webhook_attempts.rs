//! What happened to a tenant endpoint's deliveries, and delivering the failed ones
//! again (issue 15): `GET .../attempts` pages the endpoint's attempts log, newest
//! first (event, time, answer status, duration, the answer's start); `POST
//! .../recover {since}` queues again every event whose last attempt since then failed
//! (the schedule spent), as a first attempt with the same `webhook-id`. Recover is
//! bounded: `since` within the last 7 days, at most 1,000 events per call (the answer
//! says when more remain: call again), and idempotent by its key. `POST .../test`
//! queues an example event of a type (`"test": true`) to an enabled endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::Timestamp;
use herald::domain::{AttemptRecord, AttemptResult, EndpointStatus, EventType};
use herald::outbound::events::test_event;
use herald::outbound::job::DeliveryJob;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{WebhookAttemptsProblems, WebhookRecoverProblems, WebhookTestProblems};
use crate::paging;
use crate::{ApiError, App, FieldErrors};

const NO_SUCH_ENDPOINT: &str = "No such webhook endpoint.";
/// How far back recover reaches.
const RECOVER_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Events queued again by one recover, at most.
const RECOVER_MAX_EVENTS: usize = 1_000;
/// Attempts one recover reads, at most (eight per event when every retry failed).
const RECOVER_MAX_SCAN: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub(crate) struct AttemptBody {
    /// The event's id: its `webhook-id`.
    event_id: String,
    event_type: EventType,
    /// 1 for the first attempt of the event.
    attempt: u32,
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
    /// `delivered` (a 2xx), `retrying` (failed; tried again on the schedule),
    /// `failed` (failed, the schedule spent: recover sends it again), `gone` (410: the
    /// endpoint was disabled).
    result: AttemptResult,
    /// The endpoint's answer; absent when there was none (no connection, timeout).
    status_code: Option<u16>,
    duration_ms: u64,
    /// The first 256 bytes of the answer, or why there was none.
    response_excerpt: String,
}

impl From<AttemptRecord> for AttemptBody {
    fn from(a: AttemptRecord) -> Self {
        Self {
            event_id: a.event_id,
            event_type: a.event_type,
            attempt: a.attempt,
            at: a.at,
            result: a.result,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            response_excerpt: a.excerpt,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookAttemptList)]
pub(crate) struct AttemptList {
    /// Newest first.
    attempts: Vec<AttemptBody>,
    /// Absent on the last page.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{id}/attempts",
    tag = "webhooks",
    operation_id = "listWebhookAttempts",
    summary = "A webhook endpoint's delivery attempts",
    description = "Every attempt of the last 30 days, newest first, a page at a time.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), paging::PageQuery),
    responses(
        (status = 200, description = "One page of attempts.", body = AttemptList),
        WebhookAttemptsProblems,
    ),
)]
pub async fn attempts(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<AttemptList>, ApiError> {
    let tenant = caller.principal.tenant();
    let query: paging::PageQuery = crate::extract::query(query.as_deref())?;
    let mut errors = FieldErrors::default();
    let limit = paging::page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    if app.store.webhook_endpoint(tenant, &id).await?.is_none() {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    }
    let listing = paging::Listing::new(
        &route,
        tenant.clone(),
        format!("/v1/webhooks/endpoints/{id}/attempts"),
        Vec::new(),
        limit,
        query.cursor,
    );
    let after = listing.start(&app.cursors).await?;
    let (records, after) = app
        .store
        .attempt_page(tenant, &id, after.as_deref(), limit)
        .await?;
    let (next_cursor, next_url) = listing.next(&app.cursors, after.as_deref()).await?;
    Ok(Json(AttemptList {
        attempts: records.into_iter().map(AttemptBody::from).collect(),
        next_cursor,
        next_url,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverRequest {
    /// Events whose last attempt since this time failed are delivered again: within
    /// the last 7 days, not in the future (RFC 3339).
    #[schema(format = DateTime, example = "2026-05-01T10:00:00Z")]
    since: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookRecovery)]
pub(crate) struct Recovered {
    /// Events queued for delivery again.
    queued: usize,
    /// More failed events remain since then (at most 1,000 per call): call again.
    more: bool,
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/recover",
    tag = "webhooks",
    operation_id = "recoverWebhookEndpoint",
    summary = "Deliver a webhook endpoint's failed events again",
    description = "Every event whose last attempt since `since` failed (its retries \
        spent) is delivered again from the first attempt, with the same `webhook-id`: \
        at most 1,000 per call, `since` within the last 7 days. Audited.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), IdempotencyKeyHeader),
    request_body = RecoverRequest,
    responses(
        (status = 202, description = "Queued.", body = Recovered),
        WebhookRecoverProblems,
    ),
)]
pub async fn recover(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<RecoverRequest>,
) -> Result<Response, ApiError> {
    let now = app.clock.timestamp();
    let since = Timestamp::parse(&request.since).ok();
    let mut errors = FieldErrors::default();
    match since {
        None => errors.add("/since", "must be an RFC 3339 time"),
        Some(since) if since > now => errors.add("/since", "must not be in the future"),
        Some(since) if since < now.minus(RECOVER_WINDOW) => {
            errors.add("/since", "must be within the last 7 days")
        }
        Some(_) => {}
    }
    errors.check()?;
    let since = since.expect("checked");
    let tenant = caller.principal.tenant();
    if app.store.webhook_endpoint(tenant, &id).await?.is_none() {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    }
    let canonical = serde_json::json!({ "endpoint_id": id, "since": since });
    let (app, caller, id) = (&app, &caller, &id);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let mut failed = app
            .store
            .failed_since(tenant, id, since, RECOVER_MAX_SCAN, RECOVER_MAX_EVENTS + 1)
            .await?;
        let more = failed.len() > RECOVER_MAX_EVENTS;
        failed.truncate(RECOVER_MAX_EVENTS);
        let jobs: Vec<DeliveryJob> = failed
            .into_iter()
            .map(|a| DeliveryJob {
                tenant: tenant.clone(),
                endpoint_id: id.clone(),
                event_id: a.event_id,
                event_type: a.event_type,
                body: a.body,
                attempt: 1,
                not_before: None,
            })
            .collect();
        app.deliveries.send(&jobs, app.clock.timestamp()).await?;
        intake::audit(app, tenant, caller, "webhook_endpoint.recovered", id).await?;
        Ok(intake::stored_json(
            StatusCode::ACCEPTED,
            &Recovered {
                queued: jobs.len(),
                more,
            },
            None,
        ))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestRequest {
    /// The type of the example event; the endpoint's first subscribed type when absent.
    /// Sent whether or not the endpoint is subscribed to it.
    #[schema(value_type = Option<EventType>)]
    event_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookTestEvent)]
pub(crate) struct TestQueued {
    /// The test event's `webhook-id` (`test_…`): find its attempts by it.
    event_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/test",
    tag = "webhooks",
    operation_id = "testWebhookEndpoint",
    summary = "Send a test event to a webhook endpoint",
    description = "An example event of the type asked (`\"test\": true` in its body), \
        signed and delivered like any other, retries and attempts log included.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), IdempotencyKeyHeader),
    request_body = TestRequest,
    responses(
        (status = 202, description = "Queued.", body = TestQueued),
        WebhookTestProblems,
    ),
)]
pub async fn send_test(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<TestRequest>,
) -> Result<Response, ApiError> {
    let asked = match request.event_type.as_deref().map(str::parse::<EventType>) {
        Some(Err(_)) => {
            let mut errors = FieldErrors::default();
            errors.add("/event_type", herald::domain::one_of::<EventType>());
            return Err(ApiError::InvalidFields(errors));
        }
        Some(Ok(asked)) => Some(asked),
        None => None,
    };
    let tenant = caller.principal.tenant();
    let Some(endpoint) = app.store.webhook_endpoint(tenant, &id).await? else {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    };
    if endpoint.status != EndpointStatus::Enabled {
        return Err(ApiError::EndpointDisabled);
    }
    let event_type = asked.unwrap_or(endpoint.event_types[0]);
    let canonical = serde_json::json!({ "endpoint_id": id, "test": event_type });
    let (app, id) = (&app, &id);
    intake::once(app, &caller, &idempotent, &canonical, |unique| async move {
        let now = app.clock.timestamp();
        let event = test_event(event_type, id, &unique.to_string(), now);
        let job = DeliveryJob::first(tenant, id, &event);
        app.deliveries.send(&[job], now).await?;
        Ok(intake::stored_json(
            StatusCode::ACCEPTED,
            &TestQueued { event_id: event.id },
            None,
        ))
    })
    .await
}
