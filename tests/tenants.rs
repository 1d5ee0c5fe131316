//! Tenants as operators and the platform see them: plans and limits that hold across
//! concurrent requests, suspension, and the audit log.

use std::time::Duration;

use herald::TenantId;
use herald::domain::{Admission, Limits};
use herald_tests::herald_local::seed;
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};
use tokio::time::Instant;

fn batch(count: usize) -> String {
    let recipients: Vec<Value> = (0..count).map(|i| json!({ "to": number(i) })).collect();
    json!({ "template": "Hello", "recipients": recipients }).to_string()
}

#[tokio::test]
async fn requests_over_the_tenants_rate_get_429_with_retry_after() {
    let test = TestCloud::start("rate-limit").await;
    test.register_tenant(
        "slowco",
        Limits {
            api_requests_per_second: 2,
            sends_per_day: 100,
        },
    )
    .await;
    let token = test.token("slowco", "viewer").await;
    let answers = futures::future::join_all((0..8).map(|_| test.get("/v1/usage", &token))).await;
    let admitted: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(admitted.len() + limited.len(), 8);
    // Eight requests at once span at most a few one-second windows of two each.
    assert!(
        !admitted.is_empty() && !limited.is_empty(),
        "{} admitted",
        admitted.len()
    );
    for answer in &limited {
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(
            answer.body["type"].as_str().unwrap().rsplit('/').next(),
            Some("rate-limited")
        );
        assert_eq!(answer.headers["retry-after"], "1");
        assert_eq!(answer.headers["ratelimit-limit"], "2");
        assert_eq!(answer.headers["ratelimit-remaining"], "0");
    }
    for answer in &admitted {
        assert_eq!(answer.headers["ratelimit-limit"], "2");
        assert_eq!(answer.body["rate_limit"]["requests_per_second"], 2);
    }
}

#[tokio::test]
async fn the_rate_limit_holds_across_concurrent_instances_exactly() {
    let test = TestCloud::start("rate-exact").await;
    let tenant = TenantId::parse("busyco").unwrap();
    let store = &test.cloud.sender.store;
    // Twelve "instances" counting into the same second: exactly the limit get in.
    let second = 1_900_000_000;
    let admissions =
        futures::future::join_all((0..12).map(|_| store.admit_request(&tenant, 5, second))).await;
    let admitted = admissions
        .iter()
        .filter(|a| matches!(a, Ok(Admission::Admitted { .. })))
        .count();
    assert_eq!(admitted, 5);
    // The next second starts afresh.
    let next = store.admit_request(&tenant, 5, second + 1).await.unwrap();
    assert_eq!(
        next,
        Admission::Admitted {
            limit: 5,
            remaining: 4
        }
    );
}

#[tokio::test]
async fn a_batch_that_would_exceed_the_daily_quota_is_refused_whole() {
    let test = TestCloud::start_with("quota", |o| o.run_queues = false).await;
    test.register_tenant(
        "smallco",
        Limits {
            api_requests_per_second: 100,
            sends_per_day: 5,
        },
    )
    .await;
    let token = test.token("smallco", "sender").await;
    let first = test
        .post_json_with_key("/v1/batches", &token, "b-1", &batch(3))
        .await;
    assert_eq!(first.status, 202, "{:?}", first.body);

    let over = test.post_json("/v1/batches", &token, &batch(3)).await;
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert_eq!(over.content_type, "application/problem+json");
    assert!(
        over.body["detail"].as_str().unwrap().contains("2 left"),
        "{:?}",
        over.body
    );
    assert!(over.headers.contains_key("retry-after"));
    assert_eq!(
        test.items_with_sk("META").await,
        1,
        "the refused batch wrote nothing"
    );
    assert_eq!(test.chunks_queued().await, 1);

    // A retry of the accepted batch is a replay, not a second charge.
    let replay = test
        .post_json_with_key("/v1/batches", &token, "b-1", &batch(3))
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let one = json!({ "to": number(9), "body": "hi" }).to_string();
    assert_eq!(
        test.post_json("/v1/messages", &token, &one).await.status,
        202
    );

    let usage = test.get("/v1/usage", &token).await.body;
    assert_eq!(usage["sends"]["used"], 4);
    assert_eq!(usage["sends"]["limit"], 5);
    assert_eq!(usage["sends"]["remaining"], 1);
    assert!(
        usage["sends"]["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z")
    );
}

