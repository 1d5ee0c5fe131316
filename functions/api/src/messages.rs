//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::{Channel, Content, MessageText, MessageView, Recipient, Subject, Submission};
use herald::{Address, MessageId, MessageStatus, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody, Profile};
use crate::intake;
use crate::openapi::{ReadProblems, SendProblems};
use crate::{ApiError, App, FieldErrors};

/// `POST /v1/messages` as the API reads it; the document's description of it, which
/// depends on the channel, is `openapi::values::create_message`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMessage {
    #[serde(default)]
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageAccepted)]
struct Accepted {
    id: String,
    batch_id: String,
    status: MessageStatus,
    status_url: String,
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "createMessage",
    summary = "Send one SMS or email",
    description = "Accepts one message for sending: an SMS to an E.164 number, or a \
        plain-text email (with its `subject`) to an email address. A 202 means it is \
        stored and queued; nothing is sent inline. Follow it at `status_url`.",
    params(IdempotencyKeyHeader),
    request_body = CreateMessage,
    responses(
        (status = 202, description = "Accepted and queued.", body = Accepted, headers(
            ("Location" = String, description = "The message's status URL."),
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
    JsonBody(request): JsonBody<CreateMessage>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let channel = request.channel;
    let text = MessageText::parse(channel, &request.body)
        .inspect_err(|problems| errors.add_text("/body", problems.clone()))
        .ok();
    let to = Address::parse(channel, &request.to)
        .inspect_err(|e| errors.add("/to", e.to_string()))
        .ok();
    // Where and to what kind of number the tenant may text (SMS pumping).
    let rules = profile.sms_policy.rules(&app.config.default_sms_countries);
    for refusal in to.iter().flat_map(|to| rules.refusals_for(to)) {
        errors.add("/to", refusal.to_string());
    }
    let subject = Subject::for_channel(channel, request.subject.as_deref())
        .inspect_err(|problems| errors.add_text("/subject", problems.clone()))
        .ok()
        .flatten();
    errors.check()?;
    let (to, text) = (to.expect("checked above"), text.expect("checked above"));
    let mut canonical = serde_json::json!({
        "channel": channel,
        "to": to.as_str(),
        "body": text.as_str(),
    });
    // Only email has one, so an SMS request hashes as it always has.
    if let Some(subject) = &subject {
        canonical["subject"] = subject.as_str().into();
    }
    let by = caller.submitter();
    let (app, profile) = (&app, &profile);
    intake::once(app, &caller, &idempotent, &canonical, |batch_id| async move {
        let masked = to.masked();
        let submission = Submission {
            channel,
            content: Content::Text(text.into_inner()),
            subject: subject.map(|s| Content::Text(s.into_inner())),
            recipients: vec![Recipient {
                to,
                variables: Default::default(),
            }],
        };
        let accepted = intake::intake(app)
            .accept(profile, &by, batch_id, submission)
            .await?;
        let id = MessageId::new(accepted.batch, 0);
        let status_url = format!("/v1/messages/{id}");
        tracing::info!(batch_id = %accepted.batch, message_id = %id, to = %masked, "message accepted");
        let answer = Accepted {
            id: id.to_string(),
            batch_id: accepted.batch.to_string(),
            status: MessageStatus::Accepted,
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
    params(("id" = herald::MessageId, Path, description = "The message id: `{batch id}.{index}`.")),
    responses(
        (status = 200, description = "The message.", body = MessageBody),
        ReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MessageBody>, ApiError> {
    let id: MessageId = id
        .parse()
        .map_err(|e: herald::ids::InvalidId| ApiError::InvalidId {
            what: "message",
            reason: e.to_string(),
        })?;
    let message = app
        .store
        .get_message(caller.principal.tenant(), id)
        .await?
        // Another tenant's message answers exactly like a missing one.
        .ok_or(ApiError::NotFound("No such message."))?;
    Ok(Json(MessageBody::from(message)))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
pub(crate) struct MessageBody {
    id: String,
    batch_id: String,
    channel: Channel,
    /// The recipient: an E.164 number (`sms`) or an email address (`email`).
    to: String,
    status: MessageStatus,
    provider: Option<String>,
    provider_ref: Option<String>,
    attempts: u32,
    error: Option<ErrorBody>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
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
    status: MessageStatus,
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
}

impl From<MessageView> for MessageBody {
    fn from(m: MessageView) -> Self {
        Self {
            id: m.id.to_string(),
            batch_id: m.id.batch().to_string(),
            channel: m.channel,
            to: m.to,
            status: m.status,
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
                    status: h.status,
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
    /// The recipient: an E.164 number (`sms`) or an email address (`email`).
    to: String,
    status: MessageStatus,
    provider_ref: Option<String>,
    error: Option<ErrorBody>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<MessageView> for MessageSummary {
    fn from(m: MessageView) -> Self {
        Self {
            id: m.id.to_string(),
            to: m.to,
            status: m.status,
            provider_ref: m.provider_ref,
            error: m.error_reason.map(|reason| ErrorBody {
                code: m.error_code,
                reason,
            }),
            updated_at: m.updated_at,
        }
    }
}
