//! The deliverer: each record of the deliveries queue is one attempt of one event to
//! one endpoint (`DeliveryJob`). Not yet due (a retry whose wait is longer than SQS's
//! 15-minute delay): queued again with the rest of the wait. Due: the endpoint read
//! (deleted or disabled: nothing sent), the event signed and posted
//! (`outbound::dispatch`, a 410 disabling the endpoint), the attempt kept in the
//! endpoint's log, and on a failure the next attempt queued on the published schedule
//! (a later `Retry-After` wins); when the schedule is spent the event has failed, and
//! its last attempt says so (recover sends it again). A record whose step fails
//! (DynamoDB, SQS, the sealing key) before the request is a batch item failure: SQS
//! hands it over again after its visibility timeout, and after five receives moves it
//! to the DLQ. After the request only queueing the next attempt (and recording an
//! event's last failure) can fail the record: anything else would post a delivered
//! event again.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use herald::clock::Timestamp;
use herald::domain::{
    AttemptRecord, AttemptResult, DisabledReason, EndpointStatus, WebhookEndpoint,
};
use herald::metrics::Record;
use herald::outbound::deliver::Outcome;
use herald::outbound::dispatch::Dispatcher;
use herald::outbound::events::{failing_too_long, next_attempt_compressed};
use herald::outbound::job::DeliveryJob;
use herald::telemetry::error_chain;

use crate::Deps;

/// How long a held-back delivery waits.
const HOLD_BACK: Duration = Duration::from_secs(1);
/// How long a delivery holds its tenant's slot at most: the function's timeout.
const SLOT_HOLD: Duration = Duration::from_secs(30);
/// Slots a delivery tries before it is held back.
const SLOT_PROBES: u32 = 3;

/// What one record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Delivered,
    Retrying,
    Failed,
    Disabled,
    /// Not due yet: queued again.
    Waiting,
    /// The endpoint is gone or disabled: nothing sent.
    Skipped,
    /// The endpoint's rate or the tenant's deliveries in flight at their limit:
    /// queued again for a second later.
    HeldBack,
    /// Not a delivery at all.
    Unreadable,
}

/// One batch: records concurrently, each failure that record's batch item failure.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let dispatcher = match deps.dispatcher().await {
        Ok(dispatcher) => dispatcher,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "sealing key unreadable; every delivery comes back");
            for record in &event.records {
                response.add_failure(record.message_id.clone().unwrap_or_default());
            }
            return response;
        }
    };
    let results = futures::future::join_all(
        event
            .records
            .iter()
            .map(|record| AssertUnwindSafe(process(deps, &dispatcher, record)).catch_unwind()),
    )
    .await;
    let mut done = Vec::new();
    for (record, result) in event.records.iter().zip(results) {
        match result {
            Ok(Ok(d)) => done.push(d),
            Ok(Err(reason)) => {
                tracing::warn!(%reason, "delivery not handled; the queue hands it over again");
                response.add_failure(record.message_id.clone().unwrap_or_default());
            }
            Err(_) => {
                tracing::error!("delivery panicked; the queue hands it over again");
                response.add_failure(record.message_id.clone().unwrap_or_default());
            }
        }
    }
    let count = |d: Done| done.iter().filter(|x| **x == d).count();
    deps.metrics.emit(
        Record::new("outbound-deliver")
            .count("WebhooksDelivered", count(Done::Delivered))
            .count("WebhooksRetried", count(Done::Retrying))
            .count("WebhooksFailed", count(Done::Failed))
            .count("WebhookEndpointsDisabled", count(Done::Disabled))
            .count("WebhooksWaiting", count(Done::Waiting))
            .count("WebhooksSkipped", count(Done::Skipped))
            .count("WebhooksHeldBack", count(Done::HeldBack))
            .count("WebhooksUnreadable", count(Done::Unreadable)),
    );
    response
}

async fn process(
    deps: &Deps,
    dispatcher: &Dispatcher,
    record: &SqsMessage,
) -> Result<Done, String> {
    let Some(job) = record
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<DeliveryJob>(b).ok())
    else {
        tracing::error!(message_id = ?record.message_id, "not a delivery; dropped");
        return Ok(Done::Unreadable);
    };
    let now = deps.clock.timestamp();
    if !job.is_due(now) {
        deps.deliveries
            .send(std::slice::from_ref(&job), now)
            .await
            .map_err(|e| error_chain(&e))?;
        return Ok(Done::Waiting);
    }
    let endpoint = deps
        .store
        .webhook_endpoint(&job.tenant, &job.endpoint_id)
        .await
        .map_err(|e| error_chain(&e))?;
    let Some(endpoint) = endpoint.filter(|e| e.status == EndpointStatus::Enabled) else {
        return Ok(Done::Skipped);
    };
    if let Some(limit) = endpoint.rate_limit_per_second {
        let admitted = deps
            .store
            .admit_delivery(&job.tenant, &endpoint.id, limit, now.epoch_seconds())
            .await
            .map_err(|e| error_chain(&e))?;
        if !admitted {
            return hold_back(deps, &job, now).await;
        }
    }
    let Some(slot) = take_slot(deps, &job, now).await? else {
        return hold_back(deps, &job, now).await;
    };
    let done = attempt(deps, dispatcher, &endpoint, &job, now).await;
    // A slot not freed (DynamoDB failing) frees itself when its lease ends.
    if let Err(e) = deps
        .store
        .release_delivery_slot(&job.tenant, slot.0, &slot.1)
        .await
    {
        tracing::warn!(error = %error_chain(&e), "delivery slot not released; its lease ends it");
    }
    done
}

