//! `herald-cpu` (the CPU phase of `make bench`, issue 18): each function's own CPU per
//! unit of work, apart from the sandbox, the queue runner and the bench that share its
//! process. The sender per delivered message, the API per accepted recipient of a
//! batch POST, the events function per delivery receipt applied. Each runs on a thread
//! of its own (`herald_local::cpu`) with its own SDK clients, against the emulator and
//! the sandbox provider, through its real handler: the sender's and the events
//! function's `handle` with the SQS event as the runtime would hand it (JSON), the
//! API's router with the API Gateway event the local gateway builds.
//!
//! Two figures per function: CPU seconds of its thread (user + system, moved by the
//! machine's load and frequency), and, when valgrind is installed, instructions counted
//! by callgrind over the same workload run again in a child process (repeatable to a
//! fraction of a percent on a noisy machine).
//!
//! Over 400 lines: the functions' workloads and the callgrind child run are one
//! measurement, and share the `Figure` they fill.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use herald::domain::{Channel, Chunk, Content, Limits};
use herald::{Address, BatchId, MessageId, PhoneNumber, TenantId};
use herald_local::cpu::{FunctionThread, MEASURED_SYMBOL};
use herald_local::runner::QueueRunner;
use herald_local::sandbox::Faults;
use herald_local::{CloudOptions, LocalCloud, emulator, project_root, random_hex, random_token};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Parser)]
#[command(about = "Each function's own CPU per unit of work, against the local cloud")]
struct Args {
    /// Chunks of 100 recipients the sender's figure is taken over (after one warm-up
    /// chunk, which builds connections and reads the provider's secret).
    #[arg(long, default_value_t = 5)]
    chunks: usize,
    /// Recipients in the batch the API's figure is taken from (after a warm-up POST).
    #[arg(long, default_value_t = 2_000)]
    api_recipients: usize,
    /// Skip the instruction counts even when valgrind is installed.
    #[arg(long)]
    no_instructions: bool,
    /// Chunks and recipients for the run under callgrind (about 50 times slower).
    #[arg(long, default_value_t = 2)]
    callgrind_chunks: usize,
    #[arg(long, default_value_t = 500)]
    callgrind_api_recipients: usize,
    /// Delivery receipts the events function's figure is taken over (after a warm-up
    /// invocation of up to 10).
    #[arg(long, default_value_t = 500)]
    receipts: usize,
    #[arg(long, default_value_t = 100)]
    callgrind_receipts: usize,
    /// Measure one function only (`sender`, `api` or `events`).
    #[arg(long)]
    only: Option<String>,
    /// The provider's rate (messages per second, the stack's `ProviderRatePerSecond`);
    /// the template's default when not given. Grouped writes are larger at a higher
    /// rate, so the sender's figure depends on it.
    #[arg(long)]
    rate: Option<u32>,
    /// How long the sandbox provider takes to answer each text (ms). 0 answers at
    /// once, so few calls are ever in flight; a real Messages API takes a few hundred
    /// ms, and the calls in flight then share the instance's grouped writes and rate
    /// blocks.
    #[arg(long, default_value_t = 0)]
    provider_latency_ms: u64,
    /// Internal: this is the run under callgrind; print the figures as JSON only.
    #[arg(long, hide = true)]
    child: bool,
}

const TENANT: &str = "cpu";
const FUNCTIONS: [&str; 3] = ["sender", "api", "events"];
const CHUNK: usize = herald::keys::CHUNK_SIZE as usize;

/// What one function did while measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Figure {
    function: String,
    unit: String,
    units: u64,
    invocations: u64,
    cpu_ms: f64,
    /// The warm-up invocation's CPU (connections, secrets, the phone-number metadata).
    first_cpu_ms: f64,
    /// Filled from the callgrind run.
    instructions: Option<u64>,
    instructions_units: Option<u64>,
}

impl Figure {
    fn new(function: &str, unit: &str) -> Self {
        Self {
            function: function.into(),
            unit: unit.into(),
            units: 0,
            invocations: 0,
            cpu_ms: 0.0,
            first_cpu_ms: 0.0,
            instructions: None,
            instructions_units: None,
        }
    }

