//! Message status and its forward-only order.

stored_enum! {
    /// `accepted < sending < sent < delivered`; `failed`, `suppressed`, `undelivered`
    /// and `unknown` rank beside `sent`/`delivered` so a late receipt can still resolve
    /// `unknown`. `cancelled` and `suppressed` are reached only from `accepted` (never
    /// sent) and are final; `delivered` and `undelivered` only by a provider's receipt.
    /// Every status write names, in its condition, the statuses it may overwrite
    /// (`may_replace`), which makes duplicated and reordered updates harmless.
    #[schema(
        description = "Where a message is. `accepted`: stored and queued; `sending`: a \
        sender holds it; `sent`: the provider took it; `delivered` / `undelivered`: the \
        provider's or carrier's receipt says it reached the handset, or that it never will \
        (with the code and reason); `failed`: the provider refused it, not retried; \
        `unknown`: the provider may have taken it but its answer was lost, so it is not sent \
        again (its receipt settles it); `suppressed`: the recipient is on the tenant's \
        suppression list (opted out, bounced...), so it was not sent; `cancelled`: its \
        batch was cancelled before it was sent."
    )]
    pub enum MessageStatus {
        Accepted,
        Sending,
        Sent,
        Delivered,
        Failed,
        Undelivered,
        Unknown,
        Cancelled,
        Suppressed,
    }
}

impl MessageStatus {
    pub fn rank(self) -> u8 {
        match self {
            Self::Accepted => 0,
            Self::Sending => 1,
            Self::Unknown => 2,
            Self::Sent | Self::Failed | Self::Cancelled | Self::Suppressed => 3,
            Self::Delivered | Self::Undelivered => 4,
        }
    }

    /// Whether the sender is done with a message in this status.
    pub fn is_settled(self) -> bool {
        self.rank() >= Self::Unknown.rank()
    }

    /// Whether a message in `current` may be moved to `self`: forward to a higher
    /// rank, or `self` again (a claim taking over a released claim stays `sending`).
    /// Never backward, and never sideways to another status of the same rank.
    pub fn may_replace(self, current: MessageStatus) -> bool {
        current.rank() < self.rank() || current == self
    }

    /// Whether a provider's receipt of `self` may move a message in `current`: only
    /// what the provider took (`sent`) or may have taken (`unknown`) has receipts, and
    /// only forward. A refused, cancelled or suppressed message was never sent, so a
    /// receipt naming it is not believed.
    pub fn receipt_may_replace(self, current: MessageStatus) -> bool {
        matches!(current, Self::Sent | Self::Unknown)
            && matches!(self, Self::Sent | Self::Delivered | Self::Undelivered)
            && self.may_replace(current)
            && self != current
    }

    /// The statuses a write of `self` may find, for its condition.
    pub fn replaceable(self) -> impl Iterator<Item = MessageStatus> {
        use strum::VariantArray as _;
        Self::VARIANTS
            .iter()
            .copied()
            .filter(move |current| self.may_replace(*current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;
    use strum::VariantArray as _;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in MessageStatus::VARIANTS {
            let name: &str = (*s).into();
            assert_eq!(name.parse::<MessageStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                name,
                "serde and strum agree"
            );
        }
        assert!("SENT".parse::<MessageStatus>().is_err());
    }

    #[test]
    fn ranks_only_move_forward_along_the_lifecycle() {
        assert!(Accepted.rank() < Sending.rank());
        assert!(Sending.rank() < Unknown.rank());
        assert!(Unknown.rank() < Sent.rank());
        assert!(Sent.rank() < Delivered.rank());
        assert!(!Sending.is_settled());
        assert!(Unknown.is_settled() && Failed.is_settled());
    }

    #[test]
    fn a_write_may_replace_only_lower_ranks_or_itself() {
        let replaceable = |to: MessageStatus| to.replaceable().collect::<Vec<_>>();
        assert_eq!(replaceable(Sending), [Accepted, Sending]);
        assert_eq!(replaceable(Unknown), [Accepted, Sending, Unknown]);
        assert_eq!(replaceable(Sent), [Accepted, Sending, Sent, Unknown]);
        assert_eq!(
            replaceable(Suppressed),
            [Accepted, Sending, Unknown, Suppressed]
        );
        assert_eq!(replaceable(Failed), [Accepted, Sending, Failed, Unknown]);
        assert_eq!(
            replaceable(Cancelled),
            [Accepted, Sending, Unknown, Cancelled]
        );
        assert_eq!(
            replaceable(Delivered),
            [
                Accepted, Sending, Sent, Delivered, Failed, Unknown, Cancelled, Suppressed
            ]
        );
        // A late receipt resolves `unknown`; nothing takes a final status back.
        assert!(Delivered.may_replace(Unknown) && Undelivered.may_replace(Unknown));
        assert!(!Sending.may_replace(Sent) && !Unknown.may_replace(Sent));
        assert!(
            !Failed.may_replace(Sent) && !Sent.may_replace(Failed),
            "no sideways move"
        );
        assert!(!Sent.may_replace(Delivered) && !Accepted.may_replace(Sending));
    }

    #[test]
    fn a_receipt_moves_only_what_the_provider_took_and_only_forward() {
        for receipt in [Sent, Delivered, Undelivered] {
            for current in MessageStatus::VARIANTS {
                let expected = matches!(
                    (receipt, current),
                    (Sent, Unknown) | (Delivered | Undelivered, Sent | Unknown)
                );
                assert_eq!(
                    receipt.receipt_may_replace(*current),
                    expected,
                    "{receipt} over {current}"
                );
            }
        }
        // A duplicate or a late `sent` changes nothing; nor does a sideways receipt.
        assert!(!Delivered.receipt_may_replace(Delivered));
        assert!(!Undelivered.receipt_may_replace(Delivered));
        assert!(!Sent.receipt_may_replace(Delivered));
        // Only receipt statuses are receipts.
        assert!(!Failed.receipt_may_replace(Sent) && !Suppressed.receipt_may_replace(Sent));
    }
}
