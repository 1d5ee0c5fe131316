//! Tenant teams (issue 19): an admin invites people with a role, changes it and removes
//! them; a change refuses the tokens issued before it on the next request, a removed
//! user can neither refresh nor sign in, the last admin stays, another tenant's users
//! read as missing, and bad requests change nothing in Cognito or the table. An
//! operator creates a tenant together with its first admin.
//!
//! The emulator's Cognito (moto, extended in `infra/local/emulator.py`) creates users
//! with a generated temporary password and keeps the invitation it would email, so a
//! test reads it as the invited person reads their mailbox.
//!
//! Longer than most: the sessions a person goes through (first sign-in with the
//! emailed password, refresh, sign-in again) are this file's own, and each rule of the
//! issue is one test beside them.

use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, ChallengeNameType};
use herald::domain::{TenantRole, UserChange};
use herald::{TenantId, Timestamp};
use herald_tests::bad_request::Case;
use herald_tests::{Answer, TestCloud};
use serde_json::{Value, json};

const SMS: &str = r#"{"to": "+14155550100", "body": "hello"}"#;
const NEW_PASSWORD: &str = "Chosen-Passw0rd-19";

/// A person's tokens after signing in.
struct Session {
    id_token: String,
    refresh_token: String,
}

/// The invitations Cognito sent `email` from this test's user pool.
async fn invitations(test: &TestCloud, email: &str) -> Vec<Value> {
    let url = format!(
        "{}/_herald/cognito/invitations?email={email}",
        herald_tests::herald_local::emulator::endpoint()
    );
    let found: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    found
        .into_iter()
        .filter(|i| i["user_pool_id"] == test.pool())
        .collect()
}

/// The temporary password Cognito sent `email`.
async fn invitation(test: &TestCloud, email: &str) -> String {
    let found = invitations(test, email).await;
    assert_eq!(found.len(), 1, "one invitation for {email}: {found:?}");
    found[0]["temporary_password"].as_str().unwrap().to_owned()
}

/// Signs `email` in with `password`: `Err` with Cognito's message when refused.
async fn sign_in(test: &TestCloud, email: &str, password: &str) -> Result<Session, String> {
    let out = test
        .cloud
        .clients
        .cognito
        .initiate_auth()
        .client_id(test.client_id())
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", email)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let result = out.authentication_result.ok_or("a challenge, not tokens")?;
    Ok(Session {
        id_token: result.id_token.unwrap(),
        refresh_token: result.refresh_token.unwrap(),
    })
}

/// The invited person's first sign-in: the temporary password, then their own.
async fn first_sign_in(test: &TestCloud, email: &str) -> Session {
    let cognito = &test.cloud.clients.cognito;
    let temporary = invitation(test, email).await;
    let challenged = cognito
        .initiate_auth()
        .client_id(test.client_id())
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", email)
        .auth_parameters("PASSWORD", &temporary)
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenged.challenge_name,
        Some(ChallengeNameType::NewPasswordRequired)
    );
    cognito
        .respond_to_auth_challenge()
        .client_id(test.client_id())
        .challenge_name(ChallengeNameType::NewPasswordRequired)
        .set_session(challenged.session)
        .challenge_responses("USERNAME", email)
        .challenge_responses("NEW_PASSWORD", NEW_PASSWORD)
        .send()
        .await
        .unwrap();
    sign_in(test, email, NEW_PASSWORD).await.unwrap()
}

