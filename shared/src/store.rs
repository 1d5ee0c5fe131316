//! The DynamoDB repository for batches, chunks and messages. Every item mapping lives
//! here; every write that creates or moves state carries a condition, and a failed
//! condition comes back as a domain outcome, not an error.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};

use crate::address::Address;
use crate::ids::{BatchId, CorrelationId, MessageId, TenantId};
use crate::keys::{self, CHUNK_SIZE, Key, SCHEMA_VERSION};
use crate::status::MessageStatus;
use crate::template::{MissingVariable, Template, Variables};

mod audit;
mod batch;
mod clients;
mod limits;
mod listing;
mod sweep;
mod tenant;

pub use audit::AuditEntry;
pub use batch::{BatchStatus, BatchView, CancelOutcome, ChunkCounts};
pub use clients::{MachineClient, Registration, Revocation};
pub use limits::{Admission, Reservation};
pub use listing::MessagePage;
pub use sweep::UnqueuedBatch;
pub use tenant::{Limits, PLANS, TenantProfile, TenantStatus, plan_limits};

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed")]
    Dynamo(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("item {pk}/{sk} is not readable: {reason}")]
    Corrupt {
        pk: String,
        sk: String,
        reason: String,
    },
    #[error("DynamoDB left {0} writes unprocessed after retries")]
    Unprocessed(usize),
}

fn dynamo<E: std::error::Error + Send + Sync + 'static>(error: E) -> StoreError {
    StoreError::Dynamo(Box::new(error))
}

/// A transaction DynamoDB cancelled, to ask which of its writes failed their conditions.
struct Cancelled(TransactionCanceledException);

impl Cancelled {
    /// Splits a failed `TransactWriteItems`: a cancellation to look into, or any other
    /// failure as the error it is.
    fn from_error<R>(error: SdkError<TransactWriteItemsError, R>) -> Result<Self, StoreError>
    where
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match error {
            SdkError::ServiceError(e) if e.err().is_transaction_canceled_exception() => {
                match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                        Ok(Self(cancelled))
                    }
                    _ => unreachable!("checked above"),
                }
            }
            other => Err(dynamo(other)),
        }
    }

    /// Whether the write at `index`, in the transaction's order, failed its condition.
    fn condition_failed(&self, index: usize) -> bool {
        self.0
            .cancellation_reasons
            .as_ref()
            .and_then(|reasons| reasons.get(index))
            .and_then(|reason| reason.code.as_deref())
            == Some("ConditionalCheckFailed")
    }
}

impl From<Cancelled> for StoreError {
    fn from(cancelled: Cancelled) -> Self {
        dynamo(cancelled.0)
    }
}

// The API answers `as_str`, which is the lowercase variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub const ALL: [Self; 2] = [Self::Sms, Self::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

/// What a chunk's recipients are sent: one text for all of them, or a template each
/// recipient's variables fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Template(Template),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Of the kind the chunk's channel sends to.
    pub to: Address,
    pub variables: Variables,
}

/// The durable copy of up to `CHUNK_SIZE` recipients' work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub index: u32,
    pub channel: Channel,
    pub content: Content,
    /// The email subject (email chunks only), a text or a template like the content.
    pub subject: Option<Content>,
    pub recipients: Vec<Recipient>,
    pub created_at: String,
}

impl Chunk {
    /// The message id of each recipient, from its place in the batch.
    pub fn messages(&self, batch: BatchId) -> impl Iterator<Item = (MessageId, &Recipient)> {
        let first = self.index * CHUNK_SIZE;
        self.recipients
            .iter()
            .enumerate()
            .map(move |(i, r)| (MessageId::new(batch, first + i as u32), r))
    }

    /// The text one recipient receives.
    pub fn body_for(&self, recipient: &Recipient) -> Result<String, MissingVariable> {
        match &self.content {
            Content::Text(text) => Ok(text.clone()),
            Content::Template(template) => template.render(&recipient.variables),
        }
    }

