//! Logs are one JSON object per line, without colours, at the level Lambda asks for, with
//! the keys Powertools for AWS Lambda users search by: `level`, `timestamp`, `message`,
//! `service`, `function_name`, `function_request_id`, `function_memory_size`,
//! `cold_start`, `xray_trace_id`, then the fields of every span the line is inside
//! (the invocation's, the record's, the message's: `correlation_id`, `tenant_id`,
//! `batch_id`, `message_id` where known), outermost first, and the line's own fields.
//! Addresses are never put in a field unmasked (`Address::masked`). A function's first
//! invocation also writes its cold-start metric line, and its graceful-shutdown hook
//! (`shutdown`) the environment's last line.
//!
//! Longer than most on purpose: the line's writer, its cold start and its shutdown are
//! one layer's life; over 110 of its lines are tests of that layer.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The span `lambda_runtime` opens around each invocation.
const INVOCATION_SPAN: &str = "Lambda runtime invoke";

/// Installs the JSON subscriber. `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced
/// logging controls) wins over `RUST_LOG`; `info` otherwise.
pub fn init() {
    init_with_default("info");
}

/// `init` for the Lambda function `function` (its name in metrics: `sender`, `api`...):
/// its first invocation also writes the `ColdStart` and `InitDuration` metrics, which
/// Lambda's own metrics lack (its init duration is only in each `REPORT` line).
pub fn init_function(function: &'static str) {
    let _ = FUNCTION.set(function);
    init();
}

/// Run by the runtime's graceful-shutdown hook (SIGTERM, with 500 ms to spare): the
/// environment's last line, and standard output flushed so no line or metric written
/// before is lost. Lines are written whole, one write each, so nothing else is held.
pub async fn shutdown() {
    tracing::info!("shutting down");
    let _ = std::io::stdout().flush();
}

/// The function `init_function` named; none in local tools.
static FUNCTION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// `init`, with `level` when neither variable is set (the local benchmark keeps its
/// terminal, and the CPU the emulator shares, for warnings).
pub fn init_with_default(level: &str) {
    init_with_writer(level, || std::io::stdout().lock());
}

/// `init_with_default`, writing each line to what `writer` gives.
///
/// `AWS_LAMBDA_LOG_FORMAT=Text` (Lambda's advanced logging controls) gets plain text
/// lines, as `lambda_runtime`'s own subscriber writes them; JSON otherwise, which the
/// template asks for. Metric lines stay JSON either way: CloudWatch reads EMF from any
/// line that is a JSON object.
pub fn init_with_writer<W, F>(level: &str, writer: F)
where
    W: Write + 'static,
    F: Fn() -> W + Send + Sync + 'static,
{
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| EnvFilter::new(level.to_lowercase()))
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    if text {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer),
            )
            .try_init();
    } else {
        install(filter, writer);
    }
    starting();
}

/// Installs the JSON lines at `info` whatever the environment says, writing to what
/// `writer` gives: tests that read a whole run's logs capture them this way.
pub fn capture<W, F>(writer: F)
where
    W: Write,
    F: Fn() -> W + Send + Sync + 'static,
{
    install(EnvFilter::new("info"), writer);
}

fn install<W, F>(filter: EnvFilter, writer: F)
where
    W: Write,
    F: Fn() -> W + Send + Sync + 'static,
{
    let _ = subscriber(filter, writer).try_init();
}

/// The subscriber `init` installs, at `level` and writing to what `writer` gives,
/// without installing it: `herald-cpu` makes it the default of the one thread it runs
/// a function on, so that function's logging costs what it costs in Lambda.
pub fn function_subscriber<W, F>(level: &str, writer: F) -> impl Subscriber + Send + Sync
where
    W: Write,
    F: Fn() -> W + Send + Sync + 'static,
{
    subscriber(EnvFilter::new(level), writer)
}

fn subscriber<W, F>(filter: EnvFilter, writer: F) -> impl Subscriber + Send + Sync
where
    W: Write,
    F: Fn() -> W + Send + Sync + 'static,
{
    // The filter is the subscriber's, not the layer's: with one layer they keep the
    // same lines, and a per-layer filter costs bookkeeping on every span and event the
    // level lets through (a few per cent of the sender's CPU per message, issue 18).
    tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines::new(writer))
}

fn starting() {
    // The first line of every cold start says which build this is (in Lambda: the
    // local tools that share this setup have their own first lines).
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    tracing::info!(
        commit = crate::version::COMMIT,
        built_at = crate::version::BUILT_AT,
        environment = %std::env::var("HERALD_ENV").unwrap_or_default(),
        "starting"
    );
}

/// The layer that writes the lines.
pub struct JsonLines<F> {
    writer: F,
    /// What every line of this process carries: service, function name and memory.
    process: Map<String, Value>,
    /// Until the first invocation ends, lines are the cold start's.
    warm: AtomicBool,
    /// Whether the first invocation began (its cold start is counted then).
    invoked: AtomicBool,
    /// When the process set up its logs: the first thing `main` does.
    started: std::time::Instant,
    /// The Lambda function whose cold start is counted (`init_function`).
    function: Option<&'static str>,
}

impl<F> JsonLines<F> {
    pub fn new(writer: F) -> Self {
        let mut process = Map::new();
        process.insert("service".into(), "herald".into());
        if let Ok(name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
            process.insert("function_name".into(), name.into());
        }
        if let Some(memory) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .ok()
            .and_then(|m| m.parse::<u64>().ok())
        {
            process.insert("function_memory_size".into(), memory.into());
        }
        Self {
            writer,
            process,
            warm: AtomicBool::new(false),
            invoked: AtomicBool::new(false),
            started: std::time::Instant::now(),
            function: FUNCTION.get().copied(),
        }
    }

