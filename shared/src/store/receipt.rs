//! Receipts applied to their messages, once: the dedupe record of the provider's event
//! (a conditional put with a TTL), the message's move (conditional on the status it
//! was read in, forward only) and the count on the batch's receipt shard are one
//! transaction, so a receipt delivered any number of times, in any order, moves its
//! message and its batch's counts at most once. Events that match no message are kept
//! (`ORPHAN#{day}`) and counted, never dropped.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::message::{forward_only, history_entry};
use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{EventSource, MessageStatus, Receipt, ReceiptDeltas, ReceiptOutcome};
use crate::item::{
    Cancelled, Item, dynamo, get_named, get_s, key_item, n, name, s, time, with_key,
};
use crate::keys;

/// How long an event's dedupe record is kept: providers retry a callback for hours at
/// most (Twilio: up to its 15-second timeout, retried a few times), SNS for an hour.
const EVENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an orphaned event is kept for people to look at.
const ORPHAN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Transactions lost to another on the same item (a receipt shard), or to a status
/// that moved between the read and the write, are tried again this often.
const ATTEMPTS: u32 = 6;

/// An event kept because it matched nothing Herald sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanEvent {
    pub source: String,
    pub event_id: String,
    pub tenant: Option<String>,
    pub message: Option<String>,
    pub reason: String,
    pub at: Timestamp,
}

/// The messages of a group of receipts (one SQS batch's), read in one request: each
/// receipt's first read comes from here instead of a GetItem of its own. Read
/// consistently and just before the receipts are applied together, so it is a read
/// each receipt could have made itself; a transaction that finds the status moved
/// since reads the message again.
#[derive(Debug, Default)]
pub struct ReceiptReads(HashMap<String, Item>);

impl Store {
    /// The messages `receipts` are about (at most 100 receipts; repeats read once).
    pub async fn read_for_receipts(
        &self,
        receipts: &[&Receipt],
    ) -> Result<ReceiptReads, StoreError> {
        let mut keys: Vec<_> = receipts
            .iter()
            .map(|r| keys::message(&r.tenant, r.message))
            .collect();
        keys.sort_by(|a, b| a.pk.cmp(&b.pk));
        keys.dedup_by(|a, b| a.pk == b.pk);
        let items = self.get_many(&keys, true).await?;
        Ok(ReceiptReads(
            items
                .into_iter()
                .filter_map(|item| Some((get_s(&item, "pk")?.to_owned(), item)))
                .collect(),
        ))
    }

