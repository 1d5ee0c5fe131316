//! The fan-out: each stream record, in order, read as a change (`Store`'s stream
//! mapping), the event it announces (`outbound::events`), and one delivery of it
//! queued for each of the tenant's enabled endpoints subscribed to its type. A record
//! that cannot be handled now (DynamoDB or SQS failing) ends the batch there: its
//! sequence number is the batch item failure, so Lambda hands it and every later
//! record of the shard over again, in order. A record whose item cannot be read at
//! all is logged and counted, and passed: it would never be readable.

use std::collections::HashMap;

use herald::domain::WebhookEndpoint;
use herald::ids::TenantId;
use herald::metrics::Record;
use herald::outbound::dispatch::enabled_endpoints;
use herald::outbound::events::{OutboundEvent, batch_event, endpoint_event, message_event};
use herald::outbound::job::{DeliveryJob, QueueError};
use herald::outbound::stream_event::{StreamBatchResponse, StreamEvent, StreamRecord, image};
use herald::store::{StoreError, StreamChange, stream_change};
use herald::telemetry::error_chain;

use crate::Deps;

#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error("reading the tenant's endpoints failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

#[derive(Debug, Default)]
struct Tally {
    events: usize,
    queued: usize,
    unreadable: usize,
}

/// One batch of the shard's records, in order.
pub async fn handle(deps: &Deps, event: StreamEvent) -> StreamBatchResponse {
    // Each tenant's endpoints are read once per batch: a change to an endpoint takes
    // effect from the next batch.
    let mut endpoints: HashMap<TenantId, Vec<WebhookEndpoint>> = HashMap::new();
    let mut tally = Tally::default();
    let mut response = StreamBatchResponse::default();
    for record in &event.records {
        if let Err(e) = fan_out(deps, record, &mut endpoints, &mut tally).await {
            tracing::warn!(
                sequence_number = %record.dynamodb.sequence_number,
                error = %error_chain(&e),
                "stream record not fanned out; the shard goes on from it next time"
            );
            response = StreamBatchResponse::failed_from(&record.dynamodb.sequence_number);
            break;
        }
    }
    deps.metrics.emit(
        Record::new("outbound-fanout")
            .count("WebhookEvents", tally.events)
            .count("WebhookDeliveriesQueued", tally.queued)
            .count("StreamRecordsUnreadable", tally.unreadable),
    );
    response
}

async fn fan_out(
    deps: &Deps,
    record: &StreamRecord,
    endpoints: &mut HashMap<TenantId, Vec<WebhookEndpoint>>,
    tally: &mut Tally,
) -> Result<(), FanOutError> {
    let Some((tenant, event)) = announced(record, tally) else {
        return Ok(());
    };
    tally.events += 1;
    if !endpoints.contains_key(&tenant) {
        let found = enabled_endpoints(&deps.store, &tenant).await?;
        endpoints.insert(tenant.clone(), found);
    }
    let jobs: Vec<DeliveryJob> = endpoints[&tenant]
        .iter()
        .filter(|e| e.event_types.contains(&event.event_type))
        .map(|e| DeliveryJob::first(&tenant, &e.id, &event))
        .collect();
    deps.deliveries.send(&jobs, deps.clock.timestamp()).await?;
    tally.queued += jobs.len();
    Ok(())
}

/// The tenant and the event a record announces, if any.
fn announced(record: &StreamRecord, tally: &mut Tally) -> Option<(TenantId, OutboundEvent)> {
    let data = &record.dynamodb;
    let new = data.new_image.as_ref().map(image);
    let old = data.old_image.as_ref().map(image);
    if matches!(new, Some(None)) || matches!(old, Some(None)) {
        tally.unreadable += 1;
        tracing::error!(sequence_number = %data.sequence_number, "stream image is not DynamoDB JSON");
        return None;
    }
    let change = match stream_change(old.flatten().as_ref(), new.flatten().as_ref()) {
        Ok(change) => change?,
        Err(e) => {
            tally.unreadable += 1;
            tracing::error!(error = %error_chain(&e), "stream record's item is not readable; no event");
            return None;
        }
    };
    match change {
        StreamChange::Message { tenant, old, view } => Some((tenant, message_event(old, &view)?)),
        StreamChange::Batch { tenant, old, view } => Some((tenant, batch_event(old, &view)?)),
        StreamChange::Endpoint { old, endpoint } => {
            Some((endpoint.tenant.clone(), endpoint_event(old, &endpoint)?))
        }
    }
}
