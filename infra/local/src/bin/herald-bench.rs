//! `herald-bench` (`make bench`): the delivery benchmark of DESIGN.md §9 against the
//! local cloud. It measures the emulator's ceiling for the sender's writes, sets the
//! provider rate below it (so the ratio measures Herald, not the emulator), makes the
//! sandbox enforce that rate with 429s, sends one batch through the gateway and reports
//! accept latency, delivery rate, duplicates, losses and the AWS requests each
//! function made, counted by an SDK interceptor.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, ensure};
use clap::Parser;
use herald::domain::{BatchStatus, Channel, Chunk, Content, Limits};
use herald::keys::CHUNK_SIZE;
use herald::store::Store;
use herald::{Address, BatchId, MessageId, PhoneNumber, TenantId};
use herald_local::requests::{RequestCounter, RequestCounts};
use herald_local::sandbox::Faults;
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Herald's delivery benchmark against the local cloud")]
struct Args {
    /// Recipients in the batch (at most the API's HERALD_MAX_RECIPIENTS, 10,000).
    #[arg(long, default_value_t = 10_000)]
    recipients: usize,
    /// How long to drive claims and settles at the emulator to find its ceiling.
    #[arg(long, default_value_t = 10)]
    ceiling_seconds: u64,
    /// Claim-then-settle sequences in flight while measuring the ceiling (one sender
    /// instance's HERALD_SEND_PARALLELISM).
    #[arg(long, default_value_t = 8)]
    ceiling_concurrency: usize,
    /// The provider rate as a fraction of the measured ceiling.
    #[arg(long, default_value_t = 0.5)]
    rate_fraction: f64,
    /// The provider rate in messages per second, instead of a fraction of the ceiling.
    #[arg(long)]
    rate: Option<u32>,
    /// Single messages another tenant sends while the batch sends, one every
    /// `--quiet-every` seconds from the batch's first delivery (issue 14's goal 1: how
    /// long each waits from its 202 to the provider).
    #[arg(long, default_value_t = 20)]
    quiet_singles: usize,
    #[arg(long, default_value_t = 2.0)]
    quiet_every: f64,
}

/// The tenant whose single messages are sent beside the batch.
const QUIET_TENANT: &str = "quiet";

const TENANT: &str = "bench";
/// Area codes the recipients' numbers use, 8,000 numbers each (see `number`).
const AREA_CODES: [&str; 8] = ["415", "628", "650", "510", "408", "707", "925", "209"];
/// How often the bench reads the batch: each read is a request the emulator serves
/// between the sender's.
const POLL: Duration = Duration::from_secs(2);
/// Issue 14's goal 5: requests per delivered message, accept and delivery together.
const DYNAMODB_BUDGET: f64 = 2.1;
const SQS_BUDGET: f64 = 0.05;

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("warn");
    let args = Args::parse();
    ensure!(
        (1..=AREA_CODES.len() * 8_000).contains(&args.recipients),
        "--recipients must be between 1 and {}",
        AREA_CODES.len() * 8_000
    );
    ensure!(
        args.rate_fraction > 0.0 && args.rate_fraction <= 1.0,
        "--rate-fraction must be in (0, 1]"
    );
    ensure!(
        args.ceiling_seconds > 0 && args.ceiling_concurrency > 0,
        "--ceiling-seconds and --ceiling-concurrency must be at least 1"
    );
    let report = emulator::for_bench("bench", async |endpoint, own| {
        run(&args, endpoint, own).await
    })
    .await?;
    print_table(&report);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run(args: &Args, endpoint: &str, own_emulator: bool) -> Result<Report> {
    eprintln!(
        "Measuring the emulator's ceiling for claim + settle ({} s, {} in flight)...",
        args.ceiling_seconds, args.ceiling_concurrency
    );
    let (ceiling, sender) = measure_ceiling(endpoint, args).await?;
    eprintln!(
        "  {:.1} messages/s ({:.1} DynamoDB requests/s)",
        ceiling.messages_per_second, ceiling.dynamodb_requests_per_second
    );
    let rate = match args.rate {
        Some(rate) => rate,
        None => ((ceiling.messages_per_second * args.rate_fraction).round() as u32).max(1),
    };
    let instances = sender.instances_for(rate);

    let counter = RequestCounter::default();
    let mut options = CloudOptions::ephemeral(&format!("bench-{}", random_hex(8)));
    options
        .parameters
        .insert("ProviderRatePerSecond".into(), rate.to_string());
    options
        .parameters
        .insert("SenderMaxConcurrency".into(), instances.to_string());
    options.count_requests = Some(counter.clone());
    let emulator = EmulatorInfo {
        endpoint: endpoint.to_owned(),
        started_by_bench: own_emulator,
    };
    LocalCloud::with(endpoint, options, async |cloud| {
        let mut report = deliver(args, cloud, &counter, rate, ceiling, emulator).await?;
        eprintln!("Measuring the ceiling again, with the batch's items in the table...");
        let after = drive_claims(cloud, args).await?;
        eprintln!("  {:.1} messages/s", after.messages_per_second);
        report.ceiling_after = Some(after);
        Ok(report)
    })
    .await
}

