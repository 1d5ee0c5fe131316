//! The batch record: its lifecycle (`accepted → enqueued → completed`, or `cancelled`)
//! and its progress counters, which the sender adds to once per chunk.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{
    BatchStatus, BatchTurn, BatchView, CancelOutcome, ChunkCounts, Counted, NewBatch, ReceiptDeltas,
};
use crate::ids::{BatchId, TenantId};
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_n, get_named, get_s, get_time, is_condition_failure,
    key_item, n, name, s, time, with_key,
};
use crate::keys::{self, SCHEMA_VERSION};

impl Store {
    /// Writes the chunks, then the batch record. Chunks first: a batch record only
    /// exists once all its work is durable, so the sweeper can trust it. Both are
    /// written only where they do not exist yet, so a retry that finishes the batch of
    /// a request that died changes nothing the first attempt (or the sender) wrote.
    #[tracing::instrument(skip_all, fields(tenant_id = %batch.tenant, batch_id = %batch.id))]
    pub async fn create_batch(&self, batch: &NewBatch) -> Result<(), StoreError> {
        self.write_chunks(batch).await?;
        let key = keys::batch_meta(&batch.tenant, batch.id);
        let mut item = with_key(
            &key,
            [
                ("tenant_id", s(batch.tenant.as_str())),
                ("batch_id", s(batch.id.to_string())),
                ("channel", name(batch.channel)),
                ("status", name(BatchStatus::Accepted)),
                ("total", n(batch.total())),
                ("chunk_count", n(batch.chunks.len())),
                ("sent_count", n(0)),
                ("failed_count", n(0)),
                ("unknown_count", n(0)),
                ("cancelled_count", n(0)),
                ("suppressed_count", n(0)),
                ("created_by", s(&batch.created_by)),
                ("created_at", time(batch.created_at)),
                ("correlation_id", s(batch.correlation_id.as_str())),
                // The batch's window (issue 14): chunks below `window_next` were put on
                // the queue; intake puts the first window there.
                ("window", n(batch.window)),
                ("window_next", n(batch.first_window())),
                ("schema_version", n(SCHEMA_VERSION)),
                // Listed for the sweeper until `mark_enqueued` removes it.
                ("gsi1pk", s(keys::unqueued_partition(batch.id))),
                (
                    "gsi1sk",
                    s(format!(
                        "{}#{}#{}",
                        batch.created_at, batch.tenant, batch.id
                    )),
                ),
            ],
        );
        if batch.takes_turns {
            item.insert("turn".to_owned(), name(BatchTurn::New));
        }
        // `false` for a retry finishing the batch of a request that died (same
        // idempotency key and request): the record is already there, as wanted.
        self.put_new(item).await?;
        Ok(())
    }

