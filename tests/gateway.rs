//! Tokens are verified on every request (signature, issuer, expiry, client), and the API
//! takes the tenant and groups from the verified claims, never from the request.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::{ExplicitAuthFlowsType, SchemaAttributeType};
use herald::clock::OffsetClock;
use herald::token::{Rejection, Verifier};
use herald_tests::TestCloud;
use herald_tests::herald_local::seed;

const SMS: &str = r#"{"to": "+14155550100", "body": "hi"}"#;

async fn assert_unauthorized(test: &TestCloud, token: Option<&str>, reason: &str) {
    let answer = test
        .request(
            "POST",
            "/v1/messages",
            token,
            Some("application/json"),
            Some(SMS.into()),
        )
        .await;
    assert_eq!(answer.status, 401, "{reason}: {:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json", "{reason}");
    assert!(
        answer.body["detail"].as_str().unwrap().contains(reason),
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let test = TestCloud::start("gw-refusals").await;
    let valid = test.token("acme", "sender").await;

    assert_unauthorized(&test, None, "no token").await;
    assert_unauthorized(&test, Some("not-a-jwt"), "not a well-formed JWT").await;

    // Same header and claims, signature bytes altered.
    let (unsigned, signature) = valid.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{unsigned}.{flipped}{}", &signature[1..]);
    assert_unauthorized(&test, Some(&forged), "signature does not verify").await;

    // Claims altered (another tenant), signature kept.
    let mut parts: Vec<&str> = valid.split('.').collect();
    let claims = String::from_utf8(base64_url_decode(parts[1]))
        .unwrap()
        .replace("\"acme\"", "\"globex\"");
    let claims = base64_url_encode(claims.as_bytes());
    parts[1] = &claims;
    assert_unauthorized(&test, Some(&parts.join(".")), "signature does not verify").await;

    assert_eq!(test.table_items().await, 0, "nothing was written");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let test = TestCloud::start("gw-expired").await;
    let token = test.token("acme", "sender").await;
    let settings = test.cloud.api_config.auth.tokens.clone();
    // The emulator issues one-hour tokens; the verifier's clock is moved past that.
    let later = Verifier::new(
        settings.clone(),
        std::sync::Arc::new(OffsetClock(Duration::from_secs(3601))),
    );
    assert_eq!(later.verify(&token).await.unwrap_err(), Rejection::Expired);
    let now = Verifier::new(settings, herald::clock::system());
    assert!(now.verify(&token).await.is_ok());
}

#[tokio::test]
async fn tokens_for_another_client_or_pool_are_refused() {
    let test = TestCloud::start("gw-audience").await;
    let cognito = &test.cloud.clients.cognito;

    // Another app client of the same pool: right issuer, wrong audience.
    let other_client = password_client(cognito, test.pool(), "not-herald").await;
    let user = seed::user(cognito, test.pool(), "acme", "sender")
        .await
        .unwrap();
    let tokens = seed::sign_in(cognito, &other_client, &user).await.unwrap();
    assert_unauthorized(
        &test,
        Some(&tokens.id_token),
        "a client this API does not know",
    )
    .await;

    // A different user pool: the issuer does not match.
    let other_pool = cognito
        .create_user_pool()
        .pool_name("elsewhere")
        .schema(
            SchemaAttributeType::builder()
                .name("tenant_id")
                .attribute_data_type("String".into())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap()
        .id
        .unwrap();
    cognito
        .create_group()
        .user_pool_id(&other_pool)
        .group_name("sender")
        .send()
        .await
        .unwrap();
    let other_pool_client = password_client(cognito, &other_pool, "herald-console").await;
    let outsider = seed::user(cognito, &other_pool, "acme", "sender")
        .await
        .unwrap();
    let tokens = seed::sign_in(cognito, &other_pool_client, &outsider)
        .await
        .unwrap();
    assert_unauthorized(&test, Some(&tokens.id_token), "not this API's user pool").await;

    assert_eq!(test.table_items().await, 0, "nothing was written");
}

#[tokio::test]
async fn the_api_takes_tenant_and_roles_from_the_verified_claims() {
    let test = TestCloud::start("gw-claims").await;
    let sender = test.token("acme", "sender").await;
    let viewer = test.token("acme", "viewer").await;
    let other_tenant = test.token("globex", "sender").await;

    let id = test.send_sms(&sender, "+14155550100", "hello").await;
    assert_eq!(
        test.get(&format!("/v1/messages/{id}"), &viewer)
            .await
            .status,
        200
    );
    assert_eq!(
        test.get(&format!("/v1/messages/{id}"), &other_tenant)
            .await
            .status,
        404
    );

    let refused = test.post_json("/v1/messages", &viewer, SMS).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // An access token is valid at the gateway but carries no tenant claim.
    let access = test.tokens("acme", "sender").await.access_token;
    let no_tenant = test.post_json("/v1/messages", &access, SMS).await;
    assert_eq!(no_tenant.status, 403, "{:?}", no_tenant.body);
    assert!(
        no_tenant.body["detail"]
            .as_str()
            .unwrap()
            .contains("no tenant")
    );

    // Health needs no token; unknown routes are the gateway's 404.
    assert_eq!(
        test.request("GET", "/v1/health", None, None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        test.request("GET", "/v1/nothing", Some(&sender), None, None)
            .await
            .status,
        404
    );

    // So does the version: the build (unknown outside `make sam-build`) and the
    // stack's environment.
    let version = test.request("GET", "/v1/version", None, None, None).await;
    assert_eq!(version.status, 200, "{:?}", version.body);
    assert_eq!(version.body["environment"], "dev");
    assert_eq!(version.body["commit"], herald::version::COMMIT);
    assert_eq!(version.body["built_at"], herald::version::BUILT_AT);
}

#[tokio::test]
async fn the_openapi_document_is_public_and_is_the_committed_one() {
    let test = TestCloud::start("gw-openapi").await;

    let answer = test
        .request("GET", "/v1/openapi.json", None, None, None)
        .await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/json");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json"),
    )
    .expect("docs/openapi.json is JSON");
    // The served document names this stack's token endpoint where the committed one
    // names Cognito's in its documented form; everything else is the same.
    let flow = "/components/securitySchemes/machineClient/flows/clientCredentials/tokenUrl";
    assert_eq!(
        answer.body.pointer(flow).and_then(|v| v.as_str()),
        Some(test.cloud.api_config.auth.token_url.as_str())
    );
    let mut served = answer.body.clone();
    *served.pointer_mut(flow).expect("a token URL") =
        committed.pointer(flow).expect("a token URL").clone();
    assert!(
        served == committed,
        "GET /v1/openapi.json differs from docs/openapi.json; run `make openapi`"
    );
}

/// An app client of `pool` that signs users in with passwords; returns its id.
async fn password_client(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    pool: &str,
    name: &str,
) -> String {
    cognito
        .create_user_pool_client()
        .user_pool_id(pool)
        .client_name(name)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap()
        .client_id
        .unwrap()
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn base64_url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Every test's answers are held to the document (`herald_tests::documented`): an
/// undeclared status or problem type fails the test that met it, and a declared one
/// passes. Paths the document does not describe are not its to judge.
#[test]
fn the_harness_fails_any_answer_the_document_does_not_declare() {
    use herald_tests::documented::assert_documented;
    let problem =
        |slug: &str| serde_json::json!({ "type": format!("https://herald.dev/problems/{slug}") });
    let fails = |method: &str, path: &str, status: u16, body: serde_json::Value| {
        std::panic::catch_unwind(|| assert_documented(method, path, status, &body)).is_err()
    };

    assert!(!fails(
        "GET",
        "/v1/batches/01J0000000000000000000000A?x=1",
        404,
        problem("not-found")
    ));
    assert!(!fails("POST", "/v1/batches", 202, serde_json::json!({})));
    assert!(fails(
        "GET",
        "/v1/batches/01J0000000000000000000000A",
        418,
        serde_json::json!({})
    ));
    assert!(
        fails("POST", "/v1/batches", 404, problem("not-found")),
        "no 404 declared"
    );
    assert!(
        fails(
            "GET",
            "/v1/batches/01J0000000000000000000000A",
            404,
            problem("batch-finished")
        ),
        "a 404 of a type the document does not list for it"
    );
    assert!(!fails(
        "GET",
        "/v1/no-such-route",
        404,
        problem("not-found")
    ));
    assert!(!fails(
        "POST",
        "/webhooks/twilio/status",
        403,
        serde_json::json!({})
    ));
}