/// The sender as the template deploys it, read from a provisioned stack.
struct TemplateSender {
    /// `SenderMaxConcurrency`'s default.
    instances: u32,
    /// Seconds an invocation may spend sending: the function's timeout less the longest
    /// provider call and the margin kept for settling (docs/concurrency.md).
    sending_budget_secs: f64,
}

impl TemplateSender {
    /// Sender instances for `rate`: as many as the template's default allows (and at
    /// least Lambda's minimum of 2) while each instance's share still sends a whole
    /// chunk in half the sending budget, which leaves room for the emulator's slow
    /// answers before an invocation stops claiming.
    fn instances_for(&self, rate: u32) -> u32 {
        let per_chunk = self.sending_budget_secs / 2.0;
        let most = (f64::from(rate) * per_chunk / f64::from(CHUNK_SIZE)).floor() as u32;
        most.clamp(2, self.instances.max(2))
    }
}

#[derive(Debug, Clone, Serialize)]
struct Ceiling {
    seconds: f64,
    concurrency: usize,
    messages: u64,
    messages_per_second: f64,
    dynamodb_requests_per_second: f64,
}

/// The ceiling, in a stack of its own (the benchmark's stack needs the rate this
/// decides), and the template's sender as that stack has it.
async fn measure_ceiling(endpoint: &str, args: &Args) -> Result<(Ceiling, TemplateSender)> {
    let options = CloudOptions::ephemeral(&format!("bench-ceiling-{}", random_hex(8)));
    LocalCloud::with(endpoint, options, async |cloud| {
        let ceiling = drive_claims(cloud, args).await?;
        let config = &cloud.sender.config;
        let timeout = cloud.stack.function_timeout_secs("SenderFunction")? as f64;
        let sender = TemplateSender {
            instances: config.max_instances,
            sending_budget_secs: timeout
                - config.provider_timeout.as_secs_f64()
                - herald_sender::SETTLE_MARGIN.as_secs_f64(),
        };
        Ok((ceiling, sender))
    })
    .await
}

/// Claims and settles fresh messages of a scratch batch through `Store`, as the sender
/// calls it, `ceiling_concurrency` at a time for `ceiling_seconds`.
async fn drive_claims(cloud: &LocalCloud, args: &Args) -> Result<Ceiling> {
    let counter = RequestCounter::default();
    let clients = herald::aws::Clients::new(cloud.sdk.clone())
        .with_interceptor(counter.interceptor("ceiling"));
    let store = Store::new(clients.dynamodb(), cloud.stack.reference("HeraldTable")?);
    let clock = herald::clock::system();
    let tenant = TenantId::parse("ceiling").map_err(|e| anyhow!("{e}"))?;
    let batch = BatchId::new();
    let chunk = Chunk {
        index: 0,
        channel: Channel::Sms,
        content: Content::Text("ceiling".into()),
        subject: None,
        recipients: Vec::new(),
        created_at: clock.timestamp(),
    };
    let to = Address::Phone(PhoneNumber::parse(&number(0)).map_err(|e| anyhow!("{e}"))?);
    let next = AtomicU32::new(0);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.ceiling_seconds);
    futures::future::try_join_all((0..args.ceiling_concurrency).map(|_| async {
        while Instant::now() < end {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let id = MessageId::new(batch, index);
            herald_local::seed::claim_and_settle(&store, &tenant, id, &chunk, &to, "ceiling")
                .await?;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), anyhow::Error>(())
    }))
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let messages = done.into_inner();
    let dynamodb = counter.snapshot().requests("ceiling", "DynamoDB");
    Ok(Ceiling {
        seconds,
        concurrency: args.ceiling_concurrency,
        messages,
        messages_per_second: messages as f64 / seconds,
        dynamodb_requests_per_second: dynamodb as f64 / seconds,
    })
}

