//! How long the API takes to accept a large batch (POST /v1/batches → 202) through the
//! local gateway, and the DynamoDB and SQS requests it makes for it: a quick number for
//! changes to the intake path, without the delivery benchmark's long send (the queue
//! is not run). Prints one line per batch, then the median.
//!
//! `cargo run -p herald-local --example accept_latency -- [batches] [recipients]`
//! (defaults: 5 batches of 10,000), against the emulator at `HERALD_EMULATOR_URL`.

use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use herald::domain::Limits;
use herald_local::requests::RequestCounter;
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex};
use serde_json::{Value, json};

const TENANT: &str = "timing";

/// A valid, distinct US number for each of the first 16,000 recipients.
fn number(i: usize) -> String {
    format!("+1{}555{:04}", ["415", "628"][i / 8_000], 2_000 + i % 8_000)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let batches = args.next().transpose()?.unwrap_or(5);
    let recipients = args.next().transpose()?.unwrap_or(10_000);
    ensure!((1..=16_000).contains(&recipients), "1 to 16,000 recipients");
    let endpoint = emulator::endpoint();
    ensure!(
        emulator::is_up(&endpoint).await,
        "no emulator at {endpoint}; start one (make dev, or a test run) first"
    );
    let counter = RequestCounter::default();
    let mut options = CloudOptions::ephemeral(&format!("accept-{}", random_hex(8)));
    options.run_queues = false;
    options.count_requests = Some(counter.clone());
    let cloud = LocalCloud::start(&endpoint, options).await?;
    let result = measure(&cloud, &counter, batches, recipients).await;
    cloud.stop().await;
    result
}

async fn measure(
    cloud: &LocalCloud,
    counter: &RequestCounter,
    batches: usize,
    recipients: usize,
) -> Result<()> {
    let limits = Limits {
        api_requests_per_second: 1_000,
        sends_per_day: 10_000_000,
    };
    let token = cloud.sender_token(TENANT, limits).await?;
    let body = serde_json::to_vec(&json!({
        "template": "Your Herald code is {{code}}",
        "recipients": (0..recipients)
            .map(|i| json!({ "to": number(i), "variables": { "code": format!("{i:05}") } }))
            .collect::<Vec<Value>>(),
    }))?;
    let mut latencies = Vec::with_capacity(batches);
    for round in 1..=batches {
        let before = counter.snapshot();
        let started = Instant::now();
        let (status, answer) = cloud.post_batch(&token, body.clone()).await?;
        let latency = started.elapsed().as_millis();
        ensure!(status == 202, "the batch was refused: {status} {answer}");
        let phase = counter.snapshot().since(&before);
        let operations: Vec<String> = phase
            .0
            .iter()
            .filter(|(kind, _)| kind.caller == "api")
            .map(|(kind, t)| {
                let waited = t.waiting.as_millis();
                format!(
                    "{} {}×{} {waited} ms",
                    kind.service, kind.operation, t.requests
                )
            })
            .collect();
        println!(
            "batch {round}: {recipients} recipients accepted in {latency} ms ({})",
            operations.join(", ")
        );
        latencies.push(latency);
    }
    latencies.sort_unstable();
    let median = latencies
        .get(latencies.len() / 2)
        .ok_or_else(|| anyhow!("no batch"))?;
    println!(
        "median {median} ms, min {} ms, max {} ms over {batches} batches",
        latencies[0],
        latencies[latencies.len() - 1]
    );
    Ok(())
}