/// Asks Cognito for new tokens with the refresh token.
async fn refresh(test: &TestCloud, session: &Session) -> Result<(), String> {
    test.cloud
        .clients
        .cognito
        .initiate_auth()
        .client_id(test.client_id())
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .auth_parameters("REFRESH_TOKEN", &session.refresh_token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Invites `email` as `role`; answers the user id.
async fn invite(test: &TestCloud, admin: &str, email: &str, role: &str) -> String {
    let body = json!({ "email": email, "role": role, "name": "Ada Lovelace" }).to_string();
    let answer = test.post_json("/v1/users", admin, &body).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    answer.body["user_id"].as_str().unwrap().to_owned()
}

async fn set_role(test: &TestCloud, admin: &str, id: &str, role: &str) -> Answer {
    let body = json!({ "role": role }).to_string();
    test.post_json(&format!("/v1/users/{id}/role"), admin, &body)
        .await
}

/// The id of the seeded user `email` in the admin's listing.
async fn listed_id(test: &TestCloud, admin: &str, email: &str) -> String {
    let listed = test.get("/v1/users?limit=100", admin).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    listed.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} listed: {:?}", listed.body))["user_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Token times are whole seconds: a token issued in the second of a change is refused,
/// so a fresh sign-in waits for the next second.
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
}

async fn audit_actions(test: &TestCloud, admin: &str) -> Vec<String> {
    let audit = test.get("/v1/audit", admin).await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn an_invited_person_signs_in_with_the_emailed_password_and_acts_with_the_role() {
    let test = TestCloud::start("users-invite").await;
    let admin = test.token("acme", "admin").await;

    let body = json!({ "email": "Grace@Acme.example", "role": "sender" }).to_string();
    let invited = test
        .post_json_with_key("/v1/users", &admin, "inv-1", &body)
        .await;
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    let id = invited.body["user_id"].as_str().unwrap().to_owned();
    assert_eq!(invited.body["email"], "grace@acme.example");
    assert_eq!(invited.body["role"], "sender");
    assert_eq!(invited.body["status"], "active");
    assert_eq!(invited.headers["location"], format!("/v1/users/{id}"));
    let replay = test
        .post_json_with_key("/v1/users", &admin, "inv-1", &body)
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body, invited.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    let shown = test.get(&format!("/v1/users/{id}"), &admin).await;
    assert_eq!(shown.body, invited.body);
    assert_eq!(listed_id(&test, &admin, "grace@acme.example").await, id);
    assert!(
        audit_actions(&test, &admin)
            .await
            .contains(&format!("user.invited {id}"))
    );

    let grace = first_sign_in(&test, "grace@acme.example").await;
    let sent = test.post_json("/v1/messages", &grace.id_token, SMS).await;
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    // A sender manages nobody.
    assert_eq!(test.get("/v1/users", &grace.id_token).await.status, 403);
}

#[tokio::test]
async fn a_role_change_refuses_the_old_token_at_once() {
    let test = TestCloud::start("users-role").await;
    let admin = test.token("acme", "admin").await;
    let id = invite(&test, &admin, "linus@acme.example", "admin").await;
    let linus = first_sign_in(&test, "linus@acme.example").await;
    assert_eq!(test.get("/v1/users", &linus.id_token).await.status, 200);
    assert_eq!(
        test.post_json("/v1/messages", &linus.id_token, SMS)
            .await
            .status,
        202
    );

    let changed = set_role(&test, &admin, &id, "viewer").await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["role"], "viewer");
    assert!(changed.body["changed_at"].is_string());

    // What the admin role allowed, and what viewers may do too: the old token is
    // refused for all of it, not only for what the new role lacks.
    for (method, path) in [
        ("GET", "/v1/users"),
        ("POST", "/v1/messages"),
        ("GET", "/v1/usage"),
    ] {
        let answer = if method == "POST" {
            test.post_json(path, &linus.id_token, SMS).await
        } else {
            test.get(path, &linus.id_token).await
        };
        assert_eq!(answer.status, 401, "{method} {path}: {:?}", answer.body);
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("role changed"),
            "{:?}",
            answer.body
        );
    }
    // Signed out everywhere: the refresh token is dead too.
    assert!(refresh(&test, &linus).await.is_err());

    next_second().await;
    let viewer = sign_in(&test, "linus@acme.example", NEW_PASSWORD)
        .await
        .unwrap();
    assert_eq!(test.get("/v1/usage", &viewer.id_token).await.status, 200);
    assert_eq!(
        test.post_json("/v1/messages", &viewer.id_token, SMS)
            .await
            .status,
        403
    );
    assert_eq!(test.get("/v1/users", &viewer.id_token).await.status, 403);
    assert!(
        audit_actions(&test, &admin)
            .await
            .contains(&format!("user.role_changed:admin->viewer {id}"))
    );
}

