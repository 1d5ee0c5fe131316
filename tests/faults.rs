//! The fault suite: a batch of 500 through the gateway, the queue and the sandbox
//! provider under each fault profile, ending with exact counts. Every recipient ends
//! `sent`, `failed` or `unknown` with a reason; no recipient is in the provider's ledger
//! twice; what reaches the DLQ is what the profile predicts; nothing is lost. Only
//! answers that prove the message was not taken (429, 503) are retried; any other 5xx
//! makes the message `unknown`, whether or not the provider had taken it.
//!
//! Longer than most files: the profiles share one harness (`run`, `Outcome` and its
//! assertions) and one lock that keeps them from running together, which a split
//! would have to export between test binaries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use herald::provider::twilio::TwilioProvider;
use herald::provider::{Outbound, Provider, SendOutcome};
use herald::queue::{ChunkEnvelope, SendQueue};
use herald::{BatchId, CorrelationId, TenantId};
use herald_tests::herald_local::CloudOptions;
use herald_tests::herald_local::runner::QueueRunner;
use herald_tests::herald_local::sandbox::Faults;
use herald_tests::{TestCloud, eventually_every, number, quick_redelivery};
use serde_json::{Value, json};

const SIZE: usize = 500;

/// One profile at a time: the emulator serves about a hundred requests a second, and
/// two 500-message batches at once would slow its answers past the invocation budget
/// the sender plans with, turning the emulator's queueing into `unknown`s.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// How often the suite polls: each poll costs the emulator requests the senders need.
const SECOND: Duration = Duration::from_secs(1);

/// The production timings (invocations of 30 s, redelivery after 30 s: a chunk of 100
/// finishes in one invocation even at the emulator's pace), provider answers given up
/// on after four seconds, and a provider rate the emulator, not the shared rate, limits.
fn fast(options: &mut CloudOptions) {
    with_redelivery(options, 30);
}

/// As `fast`, with redelivery (and invocations) of `seconds`, for the profiles that
/// wait for several redeliveries.
fn with_redelivery(options: &mut CloudOptions, seconds: u32) {
    quick_redelivery(options, seconds);
    options
        .parameters
        .insert("ProviderRatePerSecond".into(), "1000".into());
    // With the provider's rate out of the way, parallelism alone bounds how many claims
    // and settles wait on the one emulator at once: 5 instances × 16 (the template's,
    // sized for AWS) timed its writes out on a busy machine and left messages unknown.
    options
        .env_overrides
        .insert("HERALD_SEND_PARALLELISM".into(), "8".into());
    // A whole stack shares each test's runtime: leave a busy debug build time to
    // answer, so only the injected timeouts come out ambiguous.
    options.env_overrides.insert(
        "HERALD_PROVIDER_TIMEOUT_MS".into(),
        PROVIDER_TIMEOUT_MS.to_string(),
    );
}

const PROVIDER_TIMEOUT_MS: u64 = 4_000;

async fn send_batch(test: &TestCloud, token: &str) -> String {
    let recipients: Vec<Value> = (0..SIZE)
        .map(|i| json!({ "to": number(i), "variables": { "code": i.to_string() } }))
        .collect();
    test.send_batch(token, "Your code is {{code}}", &recipients)
        .await
}

/// What became of every message, read through the API's listing.
struct Outcome {
    statuses: HashMap<String, usize>,
    /// Provider requests the sandbox accepted, per recipient.
    ledger: HashMap<String, usize>,
    dlq: usize,
    /// Sender invocations stopped at their timeout.
    timed_out: usize,
    /// The senders' metric totals: (Sent, Failed, Unknown).
    metrics: (f64, f64, f64),
    /// The reasons recorded on `unknown` messages.
    unknown_reasons: Vec<String>,
}

impl Outcome {
    fn count(&self, status: &str) -> usize {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    /// `unknown` messages whose reason contains `text`.
    fn unknown_because(&self, text: &str) -> usize {
        self.unknown_reasons
            .iter()
            .filter(|r| r.contains(text))
            .count()
    }

    fn assert_complete_and_unduplicated(&self) {
        let total: usize = self.statuses.values().sum();
        assert_eq!(
            total, SIZE,
            "every message listed once: {:?}",
            self.statuses
        );
        assert_eq!(
            self.count("sent") + self.count("failed") + self.count("unknown"),
            SIZE,
            "every message in a final status: {:?}",
            self.statuses
        );
        let twice: Vec<_> = self.ledger.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "texted twice: {twice:?}");
        // A claim cut off by the timeout would be an `unknown` no fault explains.
        assert_eq!(self.timed_out, 0, "sender invocations hit their timeout");
    }