    /// Records that the batch's first window is on the queue: `accepted` becomes
    /// `enqueued` (a batch cancelled meanwhile stays cancelled) and the batch moves from
    /// the sweeper's list of unqueued batches to its list of windows to watch, until it
    /// finishes.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub async fn mark_enqueued(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let promoted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("SET #status = :enqueued")
            .condition_expression("#status = :accepted")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":enqueued", name(BatchStatus::Enqueued))
            .expression_attribute_values(":accepted", name(BatchStatus::Accepted))
            .send()
            .await;
        match promoted {
            // Already enqueued (a retry finishing the job) or cancelled.
            Err(e) if is_condition_failure(&e) => {}
            other => other.map(|_| ()).map_err(dynamo)?,
        }
        let watched = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET enqueued_at = if_not_exists(enqueued_at, :at), gsi1pk = :list, gsi1sk = :listed",
            )
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(finished_at)")
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(":list", s(keys::window_partition(batch)))
            .expression_attribute_values(":listed", s(format!("{at}#{tenant}#{batch}")))
            .send()
            .await;
        match watched {
            // Finished already (its sender was quicker than this request): off both
            // lists.
            Err(e) if is_condition_failure(&e) => {}
            other => return other.map(|_| ()).map_err(dynamo),
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET enqueued_at = if_not_exists(enqueued_at, :at) REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", time(at))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    /// The batch record with its receipt shards summed, read consistently (progress
    /// is read right after writes): what the API shows.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub async fn get_batch(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<Option<BatchView>, StoreError> {
        let Some(mut view) = self.batch_record(tenant, batch).await? else {
            return Ok(None);
        };
        view.receipts = self.receipt_deltas(tenant, batch).await?;
        Ok(Some(view))
    }

    /// The batch record alone (no receipts): what the sender decides with.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub async fn batch_record(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<Option<BatchView>, StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let out = self.get(&key, true).await?;
        out.map(|item| parse_batch(tenant, batch, &item))
            .transpose()
    }

    /// The batch's receipt shards, summed: one BatchGetItem of `RECEIPT_SHARDS` small
    /// items (shards no receipt reached yet do not exist).
    async fn receipt_deltas(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<ReceiptDeltas, StoreError> {
        let shards: Vec<_> = (0..keys::RECEIPT_SHARDS)
            .map(|shard| keys::receipt_shard(tenant, batch, shard))
            .collect();
        let mut total = ReceiptDeltas::default();
        for item in self.get_many(&shards, true).await? {
            let delta = |name: &str| get_n::<i64>(&item, name).unwrap_or(0);
            total += ReceiptDeltas {
                sent: delta("sent"),
                unknown: delta("unknown"),
                delivered: delta("delivered"),
                undelivered: delta("undelivered"),
            };
        }
        Ok(total)
    }

    /// Cancels a batch that has not finished. The sender checks the batch before each
    /// chunk and ends its unclaimed messages as `cancelled`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub async fn cancel_batch(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        at: Timestamp,
    ) -> Result<CancelOutcome, StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("SET #status = :cancelled, cancelled_at = :at")
            .condition_expression("#status IN (:accepted, :enqueued)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", name(BatchStatus::Cancelled))
            .expression_attribute_values(":accepted", name(BatchStatus::Accepted))
            .expression_attribute_values(":enqueued", name(BatchStatus::Enqueued))
            .expression_attribute_values(":at", time(at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(CancelOutcome::Cancelled(parse_batch(
                tenant,
                batch,
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                let Some(old) = failure.item else {
                    return Ok(CancelOutcome::NotFound);
                };
                let view = parse_batch(tenant, batch, &old)?;
                Ok(match view.status {
                    BatchStatus::Cancelled => CancelOutcome::AlreadyCancelled(view),
                    _ => CancelOutcome::AlreadyFinished(view),
                })
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Adds a finished chunk's outcomes to the batch counters, once: the counters and
    /// a `counted_at` marker on the chunk are written in one transaction, so a second
    /// pass over the chunk (a duplicate delivery, a retry after a crash) adds nothing.
    /// One write per chunk, not per message, so a large batch does not hammer its batch
    /// item. Cancelled messages are given back to the daily quota they were reserved
    /// from, in the same transaction, under a marker of their own on the batch's
    /// reservation (`quota_refund`): a chunk is refunded at most once even if its
    /// `counted_at` were lost. The count that brings the batch to its total also
    /// stamps `finished_at` (and `completed`, unless the batch was cancelled) and takes
    /// the batch off the sweeper's window list. The pass that counts the chunk also
    /// moves the batch's window on (`advance_window`): the answer names the chunk it
    /// must queue next.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch, chunk = chunk))]
    pub async fn count_chunk(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        chunk: u32,
        counts: ChunkCounts,
        now: Timestamp,
    ) -> Result<Counted, StoreError> {
        let meta = keys::batch_meta(tenant, batch);
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::chunk(tenant, batch, chunk))))
            .update_expression("SET counted_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(counted_at)")
            .expression_attribute_values(":now", time(now))
            .build()
            .map_err(dynamo)?;
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&meta)))
            .update_expression(
                "ADD sent_count :sent, failed_count :failed, unknown_count :unknown, \
                 cancelled_count :cancelled, suppressed_count :suppressed",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":sent", n(counts.sent))
            .expression_attribute_values(":failed", n(counts.failed))
            .expression_attribute_values(":unknown", n(counts.unknown))
            .expression_attribute_values(":cancelled", n(counts.cancelled))
            .expression_attribute_values(":suppressed", n(counts.suppressed))
            .build()
            .map_err(dynamo)?;
        let refund = match counts.cancelled {
            0 => Vec::new(),
            cancelled => {
                self.quota_refund(tenant, batch, chunk, cancelled, now)
                    .await?
            }
        };
        let mut writes = vec![
            TransactWriteItem::builder().update(mark).build(),
            TransactWriteItem::builder().update(add).build(),
        ];
        // `quota_refund` writes its marker last.
        let refund_marker = (!refund.is_empty()).then(|| writes.len() + refund.len() - 1);
        writes.extend(refund);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        if let Err(e) = result {
            let cancelled = Cancelled::from_error(e)?;
            // Counted by an earlier pass: the chunk says so, or (for a chunk with
            // cancelled messages) the reservation's record of its refund does.
            if cancelled.condition_failed(0)
                || refund_marker.is_some_and(|marker| cancelled.condition_failed(marker))
            {
                return Ok(Counted::Before);
            }
            return Err(cancelled.into());
        }
        let (view, link) = self.advance_window(tenant, batch, now).await?;
        // Its last chunk is on the queue: the tenant's next batch may start. Every
        // one of its last `window` chunks tries; only the first finds the turn its own.
        let started = match (link, view.turn) {
            (None, Some(BatchTurn::Taken)) => {
                match self.pass_turn(tenant, Some(batch), now).await {
                    Ok(started) => started,
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "could not pass the tenant's turn on; the sweeper will");
                        None
                    }
                }
            }
            _ => None,
        };
        let counted = Counted::Now { link, started };
        if view.done() < view.total || view.finished_at.is_some() {
            return Ok(counted);
        }
        let finish = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&meta)))
            .condition_expression("attribute_not_exists(finished_at)")
            .expression_attribute_values(":now", time(now));
        let finish = if view.status == BatchStatus::Cancelled {
            finish.update_expression("SET finished_at = :now REMOVE gsi1pk, gsi1sk")
        } else {
            finish
                .update_expression(
                    "SET finished_at = :now, #status = :completed REMOVE gsi1pk, gsi1sk",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":completed", name(BatchStatus::Completed))
        };
        match finish.send().await {
            Err(e) if is_condition_failure(&e) => Ok(counted),
            other => other.map(|_| counted).map_err(dynamo),
        }
    }
}

