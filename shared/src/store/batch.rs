//! The batch record: its lifecycle (`accepted → enqueued → completed`, or `cancelled`)
//! and its progress counters, which the sender adds to once per chunk.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{
    Cancelled, Channel, Item, Store, StoreError, dynamo, get_n, get_s, is_condition_failure,
    key_item, n, s,
};
use crate::ids::{BatchId, TenantId};
use crate::keys;
use crate::status::MessageStatus;

// The API answers `as_str`, which is the lowercase variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Written, not yet (entirely) on the queue.
    Accepted,
    /// Every chunk is on the queue.
    Enqueued,
    /// Every message reached a final status.
    Completed,
    /// Messages not yet claimed will not be sent.
    Cancelled,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Enqueued => "enqueued",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Enqueued,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchView {
    pub id: BatchId,
    pub channel: Channel,
    pub status: BatchStatus,
    pub total: u32,
    pub chunk_count: u32,
    pub sent: u32,
    pub failed: u32,
    pub unknown: u32,
    pub cancelled: u32,
    pub created_by: String,
    pub created_at: String,
    pub enqueued_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub finished_at: Option<String>,
}

impl BatchView {
    /// Messages that reached a final status (as far as the sender is concerned).
    pub fn done(&self) -> u32 {
        self.sent + self.failed + self.unknown + self.cancelled
    }

    /// Messages still waiting for, or in the middle of, their send.
    pub fn pending(&self) -> u32 {
        self.total.saturating_sub(self.done())
    }
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(BatchView),
    AlreadyCancelled(BatchView),
    /// Every message had already reached a final status: there is nothing to cancel.
    AlreadyFinished(BatchView),
    NotFound,
}

/// One chunk's outcomes, added to the batch counters in one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub sent: u32,
    pub failed: u32,
    pub unknown: u32,
    pub cancelled: u32,
}

impl ChunkCounts {
    pub fn record(&mut self, status: MessageStatus) {
        match status {
            // A receipt may have moved a message on before its chunk was counted.
            MessageStatus::Sent | MessageStatus::Delivered => self.sent += 1,
            MessageStatus::Failed | MessageStatus::Undeliverable => self.failed += 1,
            MessageStatus::Unknown => self.unknown += 1,
            MessageStatus::Cancelled => self.cancelled += 1,
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Store {
    /// The batch record, read consistently (progress is read right after writes).
    pub async fn get_batch(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<Option<BatchView>, StoreError> {
        let key = keys::batch_meta(tenant, batch);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(|item| parse_batch(batch, &item)).transpose()
    }

    /// Cancels a batch that has not finished. The sender checks the batch before each
    /// chunk and ends its unclaimed messages as `cancelled`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub async fn cancel_batch(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        at: &str,
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
            .expression_attribute_values(":cancelled", s("cancelled"))
            .expression_attribute_values(":accepted", s("accepted"))
            .expression_attribute_values(":enqueued", s("enqueued"))
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(CancelOutcome::Cancelled(parse_batch(
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
                let view = parse_batch(batch, &old)?;
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
    /// from, in the same transaction. The count that brings the batch to its total also
    /// stamps `finished_at` (and `completed`, unless the batch was cancelled).
    pub async fn count_chunk(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        chunk: u32,
        counts: ChunkCounts,
        now_millis: u64,
    ) -> Result<(), StoreError> {
        let now = &crate::clock::rfc3339(now_millis);
        let meta = keys::batch_meta(tenant, batch);
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::chunk(tenant, batch, chunk))))
            .update_expression("SET counted_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(counted_at)")
            .expression_attribute_values(":now", s(now))
            .build()
            .map_err(dynamo)?;
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&meta)))
            .update_expression(
                "ADD sent_count :sent, failed_count :failed, unknown_count :unknown, \
                 cancelled_count :cancelled",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":sent", n(counts.sent))
            .expression_attribute_values(":failed", n(counts.failed))
            .expression_attribute_values(":unknown", n(counts.unknown))
            .expression_attribute_values(":cancelled", n(counts.cancelled))
            .build()
            .map_err(dynamo)?;
        let refund = match counts.cancelled {
            0 => Vec::new(),
            cancelled => {
                self.quota_refund(tenant, batch, cancelled, now_millis / 1000)
                    .await?
            }
        };
        let mut writes = vec![
            TransactWriteItem::builder().update(mark).build(),
            TransactWriteItem::builder().update(add).build(),
        ];
        writes.extend(refund);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        if let Err(e) = result {
            let cancelled = Cancelled::from_error(e)?;
            if cancelled.condition_failed(0) {
                // Counted by an earlier pass.
                return Ok(());
            }
            return Err(cancelled.into());
        }
        let Some(view) = self.get_batch(tenant, batch).await? else {
            return Ok(());
        };
        if view.done() < view.total || view.finished_at.is_some() {
            return Ok(());
        }
        let finish = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&meta)))
            .condition_expression("attribute_not_exists(finished_at)")
            .expression_attribute_values(":now", s(now));
        let finish = if view.status == BatchStatus::Cancelled {
            finish.update_expression("SET finished_at = :now")
        } else {
            finish
                .update_expression("SET finished_at = :now, #status = :completed")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":completed", s("completed"))
        };
        match finish.send().await {
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(dynamo),
        }
    }
}

fn parse_batch(id: BatchId, item: &Item) -> Result<BatchView, StoreError> {
    let key = keys::Key {
        pk: get_s(item, "pk").unwrap_or_default().to_owned(),
        sk: "META".into(),
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    };
    let count = |name: &str| get_n(item, name).unwrap_or(0);
    let opt = |name: &str| get_s(item, name).map(str::to_owned);
    Ok(BatchView {
        id,
        channel: get_s(item, "channel")
            .and_then(Channel::parse)
            .ok_or_else(|| corrupt("unknown channel"))?,
        status: get_s(item, "status")
            .and_then(BatchStatus::parse)
            .ok_or_else(|| corrupt("unknown status"))?,
        total: get_n(item, "total").ok_or_else(|| corrupt("no total"))?,
        chunk_count: get_n(item, "chunk_count").ok_or_else(|| corrupt("no chunk count"))?,
        sent: count("sent_count"),
        failed: count("failed_count"),
        unknown: count("unknown_count"),
        cancelled: count("cancelled_count"),
        created_by: opt("created_by").unwrap_or_default(),
        created_at: opt("created_at").unwrap_or_default(),
        enqueued_at: opt("enqueued_at"),
        cancelled_at: opt("cancelled_at"),
        finished_at: opt("finished_at"),
    })
}
