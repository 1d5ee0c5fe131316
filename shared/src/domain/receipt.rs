//! What providers tell Herald after the send: receipts (a message was delivered, or
//! never will be) and texts recipients send back (STOP, START). Each provider's own
//! shape is parsed into a `ProviderEvent` (`herald::webhook`), and the events function
//! applies a `ProviderEvent` the same way whatever provider it came from.

use super::{MessageStatus, SuppressionReason};
use crate::clock::Timestamp;
use crate::ids::{MessageId, TenantId};
use crate::phone::PhoneNumber;

stored_enum! {
    /// Who sent an event. Twilio's status callbacks and inbound texts today; SES events
    /// (through SNS) and SNS SMS delivery logs parse into the same events.
    pub enum EventSource {
        Twilio,
        Ses,
        Sns,
    }
}

/// One verified event, as Herald understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    Receipt(Receipt),
    /// A receipt that names only the provider's id of the message (SNS's SMS delivery
    /// status logs carry nothing of Herald's); the events function finds the message.
    Unmatched(UnmatchedReceipt),
    Inbound(InboundText),
    /// Something Herald keeps no record of (an intermediate status such as `queued`).
    Ignored {
        what: String,
    },
}

/// A provider's word on one message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub source: EventSource,
    /// The provider's identity of this event: its message id and the status it
    /// reports (Twilio sends one callback per status, each possibly many times).
    pub event_id: String,
    pub tenant: TenantId,
    pub message: MessageId,
    /// The provider's id of the message (Twilio's `MessageSid`).
    pub provider_ref: String,
    /// `sent`, `delivered` or `undelivered`.
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    /// When Herald's receiver took the event.
    pub received_at: Timestamp,
    /// The recipient's address goes on the tenant's suppression list for this reason
    /// (a carrier's "unsubscribed recipient" error; an email's hard bounce or complaint).
    pub suppress: Option<SuppressionReason>,
}

/// A provider's word on a text, naming only the provider's message id and the number:
/// the message is found through the provider reference index, or (for a text whose
/// send answer was lost, `unknown`, so no reference was stored) by its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedReceipt {
    pub source: EventSource,
    /// The provider's identity of this event (SNS: its message id; one record each).
    pub event_id: String,
    pub provider_ref: String,
    pub to: PhoneNumber,
    /// When the provider took the message (SNS: the publish time).
    pub accepted_at: Timestamp,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    pub received_at: Timestamp,
    pub suppress: Option<SuppressionReason>,
}

impl UnmatchedReceipt {
    /// The receipt of the message it was found to be about.
    pub fn of(&self, tenant: TenantId, message: MessageId) -> Receipt {
        Receipt {
            source: self.source,
            event_id: self.event_id.clone(),
            tenant,
            message,
            provider_ref: self.provider_ref.clone(),
            status: self.status,
            error_code: self.error_code.clone(),
            error_reason: self.error_reason.clone(),
            received_at: self.received_at,
            suppress: self.suppress,
        }
    }
}

/// A text a recipient sent to one of Herald's sender numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundText {
    pub source: EventSource,
    /// The provider's id of the inbound message.
    pub event_id: String,
    pub from: PhoneNumber,
    /// The number (or short code) it was sent to.
    pub to: String,
    /// The messaging service the number belongs to, when the provider says.
    pub messaging_service: Option<String>,
    /// What the text asks for, if it is one of the opt-out or opt-in keywords.
    pub keyword: Option<OptKeyword>,
    pub received_at: Timestamp,
}

impl InboundText {
    /// The senders a tenant's profile may name that this text was sent to.
    pub fn senders(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.to.as_str()).chain(self.messaging_service.as_deref())
    }
}

/// The carriers' standard keywords (CTIA): a text that is exactly one of them, in any
/// case and with surrounding space, opts the sender out of (or back into) texts from
/// the number it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKeyword {
    OptOut,
    OptIn,
}

const OPT_OUT: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const OPT_IN: &[&str] = &["START", "UNSTOP", "YES"];

impl OptKeyword {
    /// The keyword `body` is, if it is one. Only the whole text counts: "please stop
    /// texting me at night" is a message, not an opt-out.
    pub fn of(body: &str) -> Option<Self> {
        let word = body.trim().to_ascii_uppercase();
        if OPT_OUT.contains(&word.as_str()) {
            Some(Self::OptOut)
        } else if OPT_IN.contains(&word.as_str()) {
            Some(Self::OptIn)
        } else {
            None
        }
    }
}

/// What applying one receipt found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// The message moved from `from` to the receipt's status; `recipient` is its
    /// address as stored.
    Applied {
        from: MessageStatus,
        recipient: String,
    },
    /// This event was applied (or recorded) before.
    Duplicate,
    /// Seen for the first time, but the message is already where the receipt would
    /// take it or beyond (a late `sent` after `delivered`): nothing changed.
    Stale {
        current: MessageStatus,
        recipient: String,
    },
    /// The message is not recorded as sent yet (its sender has not settled it): try
    /// again later.
    Early,
    /// No such message for the tenant (or its provider reference is another
    /// message's): recorded for people to look at, and counted.
    Orphaned { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_keyword_opts_in_or_out() {
        for body in [
            "STOP",
            "stop",
            "  Stop\n",
            "STOPALL",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT",
        ] {
            assert_eq!(OptKeyword::of(body), Some(OptKeyword::OptOut), "{body:?}");
        }
        for body in ["START", "unstop", " yes "] {
            assert_eq!(OptKeyword::of(body), Some(OptKeyword::OptIn), "{body:?}");
        }
        for body in [
            "",
            "STOP!",
            "please stop",
            "HELP",
            "stop stop",
            "STOPP",
            "yes please",
        ] {
            assert_eq!(OptKeyword::of(body), None, "{body:?}");
        }
    }

    #[test]
    fn event_sources_have_one_name() {
        use strum::VariantArray as _;
        for source in EventSource::VARIANTS {
            let name: &str = (*source).into();
            assert_eq!(serde_json::to_value(source).unwrap(), name);
            assert_eq!(name.parse::<EventSource>(), Ok(*source));
        }
    }
}
