//! Status webhooks' two longer proofs (issue 15), in the slow lane of `make test`
//! (`test = false`; the Makefile's `SLOW_SUITES`): the two tests run side by side, each
//! on a stack of its own, the retry schedule compressed by its setting
//! (`HERALD_WEBHOOK_RETRY_DIVISOR`), the same code.
//!
//! - 500 messages produce exactly the expected events, each delivered once to an
//!   endpoint answering 200; an endpoint failing half of its requests (the first of each
//!   event) gets every event, and a `webhook-id` repeats only on retries
//!   (`webhook_pipeline.rs` makes the same checks with 40 messages in the main stream,
//!   beside its other phases, its endpoint failing every other request in arrival
//!   order: with 500 events that would fail some event all eight attempts, as halving
//!   500 takes ten rounds).
//! - An endpoint failing for five days is disabled, with an `endpoint.disabled` event
//!   and an audit entry, through the real pipeline: the deliverer's clock is moved
//!   ahead (`CloudOptions::outbound_clock`), nothing is written to the table by hand.

use std::sync::Arc;
use std::time::Duration;

use herald::Timestamp;
use herald::domain::EndpointStatus;
use herald_tests::outbound::{
    MovedClock, Receiver, assert_each_event_once, assert_retried_until_delivered, batch_events,
    verifies,
};
use herald_tests::{TestCloud, eventually, eventually_progressing, number, quick_redelivery};
use serde_json::{Value, json};

const TEMPLATE: &str = "Hi {{name}}, your code is {{code}}.";
/// The count.
const MESSAGES: usize = 500;
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn recipients(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({ "to": number(i), "variables": { "name": format!("P{i}"), "code": i.to_string() } }))
        .collect()
}

async fn start(test: &str, clock: Option<Arc<MovedClock>>) -> TestCloud {
    TestCloud::start_with(test, |options| {
        options.outbound = true;
        // Eight attempts within about ten seconds, as in `webhook_pipeline.rs`.
        options
            .env_overrides
            .insert("HERALD_WEBHOOK_RETRY_DIVISOR".into(), "20000".into());
        options.outbound_clock = clock.map(|c| c as herald::clock::SharedClock);
        // A send invocation stopped at its timeout (500 messages through one loaded
        // emulator) leaves its chunk to come back after the queue's visibility timeout:
        // 30 s here, not the template's 180.
        quick_redelivery(options, 30);
    })
    .await
}

