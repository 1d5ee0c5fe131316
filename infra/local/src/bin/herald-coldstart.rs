//! `herald-coldstart` (the cold-start phase of `make bench`, issue 18): how long each
//! function binary takes from exec until it asks the Lambda Runtime API for its first
//! event, and how much memory it holds by then, beside an empty `lambda_runtime`
//! function (`herald-empty-function`) built the same way.
//!
//! Each binary runs with the environment the template gives it (from a stack
//! provisioned in the emulator, whose endpoint is its `AWS_ENDPOINT_URL`) and with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a minimal Runtime API served here (with the
//! Extensions API's registration, which the graceful-shutdown hook uses): the first
//! `GET /2018-06-01/runtime/invocation/next` is the end of the cold start. The request
//! is never answered; the process's peak resident set (`VmHWM`), split into anonymous
//! memory (heap, stacks) and file pages (the binary's code and data it touched), is
//! read from `/proc` at that moment, then the process is killed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::routing::{get, post};
use clap::Parser;
use herald_local::cpu::Resident;
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Each function's cold start and memory under a minimal Lambda Runtime API")]
struct Args {
    /// Starts of each binary; the median is reported.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Where the binaries are (the `bench-local` build).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Only these binaries (e.g. `herald-sender,herald-empty-function`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write each binary's `/proc/<pid>/smaps` at its last run's first `next`
    /// here (`<binary>.smaps`): which mappings the resident set is made of.
    #[arg(long)]
    smaps_dir: Option<PathBuf>,
}

/// Each function's template id and its binary; the empty function last.
const FUNCTIONS: &[(&str, &str)] = &[
    ("ApiFunction", "herald-api"),
    ("SenderFunction", "herald-sender"),
    ("WebhooksFunction", "herald-webhooks"),
    ("EventsFunction", "herald-events"),
    ("OutboundFanoutFunction", "herald-outbound-fanout"),
    ("OutboundDeliverFunction", "herald-outbound-deliver"),
    ("RedriverFunction", "herald-redriver"),
    ("BackupCheckFunction", "herald-backup-check"),
    ("RotatorFunction", "herald-rotator"),
    ("", "herald-empty-function"),
];

#[derive(Debug, Serialize)]
struct Start {
    binary: String,
    bytes: u64,
    runs: usize,
    /// Exec to the first `next` request, median and fastest.
    cold_start_ms: f64,
    fastest_ms: f64,
    /// At the first `next` request, median of the runs, in KiB.
    peak_rss_kib: u64,
    rss_anon_kib: u64,
    rss_file_kib: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("warn");
    let args = Args::parse();
    ensure!(args.runs > 0, "--runs must be at least 1");
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench's directory")?
            .to_owned(),
    };
    let options = CloudOptions {
        run_queues: false,
        ..CloudOptions::ephemeral(&format!("coldstart-{}", random_hex(8)))
    };
    let starts = emulator::for_bench("coldstart", async |endpoint, _| {
        LocalCloud::with(endpoint, options, async |cloud| {
            measure_all(cloud, &bin_dir, &args).await
        })
        .await
    })
    .await?;
    println!(
        "Cold start (exec → first `next`) and memory then, median of {} runs",
        args.runs
    );
    println!(
        "  {:<26} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "binary", "MB", "start ms", "fastest", "peak KiB", "anon", "file"
    );
    for s in &starts {
        println!(
            "  {:<26} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>9} {:>9}",
            s.binary,
            s.bytes as f64 / 1e6,
            s.cold_start_ms,
            s.fastest_ms,
            s.peak_rss_kib,
            s.rss_anon_kib,
            s.rss_file_kib
        );
    }
    println!("{}", json!({ "cold_starts": starts }));
    Ok(())
}

