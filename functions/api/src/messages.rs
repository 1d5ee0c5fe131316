//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::auth::Principal;
use herald::problem::Problem;
use herald::store::{Channel, Chunk, Content, MessageView, NewBatch, Recipient, TenantProfile};
use herald::{MessageId, MessageStatus, PhoneNumber};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::intake::{self, FieldErrors, IdempotencyKeyHeader};
use crate::openapi::{
    BodyTooLarge, IdempotencyKeyReused, InvalidRequest, NotFound, RequestInProgress,
    UnsupportedMediaType,
};
use crate::{ApiError, App, Correlation};

/// Longest text one message may carry (Twilio's limit; it splits it into segments).
pub const MAX_BODY_CHARS: usize = 1600;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMessage {
    #[serde(default)]
    pub channel: ChannelField,
    /// The recipient in E.164: `+`, country code and number, nothing else.
    #[schema(example = "+14155550100")]
    pub to: String,
    /// The text; no control characters other than newline, carriage return and tab.
    #[validate(
        length(min = 1, max = 1600, message = "must be 1 to 1600 characters"),
        custom(function = "intake::printable")
    )]
    #[schema(min_length = 1, max_length = 1600)]
    pub body: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelField {
    #[default]
    Sms,
}

impl From<ChannelField> for Channel {
    fn from(field: ChannelField) -> Self {
        match field {
            ChannelField::Sms => Channel::Sms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageAccepted)]
struct Accepted {
    id: String,
    batch_id: String,
    #[schema(value_type = MessageStatus)]
    status: &'static str,
    status_url: String,
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "createMessage",
    summary = "Send one SMS",
    description = "Accepts one message for sending. A 202 means it is stored and queued; \
        nothing is sent inline. Follow it at `status_url`.",
    params(IdempotencyKeyHeader),
    request_body = CreateMessage,
    responses(
        (status = 202, description = "Accepted and queued.", body = Accepted, headers(
            ("Location" = String, description = "The message's status URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        (status = 400, response = InvalidRequest),
        (status = 409, response = RequestInProgress),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = IdempotencyKeyReused),
    ),
)]

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(profile): Extension<TenantProfile>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let key = intake::idempotency_key(&headers)?;
    let request: CreateMessage = intake::parse_json(&headers, &body, app.config.max_body_bytes)?;
    let mut errors = FieldErrors::default();
    if let Err(e) = request.validate() {
        errors.add_validator(&e);
    }
    let to = PhoneNumber::parse(&request.to)
        .inspect_err(|e| errors.add("/to", e.to_string()))
        .ok();
    errors.check()?;
    let to = to.expect("checked above");
    let channel = Channel::from(request.channel);
    let canonical = serde_json::json!({
        "channel": channel.as_str(),
        "to": to.as_str(),
        "body": request.body,
    });
    let (app, principal, profile, correlation) = (&app, &principal, &profile, &correlation);
    intake::once(app, principal, &key, "POST /v1/messages", &canonical, |batch_id| async move {
        let now = app.clock.rfc3339();
        let masked = to.masked();
        let batch = NewBatch {
            tenant: principal.tenant().clone(),
            id: batch_id,
            channel,
            created_by: principal.subject().to_owned(),
            correlation_id: correlation.clone(),
            created_at: now.clone(),
            chunks: vec![Chunk {
                index: 0,
                channel,
                content: Content::Text(request.body),
                recipients: vec![Recipient {
                    to,
                    variables: Default::default(),
                }],
                created_at: now,
            }],
        };
        intake::reserve_quota(app, profile, batch.id, 1).await?;
        intake::enqueue_batch(app, &batch, correlation)
            .await
            .map_err(IntoResponse::into_response)?;
        let target = batch.id.to_string();
        intake::audit(app, &batch.tenant, principal, correlation, "batch.created", &target).await?;
        let id = MessageId::new(batch.id, 0);
        let status_url = format!("/v1/messages/{id}");
        intake::count_accepted(app, &batch.tenant, 1);
        tracing::info!(batch_id = %batch.id, message_id = %id, to = %masked, "message accepted");
        let answer = Accepted {
            id: id.to_string(),
            batch_id: batch.id.to_string(),
            status: "accepted",
            status_url: status_url.clone(),
        };
        Ok(intake::stored_json(StatusCode::ACCEPTED, &answer, Some(status_url)))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    operation_id = "getMessage",
    summary = "A message's status",
    description = "Its status, provider reference, attempts, last error and status history.",
    params(("id" = String, Path, description = "The message id: `{batch id}.{index}`.")),
    responses(
        (status = 200, description = "The message.", body = MessageBody),
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
struct MessageBody {
    id: String,
    batch_id: String,
    #[schema(value_type = Channel)]
    channel: &'static str,
    /// The recipient in E.164.
    to: String,
    #[schema(value_type = MessageStatus)]
    status: &'static str,
    provider: Option<String>,
    provider_ref: Option<String>,
    attempts: u32,
    error: Option<ErrorBody>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    history: Vec<HistoryBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageError)]
struct ErrorBody {
    /// The provider's error code, when it gave one.
    code: Option<String>,
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageHistoryEntry)]
struct HistoryBody {
    #[schema(value_type = MessageStatus)]
    status: &'static str,
    #[schema(format = DateTime)]
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

/// One message in a batch listing: its state without its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageSummary {
    id: String,
    /// The recipient in E.164.
    to: String,
    #[schema(value_type = MessageStatus)]
    status: &'static str,
    provider_ref: Option<String>,
    error: Option<ErrorBody>,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<MessageView> for MessageSummary {
    fn from(m: MessageView) -> Self {
        Self {
            id: m.id.to_string(),
            to: m.to,
            status: m.status.as_str(),
            provider_ref: m.provider_ref,
            error: m.error_reason.map(|reason| ErrorBody {
                code: m.error_code,
                reason,
            }),
            updated_at: m.updated_at,
        }
    }
}