#[tokio::test]
async fn five_hundred_messages_reach_each_endpoint_once_and_a_failing_one_by_retries() {
    let test = start("webhook-500", None).await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let receiver = Receiver::start().await;
    // A message whose provider answer was lost ends `unknown` (the machine is loaded):
    // its event is `message.unknown`, so both endpoints hear of every message.
    let (_, ok_secret) = test
        .register_endpoint(
            &admin,
            &receiver.url("ok"),
            &["message.sent", "message.unknown", "batch.completed"],
        )
        .await;
    let (_, halved_secret) = test
        .register_endpoint(
            &admin,
            &receiver.url("halved"),
            &["message.sent", "message.unknown"],
        )
        .await;

    let batch = test
        .send_batch(&sender, TEMPLATE, &recipients(MESSAGES))
        .await;
    // 500 messages and about 1,500 deliveries through one emulator take minutes on a
    // loaded machine: the waits give up when nothing moves, not at a fixed time.
    let path = format!("/v1/batches/{batch}");
    // Progress: the batch's counts (a chunk's, once all its messages settle) and the
    // deliveries its settled messages have already caused.
    eventually_progressing("the batch completed", SECOND, || async {
        let answer = test.get(&path, &sender).await.body;
        match answer["status"] == "completed" {
            true => Ok(()),
            false => Err((answer["counts"].clone(), receiver.at("ok").len())),
        }
    })
    .await;
    eventually_progressing("every event delivered", SECOND, || {
        let progress = (receiver.at("ok").len(), receiver.at("halved").len());
        let arrived = receiver.batch_arrived(MESSAGES, "halved");
        async move { if arrived { Ok(()) } else { Err(progress) } }
    })
    .await;
    eventually("no delivery left on the queue", || async {
        (test.deliveries_pending().await == 0).then_some(())
    })
    .await;

    let (events, counts) = batch_events(&test, &sender, &batch).await;
    assert_eq!(events.len(), MESSAGES);
    assert_each_event_once(
        &receiver,
        &batch,
        (&events, &counts),
        (&ok_secret, &halved_secret),
    );
    let halved = assert_retried_until_delivered(&receiver, "halved", &events, &halved_secret);
    // Half of the requests failed, and each event was sent exactly twice: its failure
    // and its one retry.
    assert!(
        halved.values().all(|answers| answers == &[500, 200]),
        "{halved:?}"
    );
    assert_eq!(receiver.at("halved").len(), 2 * MESSAGES);
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_announced_and_audited() {
    let clock = Arc::new(MovedClock::default());
    let test = start("webhook-failing-days", Some(clock.clone())).await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let receiver = Receiver::start().await;
    let (down, _) = test
        .register_endpoint(&admin, &receiver.url("down"), &["message.sent"])
        .await;
    let (_, watch_secret) = test
        .register_endpoint(&admin, &receiver.url("watch"), &["endpoint.disabled"])
        .await;
    let tenant = herald::TenantId::parse("acme").unwrap();
    let store = &test.cloud.sender.store;
    let endpoint = || async {
        store
            .webhook_endpoint(&tenant, &down)
            .await
            .unwrap()
            .unwrap()
    };

    // Day 0: one message's event fails all eight attempts; the failing days start.
    let first = send_one(&test, &sender, &receiver, 0).await;
    assert_eq!(receiver.by_id("down")[&first].len(), 8);
    let since = endpoint()
        .await
        .failing_since
        .expect("failing since the first failure");
    assert_eq!(endpoint().await.status, EndpointStatus::Enabled);

    // An hour short of five days later, another event fails all its attempts: the
    // endpoint stays enabled, its failing days still counted from the first.
    clock.move_ahead(5 * DAY - HOUR);
    let second = send_one(&test, &sender, &receiver, 1).await;
    assert_eq!(receiver.by_id("down")[&second].len(), 8);
    let still = endpoint().await;
    assert_eq!(still.status, EndpointStatus::Enabled);
    assert_eq!(still.failing_since, Some(since));
    assert!(receiver.at("watch").is_empty());

    // Five days on, the next failure disables it: one attempt, the retry it queued
    // finds the endpoint disabled and sends nothing.
    clock.move_ahead(HOUR);
    let third = send_one(&test, &sender, &receiver, 2).await;
    assert_eq!(receiver.by_id("down")[&third].len(), 1);
    let told = eventually("endpoint.disabled delivered", || async {
        receiver.at("watch").pop()
    })
    .await;
    assert!(verifies(&watch_secret, &told.headers, &told.body));
    let body = told.json();
    assert_eq!(body["type"], "endpoint.disabled");
    assert_eq!(body["data"]["endpoint_id"], down.as_str());
    assert_eq!(body["data"]["reason"], "failing");
    // Disabled at the deliverer's time: five days after the failures began.
    let disabled_at = Timestamp::parse(body["timestamp"].as_str().unwrap()).unwrap();
    assert!(disabled_at >= since.plus(5 * DAY), "{disabled_at} {since}");

    let read = test
        .get(&format!("/v1/webhooks/endpoints/{down}"), &admin)
        .await;
    assert_eq!(read.body["status"], "disabled", "{:?}", read.body);
    assert_eq!(read.body["disabled_reason"], "failing");
    // Audited on the deliverer's day, five days on: the entry Herald wrote.
    let day = disabled_at.day();
    let audit = test.get(&format!("/v1/audit?day={day}"), &admin).await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let by_herald: Vec<&Value> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "herald")
        .collect();
    assert_eq!(by_herald.len(), 1, "{by_herald:?}");
    assert_eq!(by_herald[0]["target"], down.as_str());
    assert_eq!(receiver.at("watch").len(), 1);
    assert_eq!(receiver.by_id("down").len(), 3);
}

/// Sends one message (recipient `i`) and waits until its `message.sent` event is done
/// with at `/down`: failed all its attempts, or skipped once the endpoint is disabled
/// (nothing left on the deliveries queue). Answers the event's id.
async fn send_one(test: &TestCloud, sender: &str, receiver: &Receiver, i: usize) -> String {
    let batch = test.send_batch(sender, TEMPLATE, &recipients_from(i)).await;
    test.wait_for_batch(sender, &batch, "completed").await;
    let id = format!("{batch}.0.sent");
    eventually("the event's attempts done", || async {
        let tried = receiver.by_id("down").contains_key(&id);
        (tried && test.deliveries_pending().await == 0).then_some(())
    })
    .await;
    id
}

/// One recipient, numbered `i` (a new recipient each time, so no batch repeats one).
fn recipients_from(i: usize) -> Vec<Value> {
    vec![json!({ "to": number(i), "variables": { "name": "P", "code": "1" } })]
}
