//! Bulk sends: `POST /v1/batches` (one template, up to `max_recipients` recipients with
//! their own variables), progress, a paged message listing, and cancel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::auth::Principal;
use herald::keys::CHUNK_SIZE;
use herald::problem::Problem;
use herald::store::{
    BatchStatus, BatchView, CancelOutcome, Channel, Chunk, Content, NewBatch, Recipient,
    TenantProfile,
};
use herald::template::{self, RenderError, Template, TemplateError, Variables};
use herald::{Address, BatchId, MessageStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::intake::{self, FieldErrors, IdempotencyKeyHeader};
use crate::messages::{
    ChannelField, MAX_SUBJECT_CHARS, MessageSummary, check_body_length, check_subject,
    check_subject_text, max_body_chars,
};
use crate::openapi::{
    BodyTooLarge, IdempotencyKeyReused, InvalidRequest, NotFound, RequestInProgress,
    UnsupportedMediaType,
};
use crate::{ApiError, App, Correlation};

pub const MAX_VARIABLES: usize = 20;
pub const MAX_VALUE_CHARS: usize = 1024;
/// Names and values of one recipient's variables, in UTF-8 bytes: keeps a chunk of
/// `CHUNK_SIZE` recipients well under DynamoDB's 400 KB item limit.
pub const MAX_VARIABLE_BYTES: usize = 2048;
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;
/// Chunks read by one listing request (a filtered page may be short).
const LISTING_CHUNKS: u32 = 10;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    #[serde(default)]
    pub channel: ChannelField,
    /// The email's subject (required for `email`, refused for `sms`), with `{{name}}`
    /// placeholders like the template. Rendered, 1 to 256 characters with no control
    /// characters or line breaks.
    #[schema(min_length = 1, max_length = 256, example = "Your code, {{name}}")]
    pub subject: Option<String>,
    /// The text (plain text for email), with `{{name}}` placeholders each recipient's
    /// variables fill in. The template and each rendered text may be at most 1600
    /// characters for `sms`, 10,000 for `email`.
    #[validate(
        length(min = 1, message = "must not be empty"),
        custom(function = "intake::printable")
    )]
    #[schema(
        min_length = 1,
        max_length = 10000,
        example = "Hi {{name}}, your code is {{code}}"
    )]
    pub template: String,
    /// 1 to the configured maximum (10,000 by default); each address at most once
    /// (email addresses compared without regard to case).
    #[schema(min_items = 1)]
    pub recipients: Vec<RecipientField>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Recipient)]
