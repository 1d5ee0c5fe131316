//! Status webhooks delivered end to end (issue 15): a batch's messages settle, the
//! table's stream carries each status change to the fan-out, which queues one delivery
//! per event and subscribed endpoint, and the deliverer posts them signed to a
//! receiver on loopback that verifies each one on its own. One stack, the retry
//! schedule compressed by its setting (`HERALD_WEBHOOK_RETRY_DIVISOR`), the same code.
//! Longer than most files: the whole proof shares one stack (a stack costs seconds of
//! CI each), so its phases (deliveries, recover, test events, limits) live together.

use std::collections::{BTreeMap, BTreeSet};

use herald_tests::outbound::{
    Receiver, assert_each_event_once, assert_retried_until_delivered, batch_events, verifies,
};
use herald_tests::{TestCloud, eventually, number};
use serde_json::{Value, json};

const TEMPLATE: &str = "Hi {{name}}, your code is {{code}}.";
/// Messages in the batch: enough for concurrency in the fan-out and the deliverer.
const MESSAGES: usize = 40;

fn recipients(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({ "to": number(i), "variables": { "name": format!("P{i}"), "code": i.to_string() } }))
        .collect()
}

async fn start() -> TestCloud {
    TestCloud::start_with("webhook-pipeline", |options| {
        options.outbound = true;
        // 5 s → 0.25 ms ... 10 h → 1.8 s: eight attempts within about ten seconds
        // (SQS delays in whole seconds).
        options
            .env_overrides
            .insert("HERALD_WEBHOOK_RETRY_DIVISOR".into(), "20000".into());
    })
    .await
}

#[tokio::test]
async fn a_batch_s_status_changes_reach_each_subscribed_endpoint_once_retried_until_they_arrive() {
    let test = start().await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let receiver = Receiver::start().await;
    let (ok_id, ok_secret) = test
        .register_endpoint(
            &admin,
            &receiver.url("ok"),
            &["message.sent", "batch.completed"],
        )
        .await;
    let (_, flaky_secret) = test
        .register_endpoint(&admin, &receiver.url("flaky"), &["message.sent"])
        .await;
    let (gone, _) = test
        .register_endpoint(&admin, &receiver.url("gone"), &["batch.completed"])
        .await;
    let (_, watch_secret) = test
        .register_endpoint(&admin, &receiver.url("watch"), &["endpoint.disabled"])
        .await;
    let (off, _) = test
        .register_endpoint(&admin, &receiver.url("off"), &["message.sent"])
        .await;
    let disable = format!("/v1/webhooks/endpoints/{off}/disable");
    assert_eq!(test.post_json(&disable, &admin, "").await.status, 200);

    let batch = test
        .send_batch(&sender, TEMPLATE, &recipients(MESSAGES))
        .await;
    test.wait_for_batch(&sender, &batch, "completed").await;
    eventually("every event delivered", || async {
        let others = receiver.at("gone").len() == 1 && receiver.at("watch").len() == 1;
        (receiver.batch_arrived(MESSAGES, "flaky") && others).then_some(())
    })
    .await;
    eventually("no delivery left on the queue", || async {
        (test.deliveries_pending().await == 0).then_some(())
    })
    .await;

    // Exactly the expected events, each once, each verified with its endpoint's secret;
    // the flaky receiver failed every other request, and still got every event.
    // Every message sent (the proof names each message's event), then every event.
    let sent: BTreeSet<String> = (0..MESSAGES).map(|i| format!("{batch}.{i}.sent")).collect();
    let counts = BTreeMap::from([("sent".to_owned(), MESSAGES)]);
    assert_eq!(
        batch_events(&test, &sender, &batch).await,
        (sent.clone(), counts.clone())
    );
    assert_each_event_once(
        &receiver,
        &batch,
        (&sent, &counts),
        (&ok_secret, &flaky_secret),
    );
    let flaky_ids = assert_retried_until_delivered(&receiver, "flaky", &sent, &flaky_secret);
    assert!(
        receiver.at("off").is_empty(),
        "a disabled endpoint got deliveries"
    );

    // 410: the endpoint is disabled by Herald, audited, and the tenant's endpoint
    // subscribed to endpoint.disabled hears of it once.
    assert_eq!(receiver.at("gone").len(), 1);
    let (endpoint, by_herald) = test.disabled_by_herald(&admin, &gone).await;
    assert_eq!(endpoint["status"], "disabled");
    assert_eq!(endpoint["disabled_reason"], "gone");
    assert_eq!(by_herald.len(), 1, "{by_herald:?}");
    assert_eq!(by_herald[0]["target"], gone.as_str());
    let watch = &receiver.at("watch")[0];
    assert!(verifies(&watch_secret, &watch.headers, &watch.body));
    let told = watch.json();
    assert_eq!(told["type"], "endpoint.disabled");
    assert_eq!(told["data"]["endpoint_id"], gone.as_str());
    assert_eq!(told["data"]["reason"], "gone");

    recover(&test, &receiver, &admin, &flaky_ids).await;
    test_events(&test, &receiver, &admin, (&ok_id, &ok_secret), &gone).await;
    limits(&test).await;
}

