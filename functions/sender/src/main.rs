//! The sender's Lambda entry point: builds the dependencies once per process and hands
//! each SQS event to `herald_sender::handle` with the invocation's deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::config::{ProcessEnv, SenderConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_function("sender");
    lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = SenderConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = herald_sender::Deps::from_config(config, &clients, herald::clock::system())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = tokio::time::Instant::now() + remaining(event.context.deadline);
        Ok::<SqsBatchResponse, Error>(herald_sender::handle(deps, event.payload, deadline).await)
    }))
    .await
}

fn remaining(deadline_epoch_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}