/// A valid number for recipient `i`, distinct for every `i` below 64,000.
/// Sends `--quiet-singles` messages from another tenant while the batch sends, the first
/// once the batch reaches the provider: the number of each and when its 202 came.
async fn quiet_singles(
    args: &Args,
    cloud: &LocalCloud,
    limits: Limits,
) -> Result<Vec<(String, u64)>> {
    if args.quiet_singles == 0 {
        return Ok(Vec::new());
    }
    let token = cloud.sender_token(QUIET_TENANT, limits).await?;
    while cloud.sandbox.ledger().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut accepted = Vec::new();
    for i in 0..args.quiet_singles {
        // Numbers the batch never uses (its area codes are AREA_CODES).
        let to = format!("+1312555{:04}", i);
        let (status, answer) = cloud
            .post_message(
                &token,
                &json!({ "channel": "sms", "to": to, "body": "Your code is 1234" }),
            )
            .await?;
        ensure!(
            status == 202,
            "a quiet single was refused: {status} {answer}"
        );
        accepted.push((to, epoch_ms()));
        tokio::time::sleep(Duration::from_secs_f64(args.quiet_every)).await;
    }
    Ok(accepted)
}

fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

fn number(i: usize) -> String {
    format!("+1{}555{:04}", AREA_CODES[i / 8_000], 2_000 + i % 8_000)
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

async fn deliver(
    args: &Args,
    cloud: &LocalCloud,
    counter: &RequestCounter,
    rate: u32,
    ceiling: Ceiling,
    emulator: EmulatorInfo,
) -> Result<Report> {
    let n = args.recipients;
    let config = &cloud.sender.config;
    ensure!(
        config.provider_rate_per_second == f64::from(rate),
        "the sender runs at {} messages/s, not the {rate} asked for",
        config.provider_rate_per_second
    );
    cloud.sandbox.set_faults(Faults {
        rate_limit_per_second: f64::from(rate),
        ..Faults::default()
    });

    // The bench's own reads go through the provisioning clients, which count nothing.
    let store = Store::new(
        cloud.clients.dynamodb.clone(),
        cloud.stack.reference("HeraldTable")?,
    );
    let tenant = TenantId::parse(TENANT).map_err(|e| anyhow!("{e}"))?;
    let limits = Limits {
        api_requests_per_second: 1_000,
        sends_per_day: u32::try_from(n)?.saturating_mul(2),
    };
    let token = cloud.sender_token(TENANT, limits).await?;

    let recipients: Vec<Value> = (0..n)
        .map(|i| json!({ "to": number(i), "variables": { "code": format!("{i:05}") } }))
        .collect();
    for i in 0..n {
        PhoneNumber::parse(&number(i)).map_err(|e| anyhow!("{}: {e}", number(i)))?;
    }
    let body = serde_json::to_vec(&json!({
        "template": "Your Herald code is {{code}}",
        "recipients": recipients,
    }))?;

    eprintln!(
        "Sending a batch of {n} at {rate} messages/s ({} sender instances sharing it)...",
        config.max_instances
    );
    let before = counter.snapshot();
    let posted_at_ms = epoch_ms();
    let started = Instant::now();
    let (status, answer) = cloud.post_batch(&token, body).await?;
    let accept_latency = started.elapsed();
    let accepted = counter.snapshot();
    ensure!(status == 202, "the batch was refused: {status} {answer}");
    let batch: BatchId = answer["batch_id"]
        .as_str()
        .context("no batch_id in the answer")?
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    eprintln!("  accepted in {} ms", accept_latency.as_millis());
    let quiet = quiet_singles(args, cloud, limits);
    tokio::pin!(quiet);
    let mut quiet_result = None;

    // Three times the time the rate allows, and five minutes for a slow start.
    let give_up = started + Duration::from_secs_f64(3.0 * n as f64 / f64::from(rate) + 300.0);
    let mut next_progress = Instant::now();
    let mut failed_polls = 0;
    let view = loop {
        // A slow answer from a busy emulator is not the benchmark's end: look again.
        let view = match store.get_batch(&tenant, batch).await {
            Ok(view) => view.context("the batch record is gone")?,
            Err(e) => {
                failed_polls += 1;
                ensure!(failed_polls < 30, "the batch could not be read: {e}");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if view.status == BatchStatus::Completed {
            break view;
        }
        if Instant::now() >= give_up {
            eprintln!("  gave up waiting after {} s", started.elapsed().as_secs());
            break view;
        }
        if quiet_result.is_none() {
            tokio::select! {
                result = &mut quiet => quiet_result = Some(result?),
                () = tokio::time::sleep(POLL) => {}
            }
        } else {
            tokio::time::sleep(POLL).await;
        }
        if Instant::now() >= next_progress {
            eprintln!(
                "  {:>4} s: {} of {n} final, {} at the provider, {} refused with 429",
                started.elapsed().as_secs(),
                view.done(),
                cloud.sandbox.ledger().len(),
                cloud.sandbox.injected().rate_limited
            );
            next_progress += Duration::from_secs(15);
        }
    };
    let quiet_accepted = match quiet_result {
        Some(accepted) => accepted,
        None => quiet.await?,
    };
    let completed_after = started.elapsed();
    let finished = counter.snapshot();

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut from = 0;
    loop {
        let page = store
            .list_messages(&tenant, &view, from, None, CHUNK_SIZE as usize, 1)
            .await
            .context("listing the batch's messages")?;
        for message in &page.messages {
            *statuses.entry(message.status.to_string()).or_default() += 1;
        }
        match page.next_cursor {
            Some(cursor) => from = cursor,
            None => break,
        }
    }
    let settled: usize = statuses
        .iter()
        .filter(|(status, _)| {
            status
                .parse::<herald::MessageStatus>()
                .is_ok_and(|s| s.is_settled())
        })
        .map(|(_, count)| count)
        .sum();

    let ledger = cloud.sandbox.ledger();
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    for entry in &ledger {
        *per_recipient.entry(entry.to.as_str()).or_default() += 1;
    }
    let first = ledger.iter().map(|e| e.received_at_ms).min();
    let last = ledger.iter().map(|e| e.received_at_ms).max();
    let achieved_rate = match (first, last) {
        (Some(first), Some(last)) if last > first => {
            (ledger.len() - 1) as f64 / ((last - first) as f64 / 1000.0)
        }
        _ => 0.0,
    };
    let quiet_waits_ms: Vec<u64> = quiet_accepted
        .iter()
        .filter_map(|(to, accepted_at_ms)| {
            ledger
                .iter()
                .find(|e| &e.to == to)
                .map(|e| e.received_at_ms.saturating_sub(*accepted_at_ms))
        })
        .collect();
    let sent = statuses.get("sent").copied().unwrap_or(0);
    let accept = accepted.since(&before);
    let delivery = finished.since(&before);
    Ok(Report {
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            profile: if cfg!(debug_assertions) {
                "unoptimised"
            } else {
                "optimised"
            },
        },
        emulator,
        ceiling,
        ceiling_after: None,
        provider_rate_per_second: rate,
        sender_instances: config.max_instances,
        recipients: n,
        accept_latency_ms: accept_latency.as_millis() as u64,
        completed: view.status == BatchStatus::Completed,
        completed_after_s: completed_after.as_secs_f64(),
        first_delivery_s: first.map(|f| f.saturating_sub(posted_at_ms) as f64 / 1000.0),
        last_delivery_s: last.map(|l| l.saturating_sub(posted_at_ms) as f64 / 1000.0),
        achieved_rate_per_second: achieved_rate,
        achieved_over_configured: achieved_rate / f64::from(rate),
        statuses,
        ledger_messages: ledger.len(),
        quiet_singles: quiet_accepted.len(),
        quiet_reached_provider: quiet_waits_ms.len(),
        quiet_worst_wait_ms: quiet_waits_ms.iter().max().copied(),
        quiet_median_wait_ms: median(&quiet_waits_ms),
        duplicates: per_recipient.values().filter(|count| **count > 1).count(),
        losses: n - settled,
        sandbox_429s: cloud.sandbox.injected().rate_limited,
        accept_requests: PhaseRequests::of(&accept, &["api"], n),
        delivery_requests: PhaseRequests::of(&delivery, &["sender", "event source"], sent),
        events_requests: PhaseRequests::of(&delivery, &["events event source"], sent),
    })
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    profile: &'static str,
}

#[derive(Debug, Serialize)]
struct EmulatorInfo {
    endpoint: String,
    started_by_bench: bool,
}

/// AWS requests of one phase, by caller, service and operation, and per message.
#[derive(Debug, Serialize)]
struct PhaseRequests {
    /// What the per-message figures divide by.
    messages: usize,
    /// Per `caller/service`.
    totals: BTreeMap<String, ServiceTotal>,
    /// DynamoDB writes (PutItem, UpdateItem, DeleteItem, batch and transactional
    /// writes) per message, for the budget of DESIGN.md §9.
    dynamodb_writes_per_message: BTreeMap<String, f64>,
    operations: Vec<OperationCount>,
}

#[derive(Debug, Default, Serialize)]
struct ServiceTotal {
    requests: u64,
    per_message: f64,
    /// From sending each request to its answer, added up (concurrent requests overlap).
    waiting_ms: u64,
}

#[derive(Debug, Serialize)]
struct OperationCount {
    caller: &'static str,
    service: String,
    operation: String,
    calls: u64,
    requests: u64,
    waiting_ms: u64,
}

const DYNAMODB_WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

impl PhaseRequests {
    fn of(counts: &RequestCounts, callers: &[&str], messages: usize) -> Self {
        let per = |requests: u64| requests as f64 / messages.max(1) as f64;
        let mut totals: BTreeMap<String, ServiceTotal> = BTreeMap::new();
        let mut writes: BTreeMap<String, u64> = BTreeMap::new();
        let mut operations = Vec::new();
        for (kind, tally) in &counts.0 {
            if !callers.contains(&kind.caller) {
                continue;
            }
            let total = totals
                .entry(format!("{}/{}", kind.caller, kind.service))
                .or_default();
            total.requests += tally.requests;
            total.per_message = per(total.requests);
            total.waiting_ms += tally.waiting.as_millis() as u64;
            if kind.service == "DynamoDB" {
                let entry = writes.entry(kind.caller.to_owned()).or_default();
                if DYNAMODB_WRITES.contains(&kind.operation.as_str()) {
                    *entry += tally.requests;
                }
            }
            operations.push(OperationCount {
                caller: kind.caller,
                service: kind.service.clone(),
                operation: kind.operation.clone(),
                calls: tally.calls,
                requests: tally.requests,
                waiting_ms: tally.waiting.as_millis() as u64,
            });
        }
        Self {
            messages,
            totals,
            dynamodb_writes_per_message: writes
                .into_iter()
                .map(|(caller, requests)| (caller, per(requests)))
                .collect(),
            operations,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    emulator: EmulatorInfo,
    ceiling: Ceiling,
    /// The same measurement after the delivery, in the benchmark's own stack: if the
    /// emulator (or the machine) got slower meanwhile, this shows it.
    ceiling_after: Option<Ceiling>,
    provider_rate_per_second: u32,
    sender_instances: u32,
    recipients: usize,
    accept_latency_ms: u64,
    /// Whether the batch reached `completed` before the bench gave up on it.
    completed: bool,
    /// From the POST to the bench seeing `completed` (it looks every two seconds).
    completed_after_s: f64,
    /// From the POST to the provider's first and last accepted message.
    first_delivery_s: Option<f64>,
    last_delivery_s: Option<f64>,
    /// (provider accepts − 1) / (last − first accept), from the sandbox's ledger.
    achieved_rate_per_second: f64,
    achieved_over_configured: f64,
    statuses: BTreeMap<String, usize>,
    ledger_messages: usize,
    /// Another tenant's single messages sent while the batch sent (goal 1 of issue 14),
    /// how many reached the provider, and their waits from 202 to the provider.
    quiet_singles: usize,
    quiet_reached_provider: usize,
    quiet_worst_wait_ms: Option<u64>,
    quiet_median_wait_ms: Option<u64>,
    /// Recipients the provider accepted more than one message for.
    duplicates: usize,
    /// Recipients not in a final status (sent, failed, unknown, cancelled).
    losses: usize,
    sandbox_429s: usize,
    accept_requests: PhaseRequests,
    delivery_requests: PhaseRequests,
    /// The events function's event source while the batch was sent, not counted in
    /// `delivery_requests`: no receipts come in this bench, so these are its pollers'
    /// idle long polls, a cost per hour of the deployment rather than per message.
    events_requests: PhaseRequests,
}

impl Report {
    /// Requests of `service` per delivered message, accept and delivery together.
    fn per_message(&self, service: &str) -> f64 {
        [&self.accept_requests, &self.delivery_requests]
            .iter()
            .flat_map(|phase| &phase.totals)
            .filter(|(key, _)| key.ends_with(&format!("/{service}")))
            .map(|(_, total)| total.per_message)
            .sum()
    }
}

fn print_table(r: &Report) {
    let row = |name: &str, value: String| println!("  {name:<44} {value}");
    println!();
    println!("Herald delivery benchmark");
    row(
        "machine",
        format!("{} cores, {} build", r.machine.cores, r.machine.profile),
    );
    row(
        "emulator",
        format!(
            "{} ({})",
            r.emulator.endpoint,
            if r.emulator.started_by_bench {
                "started by the bench"
            } else {
                "already running"
            }
        ),
    );
    row(
        "emulator ceiling, claim + settle",
        format!(
            "{:.1} messages/s ({:.1} DynamoDB requests/s, {} in flight, {:.1} s)",
            r.ceiling.messages_per_second,
            r.ceiling.dynamodb_requests_per_second,
            r.ceiling.concurrency,
            r.ceiling.seconds
        ),
    );
    if let Some(after) = &r.ceiling_after {
        row(
            "  the same, after the delivery",
            format!("{:.1} messages/s", after.messages_per_second),
        );
    }
    row(
        "provider rate (sandbox limit)",
        format!(
            "{}/s, shared by {} sender instances",
            r.provider_rate_per_second, r.sender_instances,
        ),
    );
    row("recipients", r.recipients.to_string());
    row(
        "accept latency (POST → 202)",
        format!("{} ms", r.accept_latency_ms),
    );
    let seconds = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.1} s"));
    row("first delivery after POST", seconds(r.first_delivery_s));
    row("last delivery after POST", seconds(r.last_delivery_s));
    row(
        "batch completed after POST",
        if r.completed {
            format!("{:.1} s", r.completed_after_s)
        } else {
            format!("not completed (gave up after {:.0} s)", r.completed_after_s)
        },
    );
    row(
        "achieved rate (ledger, first → last)",
        format!(
            "{:.2}/s = {:.1}% of the configured rate",
            r.achieved_rate_per_second,
            100.0 * r.achieved_over_configured
        ),
    );
    row(
        "goal: a batch alone reaches 0.9 of the rate",
        format!(
            "{:.3} ({})",
            r.achieved_over_configured,
            if r.achieved_over_configured >= 0.9 {
                "met"
            } else {
                "NOT met"
            }
        ),
    );
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    row(
        "quiet tenant's singles at the provider",
        format!(
            "{} of {}, median {} after their 202",
            r.quiet_reached_provider,
            r.quiet_singles,
            ms(r.quiet_median_wait_ms)
        ),
    );
    row(
        "goal: the worst single within 2,000 ms",
        format!(
            "{} ({})",
            ms(r.quiet_worst_wait_ms),
            match r.quiet_worst_wait_ms {
                Some(w) if w <= 2_000 && r.quiet_reached_provider == r.quiet_singles => "met",
                None => "not measured",
                _ => "NOT met",
            }
        ),
    );
    row("final statuses", format!("{:?}", r.statuses));
    row("provider accepts (ledger)", r.ledger_messages.to_string());
    row(
        "duplicates (recipients texted twice)",
        r.duplicates.to_string(),
    );
    row("losses (recipients not final)", r.losses.to_string());
    row("sandbox 429s (rate limit)", r.sandbox_429s.to_string());
    let (dynamodb, sqs) = (r.per_message("DynamoDB"), r.per_message("SQS"));
    row(
        "goal: ≤ 2.1 DynamoDB, ≤ 0.05 SQS per message",
        format!(
            "{dynamodb:.3} ({}), {sqs:.4} ({})",
            if dynamodb <= DYNAMODB_BUDGET {
                "met"
            } else {
                "NOT met"
            },
            if sqs <= SQS_BUDGET { "met" } else { "NOT met" }
        ),
    );
    for (title, phase) in [
        (
            "accept: the API's requests for the batch",
            &r.accept_requests,
        ),
        ("delivery: requests while it was sent", &r.delivery_requests),
        (
            "not counted above: the events function's event source meanwhile (its idle polls)",
            &r.events_requests,
        ),
    ] {
        println!("  {title}, per one of {} messages", phase.messages);
        for (key, total) in &phase.totals {
            row(
                &format!("  {key}"),
                format!(
                    "{} requests, {:.3} per message, answers took {} ms in all",
                    total.requests, total.per_message, total.waiting_ms
                ),
            );
        }
        for (caller, per) in &phase.dynamodb_writes_per_message {
            row(
                &format!("  {caller}/DynamoDB writes"),
                format!("{per:.3} per message"),
            );
        }
        for op in &phase.operations {
            row(
                &format!("    {} {} {}", op.caller, op.service, op.operation),
                format!(
                    "{} requests ({} calls), {} ms",
                    op.requests, op.calls, op.waiting_ms
                ),
            );
        }
    }
    println!();
}
