//! Message items: created by the sender's claim (or by a cancel), moved on by the
//! settle, and read back with their history. A status only moves forward: every
//! status write names the statuses it may find (`MessageStatus::replaceable`) in its
//! condition, so a duplicated or late write changes nothing.
//!
//! One file for every write to a message item (claim, settle, release, end unsent):
//! their conditions only make sense read together, as one state machine.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{ConditionalUpdate, ConditionalWrite, Store, StoreError};
use crate::address::Address;
use crate::clock::Timestamp;
use crate::domain::{
    Chunk, ClaimOutcome, HistoryEntry, Lease, MessageStatus, MessageView, Settlement,
};
use crate::ids::{MessageId, TenantId};
use crate::item::{
    Item, corrupt, dynamo, get_n, get_named, get_s, get_time, is_condition_failure, key_item, n,
    name, s, time,
};
use crate::keys::{self, Key, SCHEMA_VERSION};

/// The provider whose texts are found by reference (`Provider::name` of the SNS adapter).
const SNS: &str = "sns";

impl Store {
    /// Takes exclusive hold of one message for sending: creates it as `sending`, or
    /// takes it over if the previous holder released it (known not sent). Anything
    /// else is reported, never overwritten.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id))]
    pub async fn claim(
        &self,
        tenant: &TenantId,
        id: MessageId,
        chunk: &Chunk,
        to: &Address,
        lease: &Lease,
    ) -> Result<ClaimOutcome, StoreError> {
        self.write_one(&self.claim_write(tenant, id, chunk, to, lease))
            .await
    }

    /// The claim `claim` makes, to apply alone or with others (`Store::write_all`).
    pub fn claim_write(
        &self,
        tenant: &TenantId,
        id: MessageId,
        chunk: &Chunk,
        to: &Address,
        lease: &Lease,
    ) -> ClaimWrite {
        let key = keys::message(tenant, id);
        let token = ulid::Ulid::new().to_string();
        let mut request = ConditionalUpdate::new(key.clone(), 19);
        let forward = forward_only_into(&mut request, MessageStatus::Sending);
        request.update = "SET #status = :sending, claim_token = :token, lease_until = :lease, \
             tenant_id = :tenant, batch_id = :batch, recipient = :to, channel = :channel, \
             created_at = if_not_exists(created_at, :created), updated_at = :now, \
             gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, schema_version = :v, \
             history = list_append(if_not_exists(history, :accepted), :entry) \
             ADD attempts :one"
            .to_owned();
        request.condition = format!(
            "attribute_not_exists(pk) OR ({forward} AND #status = :sending \
             AND attribute_not_exists(claim_token))"
        );
        request
            .value(":sending", name(MessageStatus::Sending))
            .value(":token", s(&token))
            .value(":lease", n(lease.until.epoch_seconds()))
            .value(":to", s(to.as_str()))
            .value(":now", time(lease.now))
            .value(":gsi1sk", s(format!("sending#{id}")))
            .value(":entry", history_entry(MessageStatus::Sending, lease.now))
            .value(":one", n(1))
            .value(":tenant", s(tenant.as_str()))
            .value(":batch", s(id.batch().to_string()))
            .value(":channel", name(chunk.channel))
            .value(":created", time(chunk.created_at))
            .value(":gsi1pk", s(keys::batch_messages_partition(tenant, id)))
            .value(":v", n(SCHEMA_VERSION))
            .value(
                ":accepted",
                history_entry(MessageStatus::Accepted, chunk.created_at),
            );
        ClaimWrite {
            request,
            token,
            key,
            now: lease.now.epoch_seconds(),
        }
    }

    /// Ends a claim with the message's outcome, only if the claim is still ours.
    /// Returns false when it was not (the lease was taken over): the outcome is then
    /// not ours to record. The token stays on the item as `settled_by`, so a write the
    /// SDK retried after an attempt timed out (the first attempt applied, the second
    /// finds the claim gone) is still known as ours, and its outcome is counted once.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id, status = %settlement.status()))]
    pub async fn settle(
        &self,
        tenant: &TenantId,
        id: MessageId,
        token: &str,
        settlement: &Settlement,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write_one(&self.settle_write(tenant, id, token, settlement, now))
            .await
    }

