//! What every state-changing request shares: the Idempotency-Key and the route it is
//! scoped to, the JSON body read under its limits, field errors as problem+json, and
//! the answers to what `herald::intake` refuses.

use herald::metrics::Record;
use std::future::Future;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::auth::Principal;
use herald::domain::{AuditEntry, TextProblem};
use herald::idempotency::{Begin, IdempotencyKey, KeyScope, StoredResponse, request_hash};
use herald::intake::{Intake, IntakeError};
use herald::problem::Problem;
use herald::{BatchId, CorrelationId};
use serde_path_to_error::Segment;

use crate::{ApiError, App};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Field errors listed in one answer; past this, the detail says how many more.
const MAX_LISTED_ERRORS: usize = 100;

/// Collects every failing field of a request, in JSON Pointer form.
#[derive(Default)]
pub struct FieldErrors {
    errors: Vec<(String, String)>,
}

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push((field.into(), message.into()));
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Every rule a text broke, at `field`.
    pub fn add_text(&mut self, field: &str, problems: Vec<TextProblem>) {
        for problem in problems {
            self.add(field, problem.to_string());
        }
    }

    /// `Ok` when nothing failed; otherwise a 400 listing the failures.
    pub fn check(self) -> Result<(), Response> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let total = self.errors.len();
        let mut detail = "The request has invalid fields; see errors.".to_owned();
        if total > MAX_LISTED_ERRORS {
            detail = format!(
                "The request has {total} invalid fields; the first {MAX_LISTED_ERRORS} are listed in errors."
            );
        }
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
        )
        .detail(detail);
        for (field, message) in self.errors.into_iter().take(MAX_LISTED_ERRORS) {
            problem = problem.field(field, message);
        }
        Err(problem.into_response())
    }
}

/// The `Idempotency-Key` header as the OpenAPI document describes it; `idempotency_key`
/// is what reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1–255 visible ASCII characters, unique per request and scoped to your tenant;
    /// reuse it only to retry the same request. Keys are kept for 24 hours.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255)]
    #[expect(
        dead_code,
        reason = "described, never built: `idempotency_key` reads the header"
    )]
    idempotency_key: String,
}

/// The route a request was registered under, as its Idempotency-Key's scope: the same
/// method and path template the router matched, never a string repeated per handler.
pub struct Route(pub KeyScope);

impl<S: Send + Sync> FromRequestParts<S> for Route {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .ok_or_else(|| Problem::internal().into_response())?;
        Ok(Self(KeyScope::new(parts.method.as_str(), path.as_str())))
    }
}

pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Response> {
    let problem = |message: &str| {
        Problem::new(StatusCode::BAD_REQUEST, "idempotency-key", "Idempotency-Key required")
            .detail("Every POST needs an Idempotency-Key header: a unique value per request, reused only to retry it.")
            .field("Idempotency-Key", message)
            .into_response()
    };
    let raw = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| problem("is missing"))?
        .to_str()
        .map_err(|_| problem("must be visible ASCII"))?;
    IdempotencyKey::parse(raw).map_err(|e| problem(&e.to_string()))
}

/// Runs `work` at most once per Idempotency-Key and request: a replay answers with the
/// stored response, a different request under the same key gets 422, a request still
/// running gets 409. `work` gets the batch id pinned to the key (the same one when a
/// retry takes over a request that died), and answers with the response to store or
/// with an error response, which releases the key so a retry can run again.
pub async fn once<F, Fut>(
    app: &App,
    principal: &Principal,
    key: &IdempotencyKey,
    route: &Route,
    canonical: &serde_json::Value,
    work: F,
) -> Result<Response, Response>
where
    F: FnOnce(BatchId) -> Fut,
    Fut: Future<Output = Result<StoredResponse, Response>>,
{
    once_stored(app, principal, key, route, canonical, work)
        .await
        .map(|(stored, replayed)| answer_with(stored, replayed))
}

