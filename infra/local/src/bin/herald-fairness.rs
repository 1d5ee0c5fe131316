//! `herald-fairness` (`make bench`): issue 14's goals 3 and 4 against the local cloud,
//! printed against their numbers. Three tenants send at once, the first a campaign of
//! several batches and the others a batch each: how the provider's rate is shared
//! between the tenants while all three send. Then a tenant texting from its own
//! long code (1 text a second) sends beside a bulk batch and another tenant's single
//! texts: whether the number's pace holds (the sandbox refuses what goes past it), and
//! whether anyone else waits for it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, ensure};
use clap::Parser;
use herald::domain::{Limits, Plan, SenderRate, SmsSender, TenantProfile, TenantStatus};
use herald::store::Store;
use herald_local::sandbox::{Faults, LedgerEntry};
use herald_local::{CloudOptions, LocalCloud, emulator, random_hex};
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Issue 14's fair-sharing goals (3 and 4) against the local cloud")]
struct Args {
    /// The provider account's rate, messages per second (below the emulator's ceiling).
    #[arg(long, default_value_t = 21)]
    rate: u32,
    /// Sender instances (`SenderMaxConcurrency`): with every instance busy each sends
    /// at rate / instances, which must finish a chunk of 100 within an invocation's
    /// 17 s with room to spare (`docs/concurrency.md`, "One chunk per invocation").
    #[arg(long, default_value_t = 3)]
    instances: u32,
    /// Recipients in each of the three tenants' batches.
    #[arg(long, default_value_t = 600)]
    recipients: usize,
    /// Batches the first tenant's campaign is split into (its batches take turns, so
    /// its share should be a tenant's, not this many batches').
    #[arg(long, default_value_t = 3)]
    campaign_batches: usize,
    /// Texts from the long code (1 a second) in the second scenario.
    #[arg(long, default_value_t = 40)]
    slow_recipients: usize,
}

const SHARES_GOAL: f64 = 0.20;
const QUIET_GOAL_MS: u64 = 2_000;
/// A long code's own number, paced at its kind's 1 text a second.
const LONG_CODE: &str = "+14155550142";

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init_with_default("warn");
    let args = Args::parse();
    ensure!(
        args.rate > 0 && args.instances >= 2,
        "--rate ≥ 1 and --instances ≥ 2"
    );
    ensure!(
        (1..=3_000).contains(&args.recipients)
            && (1..=1_000).contains(&args.slow_recipients)
            && (1..=5).contains(&args.campaign_batches),
        "--recipients is 1 to 3,000, --slow-recipients 1 to 1,000, --campaign-batches 1 to 5"
    );
    let mut options = CloudOptions::ephemeral(&format!("fair-{}", random_hex(8)));
    options
        .parameters
        .insert("ProviderRatePerSecond".into(), args.rate.to_string());
    options
        .parameters
        .insert("SenderMaxConcurrency".into(), args.instances.to_string());
    emulator::for_bench("fairness", async |endpoint, _| {
        LocalCloud::with(endpoint, options, async |cloud| {
            shares(&args, cloud).await?;
            slow_number(&args, cloud).await
        })
        .await
    })
    .await
}

