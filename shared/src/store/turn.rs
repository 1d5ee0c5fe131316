//! A tenant's line of bulk batches (issue 14, `docs/concurrency.md`, "Turns"): one
//! item per tenant names the batch whose turn it is (`sending`) and the batches
//! waiting for theirs, in arrival order (`waiting`). Every change to the line is
//! conditioned on its `version`, and a batch's own `turn` moves in the same
//! transaction, so the line and the batches it names never disagree. Only the turn's
//! holder has chunks on the queue; it passes the turn on once its last chunk is
//! queued, so one tenant's campaign of a hundred batches holds no more of the send
//! queue than one batch does.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::window::parse_window;
use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{BatchTurn, StartedBatch};
use crate::ids::{BatchId, TenantId};
use crate::item::{
    Cancelled, corrupt, dynamo, get_n, get_named, get_s, is_condition_failure, key_item, n, name,
    time,
};
use crate::keys;

/// Writes to one tenant's line that may lose to others in a row before giving up.
const ATTEMPTS: u32 = 8;

/// Batches that may wait in one tenant's line. Past it intake refuses a bulk batch
/// until the line moves: the line is one item, and this keeps it near 30 KB, far from
/// DynamoDB's 400 KB (`docs/decisions.md`, "Turns").
pub const MAX_WAITING: usize = 1_000;

/// Where intake put a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// It holds the turn (or held it): its first window goes on the queue now.
    Taken,
    /// It waits behind the tenant's other batches; the batch before it queues its
    /// first window when it passes the turn on.
    Waiting,
}

/// The line as read.
#[derive(Debug, Default)]
pub(crate) struct Line {
    pub sending: Option<BatchId>,
    pub waiting: Vec<BatchId>,
    version: u64,
}

