//! Applying one `ProviderEvent`, whatever provider it came from, and counting what it
//! did for the batch's metric line.
//!
//! Inbound texts: a STOP (or another opt-out keyword) to a sender number suppresses
//! the texter for every tenant whose texts go out from that number, and a START lifts
//! that opt-out for the same tenants. A number shared by several tenants (the
//! platform's, for tenants without their own) is one sender to the recipient, and
//! carriers (and Twilio itself, which blocks the pair) hold the opt-out per sending
//! number: so it applies to all of them.

use herald::domain::{
    Channel, InboundText, MessageStatus, OptKeyword, ProviderEvent, Receipt, ReceiptOutcome,
    SuppressOutcome, Suppression,
};
use herald::metrics::Record;
use herald::provider::twilio::TwilioCredentials;
use herald::store::{Lifter, OrphanEvent, ReceiptReads, StoreError};
use herald::{Address, PhoneNumber, TenantId};

use crate::Deps;

/// What one event did.
pub enum Applied {
    Done(Tally),
    /// Not yet applicable (its message is not recorded as sent): try again later.
    Retry(Tally),
}

/// Counts of what a batch of events did, for its metric line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub applied: usize,
    /// Of `applied`, the receipts that moved their message to `delivered`, and to
    /// `undelivered`: the dashboard's outcomes per minute.
    pub delivered: usize,
    pub undelivered: usize,
    pub duplicates: usize,
    pub stale: usize,
    pub early: usize,
    pub orphaned: usize,
    pub ignored: usize,
    pub opt_outs: usize,
    pub opt_ins: usize,
    pub poison: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.applied += o.applied;
        self.delivered += o.delivered;
        self.undelivered += o.undelivered;
        self.duplicates += o.duplicates;
        self.stale += o.stale;
        self.early += o.early;
        self.orphaned += o.orphaned;
        self.ignored += o.ignored;
        self.opt_outs += o.opt_outs;
        self.opt_ins += o.opt_ins;
        self.poison += o.poison;
    }
}

impl Tally {
    pub fn record(&self, record: Record) -> Record {
        record
            .count("ReceiptsApplied", self.applied)
            .count("Delivered", self.delivered)
            .count("Undelivered", self.undelivered)
            .count("ReceiptsDuplicate", self.duplicates)
            .count("ReceiptsStale", self.stale)
            .count("ReceiptsEarly", self.early)
            .count("EventsOrphaned", self.orphaned)
            .count("EventsIgnored", self.ignored)
            .count("OptOuts", self.opt_outs)
            .count("OptIns", self.opt_ins)
            .count("EventsPoisonParked", self.poison)
    }
}

/// Why an event could not be applied now (it comes back).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the platform's sender is unknown: {0}")]
    PlatformSender(String),
}

pub(crate) async fn event(
    deps: &Deps,
    event: ProviderEvent,
    reads: Option<&ReceiptReads>,
) -> Result<Applied, ApplyError> {
    match event {
        ProviderEvent::Receipt(receipt) => Ok(self::receipt(deps, &receipt, reads).await?),
        ProviderEvent::Unmatched(receipt) => Ok(crate::unmatched::apply(deps, &receipt).await?),
        ProviderEvent::Inbound(text) => inbound(deps, &text).await.map(Applied::Done),
        ProviderEvent::Ignored { what } => {
            tracing::debug!(%what, "nothing to record");
            Ok(Applied::Done(Tally {
                ignored: 1,
                ..Tally::default()
            }))
        }
    }
}

pub(crate) async fn receipt(
    deps: &Deps,
    receipt: &Receipt,
    reads: Option<&ReceiptReads>,
) -> Result<Applied, StoreError> {
    tracing::Span::current().record("tenant_id", receipt.tenant.as_str());
    let outcome = deps.store.apply_receipt(receipt, reads).await?;
    let mut tally = Tally::default();
    let recipient = match &outcome {
        ReceiptOutcome::Applied { from, recipient } => {
            tracing::info!(message_id = %receipt.message, %from, to = %receipt.status, "receipt applied");
            tally.applied = 1;
            match receipt.status {
                MessageStatus::Delivered => tally.delivered = 1,
                MessageStatus::Undelivered => tally.undelivered = 1,
                _ => {}
            }
            Some(recipient)
        }
        ReceiptOutcome::Stale { current, recipient } => {
            tracing::info!(message_id = %receipt.message, %current, receipt = %receipt.status, "receipt changes nothing");
            tally.stale = 1;
            Some(recipient)
        }
        ReceiptOutcome::Duplicate => {
            tally.duplicates = 1;
            None
        }
        ReceiptOutcome::Early => {
            tally.early = 1;
            return Ok(Applied::Retry(tally));
        }
        ReceiptOutcome::Orphaned { reason } => {
            tracing::warn!(message_id = %receipt.message, %reason, "receipt for no message of ours; kept");
            tally.orphaned = 1;
            None
        }
    };
    // A receipt that says the recipient opted out (or, for email, bounced for good)
    // puts them on the tenant's list.
    if let (Some(reason), Some(recipient)) = (receipt.suppress, recipient) {
        let channel = match receipt.source {
            herald::domain::EventSource::Ses => Channel::Email,
            _ => Channel::Sms,
        };
        if let Ok(address) = Address::parse(channel, recipient) {
            let entry = Suppression {
                address,
                reason,
                source: "provider".into(),
                detail: receipt.error_code.clone(),
                created_at: receipt.received_at,
                changed_at: receipt.received_at,
            };
            deps.store.suppress(&receipt.tenant, &entry, true).await?;
        }
    }
    Ok(Applied::Done(tally))
}

