//! Status webhooks to tenants, played locally (issue 15): the fan-out on the table's
//! stream (`stream_runner`, as Lambda's event source mapping reads it) and the
//! deliverer on the deliveries queue (`runner`), each built from its template
//! environment. Only stacks that ask for it run them (`CloudOptions::outbound`): every
//! idle reader costs the one emulator a read four times a second.

use std::sync::Arc;

use anyhow::Result;
use futures::FutureExt;
use herald_outbound::{Deps, OutboundConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::provision::Stack;
use crate::runner::QueueRunner;
use crate::stream_runner::{StreamRunner, StreamTrigger};

/// Pollers of the deliveries queue locally (the template allows 50 concurrent).
const LOCAL_DELIVERY_POLLERS: usize = 4;

pub struct Outbound {
    /// The fan-out's and the deliverer's dependencies (one environment).
    pub deps: Arc<Deps>,
    pub deliveries: Arc<QueueRunner>,
    pub stream: StreamTrigger,
}

impl Outbound {
    /// Both functions' dependencies, as their `main` builds them from the template's
    /// environment, with the clock they read and where their metrics go.
    pub fn deps(
        env: &std::collections::HashMap<String, String>,
        clients: &herald::aws::Clients,
        clock: herald::clock::SharedClock,
        metrics: herald::metrics::Metrics,
    ) -> Result<Deps> {
        Ok(Deps::from_config(OutboundConfig::load(env)?, clients, clock).with_metrics(metrics))
    }

    /// Starts both functions' event sources.
    pub fn start(
        stack: &Stack,
        deps: Deps,
        clients: &herald::aws::Clients,
        sdk: &herald::aws::SdkConfig,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Result<Self> {
        let deps = Arc::new(deps);
        let stream = stack.stream_trigger("OutboundFanoutFunction")?;
        let fanout_deps = deps.clone();
        let reader = Arc::new(StreamRunner {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            trigger: stream.clone(),
            handler: Arc::new(move |event| {
                let deps = fanout_deps.clone();
                async move { herald_outbound::fanout::handle(&deps, event).await }.boxed()
            }),
        });
        tasks.push(tokio::spawn(reader.run(shutdown.clone())));

        let trigger = stack.queue_trigger("OutboundDeliverFunction")?;
        let pollers = trigger.max_concurrency.clamp(1, LOCAL_DELIVERY_POLLERS);
        let deliver_deps = deps.clone();
        let deliveries = Arc::new(QueueRunner {
            sqs: clients.sqs(),
            trigger,
            handler: Arc::new(move |event, _deadline| {
                let deps = deliver_deps.clone();
                async move { herald_outbound::deliver::handle(&deps, event).await }.boxed()
            }),
            timed_out: Default::default(),
            paused: Default::default(),
        });
        let runner = deliveries.clone();
        let rx = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            QueueRunner::run(runner, pollers, rx).await;
        }));
        Ok(Self {
            deps,
            deliveries,
            stream,
        })
    }
}
