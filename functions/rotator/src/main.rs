//! The rotator's Lambda wiring: Secrets Manager's rotation steps, and the scheduled
//! retirement of keys whose grace period has passed.

use herald::config::ProcessEnv;
use herald_rotator::{Deps, Invocation, RotatorConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald::telemetry::init_function("rotator");
    lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = RotatorConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let deps = Deps::from_config(config, &clients, herald::clock::system())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let answer = match Invocation::read(event.payload)? {
                Invocation::Step(step) => {
                    herald_rotator::step(deps, &step).await?;
                    serde_json::Value::Null
                }
                Invocation::Retire => serde_json::to_value(herald_rotator::retire(deps).await?)?,
            };
            Ok::<_, Error>(answer)
        },
    ))
    .await
}
