//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald::store::{Channel, Chunk, Content, MessageView, NewBatch, Recipient};
use herald::{Address, MessageId, MessageStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody, Profile};
use crate::intake;
use crate::openapi::{ReadProblems, SendProblems};
use crate::{ApiError, App, FieldErrors};

/// Longest text one SMS may carry (Twilio's limit; it splits it into segments).
pub const MAX_BODY_CHARS: usize = 1600;
/// Longest plain-text body of one email.
pub const MAX_EMAIL_BODY_CHARS: usize = 10_000;
/// Longest email subject.
pub const MAX_SUBJECT_CHARS: usize = 256;

/// The longest text a message of `channel` may carry, rendered.
pub fn max_body_chars(channel: Channel) -> usize {
    match channel {
        Channel::Sms => MAX_BODY_CHARS,
        Channel::Email => MAX_EMAIL_BODY_CHARS,
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMessage {
    #[serde(default)]
    pub channel: ChannelField,
    /// The recipient: for `sms` a number in E.164 (`+`, country code and number,
    /// nothing else); for `email` an address (ASCII, at most 254 characters, a domain
    /// with a dot).
    #[schema(example = "+14155550100")]
    pub to: String,
    /// The email's subject: required for `email`, refused for `sms`. 1 to 256
    /// characters, no control characters or line breaks.
    #[schema(min_length = 1, max_length = 256, example = "Your code")]
    pub subject: Option<String>,
    /// The text (plain text for email): 1 to 1600 characters for `sms`, 1 to 10,000
    /// for `email`; no control characters other than newline, carriage return and tab.
    #[validate(
        length(min = 1, message = "must not be empty"),
        custom(function = "intake::printable")
    )]
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
}

/// How the message travels: `sms` (the default) or `email`.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelField {
    #[default]
    Sms,
    Email,
}

impl From<ChannelField> for Channel {
    fn from(field: ChannelField) -> Self {
        match field {
            ChannelField::Sms => Channel::Sms,
            ChannelField::Email => Channel::Email,
        }
    }
}

/// Checks a text's length against its channel's limit (the shortest is checked by
/// `validator`, with the other rules of the field).
pub fn check_body_length(channel: Channel, path: &str, text: &str, errors: &mut FieldErrors) {
    let max = max_body_chars(channel);
    let chars = text.chars().count();
    if chars > max {
        let what = match channel {
            Channel::Sms => "an SMS",
            Channel::Email => "an email",
        };
        errors.add(
            path,
            format!("{what} text may be at most {max} characters; it has {chars}"),
        );
    }
}

/// The subject rules: required for email, refused for SMS, and as `check_subject_text`
/// says. `None` when it is absent or invalid.
pub fn check_subject<'a>(
    channel: Channel,
    subject: Option<&'a str>,
    errors: &mut FieldErrors,
) -> Option<&'a str> {
    match (channel, subject) {
        (Channel::Email, None) => {
            errors.add("/subject", "is required for email");
            None
        }
        (Channel::Sms, Some(_)) => {
            errors.add(
                "/subject",
                "only email messages have a subject; remove it or send with \"channel\": \"email\"",
            );
            None
        }
        (Channel::Sms, None) => None,
        (Channel::Email, Some(subject)) => {
            let before = errors.len();
            check_subject_text("/subject", subject, errors);
            (errors.len() == before).then_some(subject)
        }
    }
}

/// 1 to `MAX_SUBJECT_CHARS` characters with no control characters at all: a line
/// break in a subject would be a header break in the email.
pub fn check_subject_text(path: &str, subject: &str, errors: &mut FieldErrors) {
    let chars = subject.chars().count();
    if chars == 0 || chars > MAX_SUBJECT_CHARS {
        errors.add(
            path,
            format!("a subject is 1 to {MAX_SUBJECT_CHARS} characters; it has {chars}"),
        );
    }
    if subject.chars().any(char::is_control) {
        errors.add(
            path,
            "a subject must not contain control characters or line breaks",
        );
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
    if let Err(e) = request.validate() {
        errors.add_validator(&e);
    }
    let channel = Channel::from(request.channel);
    let to = Address::parse(channel, &request.to)
        .inspect_err(|e| errors.add("/to", e.to_string()))
        .ok();
    check_body_length(channel, "/body", &request.body, &mut errors);
    let subject =
        check_subject(channel, request.subject.as_deref(), &mut errors).map(str::to_owned);
    errors.check()?;
    let to = to.expect("checked above");
    let mut canonical = serde_json::json!({
        "channel": channel.as_str(),
        "to": to.as_str(),
        "body": request.body,
    });
    // Only email has one, so an SMS request hashes as it always has.
    if let Some(subject) = &subject {
        canonical["subject"] = subject.as_str().into();
    }
    let (app, caller, profile) = (&app, &caller, &profile);
    intake::once(app, caller, &idempotent, &canonical, |batch_id| async move {
        let now = app.clock.rfc3339();
        let masked = to.masked();
        let batch = NewBatch {
            tenant: caller.principal.tenant().clone(),
            id: batch_id,
            channel,
            created_by: caller.principal.subject().to_owned(),
            correlation_id: caller.correlation.clone(),
            created_at: now.clone(),
            chunks: vec![Chunk {
                index: 0,
                channel,
                content: Content::Text(request.body),
                subject: subject.map(Content::Text),
                recipients: vec![Recipient {
                    to,
                    variables: Default::default(),
                }],
                created_at: now,
            }],
        };
        intake::reserve_quota(app, profile, batch.id, 1).await?;
        intake::enqueue_batch(app, &batch).await?;
        let target = batch.id.to_string();
        intake::audit(app, &batch.tenant, caller, "batch.created", &target).await?;
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
        ReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
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
    Ok(axum::Json(MessageBody::from(message)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
struct MessageBody {
    id: String,
    batch_id: String,
    #[schema(value_type = Channel)]
    channel: &'static str,
    /// The recipient: an E.164 number (`sms`) or an email address (`email`).
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
    /// The recipient: an E.164 number (`sms`) or an email address (`email`).
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
