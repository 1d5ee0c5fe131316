//! Messages and the chunks that carry them: what a recipient is sent, how the sender
//! holds a message while sending it, and how it ends.

use super::MessageStatus;
use crate::address::Address;
use crate::clock::Timestamp;
use crate::ids::{BatchId, MessageId};
use crate::keys::CHUNK_SIZE;
use crate::phone::PhoneNumber;
use crate::template::{MissingVariable, Template, Variables};

stored_enum! {
    /// How a message travels: `sms` (the default) or `email`.
    #[derive(Default)]
    pub enum Channel {
        #[default]
        Sms,
        Email,
    }
}

/// What a chunk's recipients are sent: one text for all of them, or a template each
/// recipient's variables fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Template(Template),
}

impl Content {
    /// The text one recipient receives.
    pub fn render(&self, variables: &Variables) -> Result<String, MissingVariable> {
        match self {
            Content::Text(text) => Ok(text.clone()),
            Content::Template(template) => template.render(variables),
        }
    }
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
    pub created_at: Timestamp,
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
        self.content.render(&recipient.variables)
    }

    /// The subject one recipient's email carries; `None` on a chunk without one (SMS).
    pub fn subject_for(&self, recipient: &Recipient) -> Result<Option<String>, MissingVariable> {
        self.subject
            .as_ref()
            .map(|subject| subject.render(&recipient.variables))
            .transpose()
    }

    /// A message the sender has not reached yet: it lives only inside this chunk.
    pub fn unclaimed(&self, id: MessageId, recipient: &Recipient) -> MessageView {
        MessageView {
            id,
            channel: self.channel,
            to: recipient.to.to_string(),
            status: MessageStatus::Accepted,
            provider: None,
            provider_ref: None,
            attempts: 0,
            error_code: None,
            error_reason: None,
            created_at: self.created_at,
            updated_at: self.created_at,
            history: vec![HistoryEntry {
                status: MessageStatus::Accepted,
                at: self.created_at,
            }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub status: MessageStatus,
    pub at: Timestamp,
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
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub history: Vec<HistoryEntry>,
}

/// When a claim is made and until when it holds.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub now: Timestamp,
    pub until: Timestamp,
}

impl Lease {
    pub fn starting(now: Timestamp, length: std::time::Duration) -> Self {
        Self {
            now,
            until: now.plus(length),
        }
    }
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
        /// A text through SNS whose answer was lost: SNS's message id is unknown, and
        /// its delivery log names only it and the number, so the message is indexed
        /// by the number for its log to find (other providers echo Herald's id).
        lost_text_to: Option<PhoneNumber>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn channels_have_one_name_in_json_and_in_items() {
        for channel in Channel::VARIANTS {
            let name: &str = (*channel).into();
            assert_eq!(serde_json::to_value(channel).unwrap(), name);
            assert_eq!(name.parse::<Channel>(), Ok(*channel));
        }
        assert_eq!(Channel::default(), Channel::Sms);
    }
}
