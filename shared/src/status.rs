//! Message status and its forward-only order.

use serde::{Deserialize, Serialize};

/// `accepted < sending < sent < delivered`; `failed`, `undeliverable` and `unknown`
/// rank beside `sent`/`delivered` so a late receipt can still resolve `unknown`.
/// `cancelled` is reached only from `accepted` (never claimed) and is final.
/// Every status write names the ranks it may overwrite in its condition, which makes
/// duplicated and reordered updates harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(
    description = "Where a message is. `accepted`: stored and queued; `sending`: a \
    sender holds it; `sent`: the provider took it; `delivered` / `undeliverable`: the \
    carrier's receipt; `failed`: the provider refused it, not retried; `unknown`: the \
    provider may have taken it but its answer was lost, so it is not sent again (a late \
    receipt can still settle it); `cancelled`: its batch was cancelled before it was sent."
)]
pub enum MessageStatus {
    Accepted,
    Sending,
    Sent,
    Delivered,
    Failed,
    Undeliverable,
    Unknown,
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 8] = [
        Self::Accepted,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::Undeliverable,
        Self::Unknown,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Undeliverable => "undeliverable",
            Self::Unknown => "unknown",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn rank(self) -> u8 {
        match self {
            Self::Accepted => 0,
            Self::Sending => 1,
            Self::Unknown => 2,
            Self::Sent | Self::Failed | Self::Cancelled => 3,
            Self::Delivered | Self::Undeliverable => 4,
        }
    }

    /// Whether the sender is done with a message in this status.
    pub fn is_settled(self) -> bool {
        self.rank() >= Self::Unknown.rank()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::parse("SENT"), None);
    }

    #[test]
    fn ranks_only_move_forward_along_the_lifecycle() {
        use MessageStatus::*;
        assert!(Accepted.rank() < Sending.rank());
        assert!(Sending.rank() < Unknown.rank());
        assert!(Unknown.rank() < Sent.rank());
        assert!(Sent.rank() < Delivered.rank());
        assert!(!Sending.is_settled());
        assert!(Unknown.is_settled() && Failed.is_settled());
    }
}