async fn measure_all(
    cloud: &LocalCloud,
    bin_dir: &std::path::Path,
    args: &Args,
) -> Result<Vec<Start>> {
    let runs = args.runs;
    let (asked, mut next) = mpsc::unbounded_channel::<Instant>();
    let runtime_api = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let _ = asked.send(Instant::now());
                // Never answered: the process stays at its first `next`.
                std::future::pending::<&'static str>()
            }),
        )
        // The Extensions API, for the no-op extension `lambda_runtime` registers for
        // its graceful-shutdown hook (part of each function's init, as in Lambda).
        .route(
            "/2020-01-01/extension/register",
            post(|| async {
                (
                    [("Lambda-Extension-Identifier", "coldstart-extension")],
                    axum::Json(json!({
                        "functionName": "coldstart",
                        "functionVersion": "$LATEST",
                        "handler": "bootstrap",
                    })),
                )
            }),
        )
        .route(
            "/2020-01-01/extension/event/next",
            get(std::future::pending::<&'static str>),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, runtime_api).await });
    let mut starts = Vec::new();
    let chosen = FUNCTIONS
        .iter()
        .filter(|(_, binary)| args.only.is_empty() || args.only.iter().any(|b| b == binary));
    for (function, binary) in chosen {
        let path = bin_dir.join(binary);
        ensure!(
            path.exists(),
            "{} is not built (`cargo build --profile bench-local --bins`)",
            path.display()
        );
        let mut env = if function.is_empty() {
            HashMap::new()
        } else {
            cloud.function_env(function)?
        };
        env.extend(lambda_env(binary, &address.to_string(), &cloud.emulator));
        let mut times = Vec::new();
        let mut memory = Vec::new();
        for run in 0..runs {
            let smaps = (run + 1 == runs)
                .then(|| {
                    args.smaps_dir
                        .as_ref()
                        .map(|d| d.join(format!("{binary}.smaps")))
                })
                .flatten();
            let (time, rss) = start_once(&path, &env, &mut next, smaps.as_deref()).await?;
            times.push(time.as_secs_f64() * 1000.0);
            memory.push(rss);
        }
        times.sort_by(f64::total_cmp);
        memory.sort_by_key(|m| m.peak);
        let Resident { peak, anon, file } = memory[memory.len() / 2];
        starts.push(Start {
            binary: (*binary).to_owned(),
            bytes: std::fs::metadata(&path)?.len(),
            runs,
            cold_start_ms: times[times.len() / 2],
            fastest_ms: times[0],
            peak_rss_kib: peak,
            rss_anon_kib: anon,
            rss_file_kib: file,
        });
    }
    server.abort();
    Ok(starts)
}

/// What Lambda sets in every function's environment, and the emulator as AWS.
fn lambda_env(binary: &str, runtime_api: &str, emulator: &str) -> HashMap<String, String> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", binary),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_ENDPOINT_URL", emulator),
        // Nothing on this machine (profiles, real keys) is read.
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One start: exec to the first `next`, and the memory resident then.
async fn start_once(
    path: &std::path::Path,
    env: &HashMap<String, String>,
    next: &mut mpsc::UnboundedReceiver<Instant>,
    smaps: Option<&std::path::Path>,
) -> Result<(Duration, Resident)> {
    while next.try_recv().is_ok() {}
    let started = Instant::now();
    let mut child = tokio::process::Command::new(path)
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let pid = child.id().context("the child's pid")?;
    let asked = tokio::select! {
        asked = next.recv() => asked.context("the Runtime API stopped")?,
        status = child.wait() => {
            let mut said = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = stderr.read_to_string(&mut said).await;
            }
            bail!("{} exited before asking for an event ({status:?}): {}", path.display(), said.trim().chars().take(600).collect::<String>())
        }
        () = tokio::time::sleep(Duration::from_secs(10)) => bail!("{} did not ask for an event in 10 s", path.display()),
    };
    let memory = Resident::of(&pid.to_string())?;
    if let Some(smaps) = smaps {
        // Read, not `fs::copy`: procfs files have no length to copy by.
        std::fs::write(smaps, std::fs::read(format!("/proc/{pid}/smaps"))?)
            .with_context(|| format!("writing {}", smaps.display()))?;
    }
    child.kill().await?;
    Ok((asked.duration_since(started), memory))
}