/// The job again in a second: its endpoint's rate or its tenant's deliveries in
/// flight are at their limit. Not an attempt: nothing is sent or counted as failed.
async fn hold_back(deps: &Deps, job: &DeliveryJob, now: Timestamp) -> Result<Done, String> {
    let later = DeliveryJob {
        not_before: Some(now.plus(HOLD_BACK)),
        ..job.clone()
    };
    deps.deliveries
        .send(&[later], now)
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(Done::HeldBack)
}

/// One of the tenant's delivery slots, if one of `SLOT_PROBES` tried is free: the
/// slot and the token that holds it.
async fn take_slot(
    deps: &Deps,
    job: &DeliveryJob,
    now: Timestamp,
) -> Result<Option<(u32, String)>, String> {
    let cap = deps.config.tenant_in_flight.max(1);
    let token = ulid::Ulid::new().to_string();
    // Deliveries of one tenant start at different slots, so they rarely collide.
    let start = job
        .event_id
        .bytes()
        .chain(job.endpoint_id.bytes())
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for probe in 0..SLOT_PROBES.min(cap) {
        let slot = (start.wrapping_add(probe)) % cap;
        let taken = deps
            .store
            .take_delivery_slot(&job.tenant, slot, &token, now, SLOT_HOLD)
            .await
            .map_err(|e| error_chain(&e))?;
        if taken {
            return Ok(Some((slot, token)));
        }
    }
    Ok(None)
}

/// One attempt of a due job to its enabled endpoint, recorded, and what follows it.
async fn attempt(
    deps: &Deps,
    dispatcher: &Dispatcher,
    endpoint: &WebhookEndpoint,
    job: &DeliveryJob,
    now: Timestamp,
) -> Result<Done, String> {
    let tried = dispatcher
        .attempt(endpoint, &job.event())
        .await
        .map_err(|e| error_chain(&e))?
        .attempt;
    let next = match &tried.outcome {
        Outcome::Delivered | Outcome::Gone => None,
        Outcome::Retry { not_before } => next_attempt_compressed(
            job.attempt as usize,
            now,
            *not_before,
            deps.config.retry_schedule_divisor,
        ),
        Outcome::Refused(_) => next_attempt_compressed(
            job.attempt as usize,
            now,
            None,
            deps.config.retry_schedule_divisor,
        ),
    };
    let (result, done) = match (&tried.outcome, next) {
        (Outcome::Delivered, _) => (AttemptResult::Delivered, Done::Delivered),
        (Outcome::Gone, _) => (AttemptResult::Gone, Done::Disabled),
        (_, Some(_)) => (AttemptResult::Retrying, Done::Retrying),
        (_, None) => (AttemptResult::Failed, Done::Failed),
    };
    let attempt = AttemptRecord {
        event_id: job.event_id.clone(),
        event_type: job.event_type,
        attempt: job.attempt,
        at: now,
        result,
        status_code: tried.status,
        duration_ms: tried.duration.as_millis() as u64,
        excerpt: tried.excerpt.clone(),
        body: job.body.clone(),
    };
    // The endpoint has had the request: a failure from here on must not hand the
    // record back, or the queue's redelivery would post the event again (a delivered
    // event twice). The log and the failing days are kept when they can be; what must
    // be written is the next attempt (without it the event would be lost: its failure
    // hands the record back, and the event is tried again, which is a retry) and an
    // event's last failure, which recover finds by its attempt.
    if let Err(e) = deps
        .store
        .record_attempt(&job.tenant, &job.endpoint_id, &attempt)
        .await
    {
        if done == Done::Failed {
            return Err(error_chain(&e));
        }
        tracing::warn!(error = %error_chain(&e), event_id = %job.event_id, "attempt not kept in the endpoint's log");
    }
    let done = match failing(deps, dispatcher, endpoint, job, done, now).await {
        Ok(done) => done,
        Err(reason) => {
            tracing::warn!(%reason, endpoint_id = %endpoint.id, "failing days not updated; the next attempt does it");
            done
        }
    };
    if let Some(due) = next {
        deps.deliveries
            .send(&[job.retry(due)], now)
            .await
            .map_err(|e| error_chain(&e))?;
    }
    Ok(done)
}

/// Keeps the endpoint's failing days: a delivery ends them, a failure starts them (if
/// not started), and a failure five days after they started disables the endpoint
/// (audited; the stream announces `endpoint.disabled`). The retry already queued then
/// finds the endpoint disabled and sends nothing.
async fn failing(
    deps: &Deps,
    dispatcher: &Dispatcher,
    endpoint: &WebhookEndpoint,
    job: &DeliveryJob,
    done: Done,
    now: Timestamp,
) -> Result<Done, String> {
    let store = &deps.store;
    let failed = matches!(done, Done::Retrying | Done::Failed);
    let mark = match (failed, endpoint.failing_since) {
        (false, Some(_)) if done == Done::Delivered => Some(None),
        (true, None) => Some(Some(now)),
        (true, Some(since)) if failing_too_long(since, now) => {
            dispatcher
                .disable(endpoint, DisabledReason::Failing, &job.event_id)
                .await
                .map_err(|e| error_chain(&e))?;
            tracing::warn!(endpoint_id = %endpoint.id, "endpoint failing for 5 days; disabled");
            return Ok(Done::Disabled);
        }
        _ => None,
    };
    if let Some(since) = mark {
        store
            .mark_endpoint_failing(&job.tenant, &endpoint.id, since)
            .await
            .map_err(|e| error_chain(&e))?;
    }
    Ok(done)
}