    /// The write `settle` makes, to apply alone or with others (`Store::write_all`).
    pub fn settle_write(
        &self,
        tenant: &TenantId,
        id: MessageId,
        token: &str,
        settlement: &Settlement,
        now: Timestamp,
    ) -> SettleWrite {
        let status = settlement.status();
        let mut request = ConditionalUpdate::new(keys::message(tenant, id), 15);
        let forward = forward_only_into(&mut request, status);
        request.condition = format!("claim_token = :token AND #status = :sending AND {forward}");
        request
            .value(":token", s(token))
            .value(":sending", name(MessageStatus::Sending))
            .value(":status", name(status))
            .value(":now", time(now))
            .value(":gsi1sk", s(format!("{status}#{id}")))
            .value(":entry", history_entry(status, now));
        // SNS's delivery logs name only SNS's message id (or, for a text whose answer
        // was lost, the number): the settle indexes the message by it (gsi2), in the
        // same write, so finding it costs no request per send.
        let indexed = |request: &mut ConditionalUpdate, partition: String| {
            request
                .value(":gsi2pk", s(partition))
                .value(":gsi2sk", s(keys::provider_ref_entry(tenant, id, now)));
        };
        const INDEXED: &str = ", gsi2pk = :gsi2pk, gsi2sk = :gsi2sk";
        let outcome_fields = match settlement {
            Settlement::Sent {
                provider,
                provider_ref,
            } => {
                request
                    .value(":provider", s(provider))
                    .value(":ref", s(provider_ref));
                if provider == SNS {
                    indexed(
                        &mut request,
                        keys::provider_ref_partition(SNS, provider_ref),
                    );
                    format!("provider = :provider, provider_ref = :ref{INDEXED}")
                } else {
                    "provider = :provider, provider_ref = :ref".to_owned()
                }
            }
            Settlement::Failed { code, reason } => {
                request.value(":code", s(code)).value(":reason", s(reason));
                "error_code = :code, error_reason = :reason".to_owned()
            }
            Settlement::Unknown {
                reason,
                lost_text_to,
            } => {
                request.value(":reason", s(reason));
                match lost_text_to {
                    Some(to) => {
                        indexed(&mut request, keys::lost_text_partition(to));
                        format!("error_reason = :reason{INDEXED}")
                    }
                    None => "error_reason = :reason".to_owned(),
                }
            }
        };
        request.update = format!(
            "SET #status = :status, settled_as = :status, settled_by = :token, \
             updated_at = :now, gsi1sk = :gsi1sk, history = list_append(history, :entry), \
             {outcome_fields} REMOVE claim_token, lease_until"
        );
        SettleWrite {
            request,
            token: token.to_owned(),
        }
    }

    /// Gives a claim back after a failure known to have sent nothing, so a later
    /// delivery of the chunk may claim the message again. The status stays `sending`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id))]
    pub async fn release(
        &self,
        tenant: &TenantId,
        id: MessageId,
        token: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = keys::message(tenant, id);
        let (request, forward) = forward_only(self.update(&key), MessageStatus::Sending);
        let result = request
            .update_expression(
                "SET last_error = :reason, updated_at = :now REMOVE claim_token, lease_until",
            )
            .condition_expression(format!("claim_token = :token AND {forward}"))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", time(now))
            .send()
            .await;
        match result {
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(dynamo),
        }
    }

    /// Ends a message that is not to be sent (its batch was cancelled, or its
    /// recipient is suppressed) as `status`, unless a sender claimed it first (a claim
    /// in flight finishes on its own). `None` when it was ended so; otherwise the
    /// status the sender left it in.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id, %status))]
    pub async fn end_unsent(
        &self,
        tenant: &TenantId,
        id: MessageId,
        chunk: &Chunk,
        to: &Address,
        status: Unsent,
        now: Timestamp,
    ) -> Result<Option<MessageStatus>, StoreError> {
        let key = keys::message(tenant, id);
        let (ended, reason) = match &status {
            Unsent::Cancelled => (MessageStatus::Cancelled, None),
            Unsent::Suppressed { reason } => (MessageStatus::Suppressed, Some(reason.as_str())),
        };
        let (request, forward) = forward_only(self.update(&key), ended);
        let mut request = request
            .condition_expression(format!(
                "attribute_not_exists(pk) OR ({forward} AND #status = :sending \
                 AND attribute_not_exists(claim_token))"
            ))
            .expression_attribute_values(":ended", name(ended))
            .expression_attribute_values(":sending", name(MessageStatus::Sending))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":gsi1sk", s(format!("{ended}#{id}")))
            .expression_attribute_values(":entry", history_entry(ended, now));
        let mut fields = String::new();
        if let Some(reason) = reason {
            request = request
                .expression_attribute_values(":code", s("suppressed"))
                .expression_attribute_values(":reason", s(reason));
            fields.push_str(", error_code = :code, error_reason = :reason");
        }
        let request = request.update_expression(format!(
            "SET #status = :ended, settled_as = :ended, tenant_id = :tenant, batch_id = :batch, \
             recipient = :to, channel = :channel, created_at = if_not_exists(created_at, :created), \
             updated_at = :now, gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, schema_version = :v, \
             history = list_append(if_not_exists(history, :accepted), :entry){fields}"
        ));
        let result = created_from_chunk(request, tenant, id, chunk)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                let old = failure.item.unwrap_or_default();
                let status: MessageStatus =
                    get_named(&old, "status").unwrap_or(MessageStatus::Sending);
                Ok(Some(if status.is_settled() {
                    sender_outcome(&old)
                } else {
                    status
                }))
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// One message as its tenant sees it. Before the sender has claimed it the message
    /// exists only inside its chunk, and is reported as `accepted`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, message_id = %id))]
    pub async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        let key = keys::message(tenant, id);
        let out = self.get(&key, false).await?;
        if let Some(item) = out {
            return parse_message(&key, id, &item).map(Some);
        }
        let chunk = self
            .load_chunk(tenant, id.batch(), keys::chunk_of(id))
            .await?;
        Ok(chunk.and_then(|chunk| {
            chunk
                .messages(id.batch())
                .find(|(m, _)| *m == id)
                .map(|(id, r)| chunk.unclaimed(id, r))
        }))
    }

    pub(super) fn update(&self, key: &Key) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
    }
}

