//! The claim around one recipient: claim the message (or find it final, or held by
//! another delivery), send it through the retry loop, then settle the outcome while
//! the claim is still ours, or release the claim when nothing was sent. A cancelled
//! batch's recipient is ended `cancelled` instead.

use std::sync::atomic::Ordering;

use herald::domain::{ClaimOutcome, Lease, Recipient, Settlement};
use herald::provider::{Outbound, OutboundEmail, OutboundSms, lost_text_to};
use herald::store::{StoreError, Unsent};
use herald::webhook::twilio;
use herald::{Address, MessageId, MessageStatus};

use crate::chunk::ChunkRun;
use crate::grouped::Holding;
use crate::retry::{self, Attempted};

/// What became of one recipient in this pass.
pub(crate) enum Done {
    /// This pass put the message in this final status.
    Settled(MessageStatus),
    /// The message was found in this final status.
    Final(MessageStatus),
    /// Not final yet (not sent, or held by another delivery); the chunk must come back.
    Retry,
}

/// Ends a recipient the chunk does not send (its batch was cancelled, or the
/// recipient is suppressed) without a provider call.
#[tracing::instrument(skip_all, fields(tenant_id = %run.tenant, message_id = %id, %why))]
pub(crate) async fn end_unsent(
    run: &ChunkRun<'_>,
    id: MessageId,
    to: &Address,
    why: Unsent,
) -> Result<Done, StoreError> {
    let deps = run.deps;
    let ended = match why {
        Unsent::Cancelled => MessageStatus::Cancelled,
        Unsent::Suppressed { .. } => MessageStatus::Suppressed,
    };
    let outcome = deps
        .store
        .end_unsent(run.tenant, id, run.chunk, to, why, deps.clock.timestamp())
        .await?;
    Ok(match outcome {
        None => Done::Settled(ended),
        Some(status) if status.is_settled() => Done::Final(status),
        // Claimed before this pass: its sender finishes it, and a later pass over the
        // chunk counts it.
        Some(_) => Done::Retry,
    })
}

#[tracing::instrument(skip_all, fields(tenant_id = %run.tenant, message_id = %id))]
pub(crate) async fn send_one(
    run: &ChunkRun<'_>,
    id: MessageId,
    recipient: &Recipient,
) -> Result<Done, StoreError> {
    // A claim made now must be settled before the invocation ends: a provider call at
    // its longest, then the settle write. Past that point, leave the message unclaimed
    // for the chunk's redelivery (a claim cut off by the timeout would become unknown).
    // The permit is taken first, so an invocation holding several chunks never has
    // more claims outstanding than it can send at once.
    let _permit = run
        .deps
        .in_flight
        .acquire()
        .await
        .expect("semaphore is never closed");
    if !retry::time_to_send(run.deps, run.deadline) {
        run.cut.fetch_add(1, Ordering::Relaxed);
        return Ok(Done::Retry);
    }
    let (token, holding) = match claim(run, id, &recipient.to).await? {
        Claim::Held(token) => (token, run.deps.held.hold()),
        Claim::Done(done) => return Ok(done),
    };
    let message = match outbound(run, id, recipient) {
        Ok(message) => message,
        Err(failed) => return settle_held(run, id, &token, holding, failed).await,
    };
    match retry::send(run, &message).await {
        Attempted::Answered(settlement) => settle_held(run, id, &token, holding, settlement).await,
        Attempted::NotSent { reason } => {
            drop(holding);
            release(run, id, &token, &reason).await
        }
        Attempted::OutOfTime => {
            drop(holding);
            let done = release(run, id, &token, "out of invocation time").await;
            run.cut.fetch_add(1, Ordering::Relaxed);
            done
        }
    }
}

/// Known not sent: gives the claim back for the chunk's next pass.
async fn release(
    run: &ChunkRun<'_>,
    id: MessageId,
    token: &str,
    reason: &str,
) -> Result<Done, StoreError> {
    run.deps
        .store
        .release(run.tenant, id, token, reason, run.deps.clock.timestamp())
        .await?;
    Ok(Done::Retry)
}

enum Claim {
    /// This pass holds the message with this token.
    Held(String),
    /// Nothing to send in this pass.
    Done(Done),
}

