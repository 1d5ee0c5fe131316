//! Machine clients: a tenant admin registers a Cognito client-credentials client; its
//! tokens act for that tenant with its scopes only; revoking it refuses its tokens at
//! once; bad registrations change nothing, in Herald's table or in Cognito.

use herald::client_sweep::ClientSweepReport;
use herald::identity::MACHINE_CLIENT_PREFIX;
use herald_tests::TestCloud;
use serde_json::{Value, json};

const SMS: &str = r#"{"to": "+14155550100", "body": "from a backend"}"#;

/// The tenant's items apart from its request-rate counters, which every request moves.
async fn items_but_rate(test: &TestCloud, tenant: &str) -> Vec<String> {
    let mut items = test.tenant_items(tenant).await;
    items.retain(|item| !item.contains("#RATE#"));
    items
}

async fn cognito_clients(test: &TestCloud) -> usize {
    test.cloud
        .clients
        .cognito
        .list_user_pool_clients()
        .user_pool_id(test.pool())
        .max_results(60)
        .send()
        .await
        .unwrap()
        .user_pool_clients()
        .len()
}

#[tokio::test]
async fn a_machine_clients_tokens_act_for_its_tenant() {
    let test = TestCloud::start("clients-act").await;
    let admin = test.token("acme", "admin").await;
    let globex = test.token("globex", "sender").await;

    let body = json!({ "name": "billing backend", "scopes": ["messages:send", "messages:read"] });
    let registered = test
        .post_json_with_key("/v1/clients", &admin, "reg-1", &body.to_string())
        .await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let client_id = registered.body["client_id"].as_str().unwrap().to_owned();
    let secret = registered.body["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        registered.body["scopes"],
        json!(["messages:send", "messages:read"])
    );
    assert_eq!(
        registered.body["token_url"].as_str().unwrap(),
        test.cloud.api_config.auth.token_url
    );
    assert_eq!(
        registered.headers["location"],
        format!("/v1/clients/{client_id}")
    );

    // A retry with the same key is the same client, secret included, and no new one.
    let clients_before_retry = cognito_clients(&test).await;
    let replay = test
        .post_json_with_key("/v1/clients", &admin, "reg-1", &body.to_string())
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["client_id"], client_id.as_str());
    assert_eq!(replay.body["client_secret"], secret.as_str());
    assert_eq!(cognito_clients(&test).await, clients_before_retry);

    // The secret is Cognito's alone: nothing in Herald's table holds it.
    let everything = test.tenant_items("acme").await.join("\n");
    assert!(
        !everything.contains(&secret),
        "the secret is stored by Herald"
    );

    let token = test.client_token(&client_id, &secret, None).await.unwrap();
    let sent = test.post_json("/v1/messages", &token, SMS).await;
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let message = sent.body["id"].as_str().unwrap();
    let read = test.get(&format!("/v1/messages/{message}"), &token).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        test.get("/v1/usage", &token).await.body["tenant_id"],
        "acme"
    );

    // globex's message is not the client's to read.
    let theirs = test.send_sms(&globex, "+14155550101", "globex's").await;
    let foreign = test.get(&format!("/v1/messages/{theirs}"), &token).await;
    assert_eq!(foreign.status, 404, "{:?}", foreign.body);

    // The audit log names who did what: the admin registered, the client sent.
    let audit = test.get("/v1/audit", &admin).await.body;
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        entries
            .iter()
            .any(|(action, actor)| action == "client.registered" && !actor.starts_with("client:")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(_, actor)| actor == &format!("client:{client_id}")),
        "{entries:?}"
    );

    let listed = test.get("/v1/clients", &admin).await;
    assert_eq!(listed.status, 200);
    let clients = listed.body["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["client_id"], client_id.as_str());
    assert!(clients[0].get("client_secret").is_none());
}

