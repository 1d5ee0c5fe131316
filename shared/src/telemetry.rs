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
}