async fn claim(run: &ChunkRun<'_>, id: MessageId, to: &Address) -> Result<Claim, StoreError> {
    let deps = run.deps;
    let lease = Lease::starting(deps.clock.timestamp(), deps.config.lease);
    let write = deps
        .store
        .claim_write(run.tenant, id, run.chunk, to, &lease);
    Ok(match deps.claims.write(write).await? {
        ClaimOutcome::Claimed { token } => Claim::Held(token),
        ClaimOutcome::Settled(status) => Claim::Done(Done::Final(status)),
        ClaimOutcome::HeldElsewhere {
            lease_expired: false,
            ..
        } => Claim::Done(Done::Retry),
        ClaimOutcome::HeldElsewhere {
            lease_expired: true,
            token,
        } => {
            // The holder stopped after claiming and never settled: it may or may not
            // have sent. Re-sending could text someone twice, so it becomes unknown.
            let unknown = Settlement::Unknown {
                reason: "the sender stopped between claiming and recording the outcome".into(),
                lost_text_to: lost_text_to(run.provider, to),
            };
            Claim::Done(settle(run, id, &token, unknown).await?)
        }
    })
}

/// The message to send to this recipient, or why nothing can be sent for it.
fn outbound(
    run: &ChunkRun<'_>,
    id: MessageId,
    recipient: &Recipient,
) -> Result<Outbound, Settlement> {
    let chunk = run.chunk;
    let rendered = chunk
        .body_for(recipient)
        .and_then(|body| Ok((body, chunk.subject_for(recipient)?)));
    let (body, subject) = match rendered {
        Ok(rendered) => rendered,
        // The API renders every recipient before accepting a batch, so only a chunk
        // written some other way gets here; it must not send a half-filled text.
        Err(missing) => {
            return Err(Settlement::Failed {
                code: "template".into(),
                reason: missing.to_string(),
            });
        }
    };
    match (&recipient.to, subject) {
        (Address::Phone(to), None) => Ok(Outbound::Sms(OutboundSms {
            message_id: id,
            to: to.clone(),
            body,
            from: run.sms_sender.map(|s| s.as_str().to_owned()),
            status_callback: run
                .deps
                .config
                .webhooks_base_url
                .as_deref()
                .map(|base| twilio::status_callback(base, run.tenant, id, run.correlation)),
        })),
        (Address::Email(to), Some(subject)) => Ok(Outbound::Email(OutboundEmail {
            message_id: id,
            tenant: run.tenant.clone(),
            to: to.clone(),
            subject,
            body,
        })),
        // The chunk's reader checks that only email chunks carry a subject and parses
        // each address for the chunk's channel, so this is a chunk written some other
        // way: nothing can be sent for it.
        (to, _) => Err(Settlement::Failed {
            code: "channel".into(),
            reason: format!("a {} address in a {} chunk", to.channel(), chunk.channel),
        }),
    }
}

/// Settles a claim this pass made, grouped with the instance's other settles.
async fn settle_held(
    run: &ChunkRun<'_>,
    id: MessageId,
    token: &str,
    holding: Holding,
    settlement: Settlement,
) -> Result<Done, StoreError> {
    let deps = run.deps;
    let write = deps
        .store
        .settle_write(run.tenant, id, token, &settlement, deps.clock.timestamp());
    let settled = deps.settles.write_for(holding, write).await?;
    settled_as(settled, settlement)
}

/// Settles a claim another delivery left behind, on its own.
async fn settle(
    run: &ChunkRun<'_>,
    id: MessageId,
    token: &str,
    settlement: Settlement,
) -> Result<Done, StoreError> {
    let deps = run.deps;
    let settled = deps
        .store
        .settle(run.tenant, id, token, &settlement, deps.clock.timestamp())
        .await?;
    settled_as(settled, settlement)
}

fn settled_as(settled: bool, settlement: Settlement) -> Result<Done, StoreError> {
    if settled {
        tracing::info!(status = %settlement.status(), "message settled");
        Ok(Done::Settled(settlement.status()))
    } else {
        // The claim was taken over (its lease ran out): whoever took it records the
        // outcome, and a later pass reads and counts it.
        Ok(Done::Retry)
    }
}
