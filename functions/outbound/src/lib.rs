//! Status webhooks to tenants, delivered (issue 15). Two Lambda functions share this
//! crate: the fan-out (`fanout`) reads the table's change stream and queues one
//! delivery per event and subscribed endpoint on the deliveries queue; the deliverer
//! (`deliver`) sends each delivery once, records the attempt, and queues the next
//! attempt on the published schedule when it fails. Split in two so a slow endpoint
//! holds up only deliveries (the queue's concurrency), never the stream's shard, whose
//! records wait behind the one that holds it.

use std::time::Duration;

use herald::clock::SharedClock;
use herald::config::{ConfigError, Settings};
use herald::metrics::Metrics;
use herald::outbound::deliver::{Deliverer, TIMEOUT};
use herald::outbound::dispatch::Dispatcher;
use herald::outbound::job::DeliveryQueue;
use herald::outbound::secret::Sealer;
use herald::secrets::{SecretsCache, SecretsError};
use herald::store::Store;

pub mod deliver;
pub mod fanout;

/// How long the sealing key is used before it is read again (as the API does).
const KEY_TTL: Duration = Duration::from_secs(900);

/// Both functions' settings (one environment in the template).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub table: String,
    pub deliveries_queue_url: String,
    pub webhook_secret_key_id: String,
    /// The stack's environment is dev: `http://127.0.0.1` endpoints are called.
    pub dev: bool,
    /// Every delay of the retry schedule is divided by this: 1 in every deployed
    /// stack; tests compress the schedule with it and run the same code.
    pub retry_schedule_divisor: u32,
    /// Deliveries of one tenant in flight at once, at most (of the deliverer's 50
    /// invocations of 10 each), so one tenant's slow endpoint cannot take them all.
    pub tenant_in_flight: u32,
}

impl OutboundConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            table: settings.required("HERALD_TABLE")?,
            deliveries_queue_url: settings.required("HERALD_DELIVERIES_QUEUE_URL")?,
            webhook_secret_key_id: settings.required("HERALD_WEBHOOK_SECRET_KEY_ID")?,
            dev: settings.required("HERALD_ENV")? == "dev",
            retry_schedule_divisor: settings.number("HERALD_WEBHOOK_RETRY_DIVISOR", 1)?,
            tenant_in_flight: settings.number("HERALD_WEBHOOK_TENANT_IN_FLIGHT", 25)?,
        })
    }
}

pub struct Deps {
    pub config: OutboundConfig,
    pub store: Store,
    pub deliveries: DeliveryQueue,
    pub deliverer: Deliverer,
    secrets: SecretsCache,
    pub clock: SharedClock,
    pub metrics: Metrics,
}

impl Deps {
    /// Built once per process: by `main` in Lambda, by the local cloud from the
    /// template-derived environment.
    pub fn from_config(
        config: OutboundConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Self {
        Self {
            store: Store::new(clients.dynamodb(), &config.table),
            deliveries: DeliveryQueue::new(clients.sqs(), &config.deliveries_queue_url),
            deliverer: Deliverer::new(config.dev, TIMEOUT),
            secrets: SecretsCache::new(clients.secrets_manager(), KEY_TTL),
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

    /// A dispatcher with the current sealing key.
    pub async fn dispatcher(&self) -> Result<Dispatcher, SecretsError> {
        let key = self.secrets.get(&self.config.webhook_secret_key_id).await?;
        Ok(Dispatcher {
            store: self.store.clone(),
            deliverer: self.deliverer.clone(),
            sealer: Sealer::from_secret(&key),
            clock: self.clock.clone(),
        })
    }
}
