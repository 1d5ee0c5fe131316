//! The tenant's suppression list: addresses its messages are not sent to (recipients
//! who texted STOP, bounces, complaints, and what its admins added). Anyone who reads
//! messages may read the list; admins add and remove entries, audited. An opt-out is
//! the recipient's: only their START lifts it, never an admin.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald::domain::{
    Channel, LiftOutcome, SuppressOutcome, Suppression, SuppressionReason, one_of,
};
use herald::store::{Lifter, StoreError};
use herald::{Address, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{self, Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{SuppressionAddProblems, SuppressionListProblems, SuppressionRemoveProblems};
use crate::paging::{self, Listing};
use crate::{ApiError, App, FieldErrors};

const MAX_NOTE_CHARS: usize = 256;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Suppression)]
pub(crate) struct SuppressionBody {
    /// The E.164 number or email address.
    address: String,
    channel: Channel,
    reason: SuppressionReason,
    /// Who put it there: `recipient` (a STOP), `provider` (a bounce, a carrier's
    /// opt-out error), or the admin's token subject.
    source: String,
    /// The keyword and number a STOP went to, the bounce type, or an admin's note.
    detail: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When the change it records happened.
    #[schema(value_type = String, format = DateTime)]
    changed_at: Timestamp,
}

impl From<Suppression> for SuppressionBody {
    fn from(s: Suppression) -> Self {
        Self {
            address: s.address.to_string(),
            channel: s.channel(),
            reason: s.reason,
            source: s.source,
            detail: s.detail,
            created_at: s.created_at,
            changed_at: s.changed_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this channel's entries.
    #[param(value_type = Option<Channel>)]
    channel: Option<String>,
    /// Only entries for this reason.
    #[param(value_type = Option<SuppressionReason>)]
    reason: Option<String>,
    /// Where to go on: the `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SuppressionPage)]
pub(crate) struct Page {
    /// By channel, then reason, then address.
    suppressions: Vec<SuppressionBody>,
    /// Absent on the last page. A page filtered by reason alone may be short.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "suppressions",
    operation_id = "listSuppressions",
    summary = "The tenant's suppression list, a page at a time",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of suppressed addresses.", body = Page),
        SuppressionListProblems,
    ),
)]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Page>, ApiError> {
    let query: ListQuery = extract::query(query.as_deref())?;
    let mut errors = FieldErrors::default();
    let channel = query.channel.as_deref().and_then(|raw| {
        raw.parse::<Channel>()
            .inspect_err(|_| errors.add("channel", one_of::<Channel>()))
            .ok()
    });
    let reason = query.reason.as_deref().and_then(|raw| {
        raw.parse::<SuppressionReason>()
            .inspect_err(|_| errors.add("reason", one_of::<SuppressionReason>()))
            .ok()
    });
    let limit = paging::page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    let tenant = caller.principal.tenant();
    let params: Vec<(&'static str, String)> = [
        channel.map(|c| ("channel", c.to_string())),
        reason.map(|r| ("reason", r.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let path = route.as_str().to_owned();
    let listing = Listing::new(&route, tenant.clone(), path, params, limit, query.cursor);
    let after = listing.start(&app.cursors).await?;
    let page = app
        .store
        .list_suppressions(tenant, channel, reason, limit, after.as_deref())
        .await
        .map_err(|e| match e {
            // Sealed by the API, so only an older version's position reads wrong.
            StoreError::InvalidCursor => ApiError::InvalidFields(FieldErrors::one(
                "cursor",
                "is not a cursor this listing returned",
            )),
            other => other.into(),
        })?;
    let (next_cursor, next_url) = listing.next(&app.cursors, page.next.as_deref()).await?;
    Ok(Json(Page {
        suppressions: page
            .entries
            .into_iter()
            .map(SuppressionBody::from)
            .collect(),
        next_cursor,
        next_url,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddSuppression {
    /// An E.164 number (SMS) or an email address.
    #[schema(value_type = herald::Address)]
    address: String,
    /// Why, for people reading the list: at most 256 characters on one line.
    #[serde(default)]
    #[schema(schema_with = note_schema)]
    note: Option<String>,
}

/// What `add` checks of a note, or `null`.
fn note_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::schema::{SchemaType, Type};
    herald::schema::done(
        herald::schema::string(0, MAX_NOTE_CHARS, &format!("{}*", herald::schema::ONE_LINE))
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(
                "Why, for people reading the list: at most 256 characters on one line.",
            )),
    )
}

#[utoipa::path(
    post,
    path = "/v1/suppressions",
    tag = "suppressions",
    operation_id = "addSuppression",
    summary = "Suppress an address",
    description = "Messages of the tenant to this address end `suppressed` without being \
        sent, from the next chunk on. Added with reason `manual`; audited.",
    params(IdempotencyKeyHeader),
    request_body = AddSuppression,
    responses(
        (status = 201, description = "Suppressed.", body = SuppressionBody, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        SuppressionAddProblems,
    ),
)]
pub async fn add(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<AddSuppression>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let address = parse_address(&request.address)
        .inspect_err(|e| errors.add("/address", e.clone()))
        .ok();
    // Kept as written (no silent trim, as for every name): an empty note is none.
    let note = request.note.as_deref().filter(|n| !n.is_empty());
    if let Some(note) = note
        && (note.chars().count() > MAX_NOTE_CHARS || note.chars().any(char::is_control))
    {
        errors.add(
            "/note",
            format!("must be at most {MAX_NOTE_CHARS} characters, without control characters"),
        );
    }
    errors.check()?;
    let address = address.expect("checked");
    let canonical = serde_json::json!({ "address": address.folded(), "note": note });
    let (app, caller) = (&app, &caller);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let now = app.clock.timestamp();
        let entry = Suppression {
            address: address.clone(),
            reason: SuppressionReason::Manual,
            source: caller.principal.subject().to_owned(),
            detail: note.map(str::to_owned),
            created_at: now,
            changed_at: now,
        };
        let tenant = caller.principal.tenant();
        match app.store.suppress(tenant, &entry, false).await? {
            SuppressOutcome::Suppressed(entry) => {
                intake::audit(
                    app,
                    tenant,
                    caller,
                    "suppression.added",
                    entry.address.as_str(),
                )
                .await?;
                Ok(intake::stored_json(
                    StatusCode::CREATED,
                    &SuppressionBody::from(entry),
                    None,
                ))
            }
            SuppressOutcome::AlreadySuppressed(existing) => Err(ApiError::SuppressionExists {
                reason: existing.reason,
            }),
            SuppressOutcome::Superseded => Err(ApiError::Misrouted(
                "an admin's addition is never superseded",
            )),
        }
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{address}",
    tag = "suppressions",
    operation_id = "removeSuppression",
    summary = "Lift a suppression",
    description = "Messages to the address are sent again. An opt-out (`opt_out`) is the \
        recipient's and is refused here: only their START lifts it. Audited.",
    params(("address" = herald::Address, Path, description = "The E.164 number (`%2B` for `+`) or email address.")),
    responses(
        (status = 200, description = "Lifted; the entry as it was.", body = SuppressionBody),
        SuppressionRemoveProblems,
    ),
)]
pub async fn remove(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let address = parse_address(&raw).map_err(|reason| ApiError::InvalidId {
        what: "address",
        reason,
    })?;
    let tenant = caller.principal.tenant();
    let lifter = Lifter::Admin {
        subject: caller.principal.subject().to_owned(),
        at: app.clock.timestamp(),
    };
    match app
        .store
        .lift_suppression(tenant, &address, &lifter)
        .await?
    {
        LiftOutcome::Lifted(entry) => {
            intake::audit(
                &app,
                tenant,
                &caller,
                "suppression.removed",
                address.as_str(),
            )
            .await?;
            Ok(Json(SuppressionBody::from(entry)).into_response())
        }
        LiftOutcome::NotSuppressed | LiftOutcome::Superseded => {
            Err(ApiError::NotFound("The address is not suppressed."))
        }
        LiftOutcome::Refused(entry) => Err(ApiError::OptOutLocked {
            reason: entry.reason,
        }),
    }
}

/// An address of either channel: an email address if it has an `@`, else a number.
fn parse_address(raw: &str) -> Result<Address, String> {
    let channel = if raw.contains('@') {
        Channel::Email
    } else {
        Channel::Sms
    };
    Address::parse(channel, raw.trim()).map_err(|e| e.to_string())
}
