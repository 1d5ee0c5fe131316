//! Every listing pages with an opaque cursor and is never silently cut short: a day's
//! 501 audit entries and a tenant's 120 machine clients read whole across pages, newest
//! first, each exactly once; a cursor from another tenant, another listing, another
//! query, or altered, is a 400 naming `cursor` that shows nothing.

use std::time::Duration;

use futures::StreamExt;
use herald::domain::{AuditEntry, MachineClient, Registration};
use herald::{TenantId, Timestamp};
use herald_tests::TestCloud;
use serde_json::Value;

/// A day in the past, so no entry of the tests' own requests falls on it.
const DAY: &str = "2025-01-15";

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn noon() -> Timestamp {
    Timestamp::parse(&format!("{DAY}T12:00:00Z")).unwrap()
}

fn entry(at: Timestamp, target: String) -> AuditEntry {
    AuditEntry {
        at,
        actor: "test".into(),
        action: "test.recorded".into(),
        target,
        request_id: "test".into(),
    }
}

/// `count` audit entries of `tenant` on `DAY`, a millisecond apart, targets
/// `{prefix}-000`... in time order.
async fn audit_entries(test: &TestCloud, tenant: &TenantId, prefix: &str, count: usize) {
    let store = &test.cloud.sender.store;
    futures::stream::iter(0..count)
        .map(|i| {
            let at = noon().plus(Duration::from_millis(i as u64));
            let entry = entry(at, format!("{prefix}-{i:03}"));
            async move { store.record_audit(tenant, &entry, 0).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// `count` machine clients of `tenant` registered a second apart (`client000`... in
/// time order), every third one revoked; answers the revoked ones' ids.
async fn machine_clients(test: &TestCloud, tenant: &TenantId, count: usize) -> Vec<String> {
    let store = &test.cloud.sender.store;
    let mut revoked = Vec::new();
    for i in 0..count {
        let at = noon().plus(Duration::from_secs(i as u64));
        let client = MachineClient {
            client_id: format!("client{i:03}"),
            tenant: tenant.clone(),
            name: format!("backend {i}"),
            scopes: vec![herald::auth::Scope::MessagesRead],
            created_at: at,
            created_by: "test".into(),
            revoked_at: None,
        };
        let audit = entry(at, client.client_id.clone());
        let registered = store.register_client(&client, 1_000, &audit, 0).await;
        assert_eq!(registered.unwrap(), Registration::Registered);
        if i % 3 == 0 {
            store
                .revoke_client(tenant, &client.client_id, &audit, 0)
                .await
                .unwrap();
            revoked.push(client.client_id);
        }
    }
    revoked
}

/// Follows `next_url` from `first` to the last page; answers each page's `field`
/// values of the listed array, page by page.
async fn all_pages(
    test: &TestCloud,
    token: &str,
    first: &str,
    list: &str,
    field: &str,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = Some(first.to_owned());
    while let Some(path) = url {
        let answer = test.get(&path, token).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        let values: Vec<String> = answer.body[list]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no {list}"))
            .iter()
            .map(|item| item[field].as_str().unwrap().to_owned())
            .collect();
        pages.push(values);
        url = answer.body["next_url"].as_str().map(str::to_owned);
        assert_eq!(
            url.is_some(),
            answer.body["next_cursor"].is_string(),
            "next_url and next_cursor go together"
        );
        assert!(pages.len() <= 20, "{first} does not end");
    }
    pages
}

fn sizes(pages: &[Vec<String>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

#[tokio::test]
async fn a_days_501_audit_entries_read_whole_across_pages_newest_first() {
    let test = TestCloud::start_with("listings-audit", |o| o.run_queues = false).await;
    let admin = test.token("acme", "admin").await;
    let operator = test.token("herald", "operator").await;
    audit_entries(&test, &tenant("acme"), "entry", 501).await;
    let newest_first: Vec<String> = (0..501).rev().map(|i| format!("entry-{i:03}")).collect();

    for (token, first, page_sizes) in [
        (
            &admin,
            format!("/v1/audit?day={DAY}&limit=100"),
            vec![100, 100, 100, 100, 100, 1],
        ),
        (&admin, format!("/v1/audit?day={DAY}"), {
            let mut sizes = vec![50; 10];
            sizes.push(1);
            sizes
        }),
        (
            &operator,
            format!("/v1/tenants/acme/audit?day={DAY}&limit=100"),
            vec![100, 100, 100, 100, 100, 1],
        ),
    ] {
        let pages = all_pages(&test, token, &first, "entries", "target").await;
        assert_eq!(sizes(&pages), page_sizes, "{first}");
        // Every entry once, none missing, newest first across page boundaries.
        assert_eq!(pages.concat(), newest_first, "{first}");
    }
}

#[tokio::test]
async fn a_tenants_120_clients_read_whole_across_pages_and_the_filter_hides_revoked_ones() {
    let test = TestCloud::start_with("listings-clients", |o| o.run_queues = false).await;
    let admin = test.token("acme", "admin").await;
    let revoked = machine_clients(&test, &tenant("acme"), 120).await;
    let newest_first: Vec<String> = (0..120).rev().map(|i| format!("client{i:03}")).collect();
    let active: Vec<String> = newest_first
        .iter()
        .filter(|id| !revoked.contains(id))
        .cloned()
        .collect();
    let revoked_newest_first: Vec<String> = revoked.iter().rev().cloned().collect();

    for (first, page_sizes, expected) in [
        ("/v1/clients?limit=100", vec![100, 20], &newest_first),
        ("/v1/clients", vec![50, 50, 20], &newest_first),
        (
            "/v1/clients?status=all&limit=60",
            vec![60, 60],
            &newest_first,
        ),
        (
            "/v1/clients?status=active&limit=30",
            vec![30, 30, 20],
            &active,
        ),
        (
            "/v1/clients?status=revoked&limit=15",
            vec![15, 15, 10],
            &revoked_newest_first,
        ),
    ] {
        let pages = all_pages(&test, &admin, first, "clients", "client_id").await;
        assert_eq!(sizes(&pages), page_sizes, "{first}");
        assert_eq!(&pages.concat(), expected, "{first}");
    }
    let active_page = test
        .get("/v1/clients?status=active&limit=100", &admin)
        .await;
    let clients = active_page.body["clients"].as_array().unwrap();
    assert!(clients.iter().all(|c| c["revoked_at"].is_null()));
}

/// `path` with one more query parameter.
fn with(path: &str, parameter: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}{parameter}")
}

/// The `next_cursor` of the first page of `path` (one item per page).
async fn first_cursor(test: &TestCloud, token: &str, path: &str) -> String {
    let answer = test.get(&with(path, "limit=1"), token).await;
    assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    answer.body["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} has a second page"))
        .to_owned()
}

/// The cursor with its `i`th character replaced by another URL-safe one.
fn altered(cursor: &str, i: usize) -> String {
    let mut chars: Vec<char> = cursor.chars().collect();
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn cursors_from_another_tenant_listing_or_query_and_altered_ones_are_refused() {
    let test = TestCloud::start_with("listings-cursors", |o| o.run_queues = false).await;
    let acme = test.token("acme", "admin").await;
    let globex = test.token("globex", "admin").await;
    let operator = test.token("herald", "operator").await;
    let sender = test.token("acme", "sender").await;
    audit_entries(&test, &tenant("acme"), "acme", 3).await;
    audit_entries(&test, &tenant("globex"), "globex", 3).await;
    machine_clients(&test, &tenant("acme"), 3).await;
    let recipients: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({ "to": herald_tests::number(i), "variables": {} }))
        .collect();
    let batch_a = test.send_batch(&sender, "Hi", &recipients).await;
    let batch_b = test.send_batch(&sender, "Hi", &recipients).await;

    let audit = format!("/v1/audit?day={DAY}");
    let acme_audit = first_cursor(&test, &acme, &audit).await;
    let globex_audit = first_cursor(&test, &globex, &audit).await;
    let acme_clients = first_cursor(&test, &acme, "/v1/clients").await;
    let operator_acme = format!("/v1/tenants/acme/audit?day={DAY}");
    let operator_audit = first_cursor(&test, &operator, &operator_acme).await;
    let messages_a = format!("/v1/batches/{batch_a}/messages");
    let batch_cursor = first_cursor(&test, &sender, &messages_a).await;

    // Each cursor works where it came from.
    for (token, path, cursor) in [
        (&acme, audit.as_str(), &acme_audit),
        (&acme, "/v1/clients", &acme_clients),
        (&operator, operator_acme.as_str(), &operator_audit),
        (&sender, messages_a.as_str(), &batch_cursor),
    ] {
        let answer = test
            .get(&with(path, &format!("cursor={cursor}")), token)
            .await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    }

    let cases: Vec<(&str, &String, String)> = vec![
        (
            "another tenant's",
            &acme,
            format!("{audit}&cursor={globex_audit}"),
        ),
        (
            "another listing's",
            &acme,
            format!("/v1/clients?cursor={acme_audit}"),
        ),
        (
            "the clients' on the audit log",
            &acme,
            format!("{audit}&cursor={acme_clients}"),
        ),
        (
            "another day's",
            &acme,
            format!("/v1/audit?day=2025-01-16&cursor={acme_audit}"),
        ),
        (
            "the tenant's own audit cursor on the operator's route",
            &operator,
            format!("{operator_acme}&cursor={acme_audit}"),
        ),
        (
            "one tenant's operator cursor on another tenant",
            &operator,
            format!("/v1/tenants/globex/audit?day={DAY}&cursor={operator_audit}"),
        ),
        (
            "a filtered listing's on the unfiltered one",
            &acme,
            format!("/v1/clients?status=active&cursor={acme_clients}"),
        ),
        (
            "another batch's",
            &sender,
            format!("/v1/batches/{batch_b}/messages?cursor={batch_cursor}"),
        ),
        (
            "an unfiltered batch listing's on a filtered one",
            &sender,
            format!("{messages_a}?status=accepted&cursor={batch_cursor}"),
        ),
        ("a bare index", &sender, format!("{messages_a}?cursor=1")),
        ("an empty one", &acme, format!("{audit}&cursor=")),
        ("not a cursor", &acme, format!("{audit}&cursor=abc")),
        (
            "altered at its start",
            &acme,
            format!("{audit}&cursor={}", altered(&acme_audit, 0)),
        ),
        (
            "altered in its middle",
            &acme,
            format!(
                "{audit}&cursor={}",
                altered(&acme_audit, acme_audit.len() / 2)
            ),
        ),
        (
            "altered at its end",
            &acme,
            format!(
                "{audit}&cursor={}",
                altered(&acme_audit, acme_audit.len() - 1)
            ),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, token, path) in &cases {
        let answer = test.get(path, token).await;
        let named = answer.body["errors"][0]["field"] == "cursor";
        let shows_nothing = answer.body.get("entries").is_none()
            && answer.body.get("clients").is_none()
            && answer.body.get("messages").is_none();
        if answer.status != 400 || !named || !shows_nothing {
            wrong.push(format!("{name}: {} {}", answer.status, answer.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "cursors accepted or wrongly refused:\n{}",
        wrong.join("\n")
    );

    for path in [audit.as_str(), "/v1/clients", messages_a.as_str()] {
        for limit in ["0", "101", "ten", "-1"] {
            let answer = test
                .get(&with(path, &format!("limit={limit}")), &acme)
                .await;
            assert_eq!(
                answer.status, 400,
                "{path} limit={limit}: {:?}",
                answer.body
            );
            assert_eq!(answer.body["errors"][0]["field"], "limit");
        }
    }
    let bad_filter = test.get("/v1/clients?status=gone", &acme).await;
    assert_eq!(bad_filter.status, 400);
    assert_eq!(bad_filter.body["errors"][0]["field"], "status");
}
