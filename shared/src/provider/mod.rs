//! The messaging provider seam: the one place real variety exists (Twilio-compatible
//! HTTP, SES, SNS). Adapters classify every answer into a `SendOutcome`; the sender
//! decides what each outcome means for the message, and picks the adapter by channel
//! (email: SES; SMS: the tenant's `sms_provider`).

use std::time::Duration;

use futures::future::BoxFuture;

use crate::address::EmailAddress;
use crate::ids::{MessageId, TenantId};
use crate::phone::PhoneNumber;

mod aws_errors;
pub mod retry_after;

/// The tenant's choice of SMS provider, which the sender routes on.
pub use crate::domain::SmsProviderKind;
pub mod ses;
pub mod sns;
pub mod twilio;
pub mod twilio_keys;

#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub message_id: MessageId,
    pub to: PhoneNumber,
    pub body: String,
    /// The tenant's own sender number or messaging service; `None`: the platform's.
    pub from: Option<String>,
    /// Where the provider reports this message's delivery (Twilio's per-message
    /// `StatusCallback`); `None` asks for no receipts.
    pub status_callback: Option<String>,
}

/// A plain-text email.
#[derive(Debug, Clone)]
pub struct OutboundEmail {
    pub message_id: MessageId,
    /// Whose message it is: tagged on the email, so its SES events name it.
    pub tenant: TenantId,
    pub to: EmailAddress,
    pub subject: String,
    pub body: String,
}

/// One message to send, of either channel.
#[derive(Debug, Clone)]
pub enum Outbound {
    Sms(OutboundSms),
    Email(OutboundEmail),
}

impl Outbound {
    pub fn message_id(&self) -> MessageId {
        match self {
            Self::Sms(m) => m.message_id,
            Self::Email(m) => m.message_id,
        }
    }

    /// The recipient as stored: the E.164 number or the email address.
    pub fn to(&self) -> &str {
        match self {
            Self::Sms(m) => m.to.as_str(),
            Self::Email(m) => m.to.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took the message; `provider_ref` is its id for it.
    Accepted { provider_ref: String },
    /// The provider refused this message for good (invalid number, opted out...).
    Rejected { code: String, reason: String },
    /// Known not taken (the provider turned the request away, or it never left);
    /// safe to try again later, not before `retry_after` if the provider said so.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The request may or may not have been taken (a timeout after the request left, a
    /// 5xx other than 503, a success answer that does not parse). Re-sending could
    /// send a duplicate, so it is never re-sent: the message becomes `unknown`.
    Ambiguous { reason: String },
}

pub trait Provider: Send + Sync {
    /// The name stored on each message (`twilio`, `ses`, `sns`).
    fn name(&self) -> &'static str;

    /// Sends one message. An adapter given a channel it does not carry refuses it
    /// (`wrong_channel`) without calling anyone; the sender never routes one there.
    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, SendOutcome>;
}

/// The number a text is indexed by when its send answer was lost (it ends `unknown`):
/// SNS's delivery log of it names only SNS's message id, which Herald never got, and
/// the number. Other providers echo Herald's own id, so nothing is indexed for them.
pub fn lost_text_to(provider: &dyn Provider, to: &crate::Address) -> Option<PhoneNumber> {
    match to {
        crate::Address::Phone(number) if provider.name() == "sns" => Some(number.clone()),
        _ => None,
    }
}

/// The answer of an adapter handed a message of a channel it does not carry.
pub fn wrong_channel(provider: &str, message: &Outbound) -> SendOutcome {
    let channel = match message {
        Outbound::Sms(_) => "sms",
        Outbound::Email(_) => "email",
    };
    SendOutcome::Rejected {
        code: "wrong_channel".into(),
        reason: format!("{provider} does not send {channel} messages"),
    }
}
