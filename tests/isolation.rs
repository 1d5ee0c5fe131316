//! Tenant isolation across the whole API: every route that takes an id, walked from
//! the API's route list, answers another tenant exactly as it answers a missing id and
//! changes nothing of the owner's; listings and keys never cross tenants.

use herald::auth::{Access, route_access};
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};

const TEMPLATE: &str = "Hi {{name}}";

fn recipients(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({ "to": number(i), "variables": { "name": format!("P{i}") } }))
        .collect()
}

/// The ids the owner holds, one of each kind a route can take.
struct Ids<'a> {
    batch: &'a str,
    tenant: &'a str,
    client: &'a str,
    user: &'a str,
    endpoint: &'a str,
}

/// `path` with `{id}` standing for one of `ids`: a message id on message routes, the
/// tenant on tenant routes, the client on client routes, the user on user routes, the
/// webhook endpoint on endpoint routes, the batch elsewhere.
fn with_id(path: &str, ids: &Ids<'_>) -> String {
    let Ids {
        batch,
        tenant,
        client,
        user,
        endpoint,
    } = ids;
    let id = if path.starts_with("/v1/messages/") {
        format!("{batch}.0")
    } else if path.starts_with("/v1/tenants/") {
        tenant.to_string()
    } else if path.starts_with("/v1/clients/") {
        client.to_string()
    } else if path.starts_with("/v1/users/") {
        user.to_string()
    } else if path.starts_with("/v1/webhooks/endpoints/") {
        endpoint.to_string()
    } else {
        batch.to_string()
    };
    path.replace("{id}", &id)
}

#[tokio::test]
async fn another_tenants_ids_answer_as_missing_ones_on_every_route() {
    let test = TestCloud::start_with("isolation-ids", |o| o.run_queues = false).await;
    let owner = test.token("acme", "admin").await;
    let intruder = test.token("globex", "admin").await;
    let batch = test.send_batch(&owner, TEMPLATE, &recipients(3)).await;
    let (client, _) = test.machine_client(&owner, &["messages:send"]).await;
    let invited = json!({ "email": "ada@acme.example", "role": "sender" }).to_string();
    let invited = test.post_json("/v1/users", &owner, &invited).await;
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    let user = invited.body["user_id"].as_str().unwrap().to_owned();
    let endpoint_body = json!({ "url": "http://127.0.0.1:9/h", "event_types": ["message.sent"] });
    let endpoint_body = endpoint_body.to_string();
    let created = test
        .post_json("/v1/webhooks/endpoints", &owner, &endpoint_body)
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let endpoint = created.body["id"].as_str().unwrap().to_owned();
    let theirs_ids = Ids {
        batch: &batch,
        tenant: "acme",
        client: &client,
        user: &user,
        endpoint: &endpoint,
    };
    let missing = ulid::Ulid::new().to_string();
    let missing_client = missing.to_lowercase();
    let absent_ids = Ids {
        batch: &missing,
        tenant: "no-such-tenant",
        client: &missing_client,
        user: "6f1c2a3e-0b7d-4f7e-9c55-3a1d2e4b5c6d",
        endpoint: &format!("ep_{missing}"),
    };
    let before = test.tenant_items("acme").await;
    // A webhook recover names a time within the last week.
    let now = herald::clock::Clock::timestamp(&*herald::clock::system());
    let recover_body = json!({ "since": now.to_string() }).to_string();

    let routes = herald_api::routes();
    let id_routes: Vec<_> = routes
        .iter()
        .map(|(method, path)| (method.as_str(), path.as_str()))
        .filter(|(_, path)| path.contains("{id}"))
        .collect();
    assert!(id_routes.len() >= 8, "{id_routes:?}");
    for (method, path) in id_routes {
        let theirs = with_id(path, &theirs_ids);
        let absent = with_id(path, &absent_ids);
        // A body the route would take from the owner: only the id is wrong.
        let body = if path.ends_with("/role") {
            r#"{"role": "viewer"}"#
        } else if method == "PUT" && path.starts_with("/v1/webhooks/") {
            endpoint_body.as_str()
        } else if path.ends_with("/recover") {
            recover_body.as_str()
        } else if path.ends_with("/test") {
            "{}"
        } else {
            ""
        };
        let ask = |target: String| {
            let test = &test;
            let intruder = &intruder;
            async move {
                if method == "GET" {
                    test.get(&target, intruder).await
                } else {
                    // POST and PUT alike, each with its own method.
                    let body = Some(body.as_bytes().to_vec());
                    let json = Some("application/json");
                    test.request(method, &target, Some(intruder), json, body)
                        .await
                }
            }
        };
        let (theirs_answer, absent_answer) = (ask(theirs).await, ask(absent).await);
        match route_access(method, path) {
            Some(Access::Requires(permission)) if permission.is_platform() => {
                // A tenant admin is not an operator: refused whatever the id.
                assert_eq!(theirs_answer.status, 403, "{method} {path}");
                assert_eq!(absent_answer.status, 403, "{method} {path}");
            }
            Some(Access::Requires(_)) => {
                assert_eq!(
                    theirs_answer.status, 404,
                    "{method} {path}: {:?}",
                    theirs_answer.body
                );
                assert_eq!(
                    theirs_answer.body, absent_answer.body,
                    "{method} {path}: another tenant's id must read as a missing one"
                );
            }
            other => panic!("{method} {path} takes an id but has access {other:?}"),
        }
    }
    assert_eq!(
        test.tenant_items("acme").await,
        before,
        "nothing of acme's changed"
    );

    // The ids are real: the owner reads every one of them.
    for (method, path) in &routes {
        let (method, path) = (method.as_str(), path.as_str());
        let owned =
            matches!(route_access(method, path), Some(Access::Requires(p)) if !p.is_platform());
        if method == "GET" && owned && path.contains("{id}") {
            let answer = test.get(&with_id(path, &theirs_ids), &owner).await;
            assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        }
    }
}