/// A claim ready to apply (`Store::claim_write`).
pub struct ClaimWrite {
    request: ConditionalUpdate,
    token: String,
    key: Key,
    /// The lease's start, in epoch seconds: a lease found ending before it has expired.
    now: u64,
}

impl ConditionalWrite for ClaimWrite {
    type Outcome = ClaimOutcome;

    fn request(&self) -> &ConditionalUpdate {
        &self.request
    }

    fn applied(&self) -> ClaimOutcome {
        ClaimOutcome::Claimed {
            token: self.token.clone(),
        }
    }

    fn refused(&self, old: Item) -> Result<ClaimOutcome, StoreError> {
        // The SDK sent the claim again after an attempt that timed out had applied:
        // the claim found is this one, not another sender's.
        if get_s(&old, "claim_token") == Some(self.token.as_str()) {
            return Ok(self.applied());
        }
        let status: Option<MessageStatus> = get_named(&old, "status");
        if status.is_some_and(|s| s.is_settled()) {
            return Ok(ClaimOutcome::Settled(sender_outcome(&old)));
        }
        let lease_until: u64 = get_n(&old, "lease_until").unwrap_or(0);
        match get_s(&old, "claim_token") {
            Some(token) => Ok(ClaimOutcome::HeldElsewhere {
                lease_expired: lease_until < self.now,
                token: token.to_owned(),
            }),
            None => Err(corrupt(
                &self.key,
                format!("message is {status:?} without a claim"),
            )),
        }
    }
}

/// A settle ready to apply (`Store::settle_write`); its outcome is whether the claim
/// was still ours.
pub struct SettleWrite {
    request: ConditionalUpdate,
    token: String,
}

impl ConditionalWrite for SettleWrite {
    type Outcome = bool;

    fn request(&self) -> &ConditionalUpdate {
        &self.request
    }

    fn applied(&self) -> bool {
        true
    }

    fn refused(&self, old: Item) -> Result<bool, StoreError> {
        Ok(get_s(&old, "settled_by") == Some(self.token.as_str()))
    }
}

/// How a message the sender does not send ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsent {
    Cancelled,
    /// The recipient is on the tenant's suppression list, for this reason.
    Suppressed {
        reason: String,
    },
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "cancelled",
            Self::Suppressed { .. } => "suppressed",
        })
    }
}

/// How the sender left a settled message (`settled_as`), which a receipt may have
/// moved on since; items settled before `settled_as` was written have their status.
pub(super) fn sender_outcome(item: &Item) -> MessageStatus {
    get_named(item, "settled_as")
        .or_else(|| get_named(item, "status"))
        .unwrap_or(MessageStatus::Unknown)
}

/// `#status IN (...)`, the statuses a write of `to` may find, with their values bound
/// on `request`: the condition that keeps a status from moving backward.
pub(super) fn forward_only(
    request: UpdateItemFluentBuilder,
    to: MessageStatus,
) -> (UpdateItemFluentBuilder, String) {
    let mut request = request.expression_attribute_names("#status", "status");
    let mut placeholders = Vec::new();
    for (i, status) in to.replaceable().enumerate() {
        let placeholder = format!(":from{i}");
        request = request.expression_attribute_values(&placeholder, name(status));
        placeholders.push(placeholder);
    }
    (request, format!("#status IN ({})", placeholders.join(", ")))
}

