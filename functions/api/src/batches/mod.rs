//! Bulk sends: `POST /v1/batches` (one template, up to `max_recipients` recipients with
//! their own variables), progress, cancel, and (in `listing`) a paged message listing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::{BatchStatus, BatchView, CancelOutcome, Channel, Content, Submission};
use herald::{BatchId, TenantId, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody, Profile};
use crate::intake;
use crate::openapi::{CancelProblems, ReadProblems, SendProblems};
use crate::{ApiError, App};

pub(crate) mod listing;
pub(crate) mod validate;

use validate::{CreateBatch, Valid, validate};

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchAccepted)]
struct Accepted {
    batch_id: String,
    status: BatchStatus,
    total: usize,
    status_url: String,
}

#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "createBatch",
    summary = "Send one template to many recipients, by SMS or email",
    description = "Checks every recipient before anything is written and lists every failure; \
        a 202 means the whole batch is stored and queued. Follow it at `status_url`.",
    params(IdempotencyKeyHeader),
    request_body = CreateBatch,
    responses(
        (status = 202, description = "Accepted and queued.", body = Accepted, headers(
            ("Location" = String, description = "The batch's status URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        SendProblems,
    ),
)]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Profile(profile): Profile,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<CreateBatch>,
) -> Result<Response, ApiError> {
    let channel = request.channel;
    let Valid {
        template,
        subject,
        recipients,
    } = validate(
        &request,
        channel,
        app.config.max_recipients,
        &profile.sms_policy.rules(&app.config.default_sms_countries),
    )?;
    let mut canonical = serde_json::json!({
        "channel": channel,
        "template": template.source(),
        "recipients": recipients
            .iter()
            .map(|r| serde_json::json!({ "to": r.to.as_str(), "variables": r.variables }))
            .collect::<Vec<_>>(),
    });
    // Only email has one, so an SMS request hashes as it always has.
    if let Some(subject) = &subject {
        canonical["subject"] = subject.source().into();
    }
    let by = caller.submitter();
    let (app, profile) = (&app, &profile);
    intake::once(
        app,
        &caller,
        &idempotent,
        &canonical,
        |batch_id| async move {
            let submission = Submission {
                channel,
                content: Content::Template(template),
                subject: subject.map(Content::Template),
                recipients,
            };
            let accepted = intake::intake(app)
                .accept(profile, &by, batch_id, submission)
                .await?;
            let status_url = format!("/v1/batches/{}", accepted.batch);
            let answer = Accepted {
                batch_id: accepted.batch.to_string(),
                status: BatchStatus::Accepted,
                total: accepted.total,
                status_url: status_url.clone(),
            };
            Ok(intake::stored_json(
                StatusCode::ACCEPTED,
                &answer,
                Some(status_url),
            ))
        },
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Batch)]
pub(crate) struct Progress {
    id: String,
    channel: Channel,
    status: BatchStatus,
    total: u32,
    counts: Counts,
    /// Final messages as a share of the total, rounded down to one decimal: 100.0 only
    /// when every message is final.
    percent_done: f64,
    /// The batch waits for its turn: another of your tenant's batches is sending, and
    /// this one starts when that one has queued its last chunk. Your batches send one
    /// at a time, in the order they were accepted, so a campaign of many batches never
    /// holds up other tenants' messages; batches small enough for the express lane do
    /// not wait.
    waiting_for_turn: bool,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    enqueued_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    cancelled_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<Timestamp>,
    messages_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchCounts)]
struct Counts {
    /// Not yet final: waiting on the queue or being sent.
    pending: u32,
    /// Taken by the provider, no receipt yet.
    sent: u32,
    /// The provider's or carrier's receipt says it arrived.
    delivered: u32,
    /// The receipt says it never will.
    undelivered: u32,
    failed: u32,
    unknown: u32,
    /// Not sent: the recipient is on the suppression list.
    suppressed: u32,
    cancelled: u32,
}

impl From<BatchView> for Progress {
    fn from(b: BatchView) -> Self {
        let percent_done = if b.total == 0 {
            100.0
        } else {
            // One decimal, rounded down, so 100.0 only ever means done.
            (f64::from(b.done()) * 1000.0 / f64::from(b.total)).floor() / 10.0
        };
        Self {
            id: b.id.to_string(),
            channel: b.channel,
            status: b.status,
            total: b.total,
            counts: {
                let c = b.counts();
                Counts {
                    pending: c.pending,
                    sent: c.sent,
                    delivered: c.delivered,
                    undelivered: c.undelivered,
                    failed: c.failed,
                    unknown: c.unknown,
                    suppressed: c.suppressed,
                    cancelled: c.cancelled,
                }
            },
            percent_done,
            waiting_for_turn: b.turn == Some(herald::domain::BatchTurn::Waiting),
            created_at: b.created_at,
            enqueued_at: b.enqueued_at,
            cancelled_at: b.cancelled_at,
            finished_at: b.finished_at,
            messages_url: format!("/v1/batches/{}/messages", b.id),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "getBatch",
    summary = "A batch's progress",
    params(("id" = herald::BatchId, Path, description = "The batch id.")),
    responses(
        (status = 200, description = "The batch.", body = Progress),
        ReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    let batch = find(&app, caller.principal.tenant(), &id).await?;
    Ok(Json(Progress::from(batch)))
}

/// The tenant's batch, or the same 404 whether it is missing or another tenant's.
async fn find(app: &App, tenant: &TenantId, id: &str) -> Result<BatchView, ApiError> {
    let id: BatchId = id
        .parse()
        .map_err(|e: herald::ids::InvalidId| ApiError::InvalidId {
            what: "batch",
            reason: e.to_string(),
        })?;
    app.store
        .get_batch(tenant, id)
        .await?
        .ok_or(ApiError::NotFound("No such batch."))
}

#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    tag = "batches",
    operation_id = "cancelBatch",
    summary = "Cancel a batch",
    description = "Messages not yet claimed by a sender are cancelled; those being sent \
        finish. Cancelling a cancelled batch answers its progress again.",
    params(("id" = herald::BatchId, Path, description = "The batch id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The batch, cancelled.", body = Progress, headers(
            ("Location" = String, description = "The batch's status URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        CancelProblems,
    ),
)]
pub async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    let tenant = caller.principal.tenant();
    let batch = find(&app, tenant, &id).await?;
    let canonical = serde_json::json!({ "batch_id": batch.id.to_string() });
    intake::once(&app, &caller, &idempotent, &canonical, |_| async {
        let outcome = app
            .store
            .cancel_batch(tenant, batch.id, app.clock.timestamp())
            .await?;
        let view = match outcome {
            CancelOutcome::Cancelled(view) => {
                tracing::info!(batch_id = %batch.id, pending = view.pending(), "batch cancelled");
                let target = batch.id.to_string();
                intake::audit(&app, tenant, &caller, "batch.cancelled", &target).await?;
                view
            }
            CancelOutcome::AlreadyCancelled(view) => view,
            CancelOutcome::AlreadyFinished(_) => return Err(ApiError::BatchFinished),
            CancelOutcome::NotFound => return Err(ApiError::NotFound("No such batch.")),
        };
        let location = format!("/v1/batches/{}", view.id);
        Ok(intake::stored_json(
            StatusCode::OK,
            &Progress::from(view),
            Some(location),
        ))
    })
    .await
}