impl Store {
    /// The tenant's line, read consistently (an empty line when it has no item yet).
    pub(crate) async fn line(&self, tenant: &TenantId) -> Result<Line, StoreError> {
        let key = keys::tenant_turn(tenant);
        let Some(item) = self.get(&key, true).await? else {
            return Ok(Line::default());
        };
        let waiting = match item.get("waiting") {
            None => Vec::new(),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|entry| entry.as_s().ok().and_then(|id| id.parse().ok()))
                .collect::<Option<Vec<BatchId>>>()
                .ok_or_else(|| corrupt(&key, "a waiting batch id is not one"))?,
            Some(_) => return Err(corrupt(&key, "waiting is not a list")),
        };
        Ok(Line {
            sending: get_s(&item, "sending").and_then(|id| id.parse().ok()),
            waiting,
            version: get_n(&item, "version").unwrap_or(0),
        })
    }

    /// Puts `batch` in its tenant's line: it takes the turn when nobody holds it and
    /// nobody waits, else it waits at the end. Safe to repeat (a retry of the request,
    /// the sweeper finishing intake): a batch in line keeps its place.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch))]
    pub(crate) async fn take_turn(
        &self,
        tenant: &TenantId,
        batch: BatchId,
    ) -> Result<Turn, StoreError> {
        for _ in 0..ATTEMPTS {
            let line = self.line(tenant).await?;
            if line.sending == Some(batch) {
                return Ok(Turn::Taken);
            }
            if line.waiting.contains(&batch) {
                return Ok(Turn::Waiting);
            }
            let free = line.sending.is_none() && line.waiting.is_empty();
            let id = AttributeValue::S(batch.to_string());
            let (in_line, turn) = if free {
                let taken =
                    self.line_write(tenant, &line, "sending = :batch", None, [(":batch", id)])?;
                (taken, BatchTurn::Taken)
            } else {
                let appended = self.line_write(
                    tenant,
                    &line,
                    "waiting = list_append(if_not_exists(waiting, :none), :batches)",
                    None,
                    [
                        (":none", AttributeValue::L(Vec::new())),
                        (":batches", AttributeValue::L(vec![id])),
                    ],
                )?;
                (appended, BatchTurn::Waiting)
            };
            let marked = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::batch_meta(tenant, batch))))
                .update_expression("SET turn = :turn")
                .condition_expression("turn IN (:new, :waiting)")
                .expression_attribute_values(":turn", name(turn))
                .expression_attribute_values(":new", name(BatchTurn::New))
                .expression_attribute_values(":waiting", name(BatchTurn::Waiting))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(dynamo)?;
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(in_line).build())
                .transact_items(TransactWriteItem::builder().update(marked).build())
                .send()
                .await;
            let Err(e) = written else {
                return Ok(if free { Turn::Taken } else { Turn::Waiting });
            };
            let mut cancelled = Cancelled::from_error(e)?;
            if let Some(record) = cancelled.refused_item(1) {
                // Took its turn and passed it on long ago (a retry of a finished
                // request): its first window goes again, which the sender makes
                // harmless.
                return match get_named(&record, "turn") {
                    Some(BatchTurn::Taken) => Ok(Turn::Taken),
                    _ => Err(corrupt(
                        &keys::batch_meta(tenant, batch),
                        "a batch in intake with no turn of its own",
                    )),
                };
            }
            if !cancelled.condition_failed(0) {
                return Err(cancelled.into());
            }
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    /// Passes the tenant's turn on from `from`, which has queued its last chunk or
    /// will never finish; with `None`, hands on a turn nobody holds (a pass lost
    /// part-way). The first waiting batch takes it, stamped as progress at `now` so the
    /// sweeper restarts its window if its first window never reaches the queue.
    /// Answers that batch, for the caller to queue its first window; `None` when
    /// `from` does not hold the turn (another pass moved it) or nobody waits.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub(crate) async fn pass_turn(
        &self,
        tenant: &TenantId,
        from: Option<BatchId>,
        now: Timestamp,
    ) -> Result<Option<StartedBatch>, StoreError> {
        for _ in 0..ATTEMPTS {
            let line = self.line(tenant).await?;
            if line.sending != from {
                return Ok(None);
            }
            let Some(&head) = line.waiting.first() else {
                if from.is_none() {
                    return Ok(None);
                }
                let freed = self.line_write(tenant, &line, "", Some("sending"), [])?;
                if self.write_line_alone(freed).await? {
                    return Ok(None);
                }
                continue;
            };
            let head_key = keys::batch_meta(tenant, head);
            let head_window = self
                .get(&head_key, true)
                .await?
                .as_ref()
                .and_then(parse_window);
            let passed = self.line_write(
                tenant,
                &line,
                "sending = :head",
                Some("waiting[0]"),
                [(":head", AttributeValue::S(head.to_string()))],
            )?;
            let Some(window) = head_window.filter(|w| w.waiting && !w.finished) else {
                // Not a batch waiting in intake's sense (gone, finished): out of line.
                let dropped = self.line_write(tenant, &line, "", Some("waiting[0]"), [])?;
                if self.write_line_alone(dropped).await? {
                    tracing::warn!(batch_id = %head, "a batch in line was not waiting (gone or finished); dropped from the line");
                }
                continue;
            };
            let started = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&head_key)))
                .update_expression("SET turn = :taken, progress_at = :now")
                .condition_expression("turn = :waiting")
                .expression_attribute_values(":taken", name(BatchTurn::Taken))
                .expression_attribute_values(":waiting", name(BatchTurn::Waiting))
                .expression_attribute_values(":now", time(now))
                .build()
                .map_err(dynamo)?;
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(passed).build())
                .transact_items(TransactWriteItem::builder().update(started).build())
                .send()
                .await;
            match written {
                Ok(_) => {
                    return Ok(Some(StartedBatch {
                        tenant: tenant.clone(),
                        batch: head,
                        first_window: window.first_window(),
                        correlation_id: window.correlation_id,
                    }));
                }
                // Only a pass moves a batch out of `waiting`, and every pass is
                // conditioned on the line's version: read the line again.
                Err(e) => {
                    let cancelled = Cancelled::from_error(e)?;
                    if !(cancelled.condition_failed(0) || cancelled.condition_failed(1)) {
                        return Err(cancelled.into());
                    }
                }
            }
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    /// A write of the tenant's line as `line` read it: `set` (may be empty) and
    /// `remove` with the version moved on, only if nobody changed the line since.
    fn line_write<const N: usize>(
        &self,
        tenant: &TenantId,
        line: &Line,
        set: &str,
        remove: Option<&str>,
        values: [(&str, AttributeValue); N],
    ) -> Result<Update, StoreError> {
        let mut expression = match set {
            "" => "SET version = :next".to_owned(),
            set => format!("SET {set}, version = :next"),
        };
        if let Some(remove) = remove {
            expression.push_str(" REMOVE ");
            expression.push_str(remove);
        }
        let mut values: HashMap<String, AttributeValue> =
            values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        values.insert(":next".to_owned(), n(line.version + 1));
        let condition = if line.version == 0 {
            "attribute_not_exists(version)"
        } else {
            values.insert(":v".to_owned(), n(line.version));
            "version = :v"
        };
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::tenant_turn(tenant))))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(dynamo)
    }

    /// A write of the line on its own, not in a transaction: whether it was written
    /// (`false`: the line changed since it was read).
    async fn write_line_alone(&self, write: Update) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(write.table_name)
            .set_key(Some(write.key))
            .update_expression(write.update_expression)
            .set_condition_expression(write.condition_expression)
            .set_expression_attribute_values(write.expression_attribute_values)
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(dynamo(e)),
        }
    }
}
