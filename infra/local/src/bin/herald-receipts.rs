//! `herald-receipts` (the receipt phase of `make bench`): how many signed status
//! callbacks per second the receiver takes through the local gateway, and how long the
//! events function takes to apply them, with the DynamoDB requests it makes per
//! receipt counted by an SDK interceptor.
//!
//! The messages are made `sent` directly through `Store` (claim, then settle, as the
//! sender calls it), so the phase measures receipts alone. The events function is
//! paused while the callbacks are posted, so the receiver's rate is its own and every
//! receipt waits on the events queue; then it is resumed and the clock runs until every
//! receipt is handled: applied, or met as a duplicate. A receipt can be applied and
//! not counted: an invocation stopped at the function's timeout after its writes loses
//! its metric line (as in Lambda, where the line is printed at the end), and SQS hands
//! its receipts over again, to be met as duplicates of the writes already made (so do
//! receipts whose delete missed its timeout). So the run ends by reading every message
//! back (uncounted) to show each one `delivered`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use clap::Parser;
use herald::domain::{Channel, Chunk, Content};
use herald::store::Store;
use herald::{Address, BatchId, MessageId, PhoneNumber, TenantId};
use herald_local::requests::RequestCounter;
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex};
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Herald's receipt benchmark against the local cloud")]
struct Args {
    /// Messages, each receiving one `delivered` callback.
    #[arg(long, default_value_t = 10_000)]
    receipts: u32,
    /// Callbacks in flight at once (a provider posts many at a time).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Claim-then-settle sequences in flight while making the messages `sent`.
    #[arg(long, default_value_t = 8)]
    seed_concurrency: usize,
    /// How long to wait for every receipt to be applied.
    #[arg(long, default_value_t = 1_800)]
    timeout_seconds: u64,
}

const TENANT: &str = "bench";
const DYNAMODB_WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("warn");
    let args = Args::parse();
    ensure!(
        args.receipts > 0 && args.concurrency > 0 && args.seed_concurrency > 0,
        "--receipts, --concurrency and --seed-concurrency must be at least 1"
    );
    let counter = RequestCounter::default();
    let mut options = CloudOptions::ephemeral(&format!("bench-receipts-{}", random_hex(8)));
    options.count_requests = Some(counter.clone());
    options.keep_metrics = true;
    emulator::for_bench("receipts", async |endpoint, _| {
        LocalCloud::with(endpoint, options, async |cloud| {
            cloud.pause_events();
            run(&args, cloud, &counter).await
        })
        .await
    })
    .await
}

