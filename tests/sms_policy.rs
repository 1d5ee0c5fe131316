//! SMS pumping: a tenant texts only the countries and kinds of number its profile
//! allows (the platform's default unless an operator set its own). A number outside
//! them is a 400 naming the recipient, before anything is written; operators change the
//! policy through the tenant routes, audited, and it holds from the next request.

use herald_tests::{TestCloud, bad_request::Case};
use serde_json::{Value, json};

/// A number of each kind the policy refuses by default, with what is wrong with it.
const REFUSED: &[(&str, &str)] = &[
    (
        "+18762101234",
        "a mobile in Jamaica (+1, but not the US or Canada)",
    ),
    ("+447400123456", "a mobile in the United Kingdom"),
    ("+33612345678", "a mobile in France"),
    ("+19002345678", "a US premium-rate number"),
    ("+18002345678", "a US toll-free number"),
    ("+15002345678", "a US personal number"),
    (
        "+80012340000",
        "an international freephone number, in no country",
    ),
    ("+449012345678", "a UK premium-rate number"),
    ("+4918012345", "a German shared-cost number"),
    ("+49177991234567", "a German voicemail number"),
    ("+447640123456", "a UK pager"),
    ("+445512345678", "a UK universal access number"),
];

async fn put_json(test: &TestCloud, path: &str, token: &str, body: &Value) -> herald_tests::Answer {
    test.request(
        "PUT",
        path,
        Some(token),
        Some("application/json"),
        Some(body.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn numbers_outside_the_tenants_sms_policy_are_refused_before_anything_is_written() {
    let test = TestCloud::start_with("sms-policy-refused", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let items_before = test.table_items().await;

    let mut cases = Vec::new();
    for (number, what) in REFUSED {
        cases.push(Case::only_field(
            what,
            "/v1/messages",
            &json!({ "to": number, "body": "win a prize" }),
            "/to",
        ));
    }
    let good = |i: usize| json!({ "to": herald_tests::number(i), "variables": {} });
    cases.push(Case::only_field(
        "a batch with one recipient in Jamaica",
        "/v1/batches",
        &json!({ "template": "Hi", "recipients": [good(0), {"to": "+18762101234"}, good(1)] }),
        "/recipients/1/to",
    ));
    cases.push(Case::only_field(
        "a batch with one premium-rate recipient",
        "/v1/batches",
        &json!({ "template": "Hi", "recipients": [good(0), good(1), {"to": "+19002345678"}] }),
        "/recipients/2/to",
    ));
    test.refuses_all(&token, cases).await;

    // The answer says why, naming what the tenant may text.
    for (number, says) in [
        ("+18762101234", ["in JM", "CA, US"]),
        (
            "+19002345678",
            ["premium_rate", "mobile, fixed_line_or_mobile"],
        ),
    ] {
        let body = json!({ "to": number, "body": "x" }).to_string();
        let refused = test.post_json("/v1/messages", &token, &body).await;
        let message = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(says.iter().all(|s| message.contains(s)), "{message}");
    }

    assert_eq!(test.table_items().await, items_before, "nothing written");
    assert_eq!(test.queue_depth("SendQueue").await, 0, "nothing enqueued");

    // The platform's default: US and Canadian numbers that may be mobiles go.
    for number in ["+14155550100", "+16132345678"] {
        let body = json!({ "to": number, "body": "hello" }).to_string();
        let answer = test.post_json("/v1/messages", &token, &body).await;
        assert_eq!(answer.status, 202, "{number}: {:?}", answer.body);
    }
}

#[tokio::test]
async fn operators_set_a_tenants_sms_policy_audited_and_it_holds_from_the_next_request() {
    let test = TestCloud::start_with("sms-policy-update", |o| o.run_queues = false).await;
    let operator = test.token("herald", "operator").await;
    let sender = test.token("acme", "sender").await;
    let admin = test.token("acme", "admin").await;
    let send = |to: &'static str| {
        let body = json!({ "to": to, "body": "hello" }).to_string();
        let sender = sender.clone();
        let test = &test;
        async move { test.post_json("/v1/messages", &sender, &body).await.status }
    };

    // A tenant registered before policies existed has none: it reads the default.
    let acme = test.get("/v1/tenants/acme", &operator).await;
    assert_eq!(
        acme.body["sms_policy"],
        json!({
            "countries": ["CA", "US"],
            "number_types": ["mobile", "fixed_line_or_mobile"],
            "countries_from_default": true,
            "number_types_from_default": true,
        })
    );
    assert_eq!(send("+447400123456").await, 400);

    let path = "/v1/tenants/acme/sms-policy";
    let widened = json!({
        "countries": ["US", "CA", "GB"],
        "number_types": ["mobile", "fixed_line_or_mobile", "toll_free"],
    });
    let answer = put_json(&test, path, &operator, &widened).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body["sms_policy"],
        json!({
            "countries": ["CA", "GB", "US"],
            "number_types": ["mobile", "fixed_line_or_mobile", "toll_free"],
            "countries_from_default": false,
            "number_types_from_default": false,
        })
    );
    assert_eq!(send("+447400123456").await, 202, "GB is allowed now");
    assert_eq!(send("+18002345678").await, 202, "so are toll-free numbers");
    assert_eq!(send("+19002345678").await, 400, "premium rate is not");
    assert_eq!(send("+18762101234").await, 400, "nor Jamaica");

    // Only operators set it, only for tenants that exist, only to what is valid.
    assert_eq!(put_json(&test, path, &admin, &widened).await.status, 403);
    let missing = put_json(&test, "/v1/tenants/nobody/sms-policy", &operator, &widened).await;
    assert_eq!(missing.status, 404);
    let before = test.get("/v1/tenants/acme", &operator).await.body;
    for (body, field) in [
        (json!({ "countries": ["USA"] }), "/countries/0"),
        (json!({ "countries": ["US", "ZZ"] }), "/countries/1"),
        (json!({ "countries": ["US", "us"] }), "/countries/1"),
        (json!({ "countries": ["US", "US"] }), "/countries/1"),
        (json!({ "number_types": ["premium"] }), "/number_types/0"),
        (json!({ "countries": "US" }), "/countries"),
        (json!({ "regions": ["US"] }), "/regions"),
    ] {
        let answer = put_json(&test, path, &operator, &body).await;
        assert_eq!(answer.status, 400, "{body}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(
        test.get("/v1/tenants/acme", &operator).await.body,
        before,
        "unchanged"
    );

    // Each change is in the tenant's audit log, by the operator.
    let log = test.get("/v1/tenants/acme/audit", &operator).await.body;
    let changes: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tenant.sms_policy_changed")
        .collect();
    assert_eq!(changes.len(), 1, "{log}");
    assert_eq!(changes[0]["target"], "acme");

    // Nothing set: back to the platform's default. An empty list: texts nowhere.
    let reset = put_json(&test, path, &operator, &json!({})).await;
    assert_eq!(reset.body["sms_policy"]["countries_from_default"], true);
    assert_eq!(send("+447400123456").await, 400);
    let nowhere = put_json(&test, path, &operator, &json!({ "countries": [] })).await;
    assert_eq!(nowhere.body["sms_policy"]["countries"], json!([]));
    assert_eq!(send("+14155550100").await, 400);

    // A new tenant can be given its own policy when it is created.
    let created = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({ "tenant_id": "travelco", "plan": "starter",
                     "sms_policy": { "countries": ["GB", "FR"] } })
            .to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["sms_policy"]["countries"], json!(["FR", "GB"]));
    assert_eq!(
        created.body["sms_policy"]["number_types_from_default"],
        true
    );
    let bad = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({ "tenant_id": "badco", "plan": "starter",
                     "sms_policy": { "countries": ["XX"] } })
            .to_string(),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["field"], "/sms_policy/countries/0");
    assert_eq!(test.get("/v1/tenants/badco", &operator).await.status, 404);
}
