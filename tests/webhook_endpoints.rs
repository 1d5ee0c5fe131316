//! Webhook endpoints (issue 15): a tenant admin registers, reads, lists, changes,
//! disables, enables and deletes them, each audited; the signing secret is shown to
//! the registration (and its retry) only and stored sealed; other roles and other
//! tenants cannot reach them; bad endpoints are refused naming the field, and nothing
//! is stored.

use herald_tests::TestCloud;
use herald_tests::bad_request::Case;
use serde_json::{Value, json};

const ENDPOINTS: &str = "/v1/webhooks/endpoints";
/// The one loopback address a dev stack (the local cloud's) may deliver to.
const LOCAL_RECEIVER: &str = "http://127.0.0.1:9/hooks";

/// The tenant's items apart from its request-rate counters, which every request moves.
async fn items_but_rate(test: &TestCloud, tenant: &str) -> Vec<String> {
    let mut items = test.tenant_items(tenant).await;
    items.retain(|item| !item.contains("#RATE#"));
    items
}

async fn send(
    test: &TestCloud,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> herald_tests::Answer {
    test.request(
        method,
        path,
        Some(token),
        Some("application/json"),
        Some(body.to_string().into_bytes()),
    )
    .await
}

async fn audit_actions(test: &TestCloud, admin: &str) -> Vec<String> {
    let audit = test.get("/v1/audit", admin).await.body;
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .filter(|a| a.starts_with("webhook_endpoint."))
        .collect()
}

#[tokio::test]
async fn an_admin_registers_changes_disables_and_deletes_an_endpoint_audited() {
    let test = TestCloud::start("endpoints-life").await;
    let admin = test.token("acme", "admin").await;
    let body = json!({
        "url": LOCAL_RECEIVER,
        "event_types": ["message.delivered", "message.undelivered"],
        "description": "billing backend",
        "rate_limit_per_second": 20,
    });
    let created = test
        .post_json_with_key(ENDPOINTS, &admin, "ep-1", &body.to_string())
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ep_"), "{id}");
    assert_eq!(created.headers["location"], format!("{ENDPOINTS}/{id}"));
    assert_eq!(created.body["status"], "enabled");
    assert_eq!(created.body["rate_limit_per_second"], 20);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let encoded = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert!((24..=64).contains(&bytes.len()), "{} bytes", bytes.len());

    // A retry with the same key is the same endpoint and secret; nothing new is stored.
    let items_before_retry = items_but_rate(&test, "acme").await;
    let replay = test
        .post_json_with_key(ENDPOINTS, &admin, "ep-1", &body.to_string())
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], id.as_str());
    assert_eq!(replay.body["secret"], secret.as_str());
    assert_eq!(items_but_rate(&test, "acme").await, items_before_retry);
    // The secret is stored sealed: neither its text nor its base64 is in the table.
    let everything = items_before_retry.join("\n");
    assert!(
        !everything.contains(encoded),
        "the secret is stored in the clear"
    );

    // Read and listed without the secret.
    let read = test.get(&format!("{ENDPOINTS}/{id}"), &admin).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["url"], LOCAL_RECEIVER);
    assert!(read.body.get("secret").is_none());
    let listed = test.get(ENDPOINTS, &admin).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let ids: Vec<&str> = listed.body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert!(!listed.body.to_string().contains(encoded));

    // Changed whole: an absent rate limit is none.
    let path = format!("{ENDPOINTS}/{id}");
    let changed = send(
        &test,
        "PUT",
        &path,
        &admin,
        &json!({ "url": "http://127.0.0.1:10/hooks", "event_types": ["batch.completed"] }),
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["url"], "http://127.0.0.1:10/hooks");
    assert_eq!(changed.body["event_types"], json!(["batch.completed"]));
    assert_eq!(changed.body["description"], "");
    assert_eq!(changed.body["rate_limit_per_second"], Value::Null);

    // Disabled by an admin, twice: the second changes nothing.
    let disabled = test.post_json(&format!("{path}/disable"), &admin, "").await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(disabled.body["disabled_reason"], "admin");
    let again = test.post_json(&format!("{path}/disable"), &admin, "").await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let enabled = test.post_json(&format!("{path}/enable"), &admin, "").await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    assert_eq!(enabled.body["status"], "enabled");
    assert_eq!(enabled.body["disabled_reason"], Value::Null);

    // Deleted: gone from reads, lists and changes; its secret erased.
    let deleted = test
        .request("DELETE", &path, Some(&admin), None, None)
        .await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    assert_eq!(test.get(&path, &admin).await.status, 404);
    assert_eq!(
        test.request("DELETE", &path, Some(&admin), None, None)
            .await
            .status,
        404
    );
    assert_eq!(
        test.post_json(&format!("{path}/enable"), &admin, "")
            .await
            .status,
        404
    );
    let listed = test.get(ENDPOINTS, &admin).await;
    assert_eq!(listed.body["endpoints"], json!([]));
    let sealed_left = items_but_rate(&test, "acme")
        .await
        .iter()
        .filter(|item| item.contains("\"secret\""))
        .count();
    assert_eq!(sealed_left, 0, "a deleted endpoint keeps its sealed secret");
    let replay = test
        .post_json_with_key(ENDPOINTS, &admin, "ep-1", &body.to_string())
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["secret"], Value::Null);

    // One audit entry per change, none for the disable that changed nothing.
    let mut actions = audit_actions(&test, &admin).await;
    actions.sort();
    assert_eq!(
        actions,
        [
            "webhook_endpoint.created",
            "webhook_endpoint.deleted",
            "webhook_endpoint.disabled",
            "webhook_endpoint.enabled",
            "webhook_endpoint.updated",
        ]
    );
}

