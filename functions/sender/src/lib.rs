//! The sender: one SQS record is one chunk of recipients. Per recipient it claims the
//! message (conditional write), sends it through the provider, and settles it
//! (conditional on still holding the claim). Redelivering a chunk any number of times
//! sends each recipient at most once.
//!
//! The words of `docs/architecture.md`, one module each: a `record` (one SQS record:
//! envelope, poison, parking, panics), its `chunk` (load, run every recipient, count),
//! the `claim` around one recipient (claim, settle, release), and the provider `retry`
//! loop (backoff within the invocation's time). This file wires them: `Deps`, which
//! adapter serves a chunk, and `handle`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::clock::SharedClock;
use herald::config::SenderConfig;
use herald::domain::{Channel, SenderRate, SmsSender};
use herald::keys::{self, Platform};
use herald::metrics::Metrics;
use herald::provider::ses::SesProvider;
use herald::provider::sns::SnsProvider;
use herald::provider::twilio::TwilioProvider;
use herald::provider::{Provider, SmsProviderKind};
use herald::queue::{DeadLetterQueue, SendQueue};
use herald::secrets::SecretsCache;
use herald::store::{ClaimWrite, SettleWrite, Store};
use tokio::sync::Semaphore;
use tokio::time::Instant;

mod chunk;
mod claim;
mod grouped;
mod rate;
mod record;
mod retry;

pub use rate::SharedRate;
pub use retry::SETTLE_MARGIN;

pub struct Deps {
    pub config: SenderConfig,
    pub store: Store,
    pub dead_letters: DeadLetterQueue,
    /// Where a counted chunk queues its batch's next chunk (the window).
    pub queue: SendQueue,
    pub providers: Providers,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The provider's rate, shared with every other instance.
    rate: SharedRate,
    /// Each sender number's own rate, made when a chunk first needs it.
    sender_rates: Mutex<HashMap<SmsSender, (SenderRate, Arc<SharedRate>)>>,
    in_flight: Semaphore,
    /// The instance's claims, and its settles, each grouped into few requests.
    claims: grouped::Grouped<ClaimWrite>,
    settles: grouped::Grouped<SettleWrite>,
    /// Claims held and not yet settled: a settle waits for them only while they last.
    held: Arc<grouped::Held>,
}

impl Deps {
    /// Everything the sender needs, built once per process: by `main` in Lambda, by
    /// the local cloud from the template-derived environment.
    pub fn from_config(
        config: SenderConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let secrets = Arc::new(SecretsCache::new(
            clients.secrets_manager(),
            config.secret_cache_ttl,
        ));
        let provider = TwilioProvider::new(
            &config.sms_api_base,
            &config.provider_secret_id,
            secrets,
            config.provider_timeout,
        )?;
        let store = Store::new(clients.dynamodb(), &config.table);
        let dead_letters = DeadLetterQueue::new(clients.sqs(), &config.dead_letter_queue_url);
        let queue = SendQueue::new(clients.sqs(), &config.send_queue_url);
        let sns = SnsProvider::new(clients.sns_config(), config.provider_timeout);
        let ses = SesProvider::new(
            clients.ses_config(),
            config.email_from.clone(),
            config.ses_configuration_set.clone(),
            config.provider_timeout,
        );
        Ok(Self::new(
            config,
            store,
            (queue, dead_letters),
            Providers::new(Arc::new(provider), Arc::new(sns), Arc::new(ses)),
            clock,
        ))
    }

    /// `queues`: the send queue (for the window's links) and its DLQ.
    pub fn new(
        config: SenderConfig,
        store: Store,
        queues: (SendQueue, DeadLetterQueue),
        providers: Providers,
        clock: SharedClock,
    ) -> Self {
        let (queue, dead_letters) = queues;
        let held = Arc::new(grouped::Held::default());
        Self {
            claims: grouped::Grouped::new(store.clone(), Duration::ZERO, Arc::default()),
            settles: grouped::Grouped::new(store.clone(), config.settle_linger, held.clone()),
            held,
            metrics: Metrics::stdout(clock.clone()),
            rate: SharedRate::new(
                store.clone(),
                keys::provider_rate(Platform::operations()),
                config.provider_rate_per_second,
                config.rate_horizon,
            ),
            sender_rates: Mutex::default(),
            in_flight: Semaphore::new(config.parallelism),
            config,
            store,
            dead_letters,
            queue,
            providers,
            clock,
        }
    }

    /// The gate of `sender`'s own rate; a new one when the rate changed.
    fn sender_rate(&self, sender: &SmsSender, rate: SenderRate) -> Arc<SharedRate> {
        let mut gates = self.sender_rates.lock().unwrap_or_else(|e| e.into_inner());
        match gates.get(sender) {
            Some((known, gate)) if *known == rate => gate.clone(),
            _ => {
                let gate = Arc::new(SharedRate::new(
                    self.store.clone(),
                    keys::sender_rate(Platform::operations(), sender),
                    rate.per_second(),
                    self.config.rate_horizon,
                ));
                gates.insert(sender.clone(), (rate, gate.clone()));
                gate
            }
        }
    }

    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// One adapter per SMS provider a tenant may be on, and the email adapter.
pub struct Providers {
    twilio: Arc<dyn Provider>,
    sns: Arc<dyn Provider>,
    ses: Arc<dyn Provider>,
}

impl Providers {
    pub fn new(twilio: Arc<dyn Provider>, sns: Arc<dyn Provider>, ses: Arc<dyn Provider>) -> Self {
        Self { twilio, sns, ses }
    }

    /// The same adapter for every channel and whatever the tenant chose (a test's
    /// provider with faults).
    pub fn all(provider: Arc<dyn Provider>) -> Self {
        Self::new(provider.clone(), provider.clone(), provider)
    }

    /// The adapter for a chunk: email goes through SES; SMS through the provider the
    /// tenant's profile names.
    pub fn for_chunk(&self, channel: Channel, sms: SmsProviderKind) -> &dyn Provider {
        match (channel, sms) {
            (Channel::Email, _) => self.ses.as_ref(),
            (Channel::Sms, SmsProviderKind::Twilio) => self.twilio.as_ref(),
            (Channel::Sms, SmsProviderKind::Sns) => self.sns.as_ref(),
        }
    }
}

/// Processes one SQS batch. Records run concurrently; each one's failure, error or
/// panic is reported as that record's batch item failure and touches no other record.
pub async fn handle(deps: &Deps, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let failures = futures::future::join_all(
        event
            .records
            .iter()
            .map(|record| record::process(deps, record, deadline)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failures.into_iter().flatten() {
        // An empty id fails the whole batch in Lambda, which is the safe reading of a
        // record we cannot name.
        response.add_failure(id);
    }
    response
}
