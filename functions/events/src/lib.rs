//! The events function: each SQS record is one verified provider event (see
//! `herald::webhook`). It reads the event with its source's parser and applies the
//! `ProviderEvent` the same way whatever the provider: a receipt moves its message
//! once (`Store::apply_receipt`), an inbound STOP or START changes the suppression
//! lists of the tenants sending from that number (`apply::inbound`). A record that can
//! never be read is parked in the events DLQ at once; a receipt that came before its
//! message was recorded as sent is handed back to the queue for later; a failure or a
//! panic fails only its own record. CloudWatch Logs also invokes it with SNS's SMS
//! delivery logs, which it puts on its own queue (`logs`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use herald::CorrelationId;
use herald::clock::SharedClock;
use herald::config::EventsConfig;
use herald::domain::{ProviderEvent, Receipt};
use herald::metrics::{Metrics, Record};
use herald::queue::DeadLetterQueue;
use herald::secrets::SecretsCache;
use herald::store::{ReceiptReads, Store};
use herald::telemetry::error_chain;
use herald::webhook::{EventEnvelope, EventsQueue};
use tracing::Instrument;

mod apply;
mod logs;
mod unmatched;

pub use apply::{Applied, Tally};
pub use logs::{Invocation, handle_logs, invoke};

pub struct Deps {
    pub config: EventsConfig,
    pub store: Store,
    pub dead_letters: DeadLetterQueue,
    /// Where SNS's delivery logs go before they are applied (`logs`).
    pub queue: EventsQueue,
    /// The platform's provider secret: its `from` is the sender number tenants without
    /// their own share.
    pub secrets: Arc<SecretsCache>,
    pub clock: SharedClock,
    pub metrics: Metrics,
}