#[tokio::test]
async fn concurrent_batches_never_overrun_the_quota() {
    let test = TestCloud::start_with("quota-race", |o| o.run_queues = false).await;
    test.register_tenant(
        "raceco",
        Limits {
            api_requests_per_second: 100,
            sends_per_day: 5,
        },
    )
    .await;
    let token = test.token("raceco", "sender").await;
    let body = batch(2);
    let answers =
        futures::future::join_all((0..4).map(|_| test.post_json("/v1/batches", &token, &body)))
            .await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, [202, 202, 429, 429]);
    assert_eq!(test.items_with_sk("META").await, 2);
    let usage = test.get("/v1/usage", &token).await.body;
    assert_eq!(usage["sends"]["used"], 4);
}

#[tokio::test]
async fn a_token_of_an_unregistered_tenant_is_refused() {
    let test = TestCloud::start("unregistered").await;
    let cognito = &test.cloud.clients.cognito;
    let user = seed::user(cognito, test.pool(), "ghostco", "admin")
        .await
        .unwrap();
    let token = seed::sign_in(cognito, test.client_id(), &user)
        .await
        .unwrap()
        .id_token;
    let answer = test.get("/v1/usage", &token).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
}

#[tokio::test]
async fn operators_run_tenants_and_a_suspended_tenants_work_is_held() {
    let test = TestCloud::start_with("operators", |o| o.run_queues = false).await;
    let operator = test.token("herald", "operator").await;

    // Only operators reach operator routes; operators hold no tenant rights.
    let acme_admin = test.token("acme", "admin").await;
    let create = json!({ "tenant_id": "newco", "plan": "starter" }).to_string();
    assert_eq!(
        test.post_json("/v1/tenants", &acme_admin, &create)
            .await
            .status,
        403
    );
    assert_eq!(test.get("/v1/usage", &operator).await.status, 403);

    for (body, field) in [
        (json!({ "tenant_id": "newco", "plan": "platinum" }), "/plan"),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_provider": "pigeon" }),
            "/sms_provider",
        ),
        (
            json!({ "tenant_id": "new#co", "plan": "starter" }),
            "/tenant_id",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "limits": { "sends_per_day": 0 } }),
            "/limits/sends_per_day",
        ),
        // serde would read each of these structs from an array of its fields.
        (
            json!({ "tenant_id": "newco", "plan": "starter", "limits": [1000, null] }),
            "/limits",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_policy": [["US"], null] }),
            "/sms_policy",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "first_admin": ["a@example.com", null] }),
            "/first_admin",
        ),
        // A sender's rate: 0, negative, absurd, a string, or without a sender of its own.
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_sender": "+14155550123", "sms_sender_rate_per_second": 0 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_sender": "+14155550123", "sms_sender_rate_per_second": -1 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_sender": "+14155550123", "sms_sender_rate_per_second": 1e300 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_sender": "+14155550123", "sms_sender_rate_per_second": "5" }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "tenant_id": "newco", "plan": "starter", "sms_sender_rate_per_second": 5 }),
            "/sms_sender_rate_per_second",
        ),
    ] {
        let answer = test
            .post_json("/v1/tenants", &operator, &body.to_string())
            .await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.body["errors"][0]["field"], field);
    }
    let refused = test.get("/v1/tenants/newco", &operator).await;
    assert_eq!(refused.status, 404, "a refused create writes nothing");
    let created = test.post_json("/v1/tenants", &operator, &create).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["limits"]["sends_per_day"], 10_000);
    assert_eq!(
        created.body["sms_sender_rate_per_second"],
        Value::Null,
        "no sender of its own"
    );
    assert_eq!(created.body["sms_provider"], "twilio", "the default");
    assert_eq!(
        test.post_json("/v1/tenants", &operator, &create)
            .await
            .status,
        409
    );

    let sender = test.token("newco", "sender").await;
    let sent = test
        .post_json(
            "/v1/messages",
            &sender,
            &json!({ "to": number(1), "body": "held" }).to_string(),
        )
        .await;
    assert_eq!(sent.status, 202);
    let message = sent.body["id"].as_str().unwrap().to_owned();
    let batch_id = sent.body["batch_id"].as_str().unwrap().to_owned();

    let suspended = test
        .post_json("/v1/tenants/newco/suspend", &operator, "")
        .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);
    assert_eq!(suspended.body["status"], "suspended");
    let refused = test.get("/v1/usage", &sender).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.body["type"]
            .as_str()
            .unwrap()
            .ends_with("tenant-suspended")
    );

    // Its queued chunk is held: reported back to SQS, nothing sent, nothing settled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = test.receive_chunks(1).await;
    let response = herald_sender::handle(&test.cloud.sender, event.clone(), deadline).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(test.ledger().is_empty());

    assert_eq!(
        test.post_json("/v1/tenants/newco/resume", &operator, "")
            .await
            .status,
        200
    );
    let response = herald_sender::handle(&test.cloud.sender, event, deadline).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(test.ledger().len(), 1);
    test.wait_for_status(&sender, &message, "sent").await;

    let log = test.get("/v1/tenants/newco/audit", &operator).await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    let entries = log.body["entries"].as_array().unwrap();
    let actions: Vec<_> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            "tenant.resumed",
            "tenant.suspended",
            "batch.created",
            "tenant.created"
        ]
    );
    assert_eq!(log.body["next_cursor"], serde_json::Value::Null);
    assert_eq!(entries[2]["target"], batch_id);
    assert!(
        entries
            .iter()
            .all(|e| e["actor"].is_string() && e["request_id"].is_string())
    );
    assert_ne!(
        entries[3]["actor"], entries[2]["actor"],
        "operator, then newco's sender"
    );

    // A tenant's admin reads their own log; a sender does not; nobody reads another's.
    let admin = test.token("newco", "admin").await;
    let own = test.get("/v1/audit", &admin).await;
    assert_eq!(own.body["entries"].as_array().unwrap().len(), 4);
    assert_eq!(test.get("/v1/audit", &sender).await.status, 403);
    assert_eq!(test.get("/v1/tenants/acme/audit", &admin).await.status, 403);
    let bad_day = test.get("/v1/audit?day=yesterday", &admin).await;
    assert_eq!(bad_day.status, 400);
    assert_eq!(bad_day.body["errors"][0]["field"], "day");
}