    /// Applies one receipt to its message, its first read from `reads` when they hold
    /// it (a message missing there is read again: it may have been written since). See
    /// `ReceiptOutcome` for what it can find.
    #[tracing::instrument(skip_all, fields(tenant_id = %receipt.tenant, message_id = %receipt.message, status = %receipt.status))]
    pub async fn apply_receipt(
        &self,
        receipt: &Receipt,
        reads: Option<&ReceiptReads>,
    ) -> Result<ReceiptOutcome, StoreError> {
        let source: &str = receipt.source.into();
        let key = keys::message(&receipt.tenant, receipt.message);
        let mut read = reads.and_then(|r| r.0.get(&key.pk)).cloned();
        for attempt in 0..ATTEMPTS {
            let item = match read.take() {
                Some(item) => Some(item),
                None => self.get(&key, true).await?,
            };
            let Some(item) = item else {
                let batch = keys::batch_meta(&receipt.tenant, receipt.message.batch());
                if self.get(&batch, true).await?.is_some() {
                    return Ok(ReceiptOutcome::Early);
                }
                return self.orphan(receipt, "no such message for the tenant").await;
            };
            let current: MessageStatus = get_named(&item, "status")
                .ok_or_else(|| crate::item::corrupt(&key, "unknown status"))?;
            if !current.is_settled() {
                return Ok(ReceiptOutcome::Early);
            }
            if let Some(known) = get_s(&item, "provider_ref")
                && known != receipt.provider_ref
            {
                return self
                    .orphan(receipt, "the message has another provider reference")
                    .await;
            }
            let recipient = get_s(&item, "recipient").unwrap_or_default().to_owned();
            let Some(deltas) = receipt
                .status
                .receipt_may_replace(current)
                .then(|| ReceiptDeltas::moved(current, receipt.status))
                .flatten()
            else {
                return Ok(match self.mark_seen(source, receipt, "stale").await? {
                    true => ReceiptOutcome::Stale { current, recipient },
                    false => ReceiptOutcome::Duplicate,
                });
            };
            let writes = vec![
                TransactWriteItem::builder()
                    .put(self.seen_put(source, receipt, "applied")?)
                    .build(),
                TransactWriteItem::builder()
                    .update(self.receipt_move(receipt, current)?)
                    .build(),
                TransactWriteItem::builder()
                    .update(self.receipt_count(receipt, deltas)?)
                    .build(),
            ];
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
            let Err(error) = result else {
                return Ok(ReceiptOutcome::Applied {
                    from: current,
                    recipient,
                });
            };
            let cancelled = Cancelled::from_error(error)?;
            if cancelled.condition_failed(0) {
                return Ok(ReceiptOutcome::Duplicate);
            }
            // The status moved since it was read (another receipt, or the sender), or
            // another transaction held an item: read again and decide again.
            tracing::debug!(attempt, "receipt transaction cancelled; trying again");
            let wait = 10u64 << attempt;
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..=wait))).await;
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    /// Records `receipt`'s event as seen with `outcome`; false if it was seen before.
    async fn mark_seen(
        &self,
        source: &str,
        receipt: &Receipt,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        self.put_new(seen_item(source, receipt, outcome)).await
    }

    fn seen_put(&self, source: &str, receipt: &Receipt, outcome: &str) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(seen_item(source, receipt, outcome)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)
    }

    /// The message's move from `current` to the receipt's status, conditional on
    /// `current` (and the rank list, as every status write).
    fn receipt_move(
        &self,
        receipt: &Receipt,
        current: MessageStatus,
    ) -> Result<Update, StoreError> {
        let status = receipt.status;
        let key = keys::message(&receipt.tenant, receipt.message);
        let (request, forward) = forward_only(self.update(&key), status);
        let mut request = request
            .condition_expression(format!("#status = :current AND {forward}"))
            .expression_attribute_values(":current", name(current))
            .expression_attribute_values(":status", name(status))
            .expression_attribute_values(":now", time(receipt.received_at))
            .expression_attribute_values(":gsi1sk", s(format!("{status}#{}", receipt.message)))
            .expression_attribute_values(":entry", history_entry(status, receipt.received_at))
            .expression_attribute_values(":provider", s(receipt.source.to_string()))
            .expression_attribute_values(":ref", s(&receipt.provider_ref));
        // An undelivered message says why; a delivered one no longer shows the error
        // that left it `unknown` (its history still does).
        let errors = if status == MessageStatus::Undelivered {
            request = request
                .expression_attribute_values(
                    ":code",
                    s(receipt.error_code.as_deref().unwrap_or("undelivered")),
                )
                .expression_attribute_values(
                    ":reason",
                    s(receipt
                        .error_reason
                        .as_deref()
                        .unwrap_or("the carrier could not deliver it")),
                );
            ", error_code = :code, error_reason = :reason"
        } else {
            " REMOVE error_code, error_reason"
        };
        let (set_errors, remove_errors) = match errors.starts_with(',') {
            true => (errors, ""),
            false => ("", errors),
        };
        // A text through SNS is found by its reference from now on (an `unknown` one
        // was found by its number, an entry that must not match another log).
        let reindex = if receipt.source == EventSource::Sns {
            request = request
                .expression_attribute_values(
                    ":gsi2pk",
                    s(keys::provider_ref_partition("sns", &receipt.provider_ref)),
                )
                .expression_attribute_values(
                    ":gsi2sk",
                    s(keys::provider_ref_entry(
                        &receipt.tenant,
                        receipt.message,
                        receipt.received_at,
                    )),
                );
            ", gsi2pk = :gsi2pk, gsi2sk = :gsi2sk"
        } else {
            ""
        };
        let built = request.update_expression(format!(
            "SET #status = :status, updated_at = :now, gsi1sk = :gsi1sk, \
             history = list_append(history, :entry), \
             provider = if_not_exists(provider, :provider), \
             provider_ref = if_not_exists(provider_ref, :ref){reindex}{set_errors}{remove_errors}"
        ));
        let input = built.as_input();
        Update::builder()
            .table_name(&self.table)
            .set_key(input.get_key().clone())
            .set_update_expression(input.get_update_expression().clone())
            .set_condition_expression(input.get_condition_expression().clone())
            .set_expression_attribute_names(input.get_expression_attribute_names().clone())
            .set_expression_attribute_values(input.get_expression_attribute_values().clone())
            .build()
            .map_err(dynamo)
    }

    /// The receipt's move, added to its message's receipt shard.
    fn receipt_count(
        &self,
        receipt: &Receipt,
        deltas: ReceiptDeltas,
    ) -> Result<Update, StoreError> {
        let key = keys::receipt_shard_of(&receipt.tenant, receipt.message);
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .expression_attribute_values(":tenant", s(receipt.tenant.as_str()))
            .expression_attribute_values(":batch", s(receipt.message.batch().to_string()));
        let mut adds = Vec::new();
        for (status, delta) in deltas.named() {
            if delta != 0 {
                // Named: `unknown` is one of DynamoDB's reserved words.
                update = update
                    .expression_attribute_names(format!("#{status}"), status)
                    .expression_attribute_values(format!(":{status}"), n(delta));
                adds.push(format!("#{status} :{status}"));
            }
        }
        update
            .update_expression(format!(
                "SET tenant_id = :tenant, batch_id = :batch ADD {}",
                adds.join(", ")
            ))
            .build()
            .map_err(dynamo)
    }

    /// Keeps an event that matches no message, once per event.
    async fn orphan(&self, receipt: &Receipt, reason: &str) -> Result<ReceiptOutcome, StoreError> {
        let source: &str = receipt.source.into();
        let event = OrphanEvent {
            source: source.to_owned(),
            event_id: receipt.event_id.clone(),
            tenant: Some(receipt.tenant.to_string()),
            message: Some(receipt.message.to_string()),
            reason: format!(
                "{reason} (provider reference {}, status {})",
                receipt.provider_ref, receipt.status
            ),
            at: receipt.received_at,
        };
        Ok(match self.record_orphan(&event).await? {
            true => ReceiptOutcome::Orphaned {
                reason: reason.to_owned(),
            },
            false => ReceiptOutcome::Duplicate,
        })
    }

    /// Keeps `event` (and its dedupe record) unless it was seen before; whether it was
    /// new. Also for inbound texts no tenant sends from.
    #[tracing::instrument(skip_all, fields(source = %event.source, event_id = %event.event_id))]
    pub async fn record_orphan(&self, event: &OrphanEvent) -> Result<bool, StoreError> {
        let expires = n(event.at.plus(ORPHAN_TTL).epoch_seconds());
        let mut orphan = with_key(
            &keys::orphan(event.at, &event.source, &event.event_id),
            [
                ("source", s(&event.source)),
                ("event_id", s(&event.event_id)),
                ("reason", s(&event.reason)),
                ("at", time(event.at)),
                ("expires_at", expires),
            ],
        );
        if let Some(tenant) = &event.tenant {
            orphan.insert("orphan_tenant".into(), s(tenant));
        }
        if let Some(message) = &event.message {
            orphan.insert("message_id".into(), s(message));
        }
        let seen = with_key(
            &keys::provider_event(&event.source, &event.event_id),
            [
                ("outcome", s("orphaned")),
                ("expires_at", n(event.at.plus(EVENT_TTL).epoch_seconds())),
            ],
        );
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(dynamo)
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put(seen)?).build())
            .transact_items(TransactWriteItem::builder().put(put(orphan)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) {
                    Ok(false)
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// Records an event that changes nothing but must not be handled twice (an
    /// inbound text); whether it is new.
    #[tracing::instrument(skip_all, fields(%source, %event_id))]
    pub async fn first_sighting(
        &self,
        source: &str,
        event_id: &str,
        outcome: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.put_new(with_key(
            &keys::provider_event(source, event_id),
            [
                ("outcome", s(outcome)),
                ("expires_at", n(at.plus(EVENT_TTL).epoch_seconds())),
            ],
        ))
        .await
    }

    /// The events kept as orphans on one UTC day, oldest first (at most 1,000).
    #[tracing::instrument(skip_all, fields(%day))]
    pub async fn orphans(&self, day: crate::clock::Day) -> Result<Vec<OrphanEvent>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::orphan_partition(day)))
            .limit(1000)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| OrphanEvent {
                source: get_s(item, "source").unwrap_or_default().to_owned(),
                event_id: get_s(item, "event_id").unwrap_or_default().to_owned(),
                tenant: get_s(item, "orphan_tenant").map(str::to_owned),
                message: get_s(item, "message_id").map(str::to_owned),
                reason: get_s(item, "reason").unwrap_or_default().to_owned(),
                at: crate::item::get_time(item, "at").unwrap_or(Timestamp::from_epoch_millis(0)),
            })
            .collect())
    }
}

/// The dedupe record of a receipt's event.
fn seen_item(source: &str, receipt: &Receipt, outcome: &str) -> Item {
    with_key(
        &keys::provider_event(source, &receipt.event_id),
        [
            ("outcome", s(outcome)),
            ("tenant_id", s(receipt.tenant.as_str())),
            ("message_id", s(receipt.message.to_string())),
            (
                "expires_at",
                n(receipt.received_at.plus(EVENT_TTL).epoch_seconds()),
            ),
        ],
    )
}