    /// The subject one recipient's email carries; `None` on a chunk without one (SMS).
    pub fn subject_for(&self, recipient: &Recipient) -> Result<Option<String>, MissingVariable> {
        match &self.subject {
            None => Ok(None),
            Some(Content::Text(text)) => Ok(Some(text.clone())),
            Some(Content::Template(template)) => template.render(&recipient.variables).map(Some),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewBatch {
    pub tenant: TenantId,
    pub id: BatchId,
    pub channel: Channel,
    pub created_by: String,
    pub correlation_id: CorrelationId,
    pub created_at: String,
    pub chunks: Vec<Chunk>,
}

impl NewBatch {
    pub fn total(&self) -> usize {
        self.chunks.iter().map(|c| c.recipients.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub status: MessageStatus,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub id: MessageId,
    pub channel: Channel,
    pub to: String,
    pub status: MessageStatus,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<HistoryEntry>,
}

/// When a claim is made and until when it holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub now: String,
    pub now_epoch: u64,
    pub until_epoch: u64,
}

/// What the claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This caller holds the message until the lease ends.
    Claimed { token: String },
    /// The message is already past sending (sent, failed, unknown...): nothing to do.
    Settled(MessageStatus),
    /// Another claim exists. While its lease runs, a duplicate delivery is in flight;
    /// once it has expired, its holder stopped between claiming and settling, and the
    /// caller may settle it through `token`.
    HeldElsewhere { lease_expired: bool, token: String },
}

/// How a claimed message ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Sent {
        provider: String,
        provider_ref: String,
    },
    Failed {
        code: String,
        reason: String,
    },
    Unknown {
        reason: String,
    },
}

impl Settlement {
    pub fn status(&self) -> MessageStatus {
        match self {
            Settlement::Sent { .. } => MessageStatus::Sent,
            Settlement::Failed { .. } => MessageStatus::Failed,
            Settlement::Unknown { .. } => MessageStatus::Unknown,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes the chunks, then the batch record. Chunks first: a batch record only
    /// exists once all its work is durable, so the sweeper can trust it.
    #[tracing::instrument(skip_all, fields(tenant_id = %batch.tenant, batch_id = %batch.id))]
    pub async fn create_batch(&self, batch: &NewBatch) -> Result<(), StoreError> {
        let writes: Vec<WriteRequest> = batch
            .chunks
            .iter()
            .map(|chunk| {
                let put = PutRequest::builder()
                    .set_item(Some(chunk_item(batch, chunk)))
                    .build()
                    .map_err(dynamo)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        for group in writes.chunks(25) {
            self.batch_write(group.to_vec()).await?;
        }
        let key = keys::batch_meta(&batch.tenant, batch.id);
        let item = with_key(
            &key,
            [
                ("tenant_id", s(batch.tenant.as_str())),
                ("batch_id", s(batch.id.to_string())),
                ("channel", s(batch.channel.as_str())),
                ("status", s("accepted")),
                ("total", n(batch.total())),
                ("chunk_count", n(batch.chunks.len())),
                ("sent_count", n(0)),
                ("failed_count", n(0)),
                ("unknown_count", n(0)),
                ("cancelled_count", n(0)),
                ("created_by", s(&batch.created_by)),
                ("created_at", s(&batch.created_at)),
                ("correlation_id", s(batch.correlation_id.as_str())),
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
        let created = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match created {
            // A retry finishing the batch of a request that died (same idempotency key
            // and request): the record is already there, which is what we want.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            other => other.map(|_| ()).map_err(dynamo),
        }
    }

    async fn batch_write(&self, mut writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..5u32 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, writes)
                .send()
                .await
                .map_err(dynamo)?;
            writes = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if writes.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        Err(StoreError::Unprocessed(writes.len()))
    }

    /// Records that every chunk of the batch is on the queue: `accepted` becomes
    /// `enqueued` (a batch cancelled meanwhile stays cancelled) and the batch leaves the
    /// sweeper's list.
    pub async fn mark_enqueued(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        at: &str,
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
            .expression_attribute_values(":enqueued", s("enqueued"))
            .expression_attribute_values(":accepted", s("accepted"))
            .send()
            .await;
        match promoted {
            // Already enqueued (a retry finishing the job) or cancelled.
            Err(e) if is_condition_failure(&e) => {}
            other => other.map(|_| ()).map_err(dynamo)?,
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET enqueued_at = if_not_exists(enqueued_at, :at) REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    pub async fn load_chunk(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        index: u32,
    ) -> Result<Option<Chunk>, StoreError> {
        let key = keys::chunk(tenant, batch, index);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(|item| parse_chunk(&key, &item)).transpose()
    }

    /// Takes exclusive hold of one message for sending: creates it as `sending`, or
    /// takes it over if the previous holder released it (known not sent). Anything
    /// else is reported, never overwritten.
    #[tracing::instrument(skip_all, fields(message_id = %id))]
    pub async fn claim(
        &self,
        tenant: &TenantId,
        id: MessageId,
        chunk: &Chunk,
        to: &Address,
        lease: &Lease,
    ) -> Result<ClaimOutcome, StoreError> {
        let now = lease.now.as_str();
        let key = keys::message(tenant, id);
        let token = ulid::Ulid::new().to_string();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET #status = :sending, claim_token = :token, lease_until = :lease, \
                 tenant_id = :tenant, batch_id = :batch, recipient = :to, channel = :channel, \
                 created_at = if_not_exists(created_at, :created), updated_at = :now, \
                 gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, schema_version = :v, \
                 history = list_append(if_not_exists(history, :accepted), :entry) \
                 ADD attempts :one",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :sending AND attribute_not_exists(claim_token))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":lease", n(lease.until_epoch))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":batch", s(id.batch().to_string()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":channel", s(chunk.channel.as_str()))
            .expression_attribute_values(":created", s(&chunk.created_at))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":gsi1pk", s(keys::batch_messages_partition(tenant, id)))
            .expression_attribute_values(":gsi1sk", s(format!("sending#{id}")))
            .expression_attribute_values(":v", n(SCHEMA_VERSION))
            .expression_attribute_values(":accepted", history_entry(MessageStatus::Accepted, &chunk.created_at))
            .expression_attribute_values(":entry", history_entry(MessageStatus::Sending, now))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed { token }),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                let old = failure.item.unwrap_or_default();
                let status = old
                    .get("status")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| MessageStatus::parse(v));
                if let Some(status) = status.filter(|s| s.is_settled()) {
                    return Ok(ClaimOutcome::Settled(status));
                }
                let lease_until: u64 = get_n(&old, "lease_until").unwrap_or(0);
                match get_s(&old, "claim_token") {
                    Some(token) => Ok(ClaimOutcome::HeldElsewhere {
                        lease_expired: lease_until < lease.now_epoch,
                        token: token.to_owned(),
                    }),
                    None => Err(StoreError::Corrupt {
                        pk: key.pk,
                        sk: key.sk,
                        reason: format!("message is {status:?} without a claim"),
                    }),
                }
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Ends a claim with the message's outcome, only if the claim is still ours.
    /// Returns false when it was not (the lease was taken over): the outcome is then
    /// not ours to record.
    #[tracing::instrument(skip_all, fields(message_id = %id, status = settlement.status().as_str()))]
    pub async fn settle(
        &self,
        tenant: &TenantId,
        id: MessageId,
        token: &str,
        settlement: &Settlement,
        now: &str,
    ) -> Result<bool, StoreError> {
        let status = settlement.status();
        let key = keys::message(tenant, id);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .condition_expression("claim_token = :token AND #status = :sending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":gsi1sk", s(format!("{}#{id}", status.as_str())))
            .expression_attribute_values(":entry", history_entry(status, now));
        let outcome_fields = match settlement {
            Settlement::Sent {
                provider,
                provider_ref,
            } => {
                request = request
                    .expression_attribute_values(":provider", s(provider))
                    .expression_attribute_values(":ref", s(provider_ref));
                "provider = :provider, provider_ref = :ref"
            }
            Settlement::Failed { code, reason } => {
                request = request
                    .expression_attribute_values(":code", s(code))
                    .expression_attribute_values(":reason", s(reason));
                "error_code = :code, error_reason = :reason"
            }
            Settlement::Unknown { reason } => {
                request = request.expression_attribute_values(":reason", s(reason));
                "error_reason = :reason"
            }
        };
        let result = request
            .update_expression(format!(
                "SET #status = :status, updated_at = :now, gsi1sk = :gsi1sk, \
                 history = list_append(history, :entry), {outcome_fields} \
                 REMOVE claim_token, lease_until"
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Gives a claim back after a failure known to have sent nothing, so a later
    /// delivery of the chunk may claim the message again.
    #[tracing::instrument(skip_all, fields(message_id = %id))]
    pub async fn release(
        &self,
        tenant: &TenantId,
        id: MessageId,
        token: &str,
        reason: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let key = keys::message(tenant, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET last_error = :reason, updated_at = :now REMOVE claim_token, lease_until",
            )
            .condition_expression("claim_token = :token")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(now))
            .send()
            .await;
        match result {
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(dynamo),
        }
    }

    /// Ends a message of a cancelled batch as `cancelled`, unless a sender claimed it
    /// first (a claim in flight finishes on its own). `None` when it was cancelled;
    /// otherwise the status it has.
    #[tracing::instrument(skip_all, fields(message_id = %id))]
    pub async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        chunk: &Chunk,
        to: &Address,
        now: &str,
    ) -> Result<Option<MessageStatus>, StoreError> {
        let key = keys::message(tenant, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET #status = :cancelled, tenant_id = :tenant, batch_id = :batch, \
                 recipient = :to, channel = :channel, created_at = if_not_exists(created_at, :created), \
                 updated_at = :now, gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, schema_version = :v, \
                 history = list_append(if_not_exists(history, :accepted), :entry)",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :sending AND attribute_not_exists(claim_token))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s("cancelled"))
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":batch", s(id.batch().to_string()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":channel", s(chunk.channel.as_str()))
            .expression_attribute_values(":created", s(&chunk.created_at))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":gsi1pk", s(keys::batch_messages_partition(tenant, id)))
            .expression_attribute_values(":gsi1sk", s(format!("cancelled#{id}")))
            .expression_attribute_values(":v", n(SCHEMA_VERSION))
            .expression_attribute_values(":accepted", history_entry(MessageStatus::Accepted, &chunk.created_at))
            .expression_attribute_values(":entry", history_entry(MessageStatus::Cancelled, now))
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
                Ok(Some(
                    get_s(&old, "status")
                        .and_then(MessageStatus::parse)
                        .unwrap_or(MessageStatus::Sending),
                ))
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// One message as its tenant sees it. Before the sender has claimed it the message
    /// exists only inside its chunk, and is reported as `accepted`.
    pub async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        let key = keys::message(tenant, id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .send()
            .await
            .map_err(dynamo)?;
        if let Some(item) = out.item {
            return parse_message(&key, id, &item).map(Some);
        }
        let Some(chunk) = self
            .load_chunk(tenant, id.batch(), keys::chunk_of(id))
            .await?
        else {
            return Ok(None);
        };
        Ok(chunk
            .messages(id.batch())
            .find(|(m, _)| *m == id)
            .map(|(id, r)| unclaimed(&chunk, id, r)))
    }
}

/// A message the sender has not reached yet: it lives only inside its chunk.
fn unclaimed(chunk: &Chunk, id: MessageId, recipient: &Recipient) -> MessageView {
    MessageView {
        id,
        channel: chunk.channel,
        to: recipient.to.to_string(),
        status: MessageStatus::Accepted,
        provider: None,
        provider_ref: None,
        attempts: 0,
        error_code: None,
        error_reason: None,
        created_at: chunk.created_at.clone(),
        updated_at: chunk.created_at.clone(),
        history: vec![HistoryEntry {
            status: MessageStatus::Accepted,
            at: chunk.created_at.clone(),
        }],
    }
}

fn is_condition_failure<R>(error: &SdkError<UpdateItemError, R>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

fn chunk_item(batch: &NewBatch, chunk: &Chunk) -> Item {
    let key = keys::chunk(&batch.tenant, batch.id, chunk.index);
    let recipients = chunk
        .recipients
        .iter()
        .map(|r| {
            let mut item = HashMap::from([("to".to_owned(), s(r.to.as_str()))]);
            if !r.variables.is_empty() {
                let variables = r
                    .variables
                    .iter()
                    .map(|(name, value)| (name.clone(), s(value)))
                    .collect();
                item.insert("variables".to_owned(), AttributeValue::M(variables));
            }
            AttributeValue::M(item)
        })
        .collect();
    let content = match &chunk.content {
        Content::Text(text) => ("body", s(text)),
        Content::Template(template) => ("template", s(template.source())),
    };
    let mut item = with_key(
        &key,
        [
            ("tenant_id", s(batch.tenant.as_str())),
            ("batch_id", s(batch.id.to_string())),
            ("chunk", n(chunk.index)),
            ("channel", s(chunk.channel.as_str())),
            content,
            ("recipients", AttributeValue::L(recipients)),
            ("created_at", s(&chunk.created_at)),
            ("schema_version", n(SCHEMA_VERSION)),
        ],
    );
    match &chunk.subject {
        None => {}
        Some(Content::Text(text)) => {
            item.insert("subject".into(), s(text));
        }
        Some(Content::Template(template)) => {
            item.insert("subject_template".into(), s(template.source()));
        }
    }
    item
}

fn parse_chunk(key: &Key, item: &Item) -> Result<Chunk, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    };
    let channel = get_s(item, "channel")
        .and_then(Channel::parse)
        .ok_or_else(|| corrupt("unknown channel"))?;
    let recipients = item
        .get("recipients")
        .and_then(|v| v.as_l().ok())
        .ok_or_else(|| corrupt("no recipients"))?
        .iter()
        .map(|r| {
            let r = r.as_m().map_err(|_| corrupt("recipient is not a map"))?;
            let to = get_s(r, "to")
                .and_then(|v| Address::parse(channel, v).ok())
                .ok_or_else(|| corrupt("recipient without a valid address for its channel"))?;
            let variables = match r.get("variables") {
                None => Variables::new(),
                Some(v) => v
                    .as_m()
                    .map_err(|_| corrupt("variables are not a map"))?
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            name.clone(),
                            value
                                .as_s()
                                .map_err(|_| corrupt("variable is not a string"))?
                                .clone(),
                        ))
                    })
                    .collect::<Result<_, StoreError>>()?,
            };
            Ok(Recipient { to, variables })
        })
        .collect::<Result<_, StoreError>>()?;
    let content = match (get_s(item, "body"), get_s(item, "template")) {
        (Some(text), None) => Content::Text(text.to_owned()),
        (None, Some(source)) => Content::Template(
            Template::parse(source).map_err(|e| corrupt(&format!("template: {e}")))?,
        ),
        _ => return Err(corrupt("needs exactly one of body and template")),
    };
    let subject = match (get_s(item, "subject"), get_s(item, "subject_template")) {
        (None, None) => None,
        (Some(text), None) => Some(Content::Text(text.to_owned())),
        (None, Some(source)) => Some(Content::Template(
            Template::parse(source).map_err(|e| corrupt(&format!("subject template: {e}")))?,
        )),
        _ => return Err(corrupt("has both subject and subject_template")),
    };
    if subject.is_some() != (channel == Channel::Email) {
        return Err(corrupt(
            "an email chunk needs a subject, and only an email chunk has one",
        ));
    }
    Ok(Chunk {
        index: get_n(item, "chunk").ok_or_else(|| corrupt("no chunk index"))?,
        channel,
        content,
        subject,
        recipients,
        created_at: get_s(item, "created_at").unwrap_or_default().to_owned(),
    })
}

fn parse_message(key: &Key, id: MessageId, item: &Item) -> Result<MessageView, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    };
    let history = item
        .get("history")
        .and_then(|v| v.as_l().ok())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let m = e.as_m().ok()?;
                    Some(HistoryEntry {
                        status: MessageStatus::parse(m.get("status")?.as_s().ok()?)?,
                        at: m.get("at")?.as_s().ok()?.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let opt = |name: &str| get_s(item, name).map(str::to_owned);
    Ok(MessageView {
        id,
        channel: get_s(item, "channel")
            .and_then(Channel::parse)
            .ok_or_else(|| corrupt("unknown channel"))?,
        to: opt("recipient").ok_or_else(|| corrupt("no recipient"))?,
        status: get_s(item, "status")
            .and_then(MessageStatus::parse)
            .ok_or_else(|| corrupt("unknown status"))?,
        provider: opt("provider"),
        provider_ref: opt("provider_ref"),
        attempts: get_n(item, "attempts").unwrap_or(0),
        error_code: opt("error_code"),
        error_reason: opt("error_reason"),
        created_at: opt("created_at").unwrap_or_default(),
        updated_at: opt("updated_at").unwrap_or_default(),
        history,
    })
}

fn history_entry(status: MessageStatus, at: &str) -> AttributeValue {
    AttributeValue::L(vec![AttributeValue::M(HashMap::from([
        ("status".to_owned(), s(status.as_str())),
        ("at".to_owned(), s(at)),
    ]))])
}

fn key_item(key: &Key) -> Item {
    HashMap::from([("pk".to_owned(), s(&key.pk)), ("sk".to_owned(), s(&key.sk))])
}

fn with_key<const N: usize>(key: &Key, attributes: [(&str, AttributeValue); N]) -> Item {
    let mut item = key_item(key);
    item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
    item
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