#[tokio::test]
async fn scopes_bound_what_a_client_may_do() {
    let test = TestCloud::start("clients-scopes").await;
    let admin = test.token("acme", "admin").await;
    let (reader, reader_secret) = test.machine_client(&admin, &["messages:read"]).await;
    let (both, both_secret) = test
        .machine_client(&admin, &["messages:send", "messages:read"])
        .await;

    let read_only = test
        .client_token(&reader, &reader_secret, None)
        .await
        .unwrap();
    let refused = test.post_json("/v1/messages", &read_only, SMS).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(test.get("/v1/usage", &read_only).await.status, 200);

    // A token asked for with fewer scopes than the client holds has only those.
    let narrowed = test
        .client_token(&both, &both_secret, Some("herald/messages:read"))
        .await
        .unwrap();
    assert_eq!(
        test.post_json("/v1/messages", &narrowed, SMS).await.status,
        403
    );

    // No scope reaches people's business: clients, the audit log, operator routes.
    let full = test.client_token(&both, &both_secret, None).await.unwrap();
    for (method, path) in [
        ("GET", "/v1/clients"),
        ("POST", "/v1/clients"),
        ("GET", "/v1/audit"),
        ("POST", "/v1/tenants"),
    ] {
        let answer = if method == "POST" {
            test.post_json(path, &full, r#"{"name": "x", "scopes": ["messages:send"]}"#)
                .await
        } else {
            test.get(path, &full).await
        };
        assert_eq!(answer.status, 403, "{method} {path}: {:?}", answer.body);
    }

    // The token endpoint checks the secret and the scopes the client was given.
    let (status, body) = test
        .client_token(&reader, "not-the-secret", None)
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = test
        .client_token(&reader, &reader_secret, Some("herald/messages:send"))
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn a_revoked_client_is_refused_at_once() {
    let test = TestCloud::start("clients-revoke").await;
    let admin = test.token("acme", "admin").await;
    let globex_admin = test.token("globex", "admin").await;
    let (client, secret) = test.machine_client(&admin, &["messages:send"]).await;
    let token = test.client_token(&client, &secret, None).await.unwrap();
    assert_eq!(
        test.post_json("/v1/messages", &token, SMS).await.status,
        202
    );

    // Another tenant's admin cannot revoke it: it is missing to them.
    let path = format!("/v1/clients/{client}/revoke");
    let foreign = test.post_json(&path, &globex_admin, "").await;
    assert_eq!(foreign.status, 404, "{:?}", foreign.body);

    let revoked = test.post_json(&path, &admin, "").await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());

    // The token it already holds is refused, and it gets no new one.
    let refused = test.post_json("/v1/messages", &token, SMS).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("was revoked"),
        "{:?}",
        refused.body
    );
    let (status, _) = test.client_token(&client, &secret, None).await.unwrap_err();
    assert_eq!(status, 401);

    // Revoking again (a new request, not a replay) answers the same, audited once.
    let again = test.post_json(&path, &admin, "").await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);
    let audit = test.get("/v1/audit", &admin).await.body;
    let revocations = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "client.revoked")
        .count();
    assert_eq!(revocations, 1);
    let missing = test
        .post_json("/v1/clients/nosuchclient/revoke", &admin, "")
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn only_admins_register_and_bad_registrations_change_nothing() {
    let test = TestCloud::start("clients-refused").await;
    let admin = test.token("acme", "admin").await;
    let sender = test.token("acme", "sender").await;
    let viewer = test.token("acme", "viewer").await;
    let good = r#"{"name": "backend", "scopes": ["messages:send"]}"#;
    let items_before = items_but_rate(&test, "acme").await;
    let clients_before = cognito_clients(&test).await;

    for token in [&sender, &viewer] {
        let answer = test.post_json("/v1/clients", token, good).await;
        assert_eq!(answer.status, 403, "{:?}", answer.body);
        assert_eq!(test.get("/v1/clients", token).await.status, 403);
    }

    let cases: [(&str, &str); 7] = [
        (
            r#"{"name": "backend", "scopes": ["messages:delete"]}"#,
            "/scopes/0",
        ),
        (r#"{"name": "backend", "scopes": []}"#, "/scopes"),
        (
            r#"{"name": "backend", "scopes": ["messages:send", "messages:send"]}"#,
            "/scopes/1",
        ),
        (r#"{"name": "", "scopes": ["messages:send"]}"#, "/name"),
        (
            r#"{"name": "back\u0007end", "scopes": ["messages:send"]}"#,
            "/name",
        ),
        (
            r#"{"name": "backend", "scopes": ["messages:send"], "tenant_id": "globex"}"#,
            "tenant_id",
        ),
        (r#"{"name": "backend"}"#, "scopes"),
    ];
    for (body, field) in cases {
        let answer = test.post_json("/v1/clients", &admin, body).await;
        assert!(
            matches!(answer.status, 400 | 422),
            "{body}: {} {:?}",
            answer.status,
            answer.body
        );
        assert_eq!(answer.content_type, "application/problem+json", "{body}");
        let named = answer.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e: &Value| e["field"].as_str().is_some_and(|f| f.contains(field)))
            || answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(field));
        assert!(named, "{body}: {:?} does not name {field}", answer.body);
    }
    let no_key = test
        .request_with_key(
            "POST",
            "/v1/clients",
            Some(&admin),
            Some("application/json"),
            Some(good.into()),
            None,
        )
        .await;
    assert_eq!(no_key.status, 400);

    assert_eq!(items_but_rate(&test, "acme").await, items_before);
    assert_eq!(cognito_clients(&test).await, clients_before);
    assert_eq!(
        test.get("/v1/clients", &admin).await.body["clients"],
        json!([])
    );
}

#[tokio::test]
async fn a_tenant_holds_a_bounded_number_of_clients() {
    let test = TestCloud::start_with("clients-limit", |o| {
        o.env_overrides
            .insert("HERALD_MAX_CLIENTS_PER_TENANT".into(), "2".into());
    })
    .await;
    let admin = test.token("acme", "admin").await;
    let (first, _) = test.machine_client(&admin, &["messages:read"]).await;
    test.machine_client(&admin, &["messages:read"]).await;
    let clients_at_limit = cognito_clients(&test).await;

    let body = r#"{"name": "third", "scopes": ["messages:read"]}"#;
    let refused = test.post_json("/v1/clients", &admin, body).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(
        refused.body["type"].as_str().unwrap().rsplit('/').next(),
        Some("client-limit-reached")
    );
    assert_eq!(
        cognito_clients(&test).await,
        clients_at_limit,
        "the refused client is not left in Cognito"
    );

    // Revoking one frees its place.
    let revoke = test
        .post_json(&format!("/v1/clients/{first}/revoke"), &admin, "")
        .await;
    assert_eq!(revoke.status, 200);
    assert_eq!(
        test.post_json("/v1/clients", &admin, body).await.status,
        201
    );
}

#[tokio::test]
async fn a_suspended_tenants_clients_are_refused() {
    let test = TestCloud::start("clients-suspended").await;
    let admin = test.token("acme", "admin").await;
    let operator = test.token("herald", "operator").await;
    let (client, secret) = test.machine_client(&admin, &["messages:send"]).await;
    let token = test.client_token(&client, &secret, None).await.unwrap();

    let suspended = test
        .post_json("/v1/tenants/acme/suspend", &operator, "")
        .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);
    let refused = test.post_json("/v1/messages", &token, SMS).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(
        refused.body["type"]
            .as_str()
            .unwrap()
            .ends_with("tenant-suspended")
    );

    let resumed = test
        .post_json("/v1/tenants/acme/resume", &operator, "")
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    assert_eq!(
        test.post_json("/v1/messages", &token, SMS).await.status,
        202
    );
}