/// `once`, answering with the stored response and whether it is a replay, for a route
/// that adds to the answer what must not be stored.
pub async fn once_stored<F, Fut>(
    app: &App,
    principal: &Principal,
    key: &IdempotencyKey,
    Route(scope): &Route,
    canonical: &serde_json::Value,
    work: F,
) -> Result<(StoredResponse, bool), Response>
where
    F: FnOnce(BatchId) -> Fut,
    Fut: Future<Output = Result<StoredResponse, Response>>,
{
    let tenant = principal.tenant();
    let hash = request_hash(scope, canonical);
    let now_epoch = app.clock.epoch_seconds();
    let lock_until = now_epoch + app.config.idempotency_lock.as_secs();
    let begin = app
        .idempotency
        .begin(tenant, key, &hash, now_epoch, lock_until)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
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
        Begin::InFlight => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "request-in-progress",
                "Request in progress",
            )
            .detail("A request with this Idempotency-Key is still being processed; retry shortly.")
            .field(
                "Idempotency-Key",
                "in use by a request that has not finished",
            )
            .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .into_response());
        }
        Begin::Mismatch => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            )
            .detail("This Idempotency-Key was used for a different request; use a new key for a new request.")
            .field("Idempotency-Key", "already used for a different request")
            .into_response());
        }
    };
    let outcome = match work(batch).await {
        Ok(stored) => app
            .idempotency
            .complete(tenant, key, &hash, &stored)
            .await
            .map(|()| stored)
            .map_err(|e| ApiError::from(e).into_response()),
        Err(response) => Err(response),
    };
    match outcome {
        Ok(stored) => Ok((stored, false)),
        Err(response) => {
            // Let the client's retry (same key) take over now.
            if let Err(release) = app.idempotency.release(tenant, key, &hash).await {
                tracing::warn!(error = %release, "could not release the idempotency key");
            }
            Err(response)
        }
    }
}

/// Intake as this function runs it.
pub fn intake(app: &App) -> Intake<'_> {
    Intake {
        store: &app.store,
        queue: &app.queue,
        clock: app.clock.as_ref(),
        metrics: &app.metrics,
    }
}

/// The answer to a submission intake did not take.
pub fn refused(error: IntakeError) -> Response {
    match error {
        IntakeError::QuotaExceeded {
            limit,
            used,
            requested,
            retry_after_secs,
        } => {
            let left = limit.saturating_sub(used);
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
                "Daily quota exceeded",
            )
            .detail(format!(
                "Your tenant may send {limit} messages per UTC day and has {left} left today; this request has {requested}. Nothing was accepted."
            ))
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
            .into_response()
        }
        IntakeError::Store(e) => ApiError::from(e).into_response(),
        IntakeError::Queue(e) => ApiError::from(e).into_response(),
    }
}

/// The audit entry of a state change made by `principal` in this request, now.
pub fn audit_entry(
    app: &App,
    principal: &Principal,
    correlation: &CorrelationId,
    action: &str,
    target: &str,
) -> AuditEntry {
    AuditEntry {
        at: app.clock.timestamp(),
        actor: principal.subject().to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        request_id: correlation.as_str().to_owned(),
    }
}

/// Writes the audit entry of a state change made by `principal` in this request.
pub async fn audit(
    app: &App,
    tenant: &herald::TenantId,
    principal: &Principal,
    correlation: &CorrelationId,
    action: &str,
    target: &str,
) -> Result<(), Response> {
    let entry = audit_entry(app, principal, correlation, action, target);
    app.store
        .record_audit(tenant, &entry, app.clock.epoch_seconds())
        .await
        .map_err(|e| ApiError::from(e).into_response())
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

/// Reads a JSON body under the size limit, naming the failing field when serde can.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    max_bytes: usize,
) -> Result<T, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
        )
        .detail("Send the request body as application/json.")
        .field("content-type", "must be application/json")
        .into_response());
    }
    if body.len() > max_bytes {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
        )
        .detail(format!(
            "The request body may be at most {max_bytes} bytes."
        ))
        .into_response());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_json(
            "The request body is empty; send a JSON object.",
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = json_pointer(e.path());
        bad_json(&e.inner().to_string(), field)
    })?;
    de.end().map_err(|e| bad_json(&e.to_string(), None))?;
    Ok(value)
}

/// `recipients[3].to` as `/recipients/3/to` (RFC 6901), or `None` for the whole body.
fn json_pointer(path: &serde_path_to_error::Path) -> Option<String> {
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    (!pointer.is_empty()).then_some(pointer)
}

fn bad_json(detail: &str, field: Option<String>) -> Response {
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "Malformed JSON body",
    )
    .detail(detail);
    if let Some(field) = field {
        problem = problem.field(field, detail);
    }
    problem.into_response()
}