    /// Counts the cold start of `function` at the first invocation.
    pub fn for_function(mut self, function: &'static str) -> Self {
        self.function = Some(function);
        self
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

/// `lambda_runtime`'s names for the invocation's fields, as Powertools names them.
fn key_for(name: &str) -> &str {
    match name {
        "requestId" => "function_request_id",
        "xrayTraceId" => "xray_trace_id",
        "tenantId" => "tenant_id",
        other => other,
    }
}

struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(key_for(field.name()).into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(key_for(field.name()).into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(key_for(field.name()).into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(key_for(field.name()).into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(key_for(field.name()).into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(key_for(field.name()).into(), error_chain(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(key_for(field.name()).into(), format!("{value:?}").into());
    }
}

impl<S, F, W> Layer<S> for JsonLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Fn() -> W + Send + Sync + 'static,
    W: Write,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Collect(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
        if attrs.metadata().name() == INVOCATION_SPAN
            && let Some(function) = self.function
            && !self.invoked.swap(true, Ordering::Relaxed)
        {
            self.write(&cold_start(function, self.started.elapsed()));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Collect(fields));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if ctx.span(&id).is_some_and(|s| s.name() == INVOCATION_SPAN) {
            self.warm.store(true, Ordering::Relaxed);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("message".into(), Value::Null);
        line.extend(self.process.clone());
        line.insert(
            "cold_start".into(),
            (!self.warm.load(Ordering::Relaxed)).into(),
        );
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.clone());
                }
            }
        }
        event.record(&mut Collect(&mut line));
        self.write(&Value::Object(line));
    }
}

impl<F, W> JsonLines<F>
where
    F: Fn() -> W,
    W: Write,
{
    /// One line, in one write.
    fn write(&self, line: &Value) {
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        let _ = (self.writer)().write_all(text.as_bytes());
    }
}

/// The metric line of a cold start: `init` is how long the process took from setting
/// up its logs to its first invocation.
fn cold_start(function: &'static str, init: std::time::Duration) -> Value {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    crate::metrics::Record::new(function)
        .count("ColdStart", 1)
        .samples(
            "InitDuration",
            crate::metrics::Unit::Milliseconds,
            vec![init.as_secs_f64() * 1000.0],
        )
        .to_emf(now_ms as u64)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn lines_of(run: impl FnOnce()) -> Vec<Value> {
        lines_of_function(None, run)
    }

    fn lines_of_function(function: Option<&'static str>, run: impl FnOnce()) -> Vec<Value> {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let mut layer = JsonLines::new(move || SharedBuffer(sink.clone()));
        if let Some(function) = function {
            layer = layer.for_function(function);
        }
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_carries_the_fields_of_every_span_around_it_with_powertools_names() {
        let lines = lines_of(|| {
            let invocation = tracing::info_span!(
                INVOCATION_SPAN,
                requestId = "req-1",
                xrayTraceId = "Root=1-x"
            );
            let _invocation = invocation.enter();
            let record = tracing::info_span!("record", correlation_id = "c-1", tenant_id = "acme");
            let _record = record.enter();
            let message =
                tracing::info_span!("send", message_id = "b.0", batch_id = tracing::field::Empty);
            message.record("batch_id", "b");
            let _message = message.enter();
            tracing::info!(attempt = 2, "message settled");
        });
        let line = &lines[0];
        assert_eq!(line["message"], "message settled");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["service"], "herald");
        assert_eq!(line["function_request_id"], "req-1");
        assert_eq!(line["xray_trace_id"], "Root=1-x");
        assert_eq!(line["correlation_id"], "c-1");
        assert_eq!(line["tenant_id"], "acme");
        assert_eq!(line["batch_id"], "b", "recorded after the span opened");
        assert_eq!(line["message_id"], "b.0");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["cold_start"], true);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_cold_start_is_a_metric_line_of_its_function() {
        let line = cold_start("sender", std::time::Duration::from_millis(42));
        assert_eq!(line["Function"], "sender");
        assert_eq!(line["ColdStart"], 1.0);
        assert_eq!(line["InitDuration"], 42.0);
        let names: Vec<_> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ColdStart", "InitDuration"]);
    }

    #[test]
    fn a_functions_first_invocation_counts_its_cold_start_once() {
        let lines = lines_of_function(Some("events"), || {
            for request in ["req-1", "req-2"] {
                let span = tracing::info_span!(INVOCATION_SPAN, requestId = request);
                let _entered = span.enter();
                tracing::info!("handled");
            }
        });
        let cold_starts: Vec<_> = lines.iter().filter(|l| l["ColdStart"] == 1.0).collect();
        assert_eq!(cold_starts.len(), 1, "{lines:?}");
        assert_eq!(cold_starts[0]["Function"], "events");
        assert_eq!(lines.len(), 3, "the metric line and two log lines");
        assert_eq!(
            lines[0], *cold_starts[0],
            "counted as the invocation begins"
        );
    }

    #[test]
    fn only_the_first_invocation_is_a_cold_start() {
        let lines = lines_of(|| {
            for request in ["req-1", "req-2"] {
                let span = tracing::info_span!(INVOCATION_SPAN, requestId = request);
                let _entered = span.enter();
                tracing::info!("handled");
            }
        });
        let cold: Vec<_> = lines.iter().map(|l| l["cold_start"].clone()).collect();
        assert_eq!(cold, [Value::Bool(true), Value::Bool(false)]);
        assert_eq!(lines[1]["function_request_id"], "req-2");
    }
}
