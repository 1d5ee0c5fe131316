//! `GET /v1/batches/{id}/messages`: a batch's messages a page at a time, in batch
//! order, optionally only those in one status.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use herald::MessageStatus;
use herald::domain::one_of;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::find;
use crate::extract::{self, Caller};
use crate::messages::MessageSummary;
use crate::openapi::ListProblems;
use crate::{ApiError, App, FieldErrors};

const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;
/// Chunks read by one listing request (a filtered page may be short).
const LISTING_CHUNKS: u32 = 10;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only messages in this status.
    #[param(value_type = Option<MessageStatus>)]
    status: Option<String>,
    /// Where to go on: the `next_cursor` of the previous page (any other value is
    /// refused).
    #[param(pattern = "^(0|[1-9][0-9]{0,8})$")]
    cursor: Option<String>,
    /// Messages per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessagePage)]
pub(crate) struct Page {
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
    params(("id" = herald::BatchId, Path, description = "The batch id."), ListQuery),
    responses(
        (status = 200, description = "One page of messages, in batch order.", body = Page),
        ListProblems,
    ),
)]
pub async fn messages(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page>, ApiError> {
    let query: ListQuery = extract::query(query.as_deref())?;
    let mut errors = FieldErrors::default();
    let status = query.status.as_deref().and_then(|raw| {
        raw.parse::<MessageStatus>()
            .inspect_err(|_| errors.add("status", one_of::<MessageStatus>()))
            .ok()
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
    let tenant = caller.principal.tenant();
    let batch = find(&app, tenant, &id).await?;
    let from = match cursor {
        Some(Ok(n)) if n < batch.total => n,
        Some(_) => {
            let errors = FieldErrors::one("cursor", "is not a cursor this listing returned");
            return Err(ApiError::InvalidFields(errors));
        }
        None => 0,
    };
    let page = app
        .store
        .list_messages(tenant, &batch, from, status, limit, LISTING_CHUNKS)
        .await?;
    let next_url = page.next_cursor.map(|cursor| {
        let mut url = format!(
            "/v1/batches/{}/messages?cursor={cursor}&limit={limit}",
            batch.id
        );
        if let Some(status) = status {
            url.push_str(&format!("&status={status}"));
        }
        url
    });
    Ok(Json(Page {
        messages: page
            .messages
            .into_iter()
            .map(MessageSummary::from)
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
        next_url,
    }))
}
