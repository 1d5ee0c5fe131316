//! Receipts that name only the provider's message id (SNS's SMS delivery logs): the
//! message is found through the provider reference index the settle wrote, then the
//! receipt is applied as any other (`apply::receipt`: dedupe, forward only, counts,
//! suppression).
//!
//! A text whose send answer was lost (`unknown`) has no reference stored: it is found
//! by its number instead, among the texts to that number that lost their answer near
//! the time SNS took this one. Exactly one such text is this one; with several, the
//! log could be any of them, and Herald does not guess: it is kept as an orphan.
//!
//! Found nowhere, a record is early while young (the index is eventually consistent,
//! and a sender that stopped between the publish and the settle leaves its message
//! `sending` until the next delivery settles it) and comes back from the queue; once
//! older, it is kept as an orphan.

use std::time::Duration;

use herald::domain::UnmatchedReceipt;
use herald::store::{IndexedMessage, LOST_TEXT_WINDOW, OrphanEvent, StoreError};

use crate::Deps;
use crate::apply::{self, Applied, Tally};

/// How long a record whose message is not found yet keeps coming back: the events
/// queue gives up after 10 receives 60 seconds apart.
const EARLY_FOR: Duration = Duration::from_secs(5 * 60);
/// How much earlier than SNS's publish time an entry may be dated (clock skew between
/// the sender and SNS).
const SKEW: Duration = Duration::from_secs(60);

pub(crate) async fn apply(
    deps: &Deps,
    unmatched: &UnmatchedReceipt,
) -> Result<Applied, StoreError> {
    let source: &str = unmatched.source.into();
    let by_ref = deps
        .store
        .message_by_provider_ref(source, &unmatched.provider_ref)
        .await?;
    if let Some(IndexedMessage { tenant, message }) = by_ref {
        return apply::receipt(deps, &unmatched.of(tenant, message), None).await;
    }
    let accepted = unmatched.accepted_at;
    let lost = deps
        .store
        .lost_texts_to(
            &unmatched.to,
            accepted.minus(SKEW),
            accepted.plus(LOST_TEXT_WINDOW),
        )
        .await?;
    match lost.as_slice() {
        [IndexedMessage { tenant, message }] => {
            tracing::info!(tenant_id = %tenant, message_id = %message, "a text whose answer was lost is found by its number");
            apply::receipt(deps, &unmatched.of(tenant.clone(), *message), None).await
        }
        [] if accepted.until(deps.clock.timestamp()) < EARLY_FOR => Ok(Applied::Retry(Tally {
            early: 1,
            ..Tally::default()
        })),
        [] => orphan(deps, unmatched, "no text of ours has this SNS message id").await,
        several => {
            let reason = format!(
                "{} texts to the number lost their send answer around then; it could be any",
                several.len()
            );
            orphan(deps, unmatched, &reason).await
        }
    }
}

async fn orphan(
    deps: &Deps,
    unmatched: &UnmatchedReceipt,
    reason: &str,
) -> Result<Applied, StoreError> {
    tracing::warn!(provider_ref = %unmatched.provider_ref, %reason, "delivery log for no message of ours; kept");
    let event = OrphanEvent {
        source: String::from(<&str>::from(unmatched.source)),
        event_id: unmatched.event_id.clone(),
        tenant: None,
        message: None,
        reason: format!(
            "{reason} ({}, status {})",
            unmatched.provider_ref, unmatched.status
        ),
        at: unmatched.received_at,
    };
    let mut tally = Tally::default();
    match deps.store.record_orphan(&event).await? {
        true => tally.orphaned = 1,
        false => tally.duplicates = 1,
    }
    Ok(Applied::Done(tally))
}
