//! A batch's window of queued chunks (issue 14): the send queue holds at most `window`
//! chunks of one batch, a counted chunk queues the next, and the sweeper restarts a
//! window whose link was lost. Each test runs the queue by hand (one record at a time,
//! as the event source hands them over) with a window of one chunk, so the order in
//! which work is claimed is exact. Small batches skip the queue altogether: they take
//! the express lane, whose instances bulk chunks never reach. One tenant's bulk
//! batches take turns: one has chunks on the queue at a time.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use herald::Timestamp;
use herald::queue::SendQueue;
use herald::store::MAX_WINDOW_RESTARTS;
use herald::sweeper::{Sweeper, WindowSweepReport};
use herald_tests::herald_local::CloudOptions;
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};
use tokio::time::Instant;

const LONG_AGO: &str = "2000-01-01T00:00:00Z";
const FAR_FUTURE: &str = "9999-01-01T00:00:00Z";

fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse(rfc3339).unwrap()
}

/// One chunk of a batch on the queue at a time; the queue is run by hand. Provider
/// calls are given up on after two seconds (the sandbox answers in milliseconds), so an
/// invocation may go on claiming for all but five seconds of its 30 even when a busy
/// machine slows the emulator: each chunk is finished in the one invocation the test
/// gives it.
fn window_of_one(options: &mut CloudOptions) {
    options.run_queues = false;
    options
        .env_overrides
        .insert("HERALD_CHUNK_WINDOW".into(), "1".into());
    options
        .env_overrides
        .insert("HERALD_PROVIDER_TIMEOUT_MS".into(), "2000".into());
}

/// 101 recipients: two chunks, the second of one recipient.
fn two_chunks() -> Vec<Value> {
    (0..101).map(|i| json!({ "to": number(i) })).collect()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// The stack's sweeper, over its table and send queue.
fn sweeper(test: &TestCloud) -> Sweeper {
    let queue_url = test.cloud.stack.reference("SendQueue").unwrap();
    Sweeper::new(
        test.cloud.sender.store.clone(),
        SendQueue::new(test.cloud.clients.sqs.clone(), queue_url),
    )
}

/// The largest batch the express lane takes, as the template sets it.
fn express_limit(test: &TestCloud) -> usize {
    test.cloud.api_config.express.max_recipients
}

/// Runs one record of the send queue through the sender while the queue refuses every
/// message: the chunk is sent and counted, and what its count queues next is lost.
async fn run_one_losing_what_it_queues(test: &TestCloud) -> SqsBatchResponse {
    let event = test.receive_chunks(1).await;
    test.break_send_queue().await;
    let answer = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    test.restore_send_queue().await;
    answer
}

/// A sweep that restarted one stalled window with one chunk.
const ONE_RESTART: WindowSweepReport = WindowSweepReport {
    stalled: 1,
    restarted: 1,
    chunks: 1,
    held: 0,
    given_up: 0,
    waiting: 0,
    turns_passed: 0,
    failed: 0,
};

/// Runs one record of the send queue through the sender, as the event source would.
async fn run_one(test: &TestCloud) {
    let handled = test.cloud.send_runner.poll_once().await.expect("a poll");
    assert_eq!(handled, 1, "one chunk was on the queue");
}

#[tokio::test]
async fn a_small_batch_behind_another_tenants_batch_is_claimed_before_its_remaining_chunks() {
    let test = TestCloud::start_with("window-order", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "sender").await;

    let campaign = test.send_batch(&acme, "campaign", &two_chunks()).await;
    assert_eq!(
        test.queue_depth("SendQueue").await,
        1,
        "only the batch's first window (one chunk) is queued"
    );
    // One recipient too many for the express lane: it queues with the bulk.
    let small = express_limit(&test) + 1;
    let news: Vec<Value> = (0..small)
        .map(|i| json!({ "to": number(500 + i) }))
        .collect();
    test.send_batch(&globex, "news", &news).await;
    assert_eq!(test.queue_depth("SendQueue").await, 2);

    // Acme's first chunk; counting it queues acme's second chunk behind globex's batch.
    run_one(&test).await;
    run_one(&test).await;
    run_one(&test).await;
    assert_eq!(test.queue_depth("SendQueue").await, 0);

    let bodies: Vec<String> = test.ledger().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies.len(), 101 + small);
    let expected: Vec<&str> = std::iter::repeat_n("campaign", 100)
        .chain(std::iter::repeat_n("news", small))
        .chain(["campaign"])
        .collect();
    assert_eq!(
        bodies, expected,
        "globex's batch went out after acme's first chunk and before its second"
    );
    let progress = test.wait_for_batch(&acme, &campaign, "completed").await;
    assert_eq!(progress["counts"]["sent"], 101);
}