    /// The metrics count each outcome once, however often a chunk was delivered.
    fn assert_metrics_exact(&self) {
        assert_eq!(
            self.metrics,
            (
                self.count("sent") as f64,
                self.count("failed") as f64,
                self.count("unknown") as f64
            ),
            "metrics (sent, failed, unknown)"
        );
    }
}

async fn outcome(test: &TestCloud, token: &str, batch: &str) -> Outcome {
    let mut statuses = HashMap::new();
    let mut unknown_reasons = Vec::new();
    let mut next = Some(format!("/v1/batches/{batch}/messages?limit=100"));
    while let Some(path) = next {
        let page = test.get(&path, token).await.body;
        for message in page["messages"].as_array().unwrap() {
            let status = message["status"].as_str().unwrap().to_owned();
            if status == "failed" || status == "unknown" {
                assert!(
                    message["error"]["reason"].is_string(),
                    "{status} without a reason: {message}"
                );
            }
            if status == "unknown" {
                unknown_reasons.push(message["error"]["reason"].as_str().unwrap().to_owned());
            }
            *statuses.entry(status).or_default() += 1;
        }
        next = page["next_url"].as_str().map(str::to_owned);
    }
    let mut ledger = HashMap::new();
    for entry in test.ledger() {
        *ledger.entry(entry.to).or_default() += 1;
    }
    Outcome {
        statuses,
        ledger,
        dlq: test.queue_depth("SendDLQ").await,
        timed_out: test.cloud.send_invocations_timed_out(),
        metrics: (
            test.cloud.metrics.total("sender", "Sent"),
            test.cloud.metrics.total("sender", "Failed"),
            test.cloud.metrics.total("sender", "Unknown"),
        ),
        unknown_reasons,
    }
}

/// Runs a batch under `faults` to its end and returns what became of it.
async fn run(name: &str, faults: Faults) -> (TestCloud, String, Outcome) {
    let test = TestCloud::start_with(name, fast).await;
    test.cloud.sandbox.set_faults(faults);
    let token = test.token("acme", "sender").await;
    let batch = send_batch(&test, &token).await;
    test.wait_for_batch(&token, &batch, "completed").await;
    let outcome = outcome(&test, &token, &batch).await;
    outcome.assert_metrics_exact();
    (test, batch, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_faults_everyone_is_sent_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_test, _, outcome) = run("fault-none", Faults::default()).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("sent"), SIZE);
    assert_eq!(outcome.ledger.len(), SIZE);
    assert_eq!(outcome.dlq, 0);
}

/// A 503 turns the request away: nothing was taken, so it is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_503s_are_retried_until_everyone_is_sent_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let faults = Faults {
        error_rate: 0.1,
        error_status: Some(503),
        ..Faults::default()
    };
    let (test, _, outcome) = run("fault-5xx", faults).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("sent"), SIZE);
    assert_eq!(outcome.ledger.len(), SIZE);
    assert_eq!(outcome.dlq, 0);
    assert!(
        test.cloud.sandbox.injected().errors > 0,
        "the profile injected errors"
    );
}

/// A 500, 502 or 504 answered after the provider took the message (a 500 after its
/// write, a proxy's 502 or 504): each such message is `unknown`, reached the provider
/// exactly once, and is never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_after_the_provider_took_the_message_are_unknown_and_never_resent() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let statuses = [500, 502, 504];
    let faults = Faults {
        accept_then_error_rate: 0.1,
        accept_then_error_statuses: statuses.to_vec(),
        ..Faults::default()
    };
    let (test, _, outcome) = run("fault-accept-5xx", faults).await;
    outcome.assert_complete_and_unduplicated();
    let injected = test.cloud.sandbox.injected();
    let lost_answers = injected.accepted_then_errors_total();
    for status in statuses {
        let answered = injected
            .accepted_then_errors
            .get(&status)
            .copied()
            .unwrap_or(0);
        assert!(answered > 0, "the profile answered {status}: {injected:?}");
        assert_eq!(
            outcome.unknown_because(&format!("provider answered {status} ")),
            answered,
            "each {status} after acceptance is one unknown"
        );
    }
    assert_eq!(outcome.count("unknown"), lost_answers);
    assert_eq!(outcome.count("sent"), SIZE - lost_answers);
    assert_eq!(outcome.count("failed"), 0);
    assert_eq!(
        outcome.ledger.len(),
        SIZE,
        "every recipient reached the provider, once: none lost"
    );
    assert_eq!(injected.errors, 0);
    assert_eq!(
        test.cloud.metrics.total("sender", "ProviderRetries"),
        0.0,
        "nothing was sent twice because nothing was retried"
    );
    assert_eq!(outcome.dlq, 0);
}

