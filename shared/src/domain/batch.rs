//! Batches: what a request submits, the batch its recipients become (in chunks), its
//! lifecycle (`accepted → enqueued → completed`, or `cancelled`) and its progress.
//!
//! One file over 450 lines on purpose: these types go together from the request to the
//! sweeper (a batch, its counts, its window and its turn), and a fifth of it is tests.

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
    /// Chunks of this batch on the queue at once (issue 14): intake enqueues the first
    /// `window`, and each chunk the sender counts queues the next one.
    pub window: u32,
    /// Whether the batch waits for its tenant's turn (`BatchTurn`): every batch that
    /// starts on the bulk queue does.
    pub takes_turns: bool,
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
        let chunks: Vec<Chunk> = recipients
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
            window: chunks.len() as u32,
            chunks,
            takes_turns: false,
        }
    }

    /// The batch waits for its tenant's turn before its first window is queued.
    pub fn taking_turns(mut self, takes_turns: bool) -> Self {
        self.takes_turns = takes_turns;
        self
    }

    /// At most `window` chunks on the queue at once (at least one).
    pub fn windowed(mut self, window: u32) -> Self {
        self.window = window.max(1);
        self
    }

    /// Chunks intake enqueues: the first window.
    pub fn first_window(&self) -> u32 {
        self.window.min(self.chunks.len() as u32)
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

stored_enum! {
    /// Where a batch stands in its tenant's line of bulk batches (issue 14,
    /// `docs/concurrency.md`, "Turns"): one of a tenant's batches on the bulk queue
    /// sends at a time, the rest wait in arrival order, so one tenant's campaign of many
    /// batches holds no more of the queue than one batch does.
    pub enum BatchTurn {
        /// Written; intake has not yet put it in line.
        New,
        /// Behind another of the tenant's batches: none of its chunks is queued.
        Waiting,
        /// It took the turn and its window was queued; it passes the turn on once its
        /// last chunk is queued.
        Taken,
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
    pub suppressed: u32,
    /// What receipts moved since, summed over the batch's receipt shards.
    pub receipts: ReceiptDeltas,
    pub created_by: String,
    pub created_at: Timestamp,
    pub enqueued_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// `None` for a batch that does not take turns (the express lane's, and every
    /// batch written before turns).
    pub turn: Option<BatchTurn>,
}

impl BatchView {
    /// Messages that reached a final status (as far as the sender is concerned): the
    /// chunks counted so far. Receipts move messages between statuses, never in or
    /// out of this sum.
    pub fn done(&self) -> u32 {
        self.sent + self.failed + self.unknown + self.cancelled + self.suppressed
    }

    /// Messages still waiting for, or in the middle of, their send.
    pub fn pending(&self) -> u32 {
        self.total.saturating_sub(self.done())
    }

    /// Messages per status, as the API shows them. The sender's counts move a chunk at
    /// a time and receipts one message at a time, so until a message's chunk is counted
    /// its receipt can take it out of `sent` before the chunk puts it in: such a
    /// status shows 0 rather than a negative count, and `pending` is what is left of
    /// the total (the counts always add up to it). Once every chunk is counted, each
    /// count is exact.
    pub fn counts(&self) -> BatchCounts {
        let add =
            |base: u32, delta: i64| (i64::from(base) + delta).clamp(0, i64::from(u32::MAX)) as u32;
        let r = &self.receipts;
        let mut counts = BatchCounts {
            pending: 0,
            sent: add(self.sent, r.sent),
            delivered: add(0, r.delivered),
            undelivered: add(0, r.undelivered),
            failed: self.failed,
            unknown: add(self.unknown, r.unknown),
            suppressed: self.suppressed,
            cancelled: self.cancelled,
        };
        counts.pending = self.total.saturating_sub(counts.total_final());
        counts
    }
}

/// A batch's messages per status (see `BatchView::counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub pending: u32,
    pub sent: u32,
    pub delivered: u32,
    pub undelivered: u32,
    pub failed: u32,
    pub unknown: u32,
    pub suppressed: u32,
    pub cancelled: u32,
}

impl BatchCounts {
    /// Every count but `pending`.
    pub fn total_final(&self) -> u32 {
        self.sent
            + self.delivered
            + self.undelivered
            + self.failed
            + self.unknown
            + self.suppressed
            + self.cancelled
    }
}

/// How receipts moved a batch's messages, one receipt shard or their sum: out of the
/// status the sender left them in (`sent`, `unknown`: negative) and into the
/// receipt's (positive). Every applied receipt adds one move, so the four always sum
/// to zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptDeltas {
    pub sent: i64,
    pub unknown: i64,
    pub delivered: i64,
    pub undelivered: i64,
}

impl ReceiptDeltas {
    /// One message moved by a receipt from `from` to `to`; `None` for a move a
    /// receipt never makes.
    pub fn moved(from: MessageStatus, to: MessageStatus) -> Option<Self> {
        let mut deltas = Self::default();
        *deltas.slot(from)? -= 1;
        *deltas.slot(to)? += 1;
        Some(deltas)
    }