/// A single text, and a batch as large as the express lane takes, are sent by the
/// express lane's instances while no bulk instance runs at all: they wait for none of
/// another tenant's campaign. One recipient more and a batch queues with the bulk.
#[tokio::test]
async fn small_batches_take_the_express_lane_and_wait_for_no_campaign() {
    let test = TestCloud::start_with("window-express", |o| o.run_queues = false).await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "sender").await;
    let limit = express_limit(&test);
    let to =
        |n: usize| -> Vec<Value> { (0..n).map(|i| json!({ "to": number(5_000 + i) })).collect() };

    let recipients: Vec<Value> = (0..1_000).map(|i| json!({ "to": number(i) })).collect();
    let campaign = test.send_batch(&acme, "campaign", &recipients).await;
    let window = test.queue_depth("SendQueue").await;
    assert!(window >= 1);

    let code = test
        .send_sms(&globex, &number(4_000), "one-time code")
        .await;
    let household = test.send_batch(&globex, "household", &to(limit)).await;
    assert_eq!(test.queue_depth("ExpressQueue").await, 2);
    test.send_batch(&globex, "too many", &to(limit + 1)).await;
    assert_eq!(test.queue_depth("ExpressQueue").await, 2);
    assert_eq!(test.queue_depth("SendQueue").await, window + 1);

    // Only the express lane runs: the bulk instances are all taken, as by a campaign.
    let mut handled = 0;
    while handled < 2 {
        handled += test.cloud.express_runner.poll_once().await.expect("a poll");
    }
    assert_eq!(test.queue_depth("ExpressQueue").await, 0);
    test.wait_for_status(&globex, &code, "sent").await;
    test.wait_for_batch(&globex, &household, "completed").await;
    let mut bodies: Vec<String> = test.ledger().into_iter().map(|m| m.body).collect();
    bodies.sort();
    let mut expected = vec!["household".to_owned(); limit];
    expected.push("one-time code".to_owned());
    assert_eq!(
        bodies, expected,
        "globex's small batches, each once, and nothing else"
    );
    let progress = test
        .get(&format!("/v1/batches/{campaign}"), &acme)
        .await
        .body;
    assert_eq!(
        progress["counts"]["pending"], 1_000,
        "acme's campaign waits its turn"
    );
}

#[tokio::test]
async fn a_lost_link_is_restarted_by_the_sweeper_once_the_tenant_may_send_and_nothing_is_sent_twice()
 {
    let test = TestCloud::start_with("window-link", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    let operator = test.token("herald", "operator").await;
    let campaign = test.send_batch(&acme, "campaign", &two_chunks()).await;

    // The first chunk is sent and counted, then the queue fails as it links the next.
    let answer = run_one_losing_what_it_queues(&test).await;
    assert!(
        answer.batch_item_failures.is_empty(),
        "the chunk itself is done: {answer:?}"
    );
    assert_eq!(test.ledger().len(), 100);
    assert_eq!(test.queue_depth("SendQueue").await, 0, "the link was lost");
    let stalled = test.get(&format!("/v1/batches/{campaign}"), &acme).await;
    assert_eq!(stalled.body["status"], "enqueued");
    assert_eq!(stalled.body["counts"]["sent"], 100);

    let sweeper = sweeper(&test);
    let now = test.cloud.sender.clock.timestamp();
    // Within the stall period the window is left alone.
    let early = sweeper.sweep_windows(at(LONG_AGO), now).await.unwrap();
    assert_eq!(early, WindowSweepReport::default());

    // A suspended tenant's window stays held.
    let suspended = test
        .post_json("/v1/tenants/acme/suspend", &operator, "")
        .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);
    let held = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(
        held,
        WindowSweepReport {
            stalled: 1,
            held: 1,
            ..WindowSweepReport::default()
        }
    );
    assert_eq!(test.queue_depth("SendQueue").await, 0);
    let resumed = test
        .post_json("/v1/tenants/acme/resume", &operator, "")
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);

    let restarted = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(restarted, ONE_RESTART);
    run_one(&test).await;
    let progress = test.wait_for_batch(&acme, &campaign, "completed").await;
    assert_eq!(progress["counts"]["sent"], 101);
    let ledger = test.ledger();
    assert_eq!(ledger.len(), 101, "every recipient once, none twice");
    let mut recipients: Vec<&str> = ledger.iter().map(|m| m.to.as_str()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 101);

    // Finished: off the sweeper's list.
    let after = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(after, WindowSweepReport::default());
}

