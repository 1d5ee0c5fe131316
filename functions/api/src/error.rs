use axum::response::{IntoResponse, Response};
use herald::problem::Problem;
use herald::queue::QueueError;
use herald::store::StoreError;

/// Failures of the API's dependencies. Client mistakes are answered directly as
/// `Problem`s; these are logged with their cause chain and answered without it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Cognito, registering or deleting a machine client.
    #[error("cognito: {0}")]
    Identity(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::error!(error = %herald::telemetry::error_chain(&self), "request failed");
        match self {
            ApiError::Store(StoreError::Corrupt { .. }) => Problem::internal(),
            ApiError::Store(_) | ApiError::Queue(_) | ApiError::Identity(_) => {
                Problem::unavailable()
            }
        }
        .into_response()
    }
}
