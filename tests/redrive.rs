//! The redriver against real queues in the emulator: what it moves, what it parks, how
//! much it takes per run, and a dead chunk that is finally delivered after a redrive.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use herald::redrive::{REDRIVES_ATTRIBUTE, RedriveReport, Stopped};
use herald_tests::herald_local::sandbox::Faults;
use herald_tests::{TestCloud, eventually};

/// Puts a message on one of this stack's queues with these attributes.
async fn put(test: &TestCloud, queue: &str, body: &str, attributes: &[(&str, &str, &str)]) {
    test.put_on_queue(queue, body, attributes).await;
}

/// Receives everything visible on a queue (hiding it for a minute, so nothing is seen
/// twice), as body -> {attribute name -> (data type, value)}.
async fn take_all(
    test: &TestCloud,
    queue: &str,
) -> BTreeMap<String, BTreeMap<String, (String, String)>> {
    let url = test.cloud.stack.reference(queue).unwrap();
    let mut all = BTreeMap::new();
    loop {
        let messages: Vec<Message> = test
            .cloud
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for message in messages {
            let attributes = message
                .message_attributes()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|(name, v)| (name, (v.data_type, v.string_value.unwrap_or_default())))
                .collect();
            all.insert(message.body().unwrap().to_owned(), attributes);
        }
    }
}

/// Messages a queue shows right now (not counting ones someone holds).
async fn visible(test: &TestCloud, queue: &str) -> usize {
    let url = test.cloud.stack.reference(queue).unwrap();
    let out = test
        .cloud
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

fn report(moved: usize, parked: usize, failed: usize, stopped: Stopped) -> RedriveReport {
    RedriveReport {
        moved,
        parked,
        failed,
        deferred: 0,
        stopped,
    }
}

fn pair(data_type: &str, value: &str) -> (String, String) {
    (data_type.to_owned(), value.to_owned())
}

#[tokio::test]
async fn dead_letters_go_back_to_the_send_queue_with_body_and_attributes_and_a_counter() {
    // No queue runner: the moved messages must stay in the send queue to be inspected.
    let test = TestCloud::start_with("redrive-moves", |o| o.run_queues = false).await;
    put(
        &test,
        "SendDLQ",
        "chunk-a",
        &[
            ("tenant_id", "String", "acme"),
            ("correlation_id", "String", "corr-a"),
            ("herald_reason", "String", "chunk envelope is malformed"),
        ],
    )
    .await;
    put(
        &test,
        "SendDLQ",
        "chunk-b",
        &[("tenant_id", "String", "globex")],
    )
    .await;
    put(
        &test,
        "SendDLQ",
        "chunk-c",
        &[
            ("tenant_id", "String", "acme"),
            (REDRIVES_ATTRIBUTE, "Number", "1"),
        ],
    )
    .await;

    let outcome = test.cloud.redrive().await;

    assert_eq!(outcome, report(3, 0, 0, Stopped::Drained));
    assert_eq!(test.queue_depth("SendDLQ").await, 0, "the DLQ is empty");
    let moved = take_all(&test, "SendQueue").await;
    let expected = BTreeMap::from([
        (
            "chunk-a".to_owned(),
            BTreeMap::from([
                ("tenant_id".to_owned(), pair("String", "acme")),
                ("correlation_id".to_owned(), pair("String", "corr-a")),
                (
                    "herald_reason".to_owned(),
                    pair("String", "chunk envelope is malformed"),
                ),
                (REDRIVES_ATTRIBUTE.to_owned(), pair("Number", "1")),
            ]),
        ),
        (
            "chunk-b".to_owned(),
            BTreeMap::from([
                ("tenant_id".to_owned(), pair("String", "globex")),
                (REDRIVES_ATTRIBUTE.to_owned(), pair("Number", "1")),
            ]),
        ),
        (
            "chunk-c".to_owned(),
            BTreeMap::from([
                ("tenant_id".to_owned(), pair("String", "acme")),
                (REDRIVES_ATTRIBUTE.to_owned(), pair("Number", "2")),
            ]),
        ),
    ]);
    assert_eq!(moved, expected);
}

#[tokio::test]
async fn a_message_at_the_redrive_limit_is_parked_in_the_dlq_and_stays_visible() {
    let test = TestCloud::start_with("redrive-parks", |o| o.run_queues = false).await;
    // The template's limit is 3: this message has been redriven three times already.
    put(
        &test,
        "SendDLQ",
        "poison",
        &[
            ("tenant_id", "String", "acme"),
            (
                "herald_reason",
                "String",
                "chunk 0 of batch X does not exist",
            ),
            (REDRIVES_ATTRIBUTE, "Number", "3"),
        ],
    )
    .await;

    let outcome = test.cloud.redrive().await;

    assert_eq!(outcome, report(0, 1, 0, Stopped::Drained));
    assert_eq!(test.queue_depth("SendQueue").await, 0, "nothing was moved");
    // Released at the end of the run, not hidden: the DLQ-depth alarm still sees it.
    assert_eq!(visible(&test, "SendDLQ").await, 1);

    // Every later run parks it again; it never loops back to the sender.
    let again = test.cloud.redrive().await;
    assert_eq!(again, report(0, 1, 0, Stopped::Drained));
    assert_eq!(
        test.cloud.metrics.total("redriver", "Parked"),
        2.0,
        "one per run"
    );
    assert_eq!(test.cloud.metrics.total("redriver", "Redriven"), 0.0);
    assert_eq!(test.queue_depth("SendQueue").await, 0);
    let parked = take_all(&test, "SendDLQ").await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked["poison"][REDRIVES_ATTRIBUTE],
        pair("Number", "3"),
        "left exactly as it was"
    );
}

