//! What every state-changing request shares: running it at most once per
//! Idempotency-Key, its audit entry, and the path from a validated batch to the queue
//! (reserve quota, write chunks, enqueue, mark enqueued).

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::BatchId;
use herald::idempotency::{Begin, StoredResponse, request_hash};
use herald::metrics::Record;
use herald::queue::ChunkEnvelope;
use herald::store::{AuditEntry, NewBatch, Reservation, TenantProfile};

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
    let Idempotent { key, route } = idempotent;
    let hash = request_hash(route, canonical);
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
                    .property("route", route.as_str())
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

/// Makes a validated batch durable and queued: chunks and batch record first, then
/// one queue message per chunk, then the batch is marked enqueued. A failure part-way
/// leaves the batch `accepted`; a retry with the same key (or the sweeper) finishes it.
pub async fn enqueue_batch(app: &App, batch: &NewBatch) -> Result<(), ApiError> {
    app.store.create_batch(batch).await?;
    let envelopes: Vec<ChunkEnvelope> = batch
        .chunks
        .iter()
        .map(|chunk| {
            ChunkEnvelope::new(&batch.tenant, batch.id, chunk.index, &batch.correlation_id)
        })
        .collect();
    app.queue.enqueue(&envelopes).await?;
    app.store
        .mark_enqueued(&batch.tenant, batch.id, &app.clock.rfc3339())
        .await?;
    Ok(())
}

/// Counts a new batch's messages against the tenant's daily quota, all or nothing. A
/// retry finishing the same batch was counted already and passes.
pub async fn reserve_quota(
    app: &App,
    profile: &TenantProfile,
    batch: BatchId,
    count: usize,
) -> Result<(), ApiError> {
    let now = app.clock.rfc3339();
    let day = &now[..10];
    let limit = profile.limits.sends_per_day;
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let reservation = app
        .store
        .reserve_sends(
            &profile.tenant,
            batch,
            count,
            limit,
            day,
            app.clock.epoch_seconds(),
        )
        .await?;
    match reservation {
        Reservation::Reserved { .. } | Reservation::AlreadyReserved => Ok(()),
        Reservation::Exceeded { used } => Err(ApiError::QuotaExceeded {
            limit,
            left: limit.saturating_sub(used),
            count,
            retry_after_secs: 86_400 - app.clock.epoch_seconds() % 86_400,
        }),
    }
}

/// The audit entry of a state change made by the caller in this request, now.
pub fn audit_entry(app: &App, caller: &Caller, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at: app.clock.rfc3339(),
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

/// Counts messages accepted, once the request that accepted them has done everything
/// but answer (a retry that finishes a failed attempt counts them then, not twice).
pub fn count_accepted(app: &App, tenant: &herald::TenantId, messages: usize) {
    app.metrics.emit(
        Record::new("api")
            .count("MessagesAccepted", messages)
            .property("tenant_id", tenant.as_str()),
    );
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

/// Rejects text with control characters other than newline, carriage return and tab.
pub fn printable(text: &str) -> Result<(), validator::ValidationError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(validator::ValidationError::new("control")
            .with_message("must not contain control characters".into()));
    }
    Ok(())
}