/// Goal 3: three tenants' batches at once, the first tenant's campaign in several;
/// each tenant's share of what the provider took while all three were sending.
async fn shares(args: &Args, cloud: &LocalCloud) -> Result<()> {
    let rate = f64::from(args.rate);
    cloud.sandbox.set_faults(Faults {
        rate_limit_per_second: rate,
        ..Faults::default()
    });
    let tenants = ["fair-a", "fair-b", "fair-c"];
    let mut tokens = Vec::new();
    let campaign = args.campaign_batches;
    for tenant in tenants {
        let sends = args.recipients * campaign;
        tokens.push(cloud.sender_token(tenant, limits(sends)).await?);
    }
    eprintln!(
        "Three tenants send at once: {} in {campaign} batches of {} recipients, the others one batch each; {} messages/s, {} instances...",
        tenants[0], args.recipients, args.rate, args.instances
    );
    // The campaign's batches first, so without turns they would be queued first.
    for _ in 0..campaign {
        let (status, answer) = cloud
            .post_batch(&tokens[0], batch_body(args.recipients, 0))
            .await?;
        ensure!(status == 202, "a batch was refused: {status} {answer}");
    }
    let posts = tokens
        .iter()
        .enumerate()
        .skip(1)
        .map(|(t, token)| cloud.post_batch(token, batch_body(args.recipients, t)));
    for (status, answer) in futures::future::try_join_all(posts).await? {
        ensure!(status == 202, "a batch was refused: {status} {answer}");
    }
    let total = (campaign + 2) * args.recipients;
    let ledger = wait_for_ledger(cloud, total, total as f64 / rate).await;
    let by_tenant = |t: usize| -> Vec<u64> {
        ledger
            .iter()
            .filter(|e| e.to.starts_with(&format!("+1{}", AREA_CODES[t])))
            .map(|e| e.received_at_ms)
            .collect()
    };
    let times: Vec<Vec<u64>> = (0..3).map(by_tenant).collect();
    // While all three send: from the last tenant's first text to the first tenant's last.
    let from = times.iter().filter_map(|t| t.iter().min()).max().copied();
    let to = times.iter().filter_map(|t| t.iter().max()).min().copied();
    let (Some(from), Some(to)) = (from, to) else {
        return Err(anyhow!("a tenant's batch never reached the provider"));
    };
    ensure!(
        to > from,
        "the three batches never sent at the same time: one finished before another began"
    );
    let counts: Vec<usize> = times
        .iter()
        .map(|t| t.iter().filter(|at| (from..=to).contains(at)).count())
        .collect();
    let together: usize = counts.iter().sum();
    let seconds = (to - from) as f64 / 1000.0;
    println!(
        "\nGoal 3: three tenants sending at once, {} in {campaign} batches ({} s together)",
        tenants[0],
        seconds.round()
    );
    let mut worst = 0.0_f64;
    for (tenant, count) in tenants.iter().zip(&counts) {
        let share = *count as f64 / together.max(1) as f64;
        worst = worst.max((share - 1.0 / 3.0).abs() * 3.0);
        println!("  {tenant}: {count} texts, {:.1}% of them", share * 100.0);
    }
    println!(
        "  furthest from an equal share: {:.1}% of it (goal ≤ {:.0}%: {})",
        worst * 100.0,
        SHARES_GOAL * 100.0,
        verdict(worst <= SHARES_GOAL)
    );
    println!(
        "  together {:.1} messages/s = {:.3} of the rate; 429s from the provider: {}",
        together as f64 / seconds.max(0.001),
        together as f64 / seconds.max(0.001) / rate,
        cloud.sandbox.injected().rate_limited
    );
    Ok(())
}