    fn slot(&mut self, status: MessageStatus) -> Option<&mut i64> {
        match status {
            MessageStatus::Sent => Some(&mut self.sent),
            MessageStatus::Unknown => Some(&mut self.unknown),
            MessageStatus::Delivered => Some(&mut self.delivered),
            MessageStatus::Undelivered => Some(&mut self.undelivered),
            _ => None,
        }
    }

    /// The pairs (status, delta) stored on a receipt shard.
    pub fn named(&self) -> [(&'static str, i64); 4] {
        [
            ("sent", self.sent),
            ("unknown", self.unknown),
            ("delivered", self.delivered),
            ("undelivered", self.undelivered),
        ]
    }
}

impl std::ops::AddAssign for ReceiptDeltas {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.unknown += other.unknown;
        self.delivered += other.delivered;
        self.undelivered += other.undelivered;
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
    pub suppressed: u32,
}

impl ChunkCounts {
    /// Counts one message by how the sender left it. A receipt may have moved it on
    /// since (the store answers the sender's outcome, `settled_as`, for such a
    /// message); the receipt's own move is counted on the batch's receipt shards.
    pub fn record(&mut self, status: MessageStatus) {
        match status {
            // Items settled before `settled_as` existed have no receipt.
            MessageStatus::Sent | MessageStatus::Delivered => self.sent += 1,
            MessageStatus::Failed | MessageStatus::Undelivered => self.failed += 1,
            MessageStatus::Unknown => self.unknown += 1,
            MessageStatus::Cancelled => self.cancelled += 1,
            MessageStatus::Suppressed => self.suppressed += 1,
            MessageStatus::Accepted | MessageStatus::Sending => {}
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
    /// Chunks of its first window (all of them for a batch written before windows).
    pub first_window: u32,
    /// It waits for its tenant's turn before its first window is queued.
    pub takes_turns: bool,
    pub correlation_id: CorrelationId,
    pub created_at: Timestamp,
}

/// A batch on the sweeper's window list (enqueued, not finished) whose last chunk was
/// counted before the sweep's cutoff, or never: its window may have stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalledWindow {
    pub tenant: TenantId,
    pub batch: BatchId,
    pub chunk_count: u32,
    /// Chunks on the queue at once.
    pub window: u32,
    /// The next chunk a counted chunk queues: every chunk below it was queued once.
    pub window_next: u32,
    /// Times the sweeper restarted this window already.
    pub restarts: u32,
    pub correlation_id: CorrelationId,
    /// Waiting for its tenant's turn: nothing of it was queued, and the window is not
    /// the sweeper's to restart (the turn is).
    pub waiting: bool,
    /// Gone from the store, or finished: no longer a reason to hold a turn.
    pub finished: bool,
}

impl StalledWindow {
    /// The chunks to queue when the batch starts: its first window.
    pub fn first_window(&self) -> u32 {
        self.window.min(self.chunk_count)
    }
}

/// A batch that was just given its tenant's turn: the caller queues its first window
/// (chunks `0..first_window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBatch {
    pub tenant: TenantId,
    pub batch: BatchId,
    pub first_window: u32,
    pub correlation_id: CorrelationId,
}

/// What counting a chunk did to its batch's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// This pass counted the chunk; `link` is the chunk it must now put on the queue
    /// (none once every chunk of the batch was queued), and `started` the tenant's
    /// batch this batch passed its turn to, whose first window it must queue too.
    Now {
        link: Option<u32>,
        started: Option<StartedBatch>,
    },
    /// An earlier pass counted it (and queued the next one, or the sweeper will).
    Before,
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

    fn view(total: u32, sent: u32, unknown: u32, receipts: ReceiptDeltas) -> BatchView {
        BatchView {
            id: BatchId::new(),
            channel: Channel::Sms,
            status: BatchStatus::Enqueued,
            total,
            chunk_count: 1,
            sent,
            failed: 0,
            unknown,
            cancelled: 0,
            suppressed: 0,
            receipts,
            created_by: "u".into(),
            created_at: Timestamp::from_epoch_millis(0),
            enqueued_at: None,
            cancelled_at: None,
            finished_at: None,
            turn: None,
        }
    }

    #[test]
    fn receipts_move_counts_between_statuses_and_never_below_zero() {
        use MessageStatus::*;
        let mut receipts = ReceiptDeltas::default();
        for _ in 0..3 {
            receipts += ReceiptDeltas::moved(Sent, Delivered).unwrap();
        }
        receipts += ReceiptDeltas::moved(Unknown, Undelivered).unwrap();
        assert_eq!(ReceiptDeltas::moved(Failed, Delivered), None);
        // The chunk is counted: 9 sent, 1 unknown; 3 delivered and 1 undelivered since.
        let counts = view(10, 9, 1, receipts).counts();
        assert_eq!(
            (
                counts.sent,
                counts.delivered,
                counts.undelivered,
                counts.unknown,
                counts.pending
            ),
            (6, 3, 1, 0, 0)
        );
        // Before the chunk is counted, the receipts alone: nothing shows below zero and
        // the counts still add up to the total.
        let early = view(10, 0, 0, receipts).counts();
        assert_eq!((early.sent, early.unknown, early.delivered), (0, 0, 3));
        assert_eq!(early.pending + early.total_final(), 10);
        assert_eq!(
            view(10, 0, 0, receipts).done(),
            0,
            "receipts finish nothing"
        );
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