#[tokio::test]
async fn an_operator_sets_a_tenants_sender_and_its_pace_and_bad_ones_change_nothing() {
    let test = TestCloud::start_with("sms-sender", |o| o.run_queues = false).await;
    let operator = test.token("herald", "operator").await;
    let put = |path: &'static str, token: &str, body: Value| {
        let token = token.to_owned();
        let test = &test;
        async move {
            test.request(
                "PUT",
                path,
                Some(&token),
                Some("application/json"),
                Some(body.to_string().into_bytes()),
            )
            .await
        }
    };
    let path = "/v1/tenants/acme/sms-sender";
    let acme_admin = test.token("acme", "admin").await;

    let toll_free = put(path, &operator, json!({ "sms_sender": "+18002752273" })).await;
    assert_eq!(toll_free.status, 200, "{:?}", toll_free.body);
    assert_eq!(toll_free.body["sms_sender"], "+18002752273");
    assert_eq!(
        toll_free.body["sms_sender_rate_per_second"], 3.0,
        "a toll-free number's"
    );
    let set = json!({ "sms_sender": "24273", "sms_sender_rate_per_second": 0.5 });
    let short_code = put(path, &operator, set).await;
    assert_eq!(short_code.status, 200, "{:?}", short_code.body);
    assert_eq!(short_code.body["sms_sender_rate_per_second"], 0.5);

    let refused = put(path, &acme_admin, json!({ "sms_sender": "+14155550100" })).await;
    assert_eq!(refused.status, 403, "operators only");
    let unknown = put(
        "/v1/tenants/nosuch/sms-sender",
        &operator,
        json!({ "sms_sender": "+14155550100" }),
    )
    .await;
    assert_eq!(unknown.status, 404);
    for (body, field) in [
        (
            json!({ "sms_sender": "24273", "sms_sender_rate_per_second": 0 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "sms_sender": "24273", "sms_sender_rate_per_second": -3 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "sms_sender": "24273", "sms_sender_rate_per_second": 1e300 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "sms_sender": "24273", "sms_sender_rate_per_second": 1001 }),
            "/sms_sender_rate_per_second",
        ),
        (
            json!({ "sms_sender_rate_per_second": 2 }),
            "/sms_sender_rate_per_second",
        ),
        (json!({ "sms_sender": "1234" }), "/sms_sender"),
        (json!({ "sms_sender": "+1415555010" }), "/sms_sender"),
        (
            json!({ "sms_sender": "24273", "sms_sender_rate": 2 }),
            "/sms_sender_rate",
        ),
    ] {
        let answer = put(path, &operator, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], field, "{body}");
    }
    let unchanged = test.get("/v1/tenants/acme", &operator).await;
    assert_eq!(
        unchanged.body["sms_sender"], "24273",
        "a refused request changes nothing"
    );
    assert_eq!(unchanged.body["sms_sender_rate_per_second"], 0.5);

    let back = put(path, &operator, json!({})).await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    assert_eq!(
        back.body["sms_sender"],
        Value::Null,
        "the platform's sender again"
    );
    assert_eq!(back.body["sms_sender_rate_per_second"], Value::Null);
    let log = test.get("/v1/tenants/acme/audit", &operator).await;
    let changes = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tenant.sms_sender_changed")
        .count();
    assert_eq!(changes, 3, "each change audited once");
}