async fn run(args: &Args, cloud: &LocalCloud, counter: &RequestCounter) -> Result<()> {
    let tenant = TenantId::parse(TENANT).map_err(|e| anyhow!("{e}"))?;
    let batch = BatchId::new();
    eprintln!("Making {} messages sent...", args.receipts);
    seed(args, cloud, &tenant, batch).await?;

    eprintln!(
        "Posting {} signed callbacks, {} at a time, with the events function paused...",
        args.receipts, args.concurrency
    );
    let http = reqwest::Client::new();
    let next = AtomicU32::new(0);
    let refused = AtomicU64::new(0);
    let start = Instant::now();
    futures::future::try_join_all((0..args.concurrency).map(|_| async {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= args.receipts {
                return Ok::<(), anyhow::Error>(());
            }
            let message = MessageId::new(batch, index);
            let taken = herald_local::seed::post_delivered(&http, cloud, &tenant, message).await?;
            if !taken {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
    .await?;
    let posting = start.elapsed().as_secs_f64();
    let refused = refused.into_inner();
    ensure!(refused == 0, "the receiver refused {refused} callbacks");
    println!(
        "receiver: {} callbacks in {posting:.1} s = {:.0} callbacks/s ({} in flight)",
        args.receipts,
        f64::from(args.receipts) / posting,
        args.concurrency
    );

    let before = counter.snapshot();
    let start = Instant::now();
    cloud.resume_events();
    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let metrics = &cloud.metrics;
    let (applied, handled) = loop {
        let applied = metrics.total("events", "ReceiptsApplied") as u64;
        let handled = applied + metrics.total("events", "ReceiptsDuplicate") as u64;
        if handled >= u64::from(args.receipts) || Instant::now() > deadline {
            break (applied, handled);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let applying = start.elapsed().as_secs_f64();
    let counts = counter.snapshot().since(&before);
    // Per receipt handled, so a run cut short still reports what it measured (a
    // receipt handed over twice made its requests twice, and they count).
    let per = |n: u64| n as f64 / handled.max(1) as f64;
    println!(
        "events: {handled} of {} receipts handled in {applying:.1} s = {:.1} receipts/s ({applied} applied, the rest handed over again after their write and met as duplicates)",
        args.receipts,
        handled as f64 / applying
    );
    let mut writes = 0;
    for (kind, tally) in &counts.0 {
        if kind.caller == "events" && kind.service == "DynamoDB" {
            println!(
                "  events DynamoDB {:<20} {:.2} requests/receipt",
                kind.operation,
                per(tally.requests)
            );
            if DYNAMODB_WRITES.contains(&kind.operation.as_str()) {
                writes += tally.requests;
            }
        }
    }
    println!(
        "  events DynamoDB write requests: {:.2}/receipt (a TransactWriteItems writes 3 items: dedupe, message, receipt shard)",
        per(writes)
    );
    for name in [
        "ReceiptsDuplicate",
        "ReceiptsEarly",
        "EventsOrphaned",
        "EventsPoisonParked",
    ] {
        println!("  {name}: {}", metrics.total("events", name));
    }
    ensure!(
        handled >= u64::from(args.receipts),
        "{handled} of {} receipts handled within {} s",
        args.receipts,
        args.timeout_seconds
    );
    let delivered = count_delivered(args, cloud, batch).await?;
    println!(
        "  messages delivered, read back: {delivered} of {}",
        args.receipts
    );
    ensure!(
        delivered == args.receipts,
        "not every message was delivered"
    );
    ensure!(
        metrics.total("events", "EventsOrphaned") == 0.0,
        "receipts were orphaned"
    );
    Ok(())
}

/// How many of the batch's messages read back `delivered` (with an uncounted client).
async fn count_delivered(args: &Args, cloud: &LocalCloud, batch: BatchId) -> Result<u32> {
    let tenant = TenantId::parse(TENANT).map_err(|e| anyhow!("{e}"))?;
    let store = uncounted_store(cloud)?;
    let delivered = AtomicU32::new(0);
    each_message(args, |index| {
        let (store, tenant, delivered) = (&store, &tenant, &delivered);
        async move {
            let message = store
                .get_message(tenant, MessageId::new(batch, index))
                .await?;
            if message.is_some_and(|m| m.status == herald::MessageStatus::Delivered) {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await?;
    Ok(delivered.into_inner())
}

/// The stack's table through a client the request counter does not see.
fn uncounted_store(cloud: &LocalCloud) -> Result<Store> {
    Ok(Store::new(
        herald::aws::Clients::new(cloud.sdk.clone()).dynamodb(),
        cloud.stack.reference("HeraldTable")?,
    ))
}

/// `step` for each message index, `--seed-concurrency` at a time.
async fn each_message<F, Fut>(args: &Args, step: F) -> Result<()>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let next = AtomicU32::new(0);
    futures::future::try_join_all((0..args.seed_concurrency).map(|_| async {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= args.receipts {
                return Ok::<(), anyhow::Error>(());
            }
            step(index).await?;
        }
    }))
    .await?;
    Ok(())
}

/// Claims and settles `receipts` messages as `sent` with provider references `SM{i}`.
async fn seed(args: &Args, cloud: &LocalCloud, tenant: &TenantId, batch: BatchId) -> Result<()> {
    let store = uncounted_store(cloud)?;
    let clock = herald::clock::system();
    let chunk = Chunk {
        index: 0,
        channel: Channel::Sms,
        content: Content::Text("receipts".into()),
        subject: None,
        recipients: Vec::new(),
        created_at: clock.timestamp(),
    };
    let to = Address::Phone(PhoneNumber::parse("+14155552000").map_err(|e| anyhow!("{e}"))?);
    each_message(args, |index| {
        let (store, chunk, to) = (&store, &chunk, &to);
        async move {
            let id = MessageId::new(batch, index);
            herald_local::seed::claim_and_settle(store, tenant, id, chunk, to, "twilio").await?;
            Ok(())
        }
    })
    .await
}