#[tokio::test]
async fn listings_usage_audit_and_keys_stay_within_the_tenant() {
    let test = TestCloud::start_with("isolation-lists", |o| o.run_queues = false).await;
    let acme = test.token("acme", "admin").await;
    let globex = test.token("globex", "admin").await;

    let payload = |count| json!({ "template": TEMPLATE, "recipients": recipients(count) });
    let first = test
        .post_json_with_key("/v1/batches", &acme, "shared-key", &payload(5).to_string())
        .await;
    assert_eq!(first.status, 202);
    // The same key from another tenant is that tenant's own key: a new batch, not a
    // replay of acme's answer and not a 422 for a different body.
    let second = test
        .post_json_with_key(
            "/v1/batches",
            &globex,
            "shared-key",
            &payload(2).to_string(),
        )
        .await;
    assert_eq!(second.status, 202, "{:?}", second.body);
    assert!(second.headers.get("idempotent-replayed").is_none());
    let (acme_batch, globex_batch) = (
        first.body["batch_id"].as_str().unwrap(),
        second.body["batch_id"].as_str().unwrap(),
    );
    assert_ne!(acme_batch, globex_batch);

    let listing = test
        .get(&format!("/v1/batches/{globex_batch}/messages"), &globex)
        .await;
    let ids: Vec<_> = listing.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [format!("{globex_batch}.0"), format!("{globex_batch}.1")]
    );

    let usage = test.get("/v1/usage", &globex).await.body;
    assert_eq!(usage["tenant_id"], "globex");
    assert_eq!(usage["sends"]["used"], 2, "acme's 5 sends are not globex's");

    let audit = test.get("/v1/audit", &globex).await.body;
    assert_eq!(audit["tenant_id"], "globex");
    let targets: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [globex_batch], "only globex's own batch");
}