#[tokio::test]
async fn the_scheduled_run_deletes_machine_clients_herald_does_not_know() {
    let test = TestCloud::start_with("clients-sweep", |o| {
        o.env_overrides
            .insert("HERALD_CLIENT_SWEEP_GRACE_SECONDS".into(), "0".into());
    })
    .await;
    let admin = test.token("acme", "admin").await;
    let (kept, kept_secret) = test.machine_client(&admin, &["messages:send"]).await;
    let (half_revoked, _) = test.machine_client(&admin, &["messages:send"]).await;
    // A revocation that recorded its mark but could not delete the Cognito client.
    let acme = herald::TenantId::parse("acme").unwrap();
    let audit = herald::domain::AuditEntry {
        at: herald::Timestamp::from_epoch_millis(0),
        actor: "test".into(),
        action: "client.revoked".into(),
        target: half_revoked.clone(),
        request_id: "test".into(),
    };
    test.cloud
        .sender
        .store
        .revoke_client(&acme, &half_revoked, &audit, 0)
        .await
        .unwrap();
    // A registration that died between creating the client and recording it.
    let cognito = &test.cloud.clients.cognito;
    let lost = cognito
        .create_user_pool_client()
        .user_pool_id(test.pool())
        .client_name(format!("{MACHINE_CLIENT_PREFIX}acme-lost"))
        .generate_secret(true)
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap()
        .client_id
        .unwrap();
    let before = cognito_clients(&test).await;

    let report = test.cloud.scheduled_run().await.unwrap();

    assert_eq!(
        report.clients,
        ClientSweepReport {
            checked: 3,
            deleted: 2,
            failed: 0
        }
    );
    assert_eq!(cognito_clients(&test).await, before - 2);
    for gone in [&half_revoked, &lost] {
        let described = cognito
            .describe_user_pool_client()
            .user_pool_id(test.pool())
            .client_id(gone)
            .send()
            .await;
        assert!(described.is_err(), "{gone} is still in Cognito");
    }
    // The registered client, and the console's, are untouched.
    let token = test.client_token(&kept, &kept_secret, None).await.unwrap();
    assert_eq!(
        test.post_json("/v1/messages", &token, SMS).await.status,
        202
    );
    assert_eq!(test.get("/v1/usage", &admin).await.status, 200);
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("redriver", "OrphanClientsDeleted"), 2.0);
}