/// A 500 cannot say whether the provider took the message, so it is `unknown` even
/// when (as here) the provider had not: the price of never texting anyone twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_unknown_even_when_the_provider_had_not_taken_the_message() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let faults = Faults {
        error_rate: 0.1,
        error_status: Some(500),
        ..Faults::default()
    };
    let (test, _, outcome) = run("fault-500", faults).await;
    outcome.assert_complete_and_unduplicated();
    let errors = test.cloud.sandbox.injected().errors;
    assert!(errors > 0, "the profile injected errors");
    assert_eq!(outcome.count("unknown"), errors);
    assert_eq!(outcome.unknown_because("provider answered 500 "), errors);
    assert_eq!(outcome.count("sent"), SIZE - errors);
    assert_eq!(
        outcome.ledger.len(),
        SIZE - errors,
        "a refused request is not retried"
    );
    assert_eq!(test.cloud.metrics.total("sender", "ProviderRetries"), 0.0);
    assert_eq!(outcome.dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_throttles_are_retried_after_retry_after_until_everyone_is_sent_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let faults = Faults {
        throttle_rate: 0.1,
        retry_after_secs: 1,
        ..Faults::default()
    };
    let (test, _, outcome) = run("fault-429", faults).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("sent"), SIZE);
    assert_eq!(outcome.ledger.len(), SIZE);
    assert_eq!(outcome.dlq, 0);
    assert!(test.cloud.sandbox.injected().throttles > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_the_provider_took_the_message_is_unknown_and_never_resent() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let faults = Faults {
        timeout_rate: 0.05,
        timeout_ms: PROVIDER_TIMEOUT_MS + 1_000,
        ..Faults::default()
    };
    let (test, _, outcome) = run("fault-timeout", faults).await;
    outcome.assert_complete_and_unduplicated();
    let timeouts = test.cloud.sandbox.injected().timeouts;
    assert!(timeouts > 0);
    assert_eq!(
        outcome.count("unknown"),
        timeouts,
        "each late answer is unknown"
    );
    assert_eq!(outcome.count("sent"), SIZE - timeouts);
    assert_eq!(
        outcome.ledger.len(),
        SIZE,
        "the provider has every message once"
    );
    assert_eq!(outcome.dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_message_delivered_twice_still_sends_everyone_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let test = TestCloud::start_with("fault-dup", fast).await;
    let token = test.token("acme", "sender").await;
    let batch = send_batch(&test, &token).await;
    // A second copy of every chunk's queue message: SQS's at-least-once, at its worst.
    let queue = SendQueue::new(
        test.cloud.clients.sqs.clone(),
        test.cloud.stack.reference("SendQueue").unwrap(),
    );
    let tenant = TenantId::parse("acme").unwrap();
    let batch_id: BatchId = batch.parse().unwrap();
    let copies: Vec<_> = (0..5)
        .map(|chunk| ChunkEnvelope::new(&tenant, batch_id, chunk, &CorrelationId::default()))
        .collect();
    queue.enqueue(&copies).await.unwrap();

    test.wait_for_batch(&token, &batch, "completed").await;
    eventually_every(
        "both copies of every chunk to be consumed",
        SECOND,
        || async { (test.queue_depth("SendQueue").await == 0).then_some(()) },
    )
    .await;
    let outcome = outcome(&test, &token, &batch).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("sent"), SIZE);
    assert_eq!(outcome.ledger.len(), SIZE);
    assert_eq!(outcome.dlq, 0);
    let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
    assert_eq!(
        progress["counts"]["sent"], SIZE,
        "counted once, not per copy"
    );
}

/// The real provider, then a crash before the outcome is recorded: for the messages
/// named, the process "dies" right after the provider took them.
struct KilledAfterSend {
    inner: TwilioProvider,
    victims: Vec<u32>,
}