impl Deps {
    /// Built once per process: by `main` in Lambda, by the local cloud from the
    /// template-derived environment.
    pub fn from_config(
        config: EventsConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Self {
        Self {
            store: Store::new(clients.dynamodb(), &config.table),
            dead_letters: DeadLetterQueue::new(clients.sqs(), &config.dead_letter_queue_url),
            queue: EventsQueue::new(clients.sqs(), &config.events_queue_url),
            secrets: Arc::new(SecretsCache::new(
                clients.secrets_manager(),
                Duration::from_secs(300),
            )),
            config,
            metrics: Metrics::stdout(clock.clone()),
            clock,
        }
    }

    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Processes one SQS batch: each record parsed, the messages its receipts are about read
/// in one request, then the records applied concurrently, each failure (or panic)
/// reported as that record's batch item failure, and one metric line for the batch.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let parsed: Vec<_> = event
        .records
        .iter()
        .map(|record| std::panic::catch_unwind(AssertUnwindSafe(|| parse(record))))
        .collect();
    let receipts: Vec<&Receipt> = parsed
        .iter()
        .filter_map(|parsed| match parsed {
            Ok((_, Ok(Work::Event(ProviderEvent::Receipt(receipt))))) => Some(receipt),
            _ => None,
        })
        .collect();
    // Without the group's read each receipt reads its own message, as it would anyway.
    let reads = match receipts.is_empty() {
        true => None,
        false => deps
            .store
            .read_for_receipts(&receipts)
            .await
            .inspect_err(|e| tracing::warn!(error = %error_chain(e), "reading the receipts' messages together failed; each reads its own"))
            .ok(),
    };
    // A batch holds at most `BatchSize` (10) records: all of them at once.
    let results = futures::future::join_all(
        event
            .records
            .iter()
            .zip(parsed)
            .map(|(record, parsed)| process(deps, record, parsed, reads.as_ref())),
    )
    .await;
    let mut tally = Tally::default();
    let mut response = SqsBatchResponse::default();
    for (failed, counted) in results {
        tally += counted;
        if let Some(id) = failed {
            response.add_failure(id);
        }
    }
    deps.metrics.emit(tally.record(Record::new("events")));
    response
}

/// What a record asks for, parsed from its body before any record is applied; with
/// the correlation id of its envelope when it has one.
type Parsed = (Option<CorrelationId>, Result<Work, RecordError>);

enum Work {
    /// SNS's delivery logs, put back on the queue by `logs`.
    Logs(LogsEvent),
    Event(ProviderEvent),
}

fn parse(record: &SqsMessage) -> Parsed {
    let body = record.body.as_deref().unwrap_or_default();
    if let Some(batch) = logs::redriven(body) {
        return (None, Ok(Work::Logs(batch)));
    }
    match EventEnvelope::parse(body) {
        Err(e) => (None, Err(RecordError::Poison(e.to_string()))),
        Ok(envelope) => {
            let event = envelope
                .event()
                .map(Work::Event)
                .map_err(|e| RecordError::Poison(e.to_string()));
            (Some(envelope.correlation_id), event)
        }
    }
}

/// One record to its end; the id when the queue must deliver it again.
async fn process(
    deps: &Deps,
    record: &SqsMessage,
    parsed: std::thread::Result<Parsed>,
    reads: Option<&ReceiptReads>,
) -> (Option<String>, Tally) {
    let id = record.message_id.clone().unwrap_or_default();
    let span = tracing::info_span!(
        "event",
        sqs_message_id = %id,
        // The attribute until the body is read: a body that cannot be read is still
        // logged under the request that queued it.
        correlation_id = record
            .message_attributes
            .get("correlation_id")
            .and_then(|a| a.string_value.as_deref()),
        tenant_id = tracing::field::Empty,
    );
    let result = match parsed {
        Ok((correlation_id, work)) => {
            if let Some(id) = correlation_id {
                span.record("correlation_id", id.as_str());
            }
            AssertUnwindSafe(run(deps, work, reads).instrument(span.clone()))
                .catch_unwind()
                .await
        }
        Err(panic) => Err(panic),
    };
    async move {
        match result {
            Ok(Ok(Applied::Retry(tally))) => {
                tracing::info!("the event came before its message was recorded; it will come back");
                (Some(id), tally)
            }
            Ok(Ok(Applied::Done(tally))) => (None, tally),
            Ok(Err(RecordError::Poison(reason))) => match park(deps, record, &reason).await {
                Ok(()) => {
                    tracing::error!(%reason, "event can never be applied; parked in the events DLQ");
                    (None, Tally { poison: 1, ..Tally::default() })
                }
                Err(e) => {
                    tracing::error!(%reason, park_error = %error_chain(&e), "event can never be applied and could not be parked");
                    (Some(id), Tally::default())
                }
            },
            Ok(Err(RecordError::Failed(reason))) => {
                tracing::warn!(%reason, "event not applied; handing it back to the queue");
                (Some(id), Tally::default())
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "event processing panicked");
                (Some(id), Tally::default())
            }
        }
    }
    .instrument(span)
    .await
}

#[derive(Debug)]
pub(crate) enum RecordError {
    /// No retry can fix it.
    Poison(String),
    /// A dependency failed; the record comes back.
    Failed(String),
}

async fn run(
    deps: &Deps,
    work: Result<Work, RecordError>,
    reads: Option<&ReceiptReads>,
) -> Result<Applied, RecordError> {
    match work? {
        Work::Logs(batch) => logs::handle_logs(deps, batch)
            .await
            .map(|()| Applied::Done(Tally::default()))
            .map_err(|e| RecordError::Failed(e.to_string())),
        Work::Event(event) => apply::event(deps, event, reads)
            .await
            .map_err(|e| RecordError::Failed(error_chain(&e))),
    }
}

async fn park(
    deps: &Deps,
    record: &SqsMessage,
    reason: &str,
) -> Result<(), herald::queue::QueueError> {
    deps.dead_letters.park_record(record, reason).await
}