#[tokio::test]
async fn a_cancelled_batchs_window_runs_to_its_end_without_sending() {
    let test = TestCloud::start_with("window-cancel", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    let campaign = test.send_batch(&acme, "campaign", &two_chunks()).await;
    let cancelled = test
        .post_json(&format!("/v1/batches/{campaign}/cancel"), &acme, "")
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);

    // Each cancelled chunk is counted and queues the next, so the batch finishes.
    run_one(&test).await;
    run_one(&test).await;
    assert_eq!(test.queue_depth("SendQueue").await, 0);
    let progress = test
        .get(&format!("/v1/batches/{campaign}"), &acme)
        .await
        .body;
    assert_eq!(progress["status"], "cancelled");
    assert_eq!(progress["counts"]["cancelled"], 101);
    assert!(progress["finished_at"].is_string(), "{progress}");
    assert_eq!(test.ledger().len(), 0, "nothing was sent");
}

#[tokio::test]
async fn a_batch_alone_leaves_one_sender_instance_free_for_other_tenants() {
    let test = TestCloud::start_with("window-spare", |o| o.run_queues = false).await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "sender").await;
    let instances = test.cloud.sender.config.max_instances as usize;
    assert!(instances >= 2, "the template's default: {instances}");

    // Ten chunks; the template's window is one fewer than the sender instances.
    let recipients: Vec<Value> = (0..1_000).map(|i| json!({ "to": number(i) })).collect();
    test.send_batch(&acme, "campaign", &recipients).await;
    assert_eq!(test.queue_depth("SendQueue").await, instances - 1);

    // Every queued record now has an instance of its own: globex's batch (too large
    // for the express lane) waits for none of acme's chunks, only for its slots of
    // the shared rate.
    let news: Vec<Value> = (0..=express_limit(&test))
        .map(|i| json!({ "to": number(5_000 + i) }))
        .collect();
    test.send_batch(&globex, "news", &news).await;
    assert_eq!(test.queue_depth("SendQueue").await, instances);
}