/// Goal 4: a tenant on its own long code beside a bulk batch and single texts.
async fn slow_number(args: &Args, cloud: &LocalCloud) -> Result<()> {
    let rate = f64::from(args.rate);
    let before = cloud.sandbox.ledger().len();
    let refused_before = cloud.sandbox.injected().rate_limited;
    cloud.sandbox.set_faults(Faults {
        rate_limit_per_second: rate,
        sender_rate_limits: [(LONG_CODE.to_owned(), 1.0)].into(),
        ..Faults::default()
    });
    let store = Store::new(
        cloud.clients.dynamodb.clone(),
        cloud.stack.reference("HeraldTable")?,
    );
    let now = herald::clock::system().timestamp();
    let sender = SmsSender::parse(LONG_CODE).map_err(|e| anyhow!("{e}"))?;
    let paced: Option<SenderRate> = sender.default_rate();
    store
        .create_tenant(&TenantProfile {
            tenant: herald::TenantId::parse("fair-slow").map_err(|e| anyhow!("{e}"))?,
            plan: Plan::Enterprise,
            status: TenantStatus::Active,
            limits: limits(args.slow_recipients),
            sms_provider: Default::default(),
            sms_policy: Default::default(),
            sms_sender: Some(sender),
            sms_sender_rate: None,
            created_at: now,
            updated_at: now,
        })
        .await?;
    let slow = cloud
        .sender_token("fair-slow", limits(args.slow_recipients))
        .await?;
    let bulk = cloud
        .sender_token("fair-bulk", limits(args.recipients))
        .await?;
    let quiet = cloud.sender_token("fair-quiet", limits(100)).await?;
    eprintln!(
        "A long code ({} texts at {:?}/s) beside a bulk batch of {} and single texts...",
        args.slow_recipients,
        paced.map(SenderRate::per_second),
        args.recipients
    );
    // Three batches: three chunks of the number at once, as many as the instances allow.
    let per_batch = args.slow_recipients.div_ceil(3);
    for b in 0..3 {
        let (status, answer) = cloud
            .post_batch(&slow, batch_body(per_batch, 3 + b))
            .await?;
        ensure!(
            status == 202,
            "the slow batch was refused: {status} {answer}"
        );
    }
    let (status, answer) = cloud
        .post_batch(&bulk, batch_body(args.recipients, 6))
        .await?;
    ensure!(
        status == 202,
        "the bulk batch was refused: {status} {answer}"
    );
    let mut accepted = Vec::new();
    for i in 0..10 {
        let to = format!("+1312555{i:04}");
        let (status, answer) = cloud
            .post_message(&quiet, &json!({ "to": to, "body": "Your code is 1234" }))
            .await?;
        ensure!(
            status == 202,
            "a single text was refused: {status} {answer}"
        );
        accepted.push((to, epoch_ms()));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let total = 3 * per_batch + args.recipients + accepted.len();
    let ledger = wait_for_ledger(cloud, before + total, 3.0 * per_batch as f64 + 60.0).await;
    let ledger = &ledger[before.min(ledger.len())..];
    let from_number: Vec<u64> = ledger
        .iter()
        .filter(|e| e.from == LONG_CODE)
        .map(|e| e.received_at_ms)
        .collect();
    let waits: Vec<u64> = accepted
        .iter()
        .filter_map(|(to, at)| {
            ledger
                .iter()
                .find(|e| &e.to == to)
                .map(|e| e.received_at_ms.saturating_sub(*at))
        })
        .collect();
    let bulk_times: Vec<u64> = ledger
        .iter()
        .filter(|e| e.to.starts_with(&format!("+1{}", AREA_CODES[6])))
        .map(|e| e.received_at_ms)
        .collect();
    let injected = cloud.sandbox.injected();
    println!("\nGoal 4: a long code at 1 text/s beside a bulk batch and single texts");
    println!(
        "  the number: {} of {} texts, {:.2} texts/s from its first to its last, most in any 1 s: {}",
        from_number.len(),
        3 * per_batch,
        per_second(&from_number),
        most_in_a_second(&from_number)
    );
    println!(
        "  refused for the number's pace: {} (goal 0: {}); for the account's: {}",
        injected.sender_rate_limited,
        verdict(injected.sender_rate_limited == 0),
        injected.rate_limited - refused_before
    );
    println!(
        "  the bulk batch beside it: {:.1} messages/s = {:.3} of the rate",
        per_second(&bulk_times),
        per_second(&bulk_times) / rate
    );
    println!(
        "  single texts: {} of {} at the provider, worst {} ms from 202 (goal ≤ {} ms: {})",
        waits.len(),
        accepted.len(),
        waits.iter().max().copied().unwrap_or(0),
        QUIET_GOAL_MS,
        verdict(waits.len() == accepted.len() && waits.iter().all(|w| *w <= QUIET_GOAL_MS))
    );
    Ok(())
}

/// Area codes by batch: each batch's recipients have their own, so the ledger tells
/// whose a text was.
const AREA_CODES: [&str; 7] = ["415", "628", "650", "510", "408", "707", "925"];

fn batch_body(recipients: usize, batch: usize) -> Vec<u8> {
    let recipients: Vec<Value> = (0..recipients)
        .map(|i| json!({ "to": format!("+1{}555{:04}", AREA_CODES[batch], 2_000 + i) }))
        .collect();
    serde_json::to_vec(&json!({ "template": "Fair share", "recipients": recipients }))
        .expect("a JSON value")
}

fn limits(recipients: usize) -> Limits {
    Limits {
        api_requests_per_second: 1_000,
        sends_per_day: u32::try_from(recipients * 2).unwrap_or(u32::MAX),
    }
}

/// Waits until the provider has `count` messages, or three times `expected_s` and a
/// minute more have passed.
async fn wait_for_ledger(cloud: &LocalCloud, count: usize, expected_s: f64) -> Vec<LedgerEntry> {
    let give_up = Instant::now() + Duration::from_secs_f64(3.0 * expected_s + 60.0);
    let mut next_progress = Instant::now() + Duration::from_secs(15);
    loop {
        let ledger = cloud.sandbox.ledger();
        if ledger.len() >= count || Instant::now() >= give_up {
            return ledger;
        }
        if Instant::now() >= next_progress {
            eprintln!("  {} of {count} at the provider", ledger.len());
            next_progress += Duration::from_secs(15);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// (texts − 1) / (last − first), in texts per second.
fn per_second(times: &[u64]) -> f64 {
    match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) if last > first => {
            (times.len() - 1) as f64 / ((last - first) as f64 / 1000.0)
        }
        _ => 0.0,
    }
}

fn most_in_a_second(times: &[u64]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut end = 0;
    let mut most = 0;
    for (start, at) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < at + 1_000 {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
