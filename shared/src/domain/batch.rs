//! Batches: what a request submits, the batch its recipients become (in chunks), its
//! lifecycle (`accepted → enqueued → completed`, or `cancelled`) and its progress.

use super::{Channel, Chunk, Content, MessageStatus, MessageView, Recipient};
use crate::clock::Timestamp;
use crate::ids::{BatchId, CorrelationId, TenantId};
use crate::keys::CHUNK_SIZE;

/// What a request asks to send, validated: one content (and, for email, one subject)
/// for every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub channel: Channel,
    pub content: Content,
    pub subject: Option<Content>,
    pub recipients: Vec<Recipient>,
}

/// Who submits a batch: recorded on it, on its audit entry and on its queue messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    pub tenant: TenantId,
    /// The token subject: a user or a machine client.
    pub subject: String,
    pub correlation_id: CorrelationId,
}

#[derive(Debug, Clone)]
pub struct NewBatch {
    pub tenant: TenantId,
    pub id: BatchId,
    pub channel: Channel,
    pub created_by: String,
    pub correlation_id: CorrelationId,
    pub created_at: Timestamp,
    pub chunks: Vec<Chunk>,
}

impl NewBatch {
    /// The batch `submission` becomes: its recipients in chunks of `CHUNK_SIZE`, in
    /// order, so each keeps its place (and its message id) on every retry.
    pub fn new(id: BatchId, by: &Submitter, submission: Submission, now: Timestamp) -> Self {
        let Submission {
            channel,
            content,
            subject,
            recipients,
        } = submission;
        let chunks = recipients
            .chunks(CHUNK_SIZE as usize)
            .enumerate()
            .map(|(index, recipients)| Chunk {
                index: index as u32,
                channel,
                content: content.clone(),
                subject: subject.clone(),
                recipients: recipients.to_vec(),
                created_at: now,
            })
            .collect();
        Self {
            tenant: by.tenant.clone(),
            id,
            channel,
            created_by: by.subject.clone(),
            correlation_id: by.correlation_id.clone(),
            created_at: now,
            chunks,
        }
    }

    pub fn total(&self) -> usize {
        self.chunks.iter().map(|c| c.recipients.len()).sum()
    }
}

stored_enum! {
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
    pub created_at: Timestamp,
    pub enqueued_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
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

/// A batch whose chunks may not all be on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnqueuedBatch {
    pub tenant: TenantId,
    pub batch: BatchId,
    pub chunk_count: u32,
    pub correlation_id: CorrelationId,
    pub created_at: Timestamp,
}

/// A page of a batch's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// Where the next page starts; `None` once the batch is exhausted.
    pub next_cursor: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::phone::PhoneNumber;

    #[test]
    fn a_submission_becomes_chunks_of_a_hundred_in_order() {
        let recipients: Vec<Recipient> = (0..250)
            .map(|i| Recipient {
                to: Address::Phone(
                    PhoneNumber::parse(&format!("+1415555{:04}", 2000 + i)).unwrap(),
                ),
                variables: Default::default(),
            })
            .collect();
        let by = Submitter {
            tenant: TenantId::parse("acme").unwrap(),
            subject: "user-1".into(),
            correlation_id: CorrelationId::from_header(None),
        };
        let submission = Submission {
            channel: Channel::Sms,
            content: Content::Text("hi".into()),
            subject: None,
            recipients: recipients.clone(),
        };
        let now = Timestamp::from_epoch_millis(1_000);
        let batch = NewBatch::new(BatchId::new(), &by, submission, now);
        assert_eq!(batch.total(), 250);
        let sizes: Vec<_> = batch
            .chunks
            .iter()
            .map(|c| (c.index, c.recipients.len()))
            .collect();
        assert_eq!(sizes, [(0, 100), (1, 100), (2, 50)]);
        let (id, first_of_last) = batch.chunks[2].messages(batch.id).next().unwrap();
        assert_eq!(id.index(), 200);
        assert_eq!(first_of_last, &recipients[200]);
        assert!(batch.chunks.iter().all(|c| c.created_at == now));
    }

    #[test]
    fn batch_statuses_have_one_name_in_json_and_in_items() {
        use strum::VariantArray as _;
        for status in BatchStatus::VARIANTS {
            let name: &str = (*status).into();
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(name.parse::<BatchStatus>(), Ok(*status));
        }
    }
}
