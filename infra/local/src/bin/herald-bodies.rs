//! `herald-bodies` (`make bench-bodies`): how long the API takes to answer the worst
//! request bodies a client can send within its limits (`herald_local::hostile`),
//! posted through the local gateway. Each answer is also checked against what the
//! tests expect, so a fast wrong answer is reported as wrong, not as fast.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use herald::domain::{Limits, Plan};
use herald_local::hostile::{self, Caller, HostileRequest};
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex, seed};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Times the worst request bodies through the local gateway")]
struct Args {
    /// Times each request is sent (the table gives the fastest and the slowest).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// How long to wait for one answer before calling it unanswered.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
    /// Only the requests whose name contains this text (repeatable). An unanswered
    /// request keeps the API busy after the bench gives up on it, so a request timed
    /// after one is best timed again on its own.
    #[arg(long)]
    only: Vec<String>,
}

const TENANT: &str = "bodies";

#[derive(Debug, Serialize)]
struct Timing {
    name: String,
    body_bytes: usize,
    status: Option<u16>,
    /// Milliseconds per attempt; an attempt that was not answered in time ends the
    /// series (the API may still be busy with it).
    millis: Vec<u128>,
    timed_out: bool,
    /// What differs from the answer the tests expect, if anything.
    unexpected: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("error");
    let args = Args::parse();
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let timings =
        emulator::for_bench("bodies", async |endpoint, _| run(&args, endpoint).await).await?;
    println!();
    println!(
        "{:<62} {:>9} {:>6} {:>10} {:>10}  check",
        "request", "bytes", "status", "fastest", "slowest"
    );
    for t in &timings {
        let ms = |m: Option<&u128>| m.map_or("-".to_owned(), |m| format!("{m} ms"));
        let slowest = if t.timed_out {
            format!("> {} s", args.timeout_seconds)
        } else {
            ms(t.millis.iter().max())
        };
        println!(
            "{:<62} {:>9} {:>6} {:>10} {:>10}  {}",
            t.name,
            t.body_bytes,
            t.status.map_or("-".to_owned(), |s| s.to_string()),
            ms(t.millis.iter().min()),
            slowest,
            t.unexpected.as_deref().unwrap_or("as expected"),
        );
    }
    println!("{}", serde_json::to_string(&timings)?);
    Ok(())
}

async fn run(args: &Args, endpoint: &str) -> Result<Vec<Timing>> {
    let mut options = CloudOptions::ephemeral(&format!("bodies-{}", random_hex(8)));
    // Nothing is sent: accepted batches (the reference) stay in the queue.
    options.run_queues = false;
    LocalCloud::with(endpoint, options, async |cloud| time_all(args, cloud).await).await
}

async fn time_all(args: &Args, cloud: &LocalCloud) -> Result<Vec<Timing>> {
    seed::tenant(
        &cloud.sender.store,
        TENANT,
        Plan::Enterprise,
        Some(Limits {
            api_requests_per_second: 1_000,
            sends_per_day: 100_000_000,
        }),
    )
    .await?;
    let sender = token(cloud, "sender").await?;
    let operator = token(cloud, "operator").await?;
    let limits = hostile::Limits {
        max_body_bytes: cloud.api_config.max_body_bytes,
        max_recipients: cloud.api_config.max_recipients,
    };
    let mut requests = hostile::catalogue(limits);
    requests.push(reference(limits.max_recipients));
    requests.retain(|r| args.only.is_empty() || args.only.iter().any(|o| r.name.contains(o)));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_seconds))
        .build()?;
    let mut timings = Vec::new();
    for request in &requests {
        eprintln!("{} ({} bytes)...", request.name, request.body.len());
        let token = match request.caller {
            Caller::Sender => &sender,
            Caller::Operator => &operator,
        };
        let mut timing = Timing {
            name: request.name.to_owned(),
            body_bytes: request.body.len(),
            status: None,
            millis: Vec::new(),
            timed_out: false,
            unexpected: None,
        };
        for _ in 0..args.repeat {
            let started = Instant::now();
            match hostile::send(&http, &cloud.gateway_url, token, request).await {
                Ok(answer) => {
                    timing.millis.push(started.elapsed().as_millis());
                    timing.status = Some(answer.status);
                    timing.unexpected = timing.unexpected.or_else(|| request.check(&answer));
                }
                Err(e) if e.is_timeout() => {
                    timing.timed_out = true;
                    break;
                }
                Err(e) => return Err(e).context(request.name),
            }
        }
        timings.push(timing);
    }
    Ok(timings)
}

/// A well-formed batch of the most recipients allowed: what an honest large request
/// costs, for comparison.
fn reference(recipients: usize) -> HostileRequest {
    let body = json!({
        "template": "Hi {{a}}, your code is 1234",
        "recipients": (0..recipients)
            .map(|i| json!({ "to": hostile::number(i), "variables": { "a": "Ann" } }))
            .collect::<Vec<_>>(),
    });
    HostileRequest {
        name: "reference: a valid batch of 10,000 recipients",
        method: "POST",
        path: "/v1/batches",
        caller: Caller::Sender,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
        expected: hostile::Expected {
            status: 202,
            problem: "",
            field: None,
        },
    }
}

async fn token(cloud: &LocalCloud, role: &str) -> Result<String> {
    let cognito = &cloud.clients.cognito;
    let pool = cloud.stack.reference("UserPool")?;
    let client = cloud.stack.reference("UserPoolClient")?;
    let user = seed::user(cognito, pool, TENANT, role).await?;
    Ok(seed::sign_in(cognito, client, &user).await?.id_token)
}