#[tokio::test]
async fn a_removed_person_is_refused_at_once_and_cannot_refresh_or_sign_in() {
    let test = TestCloud::start("users-remove").await;
    let admin = test.token("acme", "admin").await;
    let id = invite(&test, &admin, "ken@acme.example", "sender").await;
    let ken = first_sign_in(&test, "ken@acme.example").await;
    assert_eq!(
        test.post_json("/v1/messages", &ken.id_token, SMS)
            .await
            .status,
        202
    );

    let path = format!("/v1/users/{id}/remove");
    let removed = test.post_json(&path, &admin, "").await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(removed.body["status"], "removed");

    let refused = test.post_json("/v1/messages", &ken.id_token, SMS).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("removed"));
    assert!(refresh(&test, &ken).await.is_err());
    let again = sign_in(&test, "ken@acme.example", NEW_PASSWORD).await;
    assert!(again.is_err_and(|e| e.contains("disabled")));

    // Removing again answers the same; a removed user's role stays.
    let twice = test.post_json(&path, &admin, "").await;
    assert_eq!((twice.status, &twice.body), (200, &removed.body));
    let role = set_role(&test, &admin, &id, "admin").await;
    assert_eq!(role.status, 409);
    assert!(
        role.body["type"]
            .as_str()
            .unwrap()
            .ends_with("user-removed")
    );
    assert_eq!(
        audit_actions(&test, &admin)
            .await
            .iter()
            .filter(|a| *a == &format!("user.removed {id}"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_admin_cannot_change_themself_and_the_last_admin_stays() {
    let test = TestCloud::start("users-last-admin").await;
    let admin = test.token("acme", "admin").await;
    let own = listed_id(&test, &admin, "admin@acme.example").await;
    for answer in [
        set_role(&test, &admin, &own, "viewer").await,
        test.post_json(&format!("/v1/users/{own}/remove"), &admin, "")
            .await,
    ] {
        assert_eq!(answer.status, 409, "{:?}", answer.body);
        assert!(
            answer.body["type"]
                .as_str()
                .unwrap()
                .ends_with("own-account")
        );
    }

    // The count the API keeps: the seeded admin alone. The store refuses to take the
    // role from them, whoever asks, and writes nothing.
    let store = &test.cloud.sender.store;
    let acme = TenantId::parse("acme").unwrap();
    assert_eq!(store.admin_count(&acme).await.unwrap(), 1);
    let record = store.tenant_user(&acme, &own).await.unwrap().unwrap();
    let audit = herald::domain::AuditEntry {
        at: Timestamp::from_epoch_millis(herald::clock::system().timestamp().epoch_millis()),
        actor: "test".into(),
        action: "user.removed".into(),
        target: own.clone(),
        request_id: "r".into(),
    };
    let before = test.tenant_items("acme").await;
    let now = audit.at.epoch_seconds();
    assert_eq!(
        store.remove_user(&record, &audit, now).await.unwrap(),
        UserChange::LastAdmin
    );
    assert_eq!(
        store
            .change_user_role(&record, TenantRole::Viewer, &audit, now)
            .await
            .unwrap(),
        UserChange::LastAdmin
    );
    assert_eq!(test.tenant_items("acme").await, before);

    // Two admins demoting each other at once: one wins, one admin is left.
    let second = invite(&test, &admin, "barbara@acme.example", "admin").await;
    let barbara = first_sign_in(&test, "barbara@acme.example").await;
    let (a, b) = tokio::join!(
        set_role(&test, &admin, &second, "viewer"),
        set_role(&test, &barbara.id_token, &own, "viewer"),
    );
    let won = [a.status, b.status].iter().filter(|s| **s == 200).count();
    assert_eq!(won, 1, "{:?} / {:?}", a.body, b.body);
    assert_eq!(store.admin_count(&acme).await.unwrap(), 1);
    let survivor = if a.status == 200 {
        &admin
    } else {
        &barbara.id_token
    };
    let listed = test.get("/v1/users", survivor).await;
    let admins = listed.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "admin" && u["status"] == "active")
        .count();
    assert_eq!(admins, 1, "{:?}", listed.body);
}

#[tokio::test]
async fn another_tenants_people_read_as_missing() {
    let test = TestCloud::start("users-tenants").await;
    let acme = test.token("acme", "admin").await;
    let globex = test.token("globex", "admin").await;
    let id = invite(&test, &acme, "margaret@acme.example", "sender").await;
    let before = test.tenant_items("acme").await;
    let missing = "6f1c2a3e-0b7d-4f7e-9c55-3a1d2e4b5c6d";
    for path in [
        "/v1/users/{id}",
        "/v1/users/{id}/remove",
        "/v1/users/{id}/role",
    ] {
        let ask = |id: &str| {
            let target = path.replace("{id}", id);
            let (test, globex) = (&test, &globex);
            async move {
                if path == "/v1/users/{id}" {
                    test.get(&target, globex).await
                } else {
                    test.post_json(&target, globex, r#"{"role": "admin"}"#)
                        .await
                }
            }
        };
        let (theirs, absent) = (ask(&id).await, ask(missing).await);
        assert_eq!(theirs.status, 404, "{path}: {:?}", theirs.body);
        assert_eq!(theirs.body, absent.body, "{path}");
    }
    assert!(
        test.get("/v1/users", &globex).await.body["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["email"] != "margaret@acme.example")
    );
    let mut after = test.tenant_items("acme").await;
    after.retain(|item| !item.contains("#RATE#"));
    let mut before = before;
    before.retain(|item| !item.contains("#RATE#"));
    assert_eq!(after, before, "nothing of acme's changed");
}

async fn cognito_users(test: &TestCloud) -> usize {
    test.cloud
        .clients
        .cognito
        .list_users()
        .user_pool_id(test.pool())
        .send()
        .await
        .unwrap()
        .users()
        .len()
}

#[tokio::test]
async fn bad_invitations_and_role_changes_change_nothing() {
    let test = TestCloud::start("users-bad").await;
    let admin = test.token("acme", "admin").await;
    let globex = test.token("globex", "admin").await;
    let id = invite(&test, &admin, "taken@acme.example", "viewer").await;
    let theirs = invite(&test, &globex, "hedy@globex.example", "viewer").await;
    let role_path: &'static str = format!("/v1/users/{id}/role").leak();
    let their_role: &'static str = format!("/v1/users/{theirs}/role").leak();
    let their_removal: &'static str = format!("/v1/users/{theirs}/remove").leak();
    let invite_with = |email: &str, role: &str| json!({ "email": email, "role": role });
    let huge_name = "n".repeat(10 * 1024);
    let cases = vec![
        Case::only_field(
            "malformed email",
            "/v1/users",
            &invite_with("not-an-address", "viewer"),
            "/email",
        ),
        Case::only_field(
            "email without a dotted domain",
            "/v1/users",
            &invite_with("a@localhost", "viewer"),
            "/email",
        ),
        Case::raw(
            "duplicate email, in another case",
            "/v1/users",
            Some("application/json"),
            invite_with("Taken@ACME.example", "sender")
                .to_string()
                .into_bytes(),
            409,
            Some("/email"),
        ),
        Case::raw(
            "another tenant's email",
            "/v1/users",
            Some("application/json"),
            invite_with("hedy@globex.example", "sender")
                .to_string()
                .into_bytes(),
            409,
            Some("/email"),
        ),
        Case::only_field(
            "unknown role",
            "/v1/users",
            &invite_with("new@acme.example", "owner"),
            "/role",
        ),
        Case::only_field(
            "operator is no tenant role",
            "/v1/users",
            &invite_with("new@acme.example", "operator"),
            "/role",
        ),
        Case::only_field(
            "a 10 KB name",
            "/v1/users",
            &json!({ "email": "new@acme.example", "role": "viewer", "name": huge_name }),
            "/name",
        ),
        Case::raw(
            "a tenant id in the body",
            "/v1/users",
            Some("application/json"),
            json!({ "email": "new@acme.example", "role": "viewer", "tenant_id": "globex" })
                .to_string()
                .into_bytes(),
            400,
            Some("/tenant_id"),
        ),
        Case::only_field(
            "operator granted",
            role_path,
            &json!({ "role": "operator" }),
            "/role",
        ),
        Case::only_field(
            "unknown role granted",
            role_path,
            &json!({ "role": "root" }),
            "/role",
        ),
        Case::raw(
            "another tenant's user, role",
            their_role,
            Some("application/json"),
            json!({ "role": "admin" }).to_string().into_bytes(),
            404,
            None,
        ),
        Case::raw(
            "another tenant's user, removal",
            their_removal,
            None,
            Vec::new(),
            404,
            None,
        ),
    ];
    let before = test.tenant_items("acme").await;
    let globex_before = test.tenant_items("globex").await;
    let users_before = cognito_users(&test).await;
    test.refuses_all(&admin, cases).await;
    // Request-rate counters move with every request; a duplicate address is found by
    // Cognito inside the request's Idempotency-Key, which is released (kept, free for
    // a retry) like every refused POST's. Nothing else may differ.
    let strip = |mut items: Vec<String>| {
        items.retain(|item| !item.contains("#RATE#") && !item.contains("#IDEM#"));
        items
    };
    assert_eq!(strip(test.tenant_items("acme").await), strip(before));
    assert_eq!(
        strip(test.tenant_items("globex").await),
        strip(globex_before)
    );
    assert_eq!(cognito_users(&test).await, users_before);
    assert!(invitations(&test, "new@acme.example").await.is_empty());
}

#[tokio::test]
async fn an_operator_creates_a_tenant_with_its_first_admin_in_one_request() {
    let test = TestCloud::start("users-first-admin").await;
    let operator = test.token("herald", "operator").await;
    let body = json!({
        "tenant_id": "initech",
        "plan": "starter",
        "first_admin": { "email": "Bill@Initech.example", "name": "Bill" },
    });
    let created = test
        .post_json("/v1/tenants", &operator, &body.to_string())
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tenant_id"], "initech");
    let admin = &created.body["first_admin"];
    assert_eq!(admin["email"], "bill@initech.example");
    assert_eq!(admin["role"], "admin");
    let id = admin["user_id"].as_str().unwrap();

    // One audit entry names the tenant and its admin.
    let audit = test.get("/v1/tenants/initech/audit", &operator).await;
    let entries = audit.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["action"],
        format!("tenant.created_with_admin:{id}")
    );

    // The admin signs in with the emailed password and runs their tenant.
    let bill = first_sign_in(&test, "bill@initech.example").await;
    assert_eq!(
        listed_id(&test, &bill.id_token, "bill@initech.example").await,
        id
    );
    invite(&test, &bill.id_token, "peter@initech.example", "sender").await;

    // A taken address or a taken tenant id creates nothing, in Cognito or the table.
    let users_before = cognito_users(&test).await;
    let taken_email = json!({
        "tenant_id": "initrode",
        "plan": "starter",
        "first_admin": { "email": "peter@initech.example" },
    });
    let refused = test
        .post_json("/v1/tenants", &operator, &taken_email.to_string())
        .await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.body["errors"][0]["field"], "/first_admin/email");
    assert_eq!(
        test.get("/v1/tenants/initrode", &operator).await.status,
        404
    );
    let taken_tenant = json!({
        "tenant_id": "initech",
        "plan": "starter",
        "first_admin": { "email": "milton@initech.example" },
    });
    let refused = test
        .post_json("/v1/tenants", &operator, &taken_tenant.to_string())
        .await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(
        refused.body["type"]
            .as_str()
            .unwrap()
            .ends_with("tenant-exists")
    );
    assert_eq!(cognito_users(&test).await, users_before);
    assert!(
        invitations(&test, "milton@initech.example")
            .await
            .is_empty()
    );
    let bad = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({ "tenant_id": "x1", "plan": "starter", "first_admin": { "email": "nope" } })
                .to_string(),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["field"], "/first_admin/email");
}
