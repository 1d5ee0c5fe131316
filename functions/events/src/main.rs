//! The events function's Lambda entry point: builds its dependencies once per process
//! and hands each invocation (an SQS batch, or a log subscription's) to
//! `herald_events::invoke`.

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
    // SQS batches from the events queue, and CloudWatch Logs' batches of SNS's SMS
    // delivery logs (read by their shape).
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(herald_events::invoke(deps, event.payload).await?)
        },
    ))
    .await
}