#[tokio::test]
async fn one_run_moves_at_most_its_maximum_and_leaves_the_rest_visible() {
    let test = TestCloud::start_with("redrive-bounded", |o| {
        o.run_queues = false;
        o.parameters.insert("RedriveMaxMessages".into(), "3".into());
    })
    .await;
    for i in 0..5 {
        put(&test, "SendDLQ", &format!("chunk-{i}"), &[]).await;
    }

    let first = test.cloud.redrive().await;

    assert_eq!(first, report(3, 0, 0, Stopped::MaxMessages));
    assert_eq!(test.queue_depth("SendQueue").await, 3);
    assert_eq!(test.queue_depth("SendDLQ").await, 2);
    assert_eq!(
        visible(&test, "SendDLQ").await,
        2,
        "the run took only what it could move"
    );

    let second = test.cloud.redrive().await;

    assert_eq!(second, report(2, 0, 0, Stopped::Drained));
    assert_eq!(test.queue_depth("SendDLQ").await, 0);
    let moved = take_all(&test, "SendQueue").await;
    assert_eq!(
        moved.keys().cloned().collect::<Vec<_>>(),
        (0..5).map(|i| format!("chunk-{i}")).collect::<Vec<_>>(),
        "each message moved exactly once"
    );
}

#[tokio::test]
async fn a_chunk_that_died_while_the_provider_failed_is_delivered_once_after_a_redrive() {
    let failing = "+14155550199";
    let test = TestCloud::start_with("redrive-e2e", |o| {
        o.run_queues = false;
        herald_tests::quick_redelivery(o, 5);
    })
    .await;
    test.cloud.sandbox.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        only_to: vec![failing.into()],
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, failing, "late but once").await;

    // The event source redelivers it after each visibility timeout until SQS moves it
    // to the DLQ after maxReceiveCount receives.
    eventually("the failing chunk in the DLQ", || async {
        test.poll_send_queues().await;
        (test.queue_depth("SendDLQ").await == 1).then_some(())
    })
    .await;
    assert_eq!(test.chunks_queued().await, 0);
    assert!(test.ledger().is_empty(), "never accepted by the provider");

    // The provider recovers; an operator (or the schedule) redrives.
    test.cloud.sandbox.set_faults(Faults::default());
    let outcome = test.cloud.redrive().await;
    assert_eq!(outcome, report(1, 0, 0, Stopped::Drained));
    assert_eq!(test.queue_depth("SendDLQ").await, 0);

    eventually("the redriven chunk to be sent", || async {
        test.poll_send_queues().await;
        let message = test.get(&format!("/v1/messages/{id}"), &token).await;
        (message.body["status"] == "sent").then_some(())
    })
    .await;
    eventually("the send queue to drain", || async {
        test.poll_send_queues().await;
        (test.chunks_queued().await == 0).then_some(())
    })
    .await;
    let delivered: Vec<_> = test
        .ledger()
        .into_iter()
        .filter(|entry| entry.to == failing)
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].body, "late but once");
    assert_eq!(test.queue_depth("SendDLQ").await, 0);
}

#[tokio::test]
async fn a_body_the_run_already_moved_is_left_for_the_next_run() {
    // Two dead letters with one body: what a poison chunk looks like when the sender
    // parks it again while the run is still going, and what two dead copies of one
    // chunk look like. Moving both in one run would spend the redrive limit in a loop.
    let test = TestCloud::start_with("redrive-defers", |o| o.run_queues = false).await;
    put(
        &test,
        "SendDLQ",
        "same chunk",
        &[("tenant_id", "String", "acme")],
    )
    .await;
    put(
        &test,
        "SendDLQ",
        "same chunk",
        &[("tenant_id", "String", "acme")],
    )
    .await;

    let first = test.cloud.redrive().await;

    assert_eq!(
        first,
        RedriveReport {
            deferred: 1,
            ..report(1, 0, 0, Stopped::Drained)
        }
    );
    assert_eq!(test.queue_depth("SendQueue").await, 1);
    assert_eq!(
        visible(&test, "SendDLQ").await,
        1,
        "released for the next run"
    );

    let second = test.cloud.redrive().await;

    assert_eq!(second, report(1, 0, 0, Stopped::Drained));
    assert_eq!(test.queue_depth("SendDLQ").await, 0);
    assert_eq!(test.queue_depth("SendQueue").await, 2);
}

