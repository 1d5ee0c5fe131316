//! `POST /v1/operator/redrive`: an operator runs the redriver over the send DLQ now,
//! inside the request, instead of waiting for its schedule. It runs under the redrive
//! lease (`herald::lease`): while the scheduled run (or another operator's) is
//! redriving, the answer is 409 `redrive-running` and nothing moves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use herald::lease::Busy;
use herald::redrive::RedriveReport;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent};
use crate::intake;
use crate::openapi::RedriveProblems;
use crate::{ApiError, App};

/// Longest an operator's redrive runs inside one API request (API Gateway gives up at
/// 30 s); what it did not reach waits for the next run or the schedule.
const REDRIVE_BUDGET: Duration = Duration::from_secs(20);

/// One redrive run of the send DLQ, now. Its report is the answer; a run with failures
/// answers 502 with the counts in the problem.
#[utoipa::path(
    post,
    path = "/v1/operator/redrive",
    tag = "operator",
    operation_id = "redriveDeadLetters",
    summary = "Redrive the send dead-letter queue now",
    description = "One run of the redriver, bounded to 20 seconds: moves dead letters back to \
        the send queue, and parks those already redriven too often. Only one redrive runs \
        at a time: while another is running this answers 409 and moves nothing.",
    params(IdempotencyKeyHeader),
    responses(
        (status = 200, description = "What the run did.", body = RedriveReport),
        RedriveProblems,
    ),
)]
pub async fn redrive(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    // Each run is new work: the key only guards against a retried request running twice.
    let canonical = serde_json::json!({ "key": idempotent.key.as_str() });
    let (app, caller) = (&app, &caller);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let holder = format!(
            "operator {} (request {})",
            caller.principal.subject(),
            caller.correlation.as_str()
        );
        let deadline = tokio::time::Instant::now() + REDRIVE_BUDGET;
        let run = app
            .redrive_lease
            .run(&holder, REDRIVE_BUDGET, app.redriver.run(deadline))
            .await?;
        let report = run.map_err(|Busy { lease, retry_after }| ApiError::RedriveRunning {
            holder: lease.holder,
            until: lease.until,
            retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
        })?;
        tracing::info!(
            moved = report.moved,
            parked = report.parked,
            failed = report.failed,
            "operator redrive"
        );
        let tenant = caller.principal.tenant();
        intake::audit(app, tenant, caller, "dlq.redriven", "SendDLQ").await?;
        if !report.is_clean() {
            return Err(ApiError::RedriveIncomplete {
                moved: report.moved,
                parked: report.parked,
                failed: report.failed,
            });
        }
        Ok(intake::stored_json(StatusCode::OK, &report, None))
    })
    .await
}
