//! Suppression lists: a recipient's STOP (an inbound text, through the receiver and
//! the events function) suppresses them for every tenant sending from that number, the
//! next batch to them ends `suppressed` without a provider call, and their START lifts
//! it; admins add and remove entries (audited) but cannot lift an opt-out.

use herald::domain::{Plan, SmsSender, TenantProfile, TenantStatus};
use herald_tests::herald_local::CloudOptions;
use herald_tests::{TEST_LIMITS, TestCloud, eventually, number, quick_redelivery};
use serde_json::{Value, json};

const PLATFORM_NUMBER: &str = "+15005550006";
const OWN_NUMBER: &str = "+14155550199";

fn receipts(options: &mut CloudOptions) {
    options.receipts = true;
    quick_redelivery(options, 5);
}

/// The tenant's suppressed addresses, as the API lists them.
async fn suppressed(test: &TestCloud, token: &str) -> Vec<(String, String)> {
    test.suppressions(token).await
}

async fn text(test: &TestCloud, from: &str, to: &str, body: &str) {
    let status = test.cloud.sandbox.inbound(from, to, body).await;
    assert_eq!(status, Ok(200), "the receiver takes the text");
}

/// A tenant with its own sender number.
async fn tenant_with_own_number(test: &TestCloud, tenant: &str) {
    let now = herald::clock::system().timestamp();
    test.cloud
        .sender
        .store
        .create_tenant(&TenantProfile {
            tenant: herald::TenantId::parse(tenant).unwrap(),
            plan: Plan::Enterprise,
            status: TenantStatus::Active,
            limits: TEST_LIMITS,
            sms_provider: Default::default(),
            sms_policy: Default::default(),
            sms_sender: Some(SmsSender::parse(OWN_NUMBER).unwrap()),
            sms_sender_rate: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_suppresses_every_tenant_on_the_number_and_start_lifts_it() {
    let test = TestCloud::start_with("supp-stop", receipts).await;
    tenant_with_own_number(&test, "initech").await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "viewer").await;
    let initech = test.token("initech", "viewer").await;
    let stopper = number(5);

    text(&test, &stopper, PLATFORM_NUMBER, " stop ").await;
    // Both tenants on the platform's shared number; not the one with its own.
    for token in [&acme, &globex] {
        let entries = eventually("the opt-out listed", || async {
            let entries = suppressed(&test, token).await;
            (!entries.is_empty()).then_some(entries)
        })
        .await;
        assert_eq!(entries, [(stopper.clone(), "opt_out".to_owned())]);
    }
    assert!(suppressed(&test, &initech).await.is_empty());

    // The next batch to the stopper: suppressed, not sent; the other recipient sent.
    let recipients = [json!({ "to": stopper }), json!({ "to": number(6) })];
    let batch = test.send_batch(&acme, "hello", &recipients).await;
    let progress = test.wait_for_batch(&acme, &batch, "completed").await;
    assert_eq!(progress["counts"]["suppressed"], 1, "{progress}");
    let ledger: Vec<String> = test.ledger().into_iter().map(|m| m.to).collect();
    assert_eq!(
        ledger,
        [number(6)],
        "the provider never got the stopper's text"
    );
    let message = test
        .get(&format!("/v1/messages/{batch}.0"), &acme)
        .await
        .body;
    assert_eq!(message["status"], "suppressed");
    assert!(
        message["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("opt_out"),
        "{message}"
    );

    // An admin cannot lift an opt-out.
    let admin = test.token("acme", "admin").await;
    let path = format!("/v1/suppressions/{}", stopper.replace('+', "%2B"));
    let answer = test
        .request("DELETE", &path, Some(&admin), None, None)
        .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(
        answer.body["type"]
            .as_str()
            .unwrap()
            .ends_with("opt-out-locked")
    );

    // START lifts it, and the next text to them is sent.
    text(&test, &stopper, PLATFORM_NUMBER, "START").await;
    eventually("the opt-out lifted", || async {
        suppressed(&test, &acme).await.is_empty().then_some(())
    })
    .await;
    let id = test.send_sms(&acme, &stopper, "welcome back").await;
    test.wait_for_status(&acme, &id, "delivered").await;
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("events", "OptOuts"), 1.0);
    assert_eq!(metrics.total("events", "OptIns"), 1.0);
    assert_eq!(metrics.total("sender", "Suppressed"), 1.0);
}

#[tokio::test]
async fn a_stop_to_a_tenants_own_number_is_that_tenants_alone_and_unknown_numbers_are_kept() {
    let test = TestCloud::start_with("supp-own", receipts).await;
    tenant_with_own_number(&test, "initech").await;
    let acme = test.token("acme", "viewer").await;
    let initech = test.token("initech", "viewer").await;
    text(&test, &number(7), OWN_NUMBER, "UNSUBSCRIBE").await;
    eventually("the opt-out listed", || async {
        (!suppressed(&test, &initech).await.is_empty()).then_some(())
    })
    .await;
    assert!(suppressed(&test, &acme).await.is_empty());

    // A text to a number no tenant sends from is kept as an orphan, once.
    text(&test, &number(8), "+14155550111", "STOP").await;
    let metrics = &test.cloud.metrics;
    eventually("the orphan counted", || async {
        (metrics.total("events", "EventsOrphaned") == 1.0).then_some(())
    })
    .await;
    let today = herald::clock::system().timestamp().day();
    let orphans = test.cloud.sender.store.orphans(today).await.unwrap();
    assert!(
        orphans.iter().any(|o| o.reason.contains("+14155550111")),
        "{orphans:?}"
    );
    // Chatter is not a keyword: nothing changes.
    text(&test, &number(7), OWN_NUMBER, "thanks, but stop please").await;
    eventually("the chatter read", || async {
        (metrics.total("events", "EventsIgnored") == 1.0).then_some(())
    })
    .await;
    assert_eq!(suppressed(&test, &initech).await.len(), 1);
}

#[tokio::test]
async fn admins_add_list_filter_and_remove_entries_audited() {
    let test = TestCloud::start("supp-admin").await;
    let admin = test.token("acme", "admin").await;
    let viewer = test.token("acme", "viewer").await;
    let add = |address: &str| json!({ "address": address, "note": "asked by phone" }).to_string();
    for address in [number(1), number(2), "Ada@Example.com".to_owned()] {
        let answer = test
            .post_json("/v1/suppressions", &admin, &add(&address))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["reason"], "manual");
    }
    let again = test
        .post_json("/v1/suppressions", &admin, &add("ada@example.com"))
        .await;
    assert_eq!(
        again.status, 409,
        "the same address in another case: {}",
        again.body
    );
    let refused = test
        .post_json("/v1/suppressions", &viewer, &add(&number(3)))
        .await;
    assert_eq!(refused.status, 403);
    let bad = test
        .post_json("/v1/suppressions", &admin, &add("not an address"))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["field"], "/address");

    // Paged, and filtered by channel and reason.
    let first = test.get("/v1/suppressions?limit=2", &viewer).await.body;
    assert_eq!(
        first["suppressions"].as_array().unwrap().len(),
        2,
        "{first}"
    );
    let next = first["next_url"].as_str().expect("a next page").to_owned();
    let second = test.get(&next, &viewer).await.body;
    assert_eq!(
        second["suppressions"].as_array().unwrap().len(),
        1,
        "{second}"
    );
    let emails = test
        .get("/v1/suppressions?channel=email", &viewer)
        .await
        .body;
    assert_eq!(emails["suppressions"][0]["address"], "Ada@Example.com");
    assert_eq!(emails["suppressions"].as_array().unwrap().len(), 1);
    let opt_outs = test
        .get("/v1/suppressions?reason=opt_out", &viewer)
        .await
        .body;
    assert_eq!(opt_outs["suppressions"], Value::Array(vec![]));
    for query in [
        "?channel=fax",
        "?reason=maybe",
        "?limit=0",
        "?cursor=nope",
        "?colour=red",
    ] {
        let answer = test.get(&format!("/v1/suppressions{query}"), &viewer).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
    }

    // Removed (by any spelling of the address), audited; then it is gone.
    let path = "/v1/suppressions/ADA@example.com";
    let removed = test.request("DELETE", path, Some(&admin), None, None).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let gone = test.request("DELETE", path, Some(&admin), None, None).await;
    assert_eq!(gone.status, 404);
    let audit = test.get("/v1/audit", &admin).await.body;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "suppression.added")
            .count(),
        3,
        "{audit}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "suppression.removed")
            .count(),
        1
    );
    assert_eq!(suppressed(&test, &viewer).await.len(), 2);
}