/// One tenant's bulk batches send one at a time, in the order they were accepted: only
/// the batch whose turn it is has chunks on the queue, and it passes the turn on when
/// its last chunk is queued. Another tenant's batch goes between them; a cancelled batch
/// keeps its place and ends without sending when its turn comes.
#[tokio::test]
async fn one_tenants_batches_take_turns_while_another_tenants_batch_goes_between() {
    let test = TestCloud::start_with("turns-order", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "sender").await;

    let first = test.send_batch(&acme, "first", &two_chunks()).await;
    let second = test.send_batch(&acme, "second", &two_chunks()).await;
    let third = test.send_batch(&acme, "third", &two_chunks()).await;
    assert_eq!(
        test.queue_depth("SendQueue").await,
        1,
        "only the first batch's window is queued; the others wait their turn"
    );
    let batch = |id: &str| format!("/v1/batches/{id}");
    let progress = test.get(&batch(&second), &acme).await.body;
    assert_eq!(
        (
            &progress["status"],
            &progress["waiting_for_turn"],
            &progress["counts"]["pending"]
        ),
        (&json!("enqueued"), &json!(true), &json!(101)),
        "{progress}"
    );
    let progress = test.get(&batch(&first), &acme).await.body;
    assert_eq!(progress["waiting_for_turn"], false, "{progress}");
    let cancelled = test
        .post_json(&format!("{}/cancel", batch(&third)), &acme, "")
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);

    let news: Vec<Value> = (0..=express_limit(&test))
        .map(|i| json!({ "to": number(500 + i) }))
        .collect();
    test.send_batch(&globex, "news", &news).await;
    assert_eq!(test.queue_depth("SendQueue").await, 2);

    // Acme never has more than its one chunk on the queue, whichever batch sends.
    let mut runs = 0;
    while test.queue_depth("SendQueue").await > 0 {
        run_one(&test).await;
        runs += 1;
        assert!(
            test.queue_depth("SendQueue").await <= 2,
            "acme's one chunk and globex's, after run {runs}"
        );
    }
    assert_eq!(
        runs, 7,
        "two chunks for each of acme's batches, one for globex's"
    );

    let bodies: Vec<String> = test.ledger().into_iter().map(|m| m.body).collect();
    let expected: Vec<&str> = std::iter::repeat_n("first", 100)
        .chain(std::iter::repeat_n("news", news.len()))
        .chain(std::iter::repeat_n("first", 1))
        .chain(std::iter::repeat_n("second", 101))
        .collect();
    assert_eq!(
        bodies, expected,
        "globex's batch between acme's first two chunks; acme's batches one after another"
    );
    let second = test.wait_for_batch(&acme, &second, "completed").await;
    assert_eq!(second["counts"]["sent"], 101);
    assert_eq!(second["waiting_for_turn"], false);
    let third = test.get(&batch(&third), &acme).await.body;
    assert_eq!(third["status"], "cancelled");
    assert_eq!(third["counts"]["cancelled"], 101);
    assert!(third["finished_at"].is_string(), "{third}");
}

/// The batch whose turn it is passed it on, and the queue failed as its last chunk
/// queued the next batch's first window: that batch holds the turn with nothing on the
/// queue until the sweeper finds its window stalled and restarts it.
#[tokio::test]
async fn a_next_batch_whose_first_window_was_lost_is_restarted_by_the_sweeper() {
    let test = TestCloud::start_with("turns-lost", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    test.send_batch(&acme, "first", &two_chunks()).await;
    let second = test.send_batch(&acme, "second", &two_chunks()).await;
    run_one(&test).await;

    let answer = run_one_losing_what_it_queues(&test).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(
        test.queue_depth("SendQueue").await,
        0,
        "the first window was lost"
    );
    let progress = test.get(&format!("/v1/batches/{second}"), &acme).await.body;
    assert_eq!(
        progress["waiting_for_turn"], false,
        "it holds the turn: {progress}"
    );
    assert_eq!(progress["counts"]["pending"], 101);

    let sweeper = sweeper(&test);
    let now = test.cloud.sender.clock.timestamp();
    let report = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(report, ONE_RESTART);
    run_one(&test).await;
    run_one(&test).await;
    let progress = test.wait_for_batch(&acme, &second, "completed").await;
    assert_eq!(progress["counts"]["sent"], 101);
    let bodies: Vec<String> = test.ledger().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies.iter().filter(|b| *b == "first").count(), 101);
    assert_eq!(bodies.iter().filter(|b| *b == "second").count(), 101);
}

