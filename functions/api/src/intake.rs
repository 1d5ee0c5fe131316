//! What every state-changing request shares: running it at most once per
//! Idempotency-Key, its audit entry, and `herald::intake` as this function runs it.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::BatchId;
use herald::domain::AuditEntry;
use herald::idempotency::{Begin, StoredResponse, request_hash};
use herald::intake::{Intake, IntakeError};
use herald::metrics::Record;

use crate::extract::{Caller, Idempotent};
use crate::{ApiError, App};

pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Runs `work` at most once per Idempotency-Key and request: a replay answers with the
/// stored response, a different request under the same key gets 422, a request still
/// running gets 409. `work` gets the batch id pinned to the key (the same one when a
/// retry takes over a request that died), and answers with the response to store or
/// with an error, which releases the key so a retry can run again.
pub async fn once<F, Fut>(
    app: &App,
    caller: &Caller,
    idempotent: &Idempotent,
    canonical: &serde_json::Value,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(BatchId) -> Fut,
    Fut: Future<Output = Result<StoredResponse, ApiError>>,
{
    once_stored(app, caller, idempotent, canonical, work)
        .await
        .map(|(stored, replayed)| answer_with(stored, replayed))
}

/// `once`, answering with the stored response and whether it is a replay, for a route
/// that adds to the answer what must not be stored.
pub async fn once_stored<F, Fut>(
    app: &App,
    caller: &Caller,
    idempotent: &Idempotent,
    canonical: &serde_json::Value,
    work: F,
) -> Result<(StoredResponse, bool), ApiError>
where
    F: FnOnce(BatchId) -> Fut,
    Fut: Future<Output = Result<StoredResponse, ApiError>>,
{
    let tenant = caller.principal.tenant();
    let Idempotent { key, scope } = idempotent;
    let hash = request_hash(scope, canonical);
    let now_epoch = app.clock.epoch_seconds();
    let lock_until = now_epoch + app.config.idempotency_lock.as_secs();
    let begin = app
        .idempotency
        .begin(tenant, key, &hash, now_epoch, lock_until)
        .await?;
    let batch = match begin {
        Begin::Proceed { batch } => batch,
        Begin::Replay(stored) => {
            app.metrics.emit(
                Record::new("api")
                    .count("IdempotentReplays", 1)
                    .property("route", scope.as_str())
                    .property("tenant_id", tenant.as_str()),
            );
            return Ok((stored, true));
        }
        Begin::InFlight => return Err(ApiError::RequestInProgress),
        Begin::Mismatch => return Err(ApiError::IdempotencyKeyReused),
    };
    let outcome = match work(batch).await {
        Ok(stored) => app
            .idempotency
            .complete(tenant, key, &hash, &stored)
            .await
            .map(|()| stored)
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    if outcome.is_err() {
        // Let the client's retry (same key) take over now.
        if let Err(release) = app.idempotency.release(tenant, key, &hash).await {
            tracing::warn!(error = %release, "could not release the idempotency key");
        }
    }
    outcome.map(|stored| (stored, false))
}

/// Intake as this function runs it.
pub fn intake(app: &App) -> Intake<'_> {
    Intake {
        store: &app.store,
        queue: &app.queue,
        clock: app.clock.as_ref(),
        metrics: &app.metrics,
        window: app.config.chunk_window,
        max_waiting: app.config.max_waiting_batches,
    }
}

impl From<IntakeError> for ApiError {
    fn from(error: IntakeError) -> Self {
        match error {
            IntakeError::QuotaExceeded {
                limit,
                used,
                requested,
                retry_after_secs,
            } => ApiError::QuotaExceeded {
                limit,
                left: limit.saturating_sub(used),
                count: requested,
                retry_after_secs,
            },
            IntakeError::LineFull { waiting } => ApiError::LineFull { waiting },
            IntakeError::Store(e) => e.into(),
            IntakeError::Queue(e) => e.into(),
        }
    }
}

/// The audit entry of a state change made by the caller in this request, now.
pub fn audit_entry(app: &App, caller: &Caller, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at: app.clock.timestamp(),
        actor: caller.principal.subject().to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        request_id: caller.correlation.as_str().to_owned(),
    }
}

/// Writes the audit entry of a state change the caller made in `tenant`: its own, or
/// (operators) the tenant it acted on.
pub async fn audit(
    app: &App,
    tenant: &herald::TenantId,
    caller: &Caller,
    action: &str,
    target: &str,
) -> Result<(), ApiError> {
    let entry = audit_entry(app, caller, action, target);
    app.store
        .record_audit(tenant, &entry, app.clock.epoch_seconds())
        .await?;
    Ok(())
}

/// A JSON answer to store under the key and send back.
pub fn stored_json(
    status: StatusCode,
    body: &impl serde::Serialize,
    location: Option<String>,
) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_string(body).expect("plain struct serialises"),
        location,
    }
}

pub fn answer_with(stored: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(location) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