/// The two limits' counters, against the stack's table: an endpoint's window admits
/// its limit and no more, the next second again; a tenant's delivery slot has one
/// holder until released (by its holder only) or until its lease ends.
async fn limits(test: &TestCloud) {
    let store = &test.cloud.sender.store;
    let tenant = herald::TenantId::parse("gamma").unwrap();
    let second = 1_800_000_000;
    let mut admitted = Vec::new();
    for at in [second, second, second, second + 1] {
        admitted.push(store.admit_delivery(&tenant, "ep_x", 2, at).await.unwrap());
    }
    assert_eq!(admitted, [true, true, false, true]);
    let now = herald::Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
    let hold = std::time::Duration::from_secs(30);
    assert!(
        store
            .take_delivery_slot(&tenant, 0, "a", now, hold)
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_delivery_slot(&tenant, 0, "b", now, hold)
            .await
            .unwrap()
    );
    assert!(
        store
            .take_delivery_slot(&tenant, 1, "b", now, hold)
            .await
            .unwrap()
    );
    store.release_delivery_slot(&tenant, 0, "b").await.unwrap();
    assert!(
        !store
            .take_delivery_slot(&tenant, 0, "c", now, hold)
            .await
            .unwrap(),
        "freed by another"
    );
    store.release_delivery_slot(&tenant, 0, "a").await.unwrap();
    assert!(
        store
            .take_delivery_slot(&tenant, 0, "c", now, hold)
            .await
            .unwrap()
    );
    let later = now.plus(hold + std::time::Duration::from_secs(1));
    assert!(
        store
            .take_delivery_slot(&tenant, 0, "d", later, hold)
            .await
            .unwrap(),
        "lease ended"
    );
}

