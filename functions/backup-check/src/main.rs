//! The backup check's Lambda entry point: configuration, clients and metrics built once,
//! then every invocation (the schedule's tick or an operator's request) handed to
//! `herald_backup_check::handle` with its deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::config::{BackupCheckConfig, ProcessEnv};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_function("backup-check");
    lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = BackupCheckConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = herald_backup_check::Deps::from_config(config, &clients, herald::clock::system());
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = tokio::time::Instant::now()
                + remaining(event.context.deadline)
                    .saturating_sub(herald_backup_check::DEADLINE_MARGIN);
            Ok::<_, Error>(herald_backup_check::handle(deps, event.payload, deadline).await?)
        },
    ))
    .await
}

fn remaining(deadline_epoch_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}
