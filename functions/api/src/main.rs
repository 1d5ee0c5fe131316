use std::sync::Arc;

use herald::config::{ApiConfig, ProcessEnv};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init_function("api");
    lambda_http::lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = ApiConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let app = herald_api::App::new(config, &clients, herald::clock::system());
    lambda_http::run(herald_api::router(Arc::new(app))).await
}