pub struct RecipientField {
    /// The recipient: an E.164 number for `sms`, an email address for `email`.
    #[schema(example = "+14155550100")]
    pub to: String,
    /// At most 20; names are letters, digits or `_`, values at most 1024 characters, and
    /// names and values together at most 2048 bytes.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchAccepted)]
struct Accepted {
    batch_id: String,
    #[schema(value_type = BatchStatus)]
    status: &'static str,
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
    let request: CreateBatch = intake::parse_json(&headers, &body, app.config.max_body_bytes)?;
    let channel = Channel::from(request.channel);
    let Valid {
        template,
        subject,
        recipients,
    } = validate(&request, channel, app.config.max_recipients)?;
    let mut canonical = serde_json::json!({
        "channel": channel.as_str(),
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
    let total = recipients.len();
    let (app, principal, profile, correlation) = (&app, &principal, &profile, &correlation);
    intake::once(app, principal, &key, "POST /v1/batches", &canonical, |batch_id| async move {
        let now = app.clock.rfc3339();
        let chunks = recipients
            .chunks(CHUNK_SIZE as usize)
            .enumerate()
            .map(|(index, recipients)| Chunk {
                index: index as u32,
                channel,
                content: Content::Template(template.clone()),
                subject: subject.clone().map(Content::Template),
                recipients: recipients.to_vec(),
                created_at: now.clone(),
            })
            .collect();
        let batch = NewBatch {
            tenant: principal.tenant().clone(),
            id: batch_id,
            channel,
            created_by: principal.subject().to_owned(),
            correlation_id: correlation.clone(),
            created_at: now,
            chunks,
        };
        intake::reserve_quota(app, profile, batch.id, total).await?;
        intake::enqueue_batch(app, &batch, correlation)
            .await
            .map_err(IntoResponse::into_response)?;
        let target = batch.id.to_string();
        intake::audit(app, &batch.tenant, principal, correlation, "batch.created", &target).await?;
        intake::count_accepted(app, &batch.tenant, total);
        tracing::info!(batch_id = %batch.id, total, chunks = batch.chunks.len(), "batch accepted");
        let status_url = format!("/v1/batches/{}", batch.id);
        let answer = Accepted {
            batch_id: batch.id.to_string(),
            status: "accepted",
            total,
            status_url: status_url.clone(),
        };
        Ok(intake::stored_json(StatusCode::ACCEPTED, &answer, Some(status_url)))
    })
    .await
}

/// A batch request that passed every check.
struct Valid {
    template: Template,
    subject: Option<Template>,
    recipients: Vec<Recipient>,
}

/// Checks everything before anything is written: every recipient's address (for the
/// channel), variables, rendered text and subject, and duplicates. Every failure is
/// listed with its field path.
fn validate(
    request: &CreateBatch,
    channel: Channel,
    max_recipients: usize,
) -> Result<Valid, Response> {
    let mut errors = FieldErrors::default();
    if let Err(e) = request.validate() {
        errors.add_validator(&e);
    }
    check_body_length(channel, "/template", &request.template, &mut errors);
    let max_chars = max_body_chars(channel);
    // An over-long template is not scanned (check_body_length named it, with its
    // length), and without a template no recipient is rendered.
    let template = match Template::parse_within(&request.template, max_chars) {
        Ok(template) => Some(template),
        Err(TemplateError::TooLong { .. }) => None,
        Err(e) => {
            errors.add("/template", e.to_string());
            None
        }
    };
    let subject_source = check_subject(channel, request.subject.as_deref(), &mut errors);
    let subject = subject_source.and_then(|source| {
        Template::parse(source)
            .inspect_err(|e| errors.add("/subject", e.to_string()))
            .ok()
    });
    let count = request.recipients.len();
    if count == 0 || count > max_recipients {
        errors.add(
            "/recipients",
            format!("must hold 1 to {max_recipients} recipients; it holds {count}"),
        );
        // Checking each of 10,001 recipients would bury the one error that matters.
        return Err(errors.check().expect_err("an error was added"));
    }
    let mut first_seen: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut recipients = Vec::with_capacity(count);
    for (i, field) in request.recipients.iter().enumerate() {
        let at = format!("/recipients/{i}");
        let variables = check_variables(&field.variables, &at, &mut errors);
        let to = match Address::parse(channel, &field.to) {
            Ok(to) => to,
            Err(e) => {
                errors.add(format!("{at}/to"), e.to_string());
                continue;
            }
        };
        if let Some(first) = first_seen.insert(to.folded(), i) {
            // Rejected, not silently merged: a list with duplicates is usually a bug
            // upstream that the caller wants to hear about.
            first_seen.insert(to.folded(), first);
            errors.add(
                format!("{at}/to"),
                format!(
                    "duplicates /recipients/{first}/to; each address may appear once per batch"
                ),
            );
            continue;
        }
        if let (Some(template), Some(variables)) = (&template, &variables) {
            match template.render_within(variables, max_chars) {
                Err(RenderError::Missing(missing)) => {
                    errors.add(format!("{at}/variables"), missing.to_string())
                }
                Err(too_long) => errors.add(at.clone(), too_long.to_string()),
                Ok(_) => {}
            }
        }
        if let (Some(subject), Some(variables)) = (&subject, &variables) {
            match subject.render_within(variables, MAX_SUBJECT_CHARS) {
                Err(RenderError::Missing(missing)) => {
                    errors.add(format!("{at}/variables"), missing.to_string())
                }
                Err(RenderError::TooLong { .. }) => errors.add(
                    at.clone(),
                    format!(
                        "the subject for this recipient: a subject is 1 to {MAX_SUBJECT_CHARS} characters; it is longer"
                    ),
                ),
                Ok(text) => {
                    // Named at the recipient: its variables made the subject what it is.
                    let mut problems = FieldErrors::default();
                    check_subject_text(&at, &text, &mut problems);
                    for (field, message) in problems.into_inner() {
                        errors.add(field, format!("the subject for this recipient: {message}"));
                    }
                }
            }
        }
        if let Some(variables) = variables {
            recipients.push(Recipient { to, variables });
        }
    }
    errors.check()?;
    Ok(Valid {
        template: template.expect("checked above"),
        subject,
        recipients,
    })
}

fn check_variables(
    variables: &BTreeMap<String, String>,
    at: &str,
    errors: &mut FieldErrors,
) -> Option<Variables> {
    let before = errors.len();
    if variables.len() > MAX_VARIABLES {
        errors.add(
            format!("{at}/variables"),
            format!(
                "at most {MAX_VARIABLES} variables; it has {}",
                variables.len()
            ),
        );
    }
    let bytes: usize = variables.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_VARIABLE_BYTES {
        errors.add(
            format!("{at}/variables"),
            format!("names and values may total {MAX_VARIABLE_BYTES} bytes; they total {bytes}"),
        );
    }
    for (name, value) in variables {
        let path = format!(
            "{at}/variables/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        if !template::is_name(name) {
            errors.add(
                path.clone(),
                format!(
                    "variable names are 1 to {} letters, digits or _, starting with a letter or _",
                    template::MAX_NAME_CHARS
                ),
            );
        }
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            errors.add(
                path.clone(),
                format!("at most {MAX_VALUE_CHARS} characters; it has {chars}"),
            );
        }
        if intake::printable(value).is_err() {
            errors.add(path, "must not contain control characters");
        }
    }
    (errors.len() == before).then(|| variables.clone())
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Batch)]
struct Progress {
    id: String,
    #[schema(value_type = Channel)]
    channel: &'static str,
    #[schema(value_type = BatchStatus)]
    status: &'static str,
    total: u32,
    counts: Counts,
    /// Final messages as a share of the total, rounded down to one decimal: 100.0 only
    /// when every message is final.
    percent_done: f64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    enqueued_at: Option<String>,
    #[schema(format = DateTime)]
    cancelled_at: Option<String>,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    messages_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchCounts)]