pub(super) fn parse_batch(
    tenant: &TenantId,
    id: BatchId,
    item: &Item,
) -> Result<BatchView, StoreError> {
    let key = keys::batch_meta(tenant, id);
    let corrupt = |reason: &str| corrupt(&key, reason);
    let count = |name: &str| get_n(item, name).unwrap_or(0);
    let opt = |name: &str| get_s(item, name).map(str::to_owned);
    Ok(BatchView {
        id,
        channel: get_named(item, "channel").ok_or_else(|| corrupt("unknown channel"))?,
        status: get_named(item, "status").ok_or_else(|| corrupt("unknown status"))?,
        total: get_n(item, "total").ok_or_else(|| corrupt("no total"))?,
        chunk_count: get_n(item, "chunk_count").ok_or_else(|| corrupt("no chunk count"))?,
        sent: count("sent_count"),
        failed: count("failed_count"),
        unknown: count("unknown_count"),
        cancelled: count("cancelled_count"),
        suppressed: count("suppressed_count"),
        receipts: ReceiptDeltas::default(),
        created_by: opt("created_by").unwrap_or_default(),
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
        enqueued_at: get_time(item, "enqueued_at"),
        cancelled_at: get_time(item, "cancelled_at"),
        finished_at: get_time(item, "finished_at"),
        turn: get_named(item, "turn"),
    })
}