/// A batch whose window the sweeper gave up on (it stalled again after its restarts:
/// its chunks wait in the DLQ for the operator) no longer holds its tenant's later
/// batches: the sweeper passes the turn on. Nothing is sent twice when the given-up
/// batch's chunks run after all.
#[tokio::test]
async fn a_turn_held_by_a_batch_the_sweeper_gave_up_on_is_passed_on() {
    let test = TestCloud::start_with("turns-given-up", window_of_one).await;
    let acme = test.token("acme", "sender").await;
    let first = test.send_batch(&acme, "first", &two_chunks()).await;
    let second = test.send_batch(&acme, "second", &two_chunks()).await;

    // The first chunk is sent and counted; the queue fails as it links the next.
    run_one_losing_what_it_queues(&test).await;
    assert_eq!(test.queue_depth("SendQueue").await, 0);

    // Restarted, and its chunk never counted (as if it failed every time).
    let sweeper = sweeper(&test);
    let now = test.cloud.sender.clock.timestamp();
    for restart in 1..=MAX_WINDOW_RESTARTS as usize {
        let report = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
        assert_eq!(
            report,
            WindowSweepReport {
                stalled: 1,
                restarted: 1,
                chunks: 1,
                waiting: 1,
                ..WindowSweepReport::default()
            },
            "restart {restart}: the second batch keeps waiting"
        );
    }
    let report = sweeper.sweep_windows(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(
        report,
        WindowSweepReport {
            stalled: 1,
            given_up: 1,
            waiting: 1,
            turns_passed: 1,
            chunks: 1,
            ..WindowSweepReport::default()
        }
    );
    let progress = test.get(&format!("/v1/batches/{second}"), &acme).await.body;
    assert_eq!(progress["waiting_for_turn"], false, "{progress}");

    // The three restarts' copies of the first batch's chunk, then the second batch.
    let mut runs = 0;
    while test.queue_depth("SendQueue").await > 0 {
        run_one(&test).await;
        runs += 1;
    }
    assert_eq!(runs, MAX_WINDOW_RESTARTS as usize + 2);
    test.wait_for_batch(&acme, &first, "completed").await;
    test.wait_for_batch(&acme, &second, "completed").await;
    let ledger = test.ledger();
    assert_eq!(ledger.len(), 202, "every recipient of each batch once");
    let mut sent: Vec<(String, String)> = ledger.into_iter().map(|m| (m.body, m.to)).collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 202);
}

/// A tenant's line holds `HERALD_MAX_WAITING_BATCHES` waiting batches (two here): one
/// more is refused with a clear answer, and nothing of it is written, queued or counted
/// against the quota. The same request, retried with its key once the line moved, is
/// taken.
#[tokio::test]
async fn a_full_line_refuses_another_batch_and_changes_nothing() {
    let test = TestCloud::start_with("turns-full", |o| {
        window_of_one(o);
        o.env_overrides
            .insert("HERALD_MAX_WAITING_BATCHES".into(), "2".into());
    })
    .await;
    let acme = test.token("acme", "sender").await;
    let used = |usage: Value| usage["sends"]["used"].as_u64().unwrap();
    for template in ["first", "second", "third"] {
        test.send_batch(&acme, template, &two_chunks()).await;
    }
    let used_before = used(test.get("/v1/usage", &acme).await.body);
    let body = json!({ "template": "fourth", "recipients": two_chunks() }).to_string();

    let refused = test
        .post_json_with_key("/v1/batches", &acme, "fourth-batch", &body)
        .await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert!(
        refused.body["type"]
            .as_str()
            .unwrap()
            .ends_with("too-many-batches-waiting"),
        "{:?}",
        refused.body
    );
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("2 of your tenant's batches wait"),
        "{:?}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "60");
    assert_eq!(used(test.get("/v1/usage", &acme).await.body), used_before);
    assert_eq!(test.queue_depth("SendQueue").await, 1);

    // The first batch's two chunks pass the turn to the second: one place is free.
    run_one(&test).await;
    run_one(&test).await;
    let taken = test
        .post_json_with_key("/v1/batches", &acme, "fourth-batch", &body)
        .await;
    assert_eq!(taken.status, 202, "{:?}", taken.body);
    assert_eq!(
        used(test.get("/v1/usage", &acme).await.body),
        used_before + 101
    );
    let fourth = taken.body["batch_id"].as_str().unwrap();
    let progress = test.get(&format!("/v1/batches/{fourth}"), &acme).await.body;
    assert_eq!(progress["waiting_for_turn"], true, "{progress}");
}
