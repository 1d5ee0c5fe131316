//! Logs are one JSON object per line, without colours, at the level Lambda asks for.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced
/// logging controls) wins over `RUST_LOG`; `info` otherwise.
pub fn init() {
    init_with_default("info");
}

/// `init`, with `level` when neither variable is set (the local benchmark keeps its
/// terminal, and the CPU the emulator shares, for warnings).
pub fn init_with_default(level: &str) {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| EnvFilter::new(level.to_lowercase()))
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .try_init();
    // The first line of every cold start says which build this is.
    tracing::info!(
        commit = crate::version::COMMIT,
        built_at = crate::version::BUILT_AT,
        environment = %std::env::var("HERALD_ENV").unwrap_or_default(),
        function_name = %std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        "starting"
    );
}

/// An error and every cause under it on one line (`outer: inner: root`), for logs and
/// reasons stored with a message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
