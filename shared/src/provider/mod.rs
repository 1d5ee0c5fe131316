//! The messaging provider seam: the one place real variety exists (Twilio-compatible
//! HTTP, SES, SNS). Adapters classify every answer into a `SendOutcome`; the sender
//! decides what each outcome means for the message.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::ids::MessageId;
use crate::phone::PhoneNumber;

pub mod sns;
pub mod twilio;

#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub message_id: MessageId,
    pub to: PhoneNumber,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took the message; `provider_ref` is its id for it.
    Accepted { provider_ref: String },
    /// The provider refused this message for good (invalid number, opted out...).
    Rejected { code: String, reason: String },
    /// Known not sent; safe to try again later.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The request may or may not have been sent (timeout after the request left, a
    /// success answer that does not parse). Re-sending could send a duplicate.
    Ambiguous { reason: String },
}

/// Which SMS provider a tenant's messages go through (its profile's `sms_provider`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SmsProviderKind {
    /// The Twilio-compatible Messages API (the sandbox locally).
    #[default]
    Twilio,
    /// Amazon SNS, with the sender's own IAM role.
    Sns,
}

impl SmsProviderKind {
    pub const ALL: [Self; 2] = [Self::Twilio, Self::Sns];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Sns => "sns",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

pub trait Provider: Send + Sync {
    /// The name stored on each message (`twilio`, `ses`, `sns`).
    fn name(&self) -> &'static str;

    fn send_sms<'a>(&'a self, message: &'a OutboundSms) -> BoxFuture<'a, SendOutcome>;
}
