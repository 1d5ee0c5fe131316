//! The deliverer's Lambda entry point: builds its dependencies once per process and
//! hands each batch of the deliveries queue to `herald_outbound::deliver::handle`.

// The handler's future nests the SDK's deeply (as the redriver's does).
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::config::ProcessEnv;
use herald_outbound::{Deps, OutboundConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init();
    let config = OutboundConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = Deps::from_config(config, &clients, herald::clock::system());
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(herald_outbound::deliver::handle(deps, event.payload).await)
    }))
    .await
}