#[tokio::test]
async fn a_send_that_fails_loses_nothing_and_fails_the_invocation() {
    let test = TestCloud::start_with("redrive-fails", |o| o.run_queues = false).await;
    put(
        &test,
        "SendDLQ",
        "chunk-x",
        &[("tenant_id", "String", "acme")],
    )
    .await;
    put(&test, "SendDLQ", "chunk-y", &[]).await;
    // The redriver as the template configures it, but pointed at a queue that does not
    // exist, so every send is refused by SQS.
    let env = test.cloud.stack.function_env("RedriverFunction").unwrap();
    let mut config = herald::config::RedriverConfig::load(&env).unwrap();
    config.send_queue_url = format!("{}-gone", config.send_queue_url);
    let clients = herald::aws::Clients::new(test.cloud.sdk.clone());
    let deps = herald_redriver::Deps::from_config(config, &clients, herald::clock::system());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);

    let outcome = herald_redriver::handle(&deps, deadline).await;

    let Err(herald_redriver::RedriveError::Incomplete(herald_redriver::Incomplete(failed))) =
        outcome
    else {
        panic!("a run with failed sends must fail the invocation: {outcome:?}");
    };
    assert_eq!(failed, report(0, 0, 2, Stopped::Drained));
    assert_eq!(test.queue_depth("SendQueue").await, 0);
    assert_eq!(
        visible(&test, "SendDLQ").await,
        2,
        "both still in the DLQ, visible for the next run"
    );
    // The same messages move once the queue is reachable again, intact, and the failed
    // attempt did not count as a redrive.
    assert_eq!(
        test.cloud.redrive().await,
        report(2, 0, 0, Stopped::Drained)
    );
    let moved = take_all(&test, "SendQueue").await;
    assert_eq!(
        moved.keys().cloned().collect::<Vec<_>>(),
        ["chunk-x", "chunk-y"]
    );
    assert_eq!(moved["chunk-x"]["tenant_id"], pair("String", "acme"));
    assert_eq!(moved["chunk-x"][REDRIVES_ATTRIBUTE], pair("Number", "1"));
    assert_eq!(moved["chunk-y"][REDRIVES_ATTRIBUTE], pair("Number", "1"));
}

#[tokio::test]
async fn operators_redrive_through_the_api_and_nobody_else_can() {
    let test = TestCloud::start_with("redrive-api", |o| o.run_queues = false).await;
    put(
        &test,
        "SendDLQ",
        "chunk-op",
        &[("tenant_id", "String", "acme")],
    )
    .await;
    let operator = test.token("herald", "operator").await;
    let admin = test.token("acme", "admin").await;

    let refused = test.post_json("/v1/operator/redrive", &admin, "").await;
    assert_eq!(refused.status, 403);
    let answer = test.post_json("/v1/operator/redrive", &operator, "").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["moved"], 1);
    assert_eq!(answer.body["parked"], 0);
    let moved = take_all(&test, "SendQueue").await;
    assert_eq!(moved["chunk-op"][REDRIVES_ATTRIBUTE].1, "1");

    let log = test.get("/v1/tenants/herald/audit", &operator).await;
    let actions: Vec<_> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["dlq.redriven"]);
}

#[tokio::test]
async fn the_scheduled_run_sweeps_unqueued_batches_then_redrives() {
    let test = TestCloud::start_with("scheduled", |o| {
        o.env_overrides
            .insert("HERALD_SWEEP_AFTER_SECONDS".into(), "0".into());
    })
    .await;
    let token = test.token("acme", "sender").await;
    test.break_send_queue().await;
    let body = r#"{"to": "+14155550100", "body": "swept"}"#;
    assert_eq!(
        test.post_json("/v1/messages", &token, body).await.status,
        503
    );
    test.restore_send_queue().await;
    // With no grace period the batch qualifies once the clock (milliseconds) has
    // moved past its creation.
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;

    let report = test.cloud.scheduled_run().await.unwrap();
    assert_eq!(report.sweep.enqueued, 1);
    assert_eq!(report.redrive.report().expect("the redrive ran").moved, 0);
    assert_eq!(test.cloud.metrics.total("redriver", "BatchesSwept"), 1.0);
    eventually("the swept message to be sent", || async {
        (test.ledger().len() == 1).then_some(())
    })
    .await;
}