struct Counts {
    /// Not yet final: waiting on the queue or being sent.
    pending: u32,
    sent: u32,
    failed: u32,
    unknown: u32,
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
            channel: b.channel.as_str(),
            status: b.status.as_str(),
            total: b.total,
            counts: Counts {
                pending: b.pending(),
                sent: b.sent,
                failed: b.failed,
                unknown: b.unknown,
                cancelled: b.cancelled,
            },
            percent_done,
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
    params(("id" = String, Path, description = "The batch id.")),
    responses(
        (status = 200, description = "The batch.", body = Progress),
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let batch = find(&app, &principal, &id).await?;
    Ok(axum::Json(Progress::from(batch)).into_response())
}

/// The caller's batch, or the same 404 whether it is missing or another tenant's.
async fn find(app: &App, principal: &Principal, id: &str) -> Result<BatchView, Response> {
    let id: BatchId = id.parse().map_err(|e: herald::ids::InvalidId| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-id", "Invalid batch id")
            .field("id", e.to_string())
            .into_response()
    })?;
    app.store
        .get_batch(principal.tenant(), id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| {
            Problem::not_found()
                .detail("No such batch.")
                .into_response()
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only messages in this status.
    #[param(value_type = Option<MessageStatus>)]
    status: Option<String>,
    /// Where to go on: the `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Messages per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessagePage)]
struct Page {
    messages: Vec<MessageSummary>,
    /// Absent on the last page. A filtered page may be short, or empty, before the end.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/batches/{id}/messages",
    tag = "batches",
    operation_id = "listBatchMessages",
    summary = "A batch's messages, a page at a time",
    params(("id" = String, Path, description = "The batch id."), ListQuery),
    responses(
        (status = 200, description = "One page of messages, in batch order.", body = Page),
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
    ),
)]

pub async fn messages(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    let query: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| {
            let mut errors = FieldErrors::default();
            errors.add("query", e.to_string());
            errors.check().expect_err("an error was added")
        })?;
    let mut errors = FieldErrors::default();
    let status = query.status.as_deref().and_then(|raw| {
        MessageStatus::parse(raw).or_else(|| {
            let names: Vec<_> = MessageStatus::ALL.iter().map(|s| s.as_str()).collect();
            errors.add("status", format!("must be one of {}", names.join(", ")));
            None
        })
    });
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            errors.add(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            );
            0
        }
    };
    let cursor = query.cursor.as_deref().map(str::parse::<u32>);
    if matches!(cursor, Some(Err(_))) {
        errors.add("cursor", "is not a cursor this listing returned");
    }
    errors.check()?;
    let batch = find(&app, &principal, &id).await?;
    let from = match cursor {
        Some(Ok(n)) if n < batch.total => n,
        Some(_) => {
            let mut errors = FieldErrors::default();
            errors.add("cursor", "is not a cursor this listing returned");
            return Err(errors.check().expect_err("an error was added"));
        }
        None => 0,
    };
    let page = app
        .store
        .list_messages(
            principal.tenant(),
            &batch,
            from,
            status,
            limit,
            LISTING_CHUNKS,
        )
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let next_url = page.next_cursor.map(|cursor| {
        let mut url = format!(
            "/v1/batches/{}/messages?cursor={cursor}&limit={limit}",
            batch.id
        );
        if let Some(status) = status {
            url.push_str(&format!("&status={}", status.as_str()));
        }
        url
    });
    Ok(axum::Json(Page {
        messages: page
            .messages
            .into_iter()
            .map(MessageSummary::from)
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
        next_url,
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    tag = "batches",
    operation_id = "cancelBatch",
    summary = "Cancel a batch",
    description = "Messages not yet claimed by a sender are cancelled; those being sent \
        finish. Cancelling a cancelled batch answers its progress again.",
    params(("id" = String, Path, description = "The batch id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The batch, cancelled.", body = Progress, headers(
            ("Location" = String, description = "The batch's status URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        (status = 400, response = InvalidRequest),
        (status = 404, response = NotFound),
        (status = 409, description = "`batch-finished`: every message is final, nothing is left to \
            cancel. `request-in-progress`: a request with this `Idempotency-Key` has not finished; \
            retry after `Retry-After`.", body = Problem, content_type = "application/problem+json", headers(
            ("Retry-After" = u64, description = "With `request-in-progress`: seconds to wait before retrying."),
        )),
        (status = 422, response = IdempotencyKeyReused),
    ),
)]
pub async fn cancel(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(Correlation(correlation)): Extension<Correlation>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let key = intake::idempotency_key(&headers)?;
    let batch = find(&app, &principal, &id).await?;
    let canonical = serde_json::json!({ "batch_id": batch.id.to_string() });
    let route = "POST /v1/batches/{id}/cancel";
    intake::once(&app, &principal, &key, route, &canonical, |_| async {
        let outcome = app
            .store
            .cancel_batch(principal.tenant(), batch.id, &app.clock.rfc3339())
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        let view = match outcome {
            CancelOutcome::Cancelled(view) => {
                tracing::info!(batch_id = %batch.id, pending = view.pending(), "batch cancelled");
                let target = batch.id.to_string();
                intake::audit(&app, principal.tenant(), &principal, &correlation, "batch.cancelled", &target).await?;
                view
            }
            CancelOutcome::AlreadyCancelled(view) => view,
            CancelOutcome::AlreadyFinished(_) => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "batch-finished",
                    "Batch already finished",
                )
                .detail("Every message of this batch has reached a final status; there is nothing left to cancel.")
                .into_response());
            }
            CancelOutcome::NotFound => {
                return Err(Problem::not_found().detail("No such batch.").into_response());
            }
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