    /// Runs one invocation on the function's thread: counted, or the warm-up.
    async fn invoke<T, F, Fut>(
        &mut self,
        thread: &FunctionThread,
        job: F,
        counted: bool,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
    {
        let (output, cpu) = thread.invoke(job, counted).await?;
        let ms = cpu.as_secs_f64() * 1000.0;
        if counted {
            self.cpu_ms += ms;
            self.invocations += 1;
        } else {
            self.first_cpu_ms = ms;
        }
        Ok(output)
    }

    fn cpu_ms_per_unit(&self) -> f64 {
        self.cpu_ms / self.units.max(1) as f64
    }
    fn instructions_per_unit(&self) -> Option<f64> {
        Some(self.instructions? as f64 / self.instructions_units?.max(1) as f64)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("warn");
    let args = Args::parse();
    ensure!(
        args.chunks > 0 && args.api_recipients > 0 && args.receipts > 0,
        "--chunks, --api-recipients and --receipts must be at least 1"
    );
    ensure!(
        args.only.as_deref().is_none_or(|f| FUNCTIONS.contains(&f)),
        "--only is sender, api or events"
    );
    let (figures, unavailable) = emulator::for_bench("cpu", async |endpoint, _| {
        let mut figures = measure(endpoint, &args).await?;
        if args.child {
            return Ok((figures, None));
        }
        let counted = if args.no_instructions {
            Err("not asked for (--no-instructions)".to_owned())
        } else {
            instructions(&args, &project_root(), endpoint).await
        };
        if let Ok(counted) = &counted {
            for figure in &mut figures {
                if let Some(c) = counted.iter().find(|c| c.function == figure.function) {
                    figure.instructions = c.instructions;
                    figure.instructions_units = Some(c.units);
                }
            }
        }
        Ok((figures, counted.err()))
    })
    .await?;
    if args.child {
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    print_table(&figures, &args, unavailable.as_deref());
    println!(
        "{}",
        json!({ "cpu": figures, "instructions_unavailable": unavailable })
    );
    Ok(())
}

/// Runs each function's workload in a stack of its own and reads its thread's CPU.
async fn measure(endpoint: &str, args: &Args) -> Result<Vec<Figure>> {
    let wanted = |function: &str| args.only.as_deref().is_none_or(|only| only == function);
    let mut options = CloudOptions::ephemeral(&format!("cpu-{}", random_hex(8)));
    // Nothing polls the send queue: the bench hands each received event to the
    // sender's thread itself.
    options.run_queues = false;
    if let Some(rate) = args.rate {
        options
            .parameters
            .insert("ProviderRatePerSecond".into(), rate.to_string());
    }
    LocalCloud::with(endpoint, options, async |cloud| {
        let limits = Limits {
            api_requests_per_second: 1_000,
            sends_per_day: 1_000_000,
        };
        let token = cloud.sender_token(TENANT, limits).await?;
        let mut figures = Vec::new();
        if wanted("sender") {
            cloud.sandbox.set_faults(Faults {
                latency_ms: args.provider_latency_ms,
                ..Faults::default()
            });
            figures.push(sender(cloud, &token, args.chunks).await?);
        }
        if wanted("api") {
            figures.push(api(cloud, &token, args.api_recipients).await?);
        }
        if wanted("events") {
            figures.push(events(cloud, args.receipts).await?);
        }
        Ok(figures)
    })
    .await
}

fn number(i: usize) -> String {
    format!("+1415555{:04}", 1_000 + i)
}

fn batch_body(recipients: usize) -> Result<Vec<u8>> {
    ensure!(recipients <= 8_000, "at most 8,000 recipients");
    let recipients: Vec<Value> = (0..recipients)
        .map(|i| json!({ "to": number(i), "variables": { "code": format!("{i:05}") } }))
        .collect();
    Ok(serde_json::to_vec(&json!({
        "template": "Your Herald code is {{code}}",
        "recipients": recipients,
    }))?)
}

/// The sender: one batch of `1 + chunks` chunks posted through the gateway; the first
/// invocation warms the instance up, the others are measured, one SQS record each
/// (the template's batch size) as the event source hands them over.
async fn sender(cloud: &LocalCloud, token: &str, chunks: usize) -> Result<Figure> {
    eprintln!(
        "Sender: {} chunks of {CHUNK} (one to warm up)...",
        chunks + 1
    );
    let (status, answer) = cloud
        .post_batch(token, batch_body((chunks + 1) * CHUNK)?)
        .await?;
    ensure!(status == 202, "the batch was refused: {status} {answer}");

    let thread = FunctionThread::start("sender")?;
    let config = cloud.sender.config.clone();
    let emulator = cloud.emulator.clone();
    let metrics = herald::metrics::Metrics::in_memory(herald::clock::system());
    let kept = metrics.clone();
    let deps = thread
        .setup(move || async move {
            let clients = herald::aws::Clients::new(herald::aws::for_emulator(&emulator).await);
            herald_sender::Deps::from_config(config, &clients, herald::clock::system())
                .map(|deps| Arc::new(deps.with_metrics(metrics)))
                .map_err(|e| anyhow!(e))
        })
        .await??;
    let timeout = Duration::from_secs(cloud.send_runner.trigger.function_timeout_secs);
    let sent = || kept.total("sender", "Sent") as u64;

    let mut figure = Figure::new("sender", "delivered message");
    let target = ((chunks + 1) * CHUNK) as u64;
    drain(
        &cloud.send_runner,
        &thread,
        &mut figure,
        sent,
        target,
        |payload| {
            let deps = deps.clone();
            move || async move {
                let event: SqsEvent = serde_json::from_str(&payload).expect("an SQS event");
                let deadline = tokio::time::Instant::now() + timeout;
                let response = herald_sender::handle(&deps, event, deadline).await;
                serde_json::to_string(&response).expect("a response")
            }
        },
    )
    .await?;
    ensure!(
        figure.units == (chunks * CHUNK) as u64,
        "measured {} delivered messages, not {}",
        figure.units,
        chunks * CHUNK
    );
    Ok(figure)
}

/// Hands the queue's events to the function's thread, as its event source would (JSON,
/// read by the function), until `done` reaches `target`: the first invocation warms
/// the instance up, the others count, each for the units `done` grew by meanwhile.
async fn drain<F, Fut>(
    runner: &QueueRunner,
    thread: &FunctionThread,
    figure: &mut Figure,
    done: impl Fn() -> u64,
    target: u64,
    job: impl Fn(String) -> F,
) -> Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = String> + 'static,
{
    let mut warm = false;
    let mut idle = 0;
    while done() < target {
        let event = runner
            .receive()
            .await
            .map_err(|e| anyhow!("receiving the {}'s events: {e}", figure.function))?;
        if event.records.is_empty() {
            idle += 1;
            ensure!(
                idle < 30,
                "the {}'s queue stayed empty at {} of {target}",
                figure.function,
                done()
            );
            continue;
        }
        idle = 0;
        let before = done();
        let response = figure
            .invoke(thread, job(serde_json::to_string(&event)?), warm)
            .await?;
        warm = true;
        let response: SqsBatchResponse = serde_json::from_str(&response)?;
        ensure!(
            response.batch_item_failures.is_empty(),
            "the {} handed records back: {response:?}",
            figure.function
        );
        if figure.invocations > 0 {
            figure.units += done() - before;
        }
        delete(runner, &event).await?;
    }
    Ok(())
}

/// Deletes the records of an invocation that succeeded, as the event source does.
async fn delete(runner: &QueueRunner, event: &SqsEvent) -> Result<()> {
    for record in &event.records {
        runner
            .sqs
            .delete_message()
            .queue_url(&runner.trigger.queue_url)
            .receipt_handle(record.receipt_handle.clone().unwrap_or_default())
            .send()
            .await
            .context("deleting a record")?;
    }
    Ok(())
}

/// The events function: `receipts` messages made `sent` through `Store` (as the
/// sender settles them), a signed `delivered` callback for each posted through the
/// local gateway (the webhooks function verifies it and queues it on the events queue,
/// on threads not measured), then the events queue's records handed to the function's
/// thread as its event source hands them over (up to 10 a batch). The first invocation
/// warms the instance up; the figure is per receipt applied.
async fn events(cloud: &LocalCloud, receipts: usize) -> Result<Figure> {
    eprintln!("Events: {receipts} delivery receipts (after one warm-up batch)...");
    let tenant = TenantId::parse(TENANT).map_err(|e| anyhow!("{e}"))?;
    let batch = BatchId::new();
    let store = herald::store::Store::new(
        herald::aws::Clients::new(cloud.sdk.clone()).dynamodb(),
        cloud.stack.reference("HeraldTable")?,
    );
    let chunk = Chunk {
        index: 0,
        channel: Channel::Sms,
        content: Content::Text("receipts".into()),
        subject: None,
        recipients: Vec::new(),
        created_at: herald::clock::system().timestamp(),
    };
    let to = Address::Phone(PhoneNumber::parse(&number(0)).map_err(|e| anyhow!("{e}"))?);
    // The warm-up batch's receipts come first: up to 10 more messages than counted.
    let total = receipts + 10;
    let ids: Vec<MessageId> = (0..total as u32)
        .map(|i| MessageId::new(batch, i))
        .collect();
    futures::stream::iter(&ids)
        .map(|&id| {
            let (store, tenant, chunk, to) = (&store, &tenant, &chunk, &to);
            async move {
                herald_local::seed::claim_and_settle(store, tenant, id, chunk, to, "twilio").await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let http = reqwest::Client::new();
    futures::stream::iter(&ids)
        .map(|&id| {
            let (http, tenant) = (&http, &tenant);
            async move {
                let taken = herald_local::seed::post_delivered(http, cloud, tenant, id).await?;
                ensure!(taken, "the receiver refused the callback for {id}");
                Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;

    let thread = FunctionThread::start("events")?;
    let config = cloud.events.config.clone();
    let emulator = cloud.emulator.clone();
    let metrics = herald::metrics::Metrics::in_memory(herald::clock::system());
    let kept = metrics.clone();
    let deps = thread
        .setup(move || async move {
            let clients = herald::aws::Clients::new(herald::aws::for_emulator(&emulator).await);
            Arc::new(
                herald_events::Deps::from_config(config, &clients, herald::clock::system())
                    .with_metrics(metrics),
            )
        })
        .await?;
    let applied = || kept.total("events", "ReceiptsApplied") as u64;
    let mut figure = Figure::new("events", "receipt applied");
    drain(
        &cloud.events_runner,
        &thread,
        &mut figure,
        applied,
        total as u64,
        |payload| {
            let deps = deps.clone();
            move || async move {
                let event: SqsEvent = serde_json::from_str(&payload).expect("an SQS event");
                let response = herald_events::handle(&deps, event).await;
                serde_json::to_string(&response).expect("a response")
            }
        },
    )
    .await?;
    ensure!(
        figure.units >= receipts as u64,
        "measured {} receipts applied, fewer than {receipts}",
        figure.units
    );
    Ok(figure)
}

/// The API: a warm-up POST of 100 recipients, then one measured POST of `recipients`,
/// each a Lambda invocation from the API Gateway event to the serialised answer.
async fn api(cloud: &LocalCloud, token: &str, recipients: usize) -> Result<Figure> {
    eprintln!("API: a batch of {recipients} recipients (after one of {CHUNK} to warm up)...");
    let thread = FunctionThread::start("api")?;
    let config = cloud.api_config.clone();
    let emulator = cloud.emulator.clone();
    let router = thread
        .setup(move || async move {
            let clients = herald::aws::Clients::new(herald::aws::for_emulator(&emulator).await);
            let app = herald_api::App::new(config, &clients, herald::clock::system())
                .with_metrics(herald::metrics::Metrics::in_memory(herald::clock::system()));
            herald_api::router(Arc::new(app))
        })
        .await?;
    let mut figure = Figure::new("api", "accepted recipient");
    for (n, counted) in [(CHUNK, false), (recipients, true)] {
        let request = http::Request::builder()
            .method("POST")
            .uri("/v1/batches")
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", random_token(26))
            .body(axum::body::Body::from(batch_body(n)?))?;
        let event =
            herald_local::gateway::to_event(request, "POST /v1/batches", Default::default())
                .await
                .map_err(|r| anyhow!("the gateway refused the request: {}", r.status()))?
                .to_string();
        let router = router.clone();
        let invoke = move || async move {
            let request = lambda_http::request::from_str(&event).expect("an API Gateway event");
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            (status, body)
        };
        let (status, body) = figure.invoke(&thread, invoke, counted).await?;
        if counted {
            figure.units += n as u64;
        }
        ensure!(status == 202, "the API refused the batch: {status} {body}");
    }
    Ok(figure)
}

/// The same workloads, smaller, in a child process under callgrind counting only the
/// measured jobs; the instructions each function ran, with the units they were for.
async fn instructions(args: &Args, root: &Path, endpoint: &str) -> Result<Vec<Figure>, String> {
    let valgrind = std::process::Command::new("valgrind")
        .arg("--version")
        .output();
    match valgrind {
        Ok(out) if out.status.success() => {}
        _ => {
            return Err(
                "valgrind is not installed (instruction counts need callgrind: `apt-get install valgrind`)"
                    .into(),
            );
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = root.join(".herald");
    let mut figures: Vec<Figure> = Vec::new();
    // One child per function: callgrind's total is the one count per process.
    for function in FUNCTIONS
        .into_iter()
        .filter(|f| args.only.as_deref().is_none_or(|only| only == *f))
    {
        let workload = match function {
            "sender" => ["--chunks", &args.callgrind_chunks.to_string()].map(String::from),
            "api" => [
                "--api-recipients",
                &args.callgrind_api_recipients.to_string(),
            ]
            .map(String::from),
            _ => ["--receipts", &args.callgrind_receipts.to_string()].map(String::from),
        };
        // Under callgrind the process runs about 50 times slower, and now and then an
        // SDK call of the run misses its 3 s attempt timeout; a second run is the cure.
        let mut attempt = 0;
        let figure = loop {
            attempt += 1;
            eprintln!("Counting the {function}'s instructions under callgrind (slow)...");
            match callgrind(&exe, &dir, endpoint, function, &workload, args).await {
                Ok(figure) => break figure,
                Err(e) if attempt < 2 => eprintln!("  that run failed ({e}); once more"),
                Err(e) => return Err(e),
            }
        };
        figures.push(figure);
    }
    Ok(figures)
}

/// One run of `function`'s workload under callgrind: its figure, with the instructions
/// counted inside its measured jobs.
async fn callgrind(
    exe: &Path,
    dir: &Path,
    endpoint: &str,
    function: &str,
    workload: &[String],
    args: &Args,
) -> Result<Figure, String> {
    let out_file = dir.join(format!("callgrind.{function}.out"));
    let output = tokio::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--toggle-collect={MEASURED_SYMBOL}"))
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(exe)
        .arg("--child")
        .args(workload)
        .args(["--only", function])
        .args(args.rate.map(|r| format!("--rate={r}")))
        .arg(format!(
            "--provider-latency-ms={}",
            args.provider_latency_ms
        ))
        .env("HERALD_EMULATOR_URL", endpoint)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !output.status.success() {
        return Err(format!("the callgrind run failed ({})", output.status));
    }
    let child: Vec<Figure> = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("reading the callgrind run's figures: {e}"))?;
    let totals = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
    let counted = totals
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or("no total in callgrind's output")?;
    let mut figure = child
        .into_iter()
        .find(|f| f.function == function)
        .ok_or("the callgrind run measured nothing")?;
    figure.instructions = Some(counted);
    Ok(figure)
}

fn print_table(figures: &[Figure], args: &Args, unavailable: Option<&str>) {
    println!("Herald CPU per unit of work, each function on its own thread (bench-local build)");
    let rate = args
        .rate
        .map_or("the template's default".to_owned(), |r| format!("{r}/s"));
    println!(
        "  provider rate {rate}, provider answers in {} ms",
        args.provider_latency_ms
    );
    for f in figures {
        println!(
            "  {:<8} {:>8.3} ms CPU per {} ({} in {} invocations, {:.1} ms)",
            f.function,
            f.cpu_ms_per_unit(),
            f.unit,
            f.units,
            f.invocations,
            f.cpu_ms
        );
        println!(
            "  {:<8} {:>8.1} ms CPU in the warm-up invocation (not counted above)",
            "", f.first_cpu_ms
        );
        match f.instructions_per_unit() {
            Some(per) => println!(
                "  {:<8} {:>8.0} instructions per {} (callgrind, {} of them)",
                "",
                per,
                f.unit,
                f.instructions_units.unwrap_or_default()
            ),
            None => println!(
                "  {:<8} instructions: unavailable ({})",
                "",
                unavailable.unwrap_or("not counted")
            ),
        }
    }
}
