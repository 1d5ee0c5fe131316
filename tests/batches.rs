//! Bulk sends through the gateway: a batch is accepted whole, delivered once per
//! recipient with that recipient's text, visible as progress and as a paged listing,
//! and can be cancelled.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};
use tokio::time::Instant;

const TEMPLATE: &str = "Hi {{name}}, your code is {{code}}.";

fn recipients(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({ "to": number(i), "variables": { "name": format!("P{i}"), "code": i.to_string() } }))
        .collect()
}

/// Every page of a listing, following `next_url` from `first`.
async fn all_pages(test: &TestCloud, token: &str, first: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let answer = test.get(&path, token).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        pages.push(answer.body["messages"].as_array().unwrap().clone());
        next = answer.body["next_url"].as_str().map(str::to_owned);
    }
    pages
}

#[tokio::test]
async fn a_batch_reaches_every_recipient_once_with_their_own_text() {
    let test = TestCloud::start("batch-delivery").await;
    let token = test.token("acme", "sender").await;
    let answer = test
        .post_json(
            "/v1/batches",
            &token,
            &json!({ "template": TEMPLATE, "recipients": recipients(250) }).to_string(),
        )
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["total"], 250);
    let id = answer.body["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.headers["location"].to_str().unwrap(),
        format!("/v1/batches/{id}")
    );

    let progress = test.wait_for_batch(&token, &id, "completed").await;
    assert_eq!(progress["total"], 250);
    assert_eq!(
        progress["counts"],
        json!({ "pending": 0, "sent": 250, "failed": 0, "unknown": 0, "cancelled": 0,
                "delivered": 0, "undelivered": 0, "suppressed": 0 })
    );
    assert_eq!(progress["percent_done"], 100.0);
    assert_eq!(test.cloud.metrics.total("api", "MessagesAccepted"), 250.0);
    assert_eq!(test.cloud.metrics.total("sender", "Sent"), 250.0);
    assert!(progress["finished_at"].is_string(), "{progress}");

    let ledger = test.ledger();
    assert_eq!(ledger.len(), 250, "one provider request per recipient");
    let texts: HashMap<_, _> = ledger
        .iter()
        .map(|e| (e.to.clone(), e.body.clone()))
        .collect();
    assert_eq!(texts.len(), 250, "no recipient texted twice");
    for i in 0..250 {
        assert_eq!(texts[&number(i)], format!("Hi P{i}, your code is {i}."));
    }

    let pages = all_pages(
        &test,
        &token,
        &format!("/v1/batches/{id}/messages?limit=100"),
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    let listed: Vec<&Value> = pages.iter().flatten().collect();
    let ids: HashSet<_> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 250);
    assert_eq!(listed[0]["id"], format!("{id}.0"));
    assert_eq!(listed[249]["id"], format!("{id}.249"));
    assert!(
        listed
            .iter()
            .all(|m| m["status"] == "sent" && m["provider_ref"].is_string())
    );

    let failed = test
        .get(&format!("/v1/batches/{id}/messages?status=failed"), &token)
        .await;
    assert_eq!(failed.body["messages"], json!([]));
    assert_eq!(failed.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn progress_and_listing_show_work_the_sender_has_not_reached() {
    let test = TestCloud::start_with("batch-pending", |o| o.run_queues = false).await;
    let token = test.token("acme", "viewer").await;
    let sender = test.token("acme", "sender").await;
    let id = test.send_batch(&sender, TEMPLATE, &recipients(150)).await;

    let progress = test.get(&format!("/v1/batches/{id}"), &token).await;
    assert_eq!(progress.status, 200);
    assert_eq!(progress.body["status"], "enqueued");
    assert_eq!(progress.body["counts"]["pending"], 150);
    assert_eq!(progress.body["percent_done"], 0.0);
    assert_eq!(
        test.queue_depth("SendQueue").await,
        2,
        "one queue message per chunk"
    );

    let pages = all_pages(
        &test,
        &token,
        &format!("/v1/batches/{id}/messages?status=accepted&limit=100"),
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [100, 50]);
    assert_eq!(pages[1][0]["to"], number(100));
}

fn only_chunk(event: &SqsEvent, chunk: u32) -> SqsEvent {
    let mut only = SqsEvent::default();
    only.records = event
        .records
        .iter()
        .filter(|r| {
            r.body
                .as_deref()
                .unwrap()
                .contains(&format!("\"chunk\":{chunk},"))
        })
        .cloned()
        .collect();
    assert_eq!(only.records.len(), 1);
    only
}

#[tokio::test]
async fn cancelling_stops_every_message_not_yet_claimed() {
    let test = TestCloud::start_with("batch-cancel", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let used = |usage: serde_json::Value| usage["sends"]["used"].as_u64().unwrap();
    let used_before = used(test.get("/v1/usage", &token).await.body);
    let id = test.send_batch(&token, TEMPLATE, &recipients(150)).await;
    assert_eq!(
        used(test.get("/v1/usage", &token).await.body),
        used_before + 150,
        "the batch reserved its sends"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = test.receive_chunks(2).await;

    // The first chunk is sent before the cancel, the second is reached after it.
    let response = herald_sender::handle(&test.cloud.sender, only_chunk(&event, 0), deadline).await;
    assert!(response.batch_item_failures.is_empty());
    let cancel = test
        .post_json_with_key(&format!("/v1/batches/{id}/cancel"), &token, "cancel-1", "")
        .await;
    assert_eq!(cancel.status, 200, "{:?}", cancel.body);
    assert_eq!(cancel.body["status"], "cancelled");
    assert!(cancel.body["cancelled_at"].is_string());
    let response = herald_sender::handle(&test.cloud.sender, only_chunk(&event, 1), deadline).await;
    assert!(response.batch_item_failures.is_empty());

    assert_eq!(test.ledger().len(), 100, "nothing sent after the cancel");
    let progress = test.get(&format!("/v1/batches/{id}"), &token).await.body;
    assert_eq!(progress["status"], "cancelled");
    assert_eq!(
        progress["counts"],
        json!({ "pending": 0, "sent": 100, "failed": 0, "unknown": 0, "cancelled": 50,
                "delivered": 0, "undelivered": 0, "suppressed": 0 })
    );
    assert!(progress["finished_at"].is_string());
    assert_eq!(
        used(test.get("/v1/usage", &token).await.body),
        used_before + 100,
        "the 50 cancelled sends are given back to the quota"
    );
    // A second pass over the counted chunk gives nothing back twice.
    let response = herald_sender::handle(&test.cloud.sender, only_chunk(&event, 1), deadline).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        used(test.get("/v1/usage", &token).await.body),
        used_before + 100
    );
    let message = test
        .get(&format!("/v1/messages/{id}.120"), &token)
        .await
        .body;
    assert_eq!(message["status"], "cancelled");
    let statuses: Vec<_> = message["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "cancelled"]);

    // A retry of the cancel replays; a new cancel of a cancelled batch is harmless.
    let replay = test
        .post_json_with_key(&format!("/v1/batches/{id}/cancel"), &token, "cancel-1", "")
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let again = test
        .post_json(&format!("/v1/batches/{id}/cancel"), &token, "")
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["counts"]["cancelled"], 50);
}

#[tokio::test]
async fn a_finished_batch_cannot_be_cancelled() {
    let test = TestCloud::start("batch-cancel-done").await;
    let token = test.token("acme", "sender").await;
    let id = test.send_batch(&token, TEMPLATE, &recipients(3)).await;
    test.wait_for_batch(&token, &id, "completed").await;
    let cancel = test
        .post_json(&format!("/v1/batches/{id}/cancel"), &token, "")
        .await;
    assert_eq!(cancel.status, 409, "{:?}", cancel.body);
    assert_eq!(cancel.content_type, "application/problem+json");
    let progress = test.get(&format!("/v1/batches/{id}"), &token).await.body;
    assert_eq!(progress["status"], "completed");
}

#[tokio::test]
async fn another_tenants_batch_is_indistinguishable_from_a_missing_one() {
    let test = TestCloud::start_with("batch-isolation", |o| o.run_queues = false).await;
    let acme = test.token("acme", "admin").await;
    let globex = test.token("globex", "admin").await;
    let id = test.send_batch(&acme, TEMPLATE, &recipients(2)).await;
    let missing = ulid::Ulid::new().to_string();

    for path in [
        "/v1/batches/{}",
        "/v1/batches/{}/messages",
        "/v1/messages/{}.0",
    ] {
        let theirs = test.get(&path.replace("{}", &id), &globex).await;
        let absent = test.get(&path.replace("{}", &missing), &globex).await;
        assert_eq!(theirs.status, 404, "{path}");
        assert_eq!(theirs.body, absent.body, "{path}");
    }
    let cancel = test
        .post_json(&format!("/v1/batches/{id}/cancel"), &globex, "")
        .await;
    assert_eq!(cancel.status, 404);
    let progress = test.get(&format!("/v1/batches/{id}"), &acme).await.body;
    assert_eq!(progress["status"], "enqueued", "acme's batch is untouched");
}

#[tokio::test]
async fn a_viewer_reads_batches_but_cannot_send_or_cancel_them() {
    let test = TestCloud::start_with("batch-roles", |o| o.run_queues = false).await;
    let sender = test.token("acme", "sender").await;
    let viewer = test.token("acme", "viewer").await;
    let id = test.send_batch(&sender, TEMPLATE, &recipients(1)).await;
    let body = json!({ "template": "x", "recipients": [{ "to": number(1) }] }).to_string();
    assert_eq!(
        test.post_json("/v1/batches", &viewer, &body).await.status,
        403
    );
    let cancel = test
        .post_json(&format!("/v1/batches/{id}/cancel"), &viewer, "")
        .await;
    assert_eq!(cancel.status, 403);
    assert_eq!(
        test.get(&format!("/v1/batches/{id}"), &viewer).await.status,
        200
    );
}

#[tokio::test]
async fn bad_batches_are_refused_whole_and_change_nothing() {
    let test = TestCloud::start_with("batch-bad", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let one = |to: &str, variables: Value| json!({ "to": to, "variables": variables });
    let ok_vars = json!({ "name": "A", "code": "1" });
    let many = |n: usize| json!({ "template": "x", "recipients": (0..n).map(|i| json!({ "to": number(i % 8000) })).collect::<Vec<_>>() });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("10,001 recipients", many(10_001), "/recipients"),
        ("no recipients", many(0), "/recipients"),
        (
            "a 10 kB variable value",
            json!({ "template": TEMPLATE, "recipients": [one(&number(0), json!({ "name": "x".repeat(10_000), "code": "1" }))] }),
            "/recipients/0/variables/name",
        ),
        (
            "a variable the template needs is missing",
            json!({ "template": TEMPLATE, "recipients": [one(&number(0), ok_vars.clone()), one(&number(1), json!({ "name": "B" }))] }),
            "/recipients/1/variables",
        ),
        (
            "the same number twice",
            json!({ "template": "x", "recipients": [{ "to": number(0) }, { "to": number(1) }, { "to": number(0) }] }),
            "/recipients/2/to",
        ),
        (
            "a number that is only a country code",
            json!({ "template": "x", "recipients": [{ "to": number(0) }, { "to": "+1" }] }),
            "/recipients/1/to",
        ),
        (
            "an international prefix instead of +",
            json!({ "template": "x", "recipients": [{ "to": "00441234" }] }),
            "/recipients/0/to",
        ),
        (
            "an unknown field on a recipient",
            json!({ "template": "x", "recipients": [{ "to": number(0), "name": "A" }] }),
            "/recipients/0",
        ),
        (
            "an unclosed placeholder",
            json!({ "template": "Hi {{name", "recipients": [{ "to": number(0) }] }),
            "/template",
        ),
        (
            "control characters in a variable",
            json!({ "template": TEMPLATE, "recipients": [one(&number(0), json!({ "name": "A\u{0007}", "code": "1" }))] }),
            "/recipients/0/variables/name",
        ),
        (
            "a variable name that is not a name",
            json!({ "template": "x", "recipients": [one(&number(0), json!({ "9lives": "A" }))] }),
            "/recipients/0/variables/9lives",
        ),
        (
            "a channel that does not exist",
            json!({ "channel": "fax", "template": "x", "recipients": [{ "to": number(0) }] }),
            "/channel",
        ),
    ];
    for (name, body, field) in cases {
        let answer = test
            .post_json("/v1/batches", &token, &body.to_string())
            .await;
        assert_eq!(answer.status, 400, "{name}: {:?}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json", "{name}");
        let fields: Vec<&str> = answer.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no errors in {:?}", answer.body))
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{name}: {field} not among {fields:?}"
        );
    }

    // Every failing recipient is named, not only the first.
    let body = json!({ "template": "x", "recipients": [{ "to": "+1" }, { "to": number(1) }, { "to": "12" }, { "to": "+44 20" }] });
    let answer = test
        .post_json("/v1/batches", &token, &body.to_string())
        .await;
    let fields: Vec<&str> = answer.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["/recipients/0/to", "/recipients/2/to", "/recipients/3/to"]
    );

    // A rendered text over the limit is named at its recipient.
    let long = json!({ "template": "{{name}}{{name}}", "recipients": [one(&number(0), json!({ "name": "w".repeat(900) }))] });
    let answer = test
        .post_json("/v1/batches", &token, &long.to_string())
        .await;
    assert_eq!(answer.body["errors"][0]["field"], "/recipients/0");

    // Hundreds of failures: the first hundred are listed and the detail says how many.
    let bad = json!({ "template": "x", "recipients": (0..300).map(|_| json!({ "to": "+1" })).collect::<Vec<_>>() });
    let answer = test
        .post_json("/v1/batches", &token, &bad.to_string())
        .await;
    assert_eq!(answer.body["errors"].as_array().unwrap().len(), 100);
    assert!(answer.body["detail"].as_str().unwrap().contains("300"));

    assert_eq!(test.table_items().await, 0, "nothing was written");
    assert_eq!(test.chunks_queued().await, 0, "nothing was enqueued");
}

#[tokio::test]
async fn listing_refuses_parameters_it_does_not_understand() {
    let test = TestCloud::start_with("batch-list-bad", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_batch(&token, TEMPLATE, &recipients(3)).await;
    for (query, field) in [
        ("status=delivered-ish", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=3", "cursor"),
        ("colour=blue", "query"),
    ] {
        let answer = test
            .get(&format!("/v1/batches/{id}/messages?{query}"), &token)
            .await;
        assert_eq!(answer.status, 400, "{query}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], field, "{query}");
    }
    let answer = test.get("/v1/batches/not-a-batch", &token).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["errors"][0]["field"], "id");
}