/// Issue 11: a machine client is not created with Cognito's defaults. It can get
/// client-credentials tokens and do nothing else: no user sign-in flow, no user
/// attributes to read or write, and no answer that tells whether a user exists.
#[tokio::test]
async fn a_machine_client_can_do_nothing_but_get_client_credentials_tokens() {
    use aws_sdk_cognitoidentityprovider::types::{
        ExplicitAuthFlowsType, OAuthFlowType, PreventUserExistenceErrorTypes,
    };

    let test = TestCloud::start("clients-locked").await;
    let admin = test.token("acme", "admin").await;
    let (client_id, secret) = test.machine_client(&admin, &["messages:send"]).await;

    let described = test
        .cloud
        .clients
        .cognito
        .describe_user_pool_client()
        .user_pool_id(test.pool())
        .client_id(&client_id)
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap();
    assert_eq!(
        described.explicit_auth_flows,
        Some(vec![ExplicitAuthFlowsType::AllowRefreshTokenAuth]),
        "only the flow Cognito always keeps; no user sign-in"
    );
    assert_eq!(
        described.prevent_user_existence_errors,
        Some(PreventUserExistenceErrorTypes::Enabled)
    );
    assert_eq!(described.read_attributes, Some(Vec::new()));
    assert_eq!(described.write_attributes, Some(Vec::new()));
    assert_eq!(
        described.allowed_o_auth_flows,
        Some(vec![OAuthFlowType::ClientCredentials])
    );
    assert_eq!(described.allowed_o_auth_flows_user_pool_client, Some(true));
    assert_eq!(
        described.allowed_o_auth_scopes,
        Some(vec!["herald/messages:send".to_owned()])
    );

    // And the client still gets its tokens, which the API accepts.
    let token = test.client_token(&client_id, &secret, None).await.unwrap();
    assert_eq!(
        test.post_json("/v1/messages", &token, SMS).await.status,
        202
    );
}
