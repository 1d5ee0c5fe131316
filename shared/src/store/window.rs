//! A batch's window of queued chunks (issue 14): at most `window` of its chunks are on
//! the send queue at once, so the queue interleaves tenants instead of holding one
//! tenant's whole backlog. `window_next` on the batch record is the frontier: every
//! chunk below it was put on the queue once. The pass that counts a chunk moves the
//! frontier on by one and queues the chunk it passed; the sweeper restarts a window
//! that stopped moving (a crash or a failed enqueue between the count and the link).

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::batch::parse_batch;
use super::sweep::parse_listed;
use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{BatchTurn, BatchView, StalledWindow};
use crate::ids::{BatchId, CorrelationId, TenantId};
use crate::item::{
    Item, dynamo, get_n, get_named, get_s, is_condition_failure, key_item, n, name, s, time,
};
use crate::keys;

/// Restarts the sweeper makes of one window in a row, without a chunk counted between
/// them. Past it the window is left to the operator (a chunk that can never succeed is
/// parked in the DLQ and would be restarted forever).
pub const MAX_WINDOW_RESTARTS: u32 = 3;

impl Store {
    /// After a chunk is counted: stamps the batch's progress and, while chunks remain
    /// unqueued, moves its frontier on by one. Answers the batch as it now stands and
    /// the chunk the caller must queue, if any. One request unless the frontier is at
    /// the end already (the batch's last `window` chunks), then two.
    pub(super) async fn advance_window(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        now: Timestamp,
    ) -> Result<(BatchView, Option<u32>), StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let moved = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET progress_at = :now, window_restarts = :zero ADD window_next :one",
            )
            .condition_expression("window_next < chunk_count")
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match moved {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let link = get_n::<u32>(&item, "window_next").map(|next| next - 1);
                Ok((parse_batch(tenant, batch, &item)?, link))
            }
            // Every chunk is on the queue already (or the batch predates windows).
            Err(e) if is_condition_failure(&e) => {
                let out = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_item(&key)))
                    .update_expression("SET progress_at = :now, window_restarts = :zero")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":now", time(now))
                    .expression_attribute_values(":zero", n(0))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .map_err(dynamo)?;
                let item = out.attributes.unwrap_or_default();
                Ok((parse_batch(tenant, batch, &item)?, None))
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Batches enqueued before `cutoff`, not finished, whose last chunk was counted
    /// before `cutoff` (or none yet). A platform-level read across tenants: only the
    /// sweeper calls it.
    #[tracing::instrument(skip_all, fields(%cutoff))]
    pub(crate) async fn stalled_windows(
        &self,
        cutoff: Timestamp,
    ) -> Result<Vec<StalledWindow>, StoreError> {
        let filter = "attribute_not_exists(progress_at) OR progress_at < :cutoff";
        let items = self
            .listed_before(keys::window_shards(), cutoff, Some(filter))
            .await?;
        Ok(parse_listed(
            items,
            "the sweeper's window list",
            parse_window,
        ))
    }

    /// One batch's window as it stands (`None` when the batch is gone).
    pub(crate) async fn window(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<Option<StalledWindow>, StoreError> {
        let key = keys::batch_meta(tenant, batch);
        Ok(self.get(&key, true).await?.as_ref().and_then(parse_window))
    }

    /// The first `limit` chunks of a batch not yet counted, in order.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub(crate) async fn uncounted_chunks(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        limit: usize,
    ) -> Result<Vec<u32>, StoreError> {
        let pk = keys::batch_meta(tenant, batch).pk;
        let query = |q: QueryFluentBuilder| {
            q.key_condition_expression("pk = :pk AND begins_with(sk, :chunk)")
                .filter_expression("attribute_not_exists(counted_at)")
                .projection_expression("sk")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":chunk", s(keys::CHUNK_SK_PREFIX))
                .consistent_read(true)
        };
        let items = self.query_all(query, Some(limit)).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                get_s(item, "sk")?
                    .strip_prefix(keys::CHUNK_SK_PREFIX)?
                    .parse()
                    .ok()
            })
            .collect())
    }

    /// Takes a restart of a stalled window: the frontier moves to `next` (never back),
    /// the progress stamp to `now`, and the restart is counted. `false` when the window
    /// moved since the sweeper read it, the batch finished, or it was restarted
    /// `MAX_WINDOW_RESTARTS` times in a row: then nothing changed.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub(crate) async fn restart_window(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        seen: &StalledWindow,
        next: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET window_next = :next, progress_at = :now ADD window_restarts :one",
            )
            // A batch waiting for its tenant's turn is the line's to start, not the
            // sweeper's (the list it was read from may be behind).
            .condition_expression(
                "attribute_not_exists(finished_at) AND window_next = :seen \
                 AND (attribute_not_exists(window_restarts) OR window_restarts < :max) \
                 AND (attribute_not_exists(turn) OR turn = :taken)",
            )
            .expression_attribute_values(":taken", name(BatchTurn::Taken))
            .expression_attribute_values(":next", n(next.max(seen.window_next)))
            .expression_attribute_values(":seen", n(seen.window_next))
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_WINDOW_RESTARTS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(dynamo(e)),
        }
    }
}

/// A batch record as the sweeper and the line see its window.
pub(super) fn parse_window(item: &Item) -> Option<StalledWindow> {
    let chunk_count = get_n(item, "chunk_count")?;
    Some(StalledWindow {
        tenant: TenantId::parse(get_s(item, "tenant_id")?).ok()?,
        batch: get_s(item, "batch_id")?.parse().ok()?,
        chunk_count,
        window: get_n(item, "window").unwrap_or(chunk_count),
        window_next: get_n(item, "window_next").unwrap_or(chunk_count),
        restarts: get_n(item, "window_restarts").unwrap_or(0),
        correlation_id: CorrelationId::from_header(get_s(item, "correlation_id")),
        waiting: get_named(item, "turn") == Some(BatchTurn::Waiting),
        finished: item.contains_key("finished_at"),
    })
}
