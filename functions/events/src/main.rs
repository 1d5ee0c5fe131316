//! The events function's Lambda entry point: builds its dependencies once per process
//! and hands each SQS event to `herald_events::handle`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::config::{EventsConfig, ProcessEnv};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_function("events");
    lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = EventsConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = herald_events::Deps::from_config(config, &clients, herald::clock::system());
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(herald_events::handle(deps, event.payload).await)
    }))
    .await
}
