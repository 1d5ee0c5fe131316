// The scheduled run's future (two sweeps, two redrives, the client sweep) nests past
// the compiler's default query depth when `main`'s async block is laid out.
#![recursion_limit = "256"]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::config::{ProcessEnv, RedriverConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_function("redriver");
    lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = RedriverConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = herald_redriver::Deps::from_config(config, &clients, herald::clock::system());
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = tokio::time::Instant::now()
                + remaining(event.context.deadline)
                    .saturating_sub(herald_redriver::DEADLINE_MARGIN);
            let report = herald_redriver::scheduled(deps, deadline).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
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
