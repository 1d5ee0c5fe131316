//! `GET /v1/batches/{id}/messages`: a batch's messages a page at a time, in batch
//! order, optionally only those in one status. The cursor (`paging`) holds the next
//! recipient's index, sealed to the batch and the status asked for.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use herald::MessageStatus;
use herald::domain::one_of;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::find;
use crate::extract::{self, Caller};
use crate::messages::MessageSummary;
use crate::openapi::ListProblems;
use crate::paging::{self, Listing};
use crate::{ApiError, App, FieldErrors};

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
    route: MatchedPath,
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
    let limit = paging::page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    let tenant = caller.principal.tenant();
    let batch = find(&app, tenant, &id).await?;
    let params = status
        .map(|status| ("status", status.to_string()))
        .into_iter()
        .collect();
    let path = format!("/v1/batches/{}/messages", batch.id);
    let listing = Listing::new(&route, tenant.clone(), path, params, limit, query.cursor);
    let from = match listing.start(&app.cursors).await? {
        None => 0,
        Some(position) => match position.parse::<u32>() {
            Ok(n) if n < batch.total => n,
            _ => {
                let errors = FieldErrors::one("cursor", "is not a cursor this listing returned");
                return Err(ApiError::InvalidFields(errors));
            }
        },
    };
    let page = app
        .store
        .list_messages(tenant, &batch, from, status, limit, LISTING_CHUNKS)
        .await?;
    let after = page.next_cursor.map(|next| next.to_string());
    let (next_cursor, next_url) = listing.next(&app.cursors, after.as_deref()).await?;
    Ok(Json(Page {
        messages: page
            .messages
            .into_iter()
            .map(MessageSummary::from)
            .collect(),
        next_cursor,
        next_url,
    }))
}
