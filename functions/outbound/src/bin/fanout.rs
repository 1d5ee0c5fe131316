//! The fan-out function's Lambda entry point: builds its dependencies once per process
//! and hands each batch of the table's stream to `herald_outbound::fanout::handle`.

// The handler's future nests the SDK's deeply (as the redriver's does).
#![recursion_limit = "256"]

use herald::config::ProcessEnv;
use herald::outbound::stream_event::{StreamBatchResponse, StreamEvent};
use herald_outbound::{Deps, OutboundConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init();
    let config = OutboundConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = Deps::from_config(config, &clients, herald::clock::system());
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            Ok::<StreamBatchResponse, Error>(
                herald_outbound::fanout::handle(deps, event.payload).await,
            )
        },
    ))
    .await
}
