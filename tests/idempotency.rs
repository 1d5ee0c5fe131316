//! Idempotency-Key on POST: retries replay the first answer and create nothing, the
//! same key with another body is refused, concurrent duplicates are held off, and a
//! request that died between writing and enqueuing is finished by its retry.

use herald_tests::{TestCloud, eventually};

const SMS: &str = r#"{"to": "+14155550100", "body": "Your code is 1234"}"#;

#[tokio::test]
async fn a_post_without_a_usable_key_is_refused_and_changes_nothing() {
    let test = TestCloud::start("idem-missing").await;
    let token = test.token("acme", "sender").await;
    let json = Some("application/json");
    let long = "k".repeat(1000);
    for (key, case) in [
        (None, "missing"),
        (Some(long.as_str()), "1,000 characters"),
        (Some("has space"), "space"),
    ] {
        let answer = test
            .request_with_key(
                "POST",
                "/v1/messages",
                Some(&token),
                json,
                Some(SMS.into()),
                key,
            )
            .await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.body);
        assert_eq!(
            answer.body["errors"][0]["field"], "Idempotency-Key",
            "{case}"
        );
    }
    assert_eq!(test.table_items().await, 0);
    assert_eq!(test.chunks_queued().await, 0);
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_answer_and_sends_once() {
    let test = TestCloud::start("idem-replay").await;
    let token = test.token("acme", "sender").await;
    let first = test
        .post_json_with_key("/v1/messages", &token, "order-1", SMS)
        .await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let id = first.body["id"].as_str().unwrap().to_owned();
    test.wait_for_status(&token, &id, "sent").await;
    let items = test.table_items().await;

    // Same request, other formatting: still the same request.
    let reformatted = r#"{ "body": "Your code is 1234",   "to": "+14155550100" }"#;
    let again = test
        .post_json_with_key("/v1/messages", &token, "order-1", reformatted)
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["location"], first.headers["location"]);
    let metrics = &test.cloud.metrics;
    assert_eq!(
        metrics.total("api", "MessagesAccepted"),
        1.0,
        "counted once"
    );
    assert_eq!(metrics.total("api", "IdempotentReplays"), 1.0);

    assert_eq!(
        test.table_items().await,
        items,
        "the replay created nothing"
    );
    assert_eq!(test.ledger().len(), 1);

    // Keys belong to their tenant: globex may use the same key for its own request.
    let globex = test.token("globex", "sender").await;
    let theirs = test
        .post_json_with_key("/v1/messages", &globex, "order-1", SMS)
        .await;
    assert_eq!(theirs.status, 202);
    assert!(!theirs.headers.contains_key("idempotent-replayed"));
    assert_ne!(theirs.body["id"], first.body["id"]);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    // No sender: the message item it would create would race the item count.
    let test = TestCloud::start_with("idem-mismatch", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    assert_eq!(
        test.post_json_with_key("/v1/messages", &token, "k-1", SMS)
            .await
            .status,
        202
    );
    let items = test.table_items().await;
    let other = r#"{"to": "+14155550100", "body": "A different text"}"#;
    let refused = test
        .post_json_with_key("/v1/messages", &token, "k-1", other)
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(refused.body["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(test.table_items().await, items, "nothing new was written");
}

#[tokio::test]
async fn concurrent_duplicates_create_one_message() {
    let test = TestCloud::start("idem-concurrent").await;
    let token = test.token("acme", "sender").await;
    let answers = futures::future::join_all(
        (0..8).map(|_| test.post_json_with_key("/v1/messages", &token, "burst-1", SMS)),
    )
    .await;
    let originals: Vec<_> = answers
        .iter()
        .filter(|a| a.status == 202 && !a.headers.contains_key("idempotent-replayed"))
        .collect();
    assert_eq!(originals.len(), 1, "exactly one request did the work");
    for answer in &answers {
        match answer.status {
            202 => assert_eq!(answer.body["id"], originals[0].body["id"]),
            409 => assert!(answer.headers.contains_key("retry-after")),
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    let id = originals[0].body["id"].as_str().unwrap();
    test.wait_for_status(&token, id, "sent").await;
    assert_eq!(test.ledger().len(), 1);
}

#[tokio::test]
async fn a_request_that_died_before_enqueueing_is_finished_by_its_retry() {
    let test = TestCloud::start("idem-crash").await;
    let token = test.token("acme", "sender").await;

    // Break the path between the write and the enqueue.
    test.break_send_queue().await;
    let failed = test
        .post_json_with_key("/v1/messages", &token, "crash-1", SMS)
        .await;
    assert_eq!(failed.status, 503, "{:?}", failed.body);
    assert_eq!(failed.content_type, "application/problem+json");
    // Written: the chunk, the batch record (still `accepted`), the batch's quota
    // reservation and the day's quota counter, and the key's record.
    assert_eq!(test.table_items().await, 5);
    assert_eq!(test.items_with_sk("META").await, 1);

    test.restore_send_queue().await;
    let retried = test
        .post_json_with_key("/v1/messages", &token, "crash-1", SMS)
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    assert!(!retried.headers.contains_key("idempotent-replayed"));
    assert_eq!(
        test.items_with_sk("META").await,
        1,
        "the retry finished the same batch, not a second one"
    );

    let id = retried.body["id"].as_str().unwrap();
    test.wait_for_status(&token, id, "sent").await;
    assert_eq!(test.ledger().len(), 1);
    eventually("the queue to drain", || async {
        (test.chunks_queued().await == 0).then_some(())
    })
    .await;
    let replay = test
        .post_json_with_key("/v1/messages", &token, "crash-1", SMS)
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, retried.body);
}