#[tokio::test]
async fn endpoints_are_their_tenants_admins_alone() {
    let test = TestCloud::start("endpoints-isolated").await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let globex = test.token("globex", "admin").await;
    let body = json!({ "url": LOCAL_RECEIVER, "event_types": ["message.sent"] });
    let created = test.post_json(ENDPOINTS, &admin, &body.to_string()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let path = format!("{ENDPOINTS}/{}", created.body["id"].as_str().unwrap());
    let before = items_but_rate(&test, "acme").await;

    // Senders and viewers may not touch them.
    assert_eq!(test.get(ENDPOINTS, &sender).await.status, 403);
    assert_eq!(
        test.post_json(ENDPOINTS, &sender, &body.to_string())
            .await
            .status,
        403
    );
    assert_eq!(test.get(&path, &sender).await.status, 403);

    // Another tenant's admin finds nothing, as if it did not exist.
    assert_eq!(test.get(&path, &globex).await.status, 404);
    assert_eq!(send(&test, "PUT", &path, &globex, &body).await.status, 404);
    assert_eq!(
        test.request("DELETE", &path, Some(&globex), None, None)
            .await
            .status,
        404
    );
    assert_eq!(
        test.post_json(&format!("{path}/disable"), &globex, "")
            .await
            .status,
        404
    );
    assert_eq!(
        test.get(ENDPOINTS, &globex).await.body["endpoints"],
        json!([])
    );
    // Malformed ids are missing ones.
    assert_eq!(
        test.get(&format!("{ENDPOINTS}/ep_nope"), &admin)
            .await
            .status,
        404
    );
    assert_eq!(items_but_rate(&test, "acme").await, before);
}

#[tokio::test]
async fn bad_endpoints_are_refused_naming_the_field_and_nothing_is_stored() {
    let test = TestCloud::start("endpoints-bad").await;
    let admin = test.token("acme", "admin").await;
    let before = items_but_rate(&test, "acme").await;
    let good = json!({ "url": LOCAL_RECEIVER, "event_types": ["message.delivered"] });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let url = |raw: &str| with("url", json!(raw));
    let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let cases = vec![
        Case::only_field(
            "private address",
            ENDPOINTS,
            &url("https://10.0.0.1/h"),
            "/url",
        ),
        Case::only_field(
            "private /16",
            ENDPOINTS,
            &url("https://192.168.1.20/h"),
            "/url",
        ),
        Case::only_field(
            "loopback but 127.0.0.1",
            ENDPOINTS,
            &url("https://127.0.0.2/h"),
            "/url",
        ),
        Case::only_field("IPv6 loopback", ENDPOINTS, &url("https://[::1]/h"), "/url"),
        Case::only_field(
            "metadata",
            ENDPOINTS,
            &url("https://169.254.169.254/latest/meta-data/"),
            "/url",
        ),
        Case::only_field(
            "IPv6-mapped loopback",
            ENDPOINTS,
            &url("https://[::ffff:127.0.0.1]/h"),
            "/url",
        ),
        Case::only_field(
            "IPv6-mapped metadata",
            ENDPOINTS,
            &url("https://[::ffff:a9fe:a9fe]/h"),
            "/url",
        ),
        Case::only_field(
            "decimal loopback",
            ENDPOINTS,
            &url("http://2130706433/h"),
            "/url",
        ),
        Case::only_field(
            "decimal metadata",
            ENDPOINTS,
            &url("https://2852039166/h"),
            "/url",
        ),
        Case::only_field(
            "hex private",
            ENDPOINTS,
            &url("https://0x0a000001/h"),
            "/url",
        ),
        Case::only_field("localhost", ENDPOINTS, &url("https://localhost/h"), "/url"),
        Case::only_field(
            "http outside 127.0.0.1",
            ENDPOINTS,
            &url("http://hooks.example.com/h"),
            "/url",
        ),
        Case::only_field(
            "another scheme",
            ENDPOINTS,
            &url("ftp://hooks.example.com/h"),
            "/url",
        ),
        Case::only_field(
            "userinfo",
            ENDPOINTS,
            &url("https://me:pw@hooks.example.com/h"),
            "/url",
        ),
        Case::only_field("over-long", ENDPOINTS, &url(&long), "/url"),
        Case::only_field("not a URL", ENDPOINTS, &url("hooks.example.com"), "/url"),
        Case::only_field(
            "unknown event",
            ENDPOINTS,
            &with("event_types", json!(["message.read"])),
            "/event_types/0",
        ),
        Case::only_field(
            "no events",
            ENDPOINTS,
            &with("event_types", json!([])),
            "/event_types",
        ),
        Case::only_field(
            "an event twice",
            ENDPOINTS,
            &with("event_types", json!(["message.sent", "message.sent"])),
            "/event_types/1",
        ),
        Case::only_field(
            "long description",
            ENDPOINTS,
            &with("description", json!("d".repeat(257))),
            "/description",
        ),
        Case::only_field(
            "control character",
            ENDPOINTS,
            &with("description", json!("a\u{7}b")),
            "/description",
        ),
        Case::only_field(
            "rate 0",
            ENDPOINTS,
            &with("rate_limit_per_second", json!(0)),
            "/rate_limit_per_second",
        ),
        Case::only_field(
            "rate 1001",
            ENDPOINTS,
            &with("rate_limit_per_second", json!(1001)),
            "/rate_limit_per_second",
        ),
        Case::raw(
            "unknown field",
            ENDPOINTS,
            Some("application/json"),
            with("secret", json!("whsec_x")).to_string().into_bytes(),
            400,
            None,
        ),
    ];
    test.refuses_all(&admin, cases).await;
    assert_eq!(
        items_but_rate(&test, "acme").await,
        before,
        "a refused endpoint stored something"
    );

    // Every failing field at once, and a change refused the same way changes nothing.
    let all_bad =
        json!({ "url": "https://10.0.0.1/", "event_types": ["nope"], "rate_limit_per_second": 0 });
    let refused = test
        .post_json(ENDPOINTS, &admin, &all_bad.to_string())
        .await;
    assert_eq!(refused.status, 400);
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["/url", "/event_types/0", "/rate_limit_per_second"]);
    let created = test.post_json(ENDPOINTS, &admin, &good.to_string()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let path = format!("{ENDPOINTS}/{}", created.body["id"].as_str().unwrap());
    let before = items_but_rate(&test, "acme").await;
    let change = send(
        &test,
        "PUT",
        &path,
        &admin,
        &url("https://169.254.169.254/"),
    )
    .await;
    assert_eq!(change.status, 400, "{:?}", change.body);
    assert_eq!(change.body["errors"][0]["field"], "/url");
    assert_eq!(items_but_rate(&test, "acme").await, before);
}