/// `forward_only` for a write built as a `ConditionalUpdate`.
fn forward_only_into(request: &mut ConditionalUpdate, to: MessageStatus) -> String {
    request.name("#status", "status");
    let mut condition = String::from("#status IN (");
    for (i, status) in to.replaceable().enumerate() {
        let placeholder = format!(":from{i}");
        if i > 0 {
            condition.push_str(", ");
        }
        condition.push_str(&placeholder);
        request.value(&placeholder, name(status));
    }
    condition.push(')');
    condition
}

/// The attributes a write that may create a message item sets from its chunk.
fn created_from_chunk(
    request: UpdateItemFluentBuilder,
    tenant: &TenantId,
    id: MessageId,
    chunk: &Chunk,
) -> UpdateItemFluentBuilder {
    request
        .expression_attribute_values(":tenant", s(tenant.as_str()))
        .expression_attribute_values(":batch", s(id.batch().to_string()))
        .expression_attribute_values(":channel", name(chunk.channel))
        .expression_attribute_values(":created", time(chunk.created_at))
        .expression_attribute_values(":gsi1pk", s(keys::batch_messages_partition(tenant, id)))
        .expression_attribute_values(":v", n(SCHEMA_VERSION))
        .expression_attribute_values(
            ":accepted",
            history_entry(MessageStatus::Accepted, chunk.created_at),
        )
}

pub(super) fn parse_message(
    key: &Key,
    id: MessageId,
    item: &Item,
) -> Result<MessageView, StoreError> {
    let corrupt = |reason: &str| corrupt(key, reason);
    let history = item
        .get("history")
        .and_then(|v| v.as_l().ok())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let m = e.as_m().ok()?;
                    Some(HistoryEntry {
                        status: get_named(m, "status")?,
                        at: get_time(m, "at")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let opt = |name: &str| get_s(item, name).map(str::to_owned);
    let required_time = |name: &str| get_time(item, name).ok_or_else(|| corrupt(name));
    Ok(MessageView {
        id,
        channel: get_named(item, "channel").ok_or_else(|| corrupt("unknown channel"))?,
        to: opt("recipient").ok_or_else(|| corrupt("no recipient"))?,
        status: get_named(item, "status").ok_or_else(|| corrupt("unknown status"))?,
        provider: opt("provider"),
        provider_ref: opt("provider_ref"),
        attempts: get_n(item, "attempts").unwrap_or(0),
        error_code: opt("error_code"),
        error_reason: opt("error_reason"),
        created_at: required_time("created_at")?,
        updated_at: required_time("updated_at")?,
        history,
    })
}

pub(super) fn history_entry(status: MessageStatus, at: Timestamp) -> AttributeValue {
    AttributeValue::L(vec![AttributeValue::M(HashMap::from([
        ("status".to_owned(), name(status)),
        ("at".to_owned(), time(at)),
    ]))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BatchId;

    #[test]
    fn a_message_item_reads_back_with_its_history() {
        let tenant = TenantId::parse("acme").unwrap();
        let id = MessageId::new(BatchId::new(), 7);
        let key = keys::message(&tenant, id);
        let at = |ms| Timestamp::from_epoch_millis(ms);
        let mut history = Vec::new();
        for (status, ms) in [
            (MessageStatus::Accepted, 1_000),
            (MessageStatus::Sending, 2_000),
        ] {
            let AttributeValue::L(entry) = history_entry(status, at(ms)) else {
                unreachable!()
            };
            history.extend(entry);
        }
        let item: Item = HashMap::from([
            ("channel".to_owned(), s("sms")),
            ("recipient".to_owned(), s("+14155550100")),
            ("status".to_owned(), s("sending")),
            ("attempts".to_owned(), n(1)),
            ("created_at".to_owned(), time(at(1_000))),
            ("updated_at".to_owned(), time(at(2_000))),
            ("history".to_owned(), AttributeValue::L(history)),
        ]);
        let view = parse_message(&key, id, &item).unwrap();
        assert_eq!(view.status, MessageStatus::Sending);
        assert_eq!(view.attempts, 1);
        assert_eq!(view.updated_at, at(2_000));
        assert_eq!(
            view.history,
            [
                HistoryEntry {
                    status: MessageStatus::Accepted,
                    at: at(1_000)
                },
                HistoryEntry {
                    status: MessageStatus::Sending,
                    at: at(2_000)
                },
            ]
        );
    }
}