/// A text a recipient sent: STOP and START change suppression lists; anything else is
/// not Herald's to answer.
async fn inbound(deps: &Deps, text: &InboundText) -> Result<Tally, ApplyError> {
    let mut tally = Tally::default();
    let Some(keyword) = text.keyword else {
        tally.ignored = 1;
        return Ok(tally);
    };
    let tenants = tenants_sending_from(deps, text).await?;
    let source: &str = text.source.into();
    if tenants.is_empty() {
        let orphan = OrphanEvent {
            source: source.to_owned(),
            event_id: text.event_id.clone(),
            tenant: None,
            message: None,
            reason: format!("a text to {}, which no tenant sends from", text.to),
            at: text.received_at,
        };
        if deps.store.record_orphan(&orphan).await? {
            tally.orphaned = 1;
        } else {
            tally.duplicates = 1;
        }
        return Ok(tally);
    }
    // Every change is ordered by the text's time, so applying it again (a duplicate,
    // or a retry after a failure part-way) changes nothing.
    for tenant in &tenants {
        apply_keyword(deps, tenant, &text.from, keyword, text).await?;
    }
    let outcome = match keyword {
        OptKeyword::OptOut => "opted out",
        OptKeyword::OptIn => "opted in",
    };
    if deps
        .store
        .first_sighting(source, &text.event_id, outcome, text.received_at)
        .await?
    {
        match keyword {
            OptKeyword::OptOut => tally.opt_outs = 1,
            OptKeyword::OptIn => tally.opt_ins = 1,
        }
        tracing::info!(tenants = tenants.len(), outcome, "inbound keyword applied");
    } else {
        tally.duplicates = 1;
    }
    Ok(tally)
}

async fn apply_keyword(
    deps: &Deps,
    tenant: &TenantId,
    from: &PhoneNumber,
    keyword: OptKeyword,
    text: &InboundText,
) -> Result<(), StoreError> {
    let address = Address::Phone(from.clone());
    match keyword {
        OptKeyword::OptOut => {
            let entry = Suppression {
                address,
                reason: herald::domain::SuppressionReason::OptOut,
                source: "recipient".into(),
                detail: Some(format!("texted an opt-out keyword to {}", text.to)),
                created_at: text.received_at,
                changed_at: text.received_at,
            };
            if let SuppressOutcome::Superseded = deps.store.suppress(tenant, &entry, true).await? {
                tracing::info!(tenant_id = %tenant, "a later opt-in stands");
            }
        }
        OptKeyword::OptIn => {
            let lifter = Lifter::Recipient {
                at: text.received_at,
            };
            deps.store
                .lift_suppression(tenant, &address, &lifter)
                .await?;
        }
    }
    Ok(())
}

/// The tenants whose texts go out from the number (or messaging service) the text
/// was sent to: those that name it as their own sender and, when it is the
/// platform's, those without one.
async fn tenants_sending_from(
    deps: &Deps,
    text: &InboundText,
) -> Result<Vec<TenantId>, ApplyError> {
    let mut tenants = Vec::new();
    for sender in text.senders() {
        tenants.extend(deps.store.tenants_sending_from(Some(sender)).await?);
    }
    let platform = platform_sender(deps).await?;
    if text.senders().any(|s| s == platform) {
        tenants.extend(deps.store.tenants_sending_from(None).await?);
    }
    tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    tenants.dedup();
    Ok(tenants)
}

/// The platform's sender (the provider secret's `from`). Without it a STOP to the
/// shared number would reach only some of its tenants, so the event waits instead.
async fn platform_sender(deps: &Deps) -> Result<String, ApplyError> {
    let secret = deps
        .secrets
        .get(&deps.config.provider_secret_id)
        .await
        .map_err(|e| ApplyError::PlatformSender(herald::telemetry::error_chain(&e)))?;
    TwilioCredentials::parse(&secret)
        .map(|credentials| credentials.from)
        .map_err(|e| ApplyError::PlatformSender(e.to_string()))
}