impl Provider for KilledAfterSend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> futures::future::BoxFuture<'a, SendOutcome> {
        async move {
            let outcome = self.inner.send(message).await;
            if self.victims.contains(&message.message_id().index()) {
                panic!("killed between send and settle");
            }
            outcome
        }
        .boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_between_send_and_settle_leaves_unknown_never_a_second_text() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let test = TestCloud::start_with("fault-kill", |o| {
        fast(o);
        o.run_queues = false;
        // One recipient at a time, so a crash loses exactly the message in hand; a
        // short lease, so redelivery soon finds the dead claim expired.
        o.env_overrides
            .insert("HERALD_SEND_PARALLELISM".into(), "1".into());
        o.env_overrides
            .insert("HERALD_LEASE_SECONDS".into(), "1".into());
    })
    .await;
    let token = test.token("acme", "sender").await;
    let batch = send_batch(&test, &token).await;

    let cloud = &test.cloud;
    let victims: Vec<u32> = (0..5).map(|chunk| chunk * 100 + 50).collect();
    let deps = Arc::new(test.sender_with(Arc::new(KilledAfterSend {
        inner: test.twilio_adapter(),
        victims: victims.clone(),
    })));
    let handler_deps = deps.clone();
    let runner = QueueRunner {
        sqs: cloud.clients.sqs.clone(),
        trigger: cloud.send_runner.trigger.clone(),
        handler: Arc::new(move |event, deadline| {
            let deps = handler_deps.clone();
            async move { herald_sender::handle(&deps, event, deadline).await }.boxed()
        }),
        timed_out: Default::default(),
        paused: Default::default(),
    };
    eventually_every(
        "the batch to finish despite the crashes",
        SECOND,
        || async {
            runner.poll_once().await.unwrap();
            let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
            (progress["status"] == "completed").then_some(())
        },
    )
    .await;

    let outcome = outcome(&test, &token, &batch).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("unknown"), victims.len());
    assert_eq!(outcome.count("sent"), SIZE - victims.len());
    // A crashed invocation's metric line dies with it (the sends before the crash are
    // not in the metrics); the unknowns are settled, and counted, by the redeliveries.
    assert_eq!(outcome.metrics.2, victims.len() as f64);
    assert!(outcome.metrics.0 < outcome.count("sent") as f64);
    assert_eq!(
        outcome.ledger.len(),
        SIZE,
        "the crashed ones reached the provider, once"
    );
    assert_eq!(outcome.dlq, 0);
    for index in victims {
        let message = test
            .get(&format!("/v1/messages/{batch}.{index}"), &token)
            .await
            .body;
        assert_eq!(message["status"], "unknown", "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_the_provider_keeps_failing_reaches_the_dlq_and_is_sent_after_redrive() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let victim = number(7);
    let faults = Faults {
        error_rate: 1.0,
        error_status: Some(503),
        only_to: vec![victim.clone()],
        ..Faults::default()
    };
    // Redelivery after 20 s: an invocation claims only while a call and its settle
    // still fit (its first 13 s), so each delivery moves about 13 s of the emulator's
    // pace; the four good chunks must finish within their five receives, and at 12 s
    // (5 s of claiming a delivery) this machine's emulator sent fewer than 500 in
    // five, so every chunk went to the DLQ, on main as well.
    let test = TestCloud::start_with("fault-dlq", |o| with_redelivery(o, 20)).await;
    test.cloud.sandbox.set_faults(faults);
    let token = test.token("acme", "sender").await;
    let batch = send_batch(&test, &token).await;

    // Chunk 0 (which holds the victim) fails until SQS moves it to the DLQ.
    eventually_every("chunk 0 in the DLQ", SECOND, || async {
        (test.queue_depth("SendDLQ").await == 1).then_some(())
    })
    .await;
    // Counts move when a chunk is finished: the other four are; chunk 0 is not.
    let progress = eventually_every("the other chunks to be counted", SECOND, || async {
        let body = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
        (body["counts"]["sent"] == SIZE - 100).then_some(body)
    })
    .await;
    assert_eq!(progress["counts"]["pending"], 100);
    assert_eq!(test.queue_depth("SendQueue").await, 0);
    let before = outcome(&test, &token, &batch).await;
    assert_eq!(before.count("sent"), SIZE - 1, "{:?}", before.statuses);
    assert_eq!(before.ledger.len(), SIZE - 1);

    // The provider recovers; an operator redrives; the batch completes, nothing lost.
    test.cloud.sandbox.set_faults(Faults::default());
    let report = test.cloud.redrive().await;
    assert_eq!(report.moved, 1);
    test.wait_for_batch(&token, &batch, "completed").await;
    let outcome = outcome(&test, &token, &batch).await;
    outcome.assert_complete_and_unduplicated();
    assert_eq!(outcome.count("sent"), SIZE);
    assert_eq!(outcome.ledger.len(), SIZE);
    assert_eq!(outcome.ledger[&victim], 1);
    assert_eq!(outcome.dlq, 0);
}
