//! The empty `lambda_runtime` function `herald-coldstart` compares each of Herald's
//! functions with: the same runtime and the same build profile, and nothing else (no
//! logs, no configuration, no SDK). The difference between its cold start and a
//! function's is what that function's own start-up costs.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
