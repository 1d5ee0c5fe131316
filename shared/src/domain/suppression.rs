//! A tenant's suppression list: addresses its messages are not sent to, and why. One
//! entry per address; every reason (a recipient's opt-out, a hard bounce, a complaint,
//! an admin's addition) is the same kind of entry, so email bounces and complaints add
//! entries without a change of shape.

use super::Channel;
use crate::address::Address;
use crate::clock::Timestamp;

stored_enum! {
    /// Why an address is suppressed.
    pub enum SuppressionReason {
        /// The recipient texted STOP (or another opt-out keyword). Only the recipient
        /// can lift it, by texting START.
        OptOut,
        /// The address bounced for good (an email's permanent bounce).
        Bounce,
        /// The recipient marked a message as spam.
        Complaint,
        /// An admin of the tenant added it.
        Manual,
    }
}

impl SuppressionReason {
    /// Whether an admin may remove the entry. An opt-out is the recipient's decision:
    /// removing it would let texts through that carriers require to stop.
    pub fn admin_may_lift(self) -> bool {
        !matches!(self, Self::OptOut)
    }
}

/// One suppressed address of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub address: Address,
    pub reason: SuppressionReason,
    /// Who put it there: `recipient`, `provider`, or the admin's token subject.
    pub source: String,
    /// What caused it: the keyword texted and the number it went to, the bounce type,
    /// an admin's note.
    pub detail: Option<String>,
    pub created_at: Timestamp,
    /// When the change it records happened (the event's time for a recipient's text):
    /// an older event never undoes a newer one.
    pub changed_at: Timestamp,
}

impl Suppression {
    pub fn channel(&self) -> Channel {
        self.address.channel()
    }
}

/// What asking to suppress an address found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressOutcome {
    Suppressed(Suppression),
    /// It was already on the list (left as it was).
    AlreadySuppressed(Suppression),
    /// A newer change to this address (a START sent after this STOP) stands.
    Superseded,
}

/// What asking to lift a suppression found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiftOutcome {
    Lifted(Suppression),
    /// Not on the list (never, or lifted already).
    NotSuppressed,
    /// On the list for a reason the asker may not lift (an admin and an opt-out).
    Refused(Suppression),
    /// A newer change to this address stands.
    Superseded,
}

/// A page of a tenant's suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionPage {
    pub entries: Vec<Suppression>,
    /// Where the next page starts (the last entry's listing position, sealed into a
    /// cursor by the API); `None` at the end.
    pub next: Option<String>,
}
