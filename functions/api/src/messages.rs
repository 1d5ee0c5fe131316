//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::auth::Principal;
use herald::idempotency::{Begin, IdempotencyKey, StoredResponse, request_hash};
use herald::problem::Problem;
use herald::queue::ChunkEnvelope;
use herald::store::{Channel, Chunk, MessageView, NewBatch};
use herald::{MessageId, PhoneNumber};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::{ApiError, App, Correlation};

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateMessage {
    #[serde(default)]
    pub channel: ChannelField,
    pub to: String,
    #[validate(
        length(min = 1, max = 1600, message = "must be 1 to 1600 characters"),
        custom(function = "printable")
    )]
    pub body: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelField {
    #[default]
    Sms,
}

fn printable(text: &str) -> Result<(), ValidationError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ValidationError::new("control")
            .with_message("must not contain control characters".into()));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Accepted {
    id: String,
    batch_id: String,
    status: &'static str,
    status_url: String,
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let key = idempotency_key(&headers)?;
    let request: CreateMessage = parse_json(&headers, &body, app.config.max_body_bytes)?;
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "Invalid request",
    )
    .detail("The request has invalid fields; see errors.");
    if let Err(errors) = request.validate() {
        for (field, errs) in errors.field_errors() {
            for e in errs {
                let message = e.message.as_deref().unwrap_or("is invalid").to_owned();
                problem = problem.field(format!("/{field}"), message);
            }
        }
    }
    let to = match PhoneNumber::parse(&request.to) {
        Ok(to) => Some(to),
        Err(e) => {
            problem = problem.field("/to", e.to_string());
            None
        }
    };
    let Some(to) = to.filter(|_| problem.errors.is_empty()) else {
        return Err(problem.into_response());
    };
    let channel = match request.channel {
        ChannelField::Sms => Channel::Sms,
    };

    let tenant = principal.tenant();
    let canonical = serde_json::json!({
        "channel": channel.as_str(),
        "to": to.as_str(),
        "body": request.body,
    });
    let hash = request_hash("POST /v1/messages", &canonical);
    let now_epoch = app.clock.epoch_seconds();
    let lock_until = now_epoch + app.config.idempotency_lock.as_secs();
    let begin = app
        .idempotency
        .begin(tenant, &key, &hash, now_epoch, lock_until)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let batch_id = match begin {
        Begin::Proceed { batch } => batch,
        Begin::Replay(stored) => return Ok(replay(stored)),
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

    let now = app.clock.rfc3339();
    let batch = NewBatch {
        tenant: tenant.clone(),
        id: batch_id,
        channel,
        created_by: principal.subject().to_owned(),
        correlation_id: correlation.clone(),
        created_at: now.clone(),
        chunks: vec![Chunk {
            index: 0,
            channel,
            body: request.body,
            recipients: vec![to],
            created_at: now.clone(),
        }],
    };
    let id = MessageId::new(batch.id, 0);
    let status_url = format!("/v1/messages/{id}");
    let answer = Accepted {
        id: id.to_string(),
        batch_id: batch.id.to_string(),
        status: "accepted",
        status_url: status_url.clone(),
    };
    let stored = StoredResponse {
        status: StatusCode::ACCEPTED.as_u16(),
        body: serde_json::to_string(&answer).expect("plain struct serialises"),
        location: Some(status_url),
    };
    let envelope = ChunkEnvelope::new(&batch.tenant, batch.id, 0, &correlation);
    let work = async {
        app.store.create_batch(&batch).await?;
        app.queue.enqueue(&[envelope]).await?;
        app.store
            .mark_enqueued(&batch.tenant, batch.id, &now)
            .await?;
        app.idempotency
            .complete(tenant, &key, &hash, &stored)
            .await?;
        Ok::<_, ApiError>(())
    };
    if let Err(error) = work.await {
        // Let the client's retry (same key) take over now and finish this batch.
        if let Err(release) = app.idempotency.release(tenant, &key, &hash).await {
            tracing::warn!(error = %release, "could not release the idempotency key");
        }
        return Err(error.into_response());
    }
    tracing::info!(batch_id = %batch.id, message_id = %id, to = %batch.chunks[0].recipients[0].masked(), "message accepted");
    Ok(answer_with(stored, false))
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Response> {
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

fn replay(stored: StoredResponse) -> Response {
    answer_with(stored, true)
}

fn answer_with(stored: StoredResponse, replayed: bool) -> Response {
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

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id: MessageId = id.parse().map_err(|e: herald::ids::InvalidId| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-id", "Invalid message id")
            .field("id", e.to_string())
            .into_response()
    })?;
    let message = app
        .store
        .get_message(principal.tenant(), id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        // Another tenant's message answers exactly like a missing one.
        .ok_or_else(|| {
            Problem::not_found()
                .detail("No such message.")
                .into_response()
        })?;
    Ok(axum::Json(MessageBody::from(message)).into_response())
}

#[derive(Debug, Serialize)]
struct MessageBody {
    id: String,
    batch_id: String,
    channel: &'static str,
    to: String,
    status: &'static str,
    provider: Option<String>,
    provider_ref: Option<String>,
    attempts: u32,
    error: Option<ErrorBody>,
    created_at: String,
    updated_at: String,
    history: Vec<HistoryBody>,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: Option<String>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct HistoryBody {
    status: &'static str,
    at: String,
}

impl From<MessageView> for MessageBody {
    fn from(m: MessageView) -> Self {
        Self {
            id: m.id.to_string(),
            batch_id: m.id.batch().to_string(),
            channel: m.channel.as_str(),
            to: m.to,
            status: m.status.as_str(),
            provider: m.provider,
            provider_ref: m.provider_ref,
            attempts: m.attempts,
            error: m.error_reason.map(|reason| ErrorBody {
                code: m.error_code,
                reason,
            }),
            created_at: m.created_at,
            updated_at: m.updated_at,
            history: m
                .history
                .into_iter()
                .map(|h| HistoryBody {
                    status: h.status.as_str(),
                    at: h.at,
                })
                .collect(),
        }
    }
}

/// Reads a JSON body under the size limit, naming the failing field when serde can.
fn parse_json<T: serde::de::DeserializeOwned>(
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
        let path = e.path().to_string();
        let field = (path != ".").then(|| format!("/{}", path.replace('.', "/")));
        bad_json(&e.inner().to_string(), field)
    })?;
    de.end().map_err(|e| bad_json(&e.to_string(), None))?;
    Ok(value)
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
