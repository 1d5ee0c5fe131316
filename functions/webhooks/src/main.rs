//! The webhook receiver's Lambda entry point: builds its dependencies once per process
//! and serves the router through `lambda_http`.

use std::sync::Arc;

use herald::config::{ProcessEnv, WebhooksConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init_function("webhooks");
    lambda_http::lambda_runtime::spawn_graceful_shutdown_handler(herald::telemetry::shutdown).await;
    let config = WebhooksConfig::load(&ProcessEnv)?;
    let clients = herald::aws::Clients::new(herald::aws::from_env().await);
    let app = herald_webhooks::App::new(config, &clients, herald::clock::system());
    lambda_http::run(herald_webhooks::router(Arc::new(app))).await
}