/// A test event: an example of the type asked, signed like any other, to an enabled
/// endpoint whatever it is subscribed to; a disabled endpoint is a 409, an unknown
/// type a 400 naming it, and neither sends anything.
async fn test_events(
    test: &TestCloud,
    receiver: &Receiver,
    admin: &str,
    (ok, secret): (&str, &str),
    gone: &str,
) {
    let before = receiver.at("ok").len();
    let path = format!("/v1/webhooks/endpoints/{ok}/test");
    let unknown = test
        .post_json(
            &path,
            admin,
            &json!({ "event_type": "message.read" }).to_string(),
        )
        .await;
    assert_eq!(unknown.status, 400, "{:?}", unknown.body);
    assert!(unknown.body.to_string().contains("/event_type"));
    let disabled = test
        .post_json(&format!("/v1/webhooks/endpoints/{gone}/test"), admin, "{}")
        .await;
    assert_eq!(disabled.status, 409, "{:?}", disabled.body);
    let queued = test
        .post_json(
            &path,
            admin,
            &json!({ "event_type": "message.failed" }).to_string(),
        )
        .await;
    assert_eq!(queued.status, 202, "{:?}", queued.body);
    let id = queued.body["event_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("test_"), "{id}");
    eventually("the test event delivered", || async {
        (receiver.at("ok").len() == before + 1).then_some(())
    })
    .await;
    let got = receiver.at("ok").pop().unwrap();
    assert_eq!(got.webhook_id(), id);
    assert!(verifies(secret, &got.headers, &got.body));
    let body = got.json();
    assert_eq!(
        (body["type"].as_str(), body["test"].as_bool()),
        (Some("message.failed"), Some(true))
    );
    assert_eq!(body["data"]["status"], "failed");
}

/// An endpoint failing every attempt: each event is tried eight times on the
/// schedule, then fails; the attempts log shows it; once the endpoint is fixed,
/// recover delivers exactly the failed events again, with their ids, and nothing of
/// an endpoint whose events all arrived.
async fn recover(
    test: &TestCloud,
    receiver: &Receiver,
    acme_admin: &str,
    delivered: &BTreeMap<String, Vec<u16>>,
) {
    const FAILING: usize = 3;
    let admin = test.token("beta", "admin").await;
    let sender = test.token("beta", "sender").await;
    let (down, secret) = test
        .register_endpoint(&admin, &receiver.url("down"), &["message.sent"])
        .await;
    // Paced at one delivery a second: held back, never dropped.
    let paced = json!({ "url": receiver.url("paced"), "event_types": ["message.sent"], "rate_limit_per_second": 1 });
    let paced = test
        .post_json("/v1/webhooks/endpoints", &admin, &paced.to_string())
        .await;
    assert_eq!(paced.status, 201, "{:?}", paced.body);
    let started = herald::Timestamp::parse(&chrono_now(test, &admin).await).unwrap();
    let batch = test
        .send_batch(&sender, TEMPLATE, &recipients(FAILING))
        .await;
    test.wait_for_batch(&sender, &batch, "completed").await;
    let attempts_path = format!("/v1/webhooks/endpoints/{down}/attempts");
    eventually("every event failed its eight attempts", || async {
        let failed = receiver
            .by_id("down")
            .values()
            .filter(|answers| answers.len() == 8)
            .count();
        let pending = test.deliveries_pending().await;
        (failed == FAILING && pending == 0).then_some(())
    })
    .await;
    let down_ids = receiver.by_id("down");
    assert_eq!(down_ids.len(), FAILING);
    let paced = receiver.by_id("paced");
    assert_eq!(paced.len(), FAILING, "{paced:?}");
    assert!(paced.values().all(|answers| answers == &[200]), "{paced:?}");
    assert!(down_ids.values().all(|a| a.iter().all(|s| *s == 500)));

    // The attempts log, newest first, a page at a time: 24 attempts, the last of each
    // event `failed`, the others `retrying`, each with the answer's status.
    let mut listed = Vec::new();
    let mut path = format!("{attempts_path}?limit=10");
    loop {
        let page = test.get(&path, &admin).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        listed.extend(page.body["attempts"].as_array().unwrap().iter().cloned());
        match page.body["next_url"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(listed.len(), FAILING * 8);
    let times: Vec<&str> = listed.iter().map(|a| a["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    for a in &listed {
        assert_eq!(a["status_code"], 500);
        assert_eq!(a["event_type"], "message.sent");
        let last = a["attempt"] == 8;
        assert_eq!(a["result"], if last { "failed" } else { "retrying" }, "{a}");
    }

    // Bad input names its field and queues nothing; another tenant's endpoint is 404.
    let recover_path = format!("/v1/webhooks/endpoints/{down}/recover");
    let week_ago = started.minus(std::time::Duration::from_secs(8 * 24 * 3600));
    let tomorrow = started.plus(std::time::Duration::from_secs(24 * 3600));
    for since in [
        json!("yesterday"),
        json!(week_ago.to_string()),
        json!(tomorrow.to_string()),
        json!(17),
    ] {
        let refused = test
            .post_json(
                &recover_path,
                &admin,
                &json!({ "since": since }).to_string(),
            )
            .await;
        assert_eq!(refused.status, 400, "{since}: {:?}", refused.body);
        assert!(
            refused.body.to_string().contains("since"),
            "{:?}",
            refused.body
        );
    }
    let body = json!({ "since": started.to_string() }).to_string();
    assert_eq!(
        test.post_json(&recover_path, acme_admin, &body)
            .await
            .status,
        404
    );
    assert_eq!(test.get(&attempts_path, acme_admin).await.status, 404);
    assert_eq!(test.deliveries_pending().await, 0);

    // Fixed (a new URL), then recovered: exactly the failed events, once each.
    let fixed = json!({ "url": receiver.url("fixed"), "event_types": ["message.sent"] });
    let changed = test
        .request(
            "PUT",
            &format!("/v1/webhooks/endpoints/{down}"),
            Some(&admin),
            Some("application/json"),
            Some(fixed.to_string().into_bytes()),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let recovered = test.post_json(&recover_path, &admin, &body).await;
    assert_eq!(recovered.status, 202, "{:?}", recovered.body);
    assert_eq!(recovered.body, json!({ "queued": FAILING, "more": false }));
    eventually("the failed events delivered again", || async {
        (receiver.at("fixed").len() == FAILING && test.deliveries_pending().await == 0)
            .then_some(())
    })
    .await;
    let fixed_ids: BTreeSet<String> = receiver
        .at("fixed")
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    assert_eq!(fixed_ids, down_ids.keys().cloned().collect::<BTreeSet<_>>());
    for r in receiver.at("fixed") {
        assert!(verifies(&secret, &r.headers, &r.body));
    }
    // Recovering again finds nothing failed since: each event's last attempt delivered.
    let again = test.post_json(&recover_path, &admin, &body).await;
    assert_eq!(again.body, json!({ "queued": 0, "more": false }));
    // An endpoint whose events all arrived has nothing to recover.
    let flaky = test.get("/v1/webhooks/endpoints", acme_admin).await.body;
    let flaky_id = flaky["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/flaky"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let none = test
        .post_json(
            &format!("/v1/webhooks/endpoints/{flaky_id}/recover"),
            acme_admin,
            &body,
        )
        .await;
    assert_eq!(
        none.body,
        json!({ "queued": 0, "more": false }),
        "{} delivered",
        delivered.len()
    );
    assert_eq!(receiver.at("fixed").len(), FAILING);
}

/// The API's clock, as a time a request can name (the endpoint's creation time).
async fn chrono_now(test: &TestCloud, admin: &str) -> String {
    let listed = test.get("/v1/webhooks/endpoints", admin).await.body;
    listed["endpoints"][0]["created_at"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A delivered event whose attempt cannot be kept in the endpoint's log (every write
/// of it answered too late, as a busy table can) is not posted again: the endpoint
/// has it, and the queue's redelivery would send it twice.
#[tokio::test]
async fn a_delivered_event_whose_attempt_cannot_be_logged_is_not_posted_again() {
    use herald_tests::herald_local::emulator::{self, LateAnswers};
    let test = TestCloud::start_with("webhook-unlogged", |options| {
        options.outbound = true;
        // Longer than the deliverer's failing write (three attempts, 8 s in all), so
        // only a record it hands back comes again, and soon enough to be seen here.
        herald_tests::quick_redelivery(options, 20);
    })
    .await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let receiver = Receiver::start().await;
    test.register_endpoint(&admin, &receiver.url("ok"), &["message.sent"])
        .await;
    let late = LateAnswers {
        table: test.cloud.stack.reference("HeraldTable").unwrap(),
        operation: "PutItem",
        // An attribute of attempt records only.
        contains: "excerpt",
        seconds: 4.0,
        count: 3,
    };
    emulator::answer_late(&test.cloud.emulator, &late)
        .await
        .unwrap();

    test.send_sms(&sender, &number(0), "logged or not").await;
    eventually("the event delivered", || async {
        (receiver.at("ok").len() == 1).then_some(())
    })
    .await;
    eventually("the delivery done with", || async {
        (test.deliveries_pending().await == 0).then_some(())
    })
    .await;
    assert_eq!(
        receiver.by_id("ok").values().collect::<Vec<_>>(),
        vec![&vec![200]],
        "one request, answered 200"
    );
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("outbound-deliver", "WebhooksDelivered"), 1.0);
}
