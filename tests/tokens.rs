//! Tokens a hostile caller would try, and a key cache that a flood of them cannot turn
//! into a flood of JWKS fetches. The tests sign their own tokens with a key published
//! by a JWKS endpoint of their own (`key_server`), which counts every fetch it serves;
//! the API is pointed at it through `HERALD_JWKS_URL`, so a crafted token goes through
//! exactly the checks a Cognito token does.

#[path = "tokens/key_server.rs"]
mod key_server;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use herald::token::{Rejection, TokenSettings, Verifier};
use herald_tests::TestCloud;
use jsonwebtoken::Algorithm;
use key_server::{KeyServer, ManualClock, SigningKey};
use serde_json::{Value, json};

const SMS: &str = r#"{"to": "+14155550100", "body": "hi"}"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A test cloud whose API trusts `server`'s keys instead of the user pool's.
async fn cloud_trusting(name: &str, server: &KeyServer) -> TestCloud {
    let url = server.url();
    TestCloud::start_with(name, move |o| {
        o.env_overrides.insert("HERALD_JWKS_URL".into(), url);
    })
    .await
}

/// The claims of a Cognito id token of an `acme` sender, for `test`'s pool and client.
fn id_claims(test: &TestCloud) -> Value {
    let now = now();
    json!({
        "sub": "3f1c0a52-0000-4000-8000-000000000001",
        "iss": test.cloud.api_config.auth.tokens.issuer,
        "aud": test.client_id(),
        "token_use": "id",
        "custom:tenant_id": "acme",
        "cognito:groups": ["sender"],
        "cognito:username": "sender@acme.example",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
    })
}

fn with(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    for (name, value) in changes.as_object().expect("an object") {
        match value {
            Value::Null => claims.as_object_mut().expect("an object").remove(name),
            other => claims
                .as_object_mut()
                .expect("an object")
                .insert(name.clone(), other.clone()),
        };
    }
    claims
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_their_reason_and_change_nothing() {
    let server = KeyServer::start().await;
    let key = SigningKey::generate("key-1");
    server.publish(&[&key]);
    let test = cloud_trusting("tok-hostile", &server).await;
    test.register_tenant("acme", herald_tests::TEST_LIMITS)
        .await;
    let claims = id_claims(&test);
    let hour = now() + 3600;
    let hs256 = jsonwebtoken::EncodingKey::from_secret(key.public_pem.as_bytes());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "nbf an hour ahead",
            key.sign(&with(&claims, json!({ "nbf": hour }))),
            "not valid yet",
        ),
        (
            "iat an hour ahead",
            key.sign(&with(&claims, json!({ "iat": hour }))),
            "issued in the future",
        ),
        (
            "RS512 with the pool's key",
            key.sign_as(Algorithm::RS512, Some("key-1"), &claims),
            "signed with RS512; only RS256",
        ),
        (
            "HS256 with the public key as the secret",
            key_server::sign_with(&hs256, Algorithm::HS256, Some("key-1"), &claims),
            "signed with HS256; only RS256",
        ),
        (
            "no kid",
            key.sign_as(Algorithm::RS256, None, &claims),
            "names no signing key",
        ),
        (
            "a kid the pool does not publish",
            key.sign_as(Algorithm::RS256, Some("key-2"), &claims),
            "not one of the user pool's keys",
        ),
        (
            "alg none",
            key_server::unsigned(&claims),
            "not a well-formed JWT",
        ),
        (
            "aud as an array",
            key.sign(&with(&claims, json!({ "aud": [test.client_id()] }))),
            "aud claim must be one client id",
        ),
        (
            "exp as a string",
            key.sign(&with(&claims, json!({ "exp": hour.to_string() }))),
            "exp claim must be a whole number of seconds",
        ),
        (
            "exp as a float",
            key.sign(&with(&claims, json!({ "exp": hour as f64 + 0.5 }))),
            "exp claim must be a whole number of seconds",
        ),
        (
            "no exp",
            key.sign(&with(&claims, json!({ "exp": null }))),
            "exp claim is missing",
        ),
        (
            "no iat",
            key.sign(&with(&claims, json!({ "iat": null }))),
            "iat claim is missing",
        ),
        (
            "token_use missing",
            key.sign(&with(&claims, json!({ "token_use": null }))),
            "neither an id nor an access token",
        ),
    ];

    let mut failures = Vec::new();
    for (name, token, reason) in &cases {
        for (method, path, body) in [
            ("POST", "/v1/messages", Some(SMS.as_bytes().to_vec())),
            ("GET", "/v1/usage", None),
        ] {
            let content_type = body.as_ref().map(|_| "application/json");
            let answer = test
                .request(method, path, Some(token), content_type, body)
                .await;
            let detail = answer.body["detail"].as_str().unwrap_or_default();
            if answer.status != 401
                || answer.body["type"] != "https://herald.dev/problems/unauthorized"
                || !detail.contains(reason)
            {
                failures.push(format!(
                    "{name} ({method} {path}): {} {:?}",
                    answer.status, answer.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not refused as expected:\n{}",
        failures.join("\n")
    );
    assert_eq!(test.table_items().await, 0, "nothing was written");
    assert_eq!(
        test.queue_depth("SendQueue").await,
        0,
        "nothing was enqueued"
    );

    // The same claims, honestly signed, are accepted; so is an nbf and iat within the
    // skew of 60 seconds (clocks differ a little, never by minutes).
    let honest = test
        .post_json("/v1/messages", &key.sign(&claims), SMS)
        .await;
    assert_eq!(honest.status, 202, "{:?}", honest.body);
    let skewed = with(&claims, json!({ "iat": now() + 30, "nbf": now() + 30 }));
    let skewed = test
        .post_json("/v1/messages", &key.sign(&skewed), SMS)
        .await;
    assert_eq!(skewed.status, 202, "{:?}", skewed.body);
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_costs_one_jwks_fetch_through_the_gateway() {
    let server = KeyServer::start().await;
    let key = SigningKey::generate("key-1");
    server.publish(&[&key]);
    server.delay_answers(Duration::from_millis(200));
    let test = cloud_trusting("tok-flood", &server).await;
    let claims = id_claims(&test);
    let started = tokio::time::Instant::now();

    let statuses: Vec<u16> = futures::stream::iter(0..1_000)
        .map(|_| {
            let token = key.sign_as(Algorithm::RS256, Some(&random_kid()), &claims);
            let test = &test;
            async move { test.post_json("/v1/messages", &token, SMS).await.status }
        })
        .buffer_unordered(50)
        .collect()
        .await;

    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // At most one fetch a minute, counted at the endpoint: the first requests all
    // found an empty cache and waited for one fetch.
    let minutes = started.elapsed().as_secs() / 60;
    let fetches = server.fetches();
    assert!(
        (1..=1 + minutes as usize).contains(&fetches),
        "{fetches} JWKS fetches in {minutes} whole minutes"
    );
    assert_eq!(test.table_items().await, 0, "nothing was written");
}

fn random_kid() -> String {
    herald_tests::herald_local::random_hex(16)
}

#[tokio::test]
async fn a_failing_jwks_endpoint_answers_503_with_retry_after_and_changes_nothing() {
    let server = KeyServer::start().await;
    let key = SigningKey::generate("key-1");
    server.publish(&[&key]);
    server.fail(true);
    let test = cloud_trusting("tok-jwks-down", &server).await;
    test.register_tenant("acme", herald_tests::TEST_LIMITS)
        .await;

    let answer = test
        .post_json("/v1/messages", &key.sign(&id_claims(&test)), SMS)
        .await;

    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(
        answer.body["type"],
        "https://herald.dev/problems/keys-unavailable"
    );
    let retry_after = answer.headers["retry-after"].to_str().unwrap();
    assert_eq!(
        retry_after,
        herald::token::FAILED_FETCH_BACKOFF.as_secs().to_string()
    );
    assert_eq!(server.fetches(), 1);
    assert_eq!(test.table_items().await, 0, "nothing was written");
}

fn verifier(server: &KeyServer, clock: &Arc<ManualClock>) -> Verifier {
    let settings = TokenSettings {
        issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tokens".into(),
        jwks_url: server.url(),
    };
    Verifier::new(settings, clock.clone())
}

/// Claims the `verifier` above accepts until an hour past `at`.
fn claims_at(at: u64) -> Value {
    json!({
        "sub": "user-1",
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tokens",
        "aud": "client-1",
        "token_use": "id",
        "iat": at,
        "exp": at + 2 * 3600,
    })
}

/// `count` verifications at once, each on its own task, of tokens naming random kids.
async fn unknown_kids(verifier: &Arc<Verifier>, key: &SigningKey, claims: &Value, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let token = key.sign_as(Algorithm::RS256, Some(&random_kid()), claims);
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), Rejection::UnknownKey);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_key_ids_fetch_once_however_many_wait_and_at_most_once_a_minute() {
    let server = KeyServer::start().await;
    let key = SigningKey::generate("key-1");
    server.publish(&[&key]);
    // Every caller arrives while the first fetch is still being answered.
    server.delay_answers(Duration::from_millis(300));
    let clock = ManualClock::at(now());
    let verifier = Arc::new(verifier(&server, &clock));
    let claims = claims_at(now());

    unknown_kids(&verifier, &key, &claims, 1_000).await;
    assert_eq!(
        server.fetches(),
        1,
        "one fetch for 1,000 concurrent callers"
    );

    clock.advance(Duration::from_secs(59));
    unknown_kids(&verifier, &key, &claims, 1_000).await;
    assert_eq!(server.fetches(), 1, "no second fetch within the minute");

    clock.advance(Duration::from_secs(1));
    unknown_kids(&verifier, &key, &claims, 1_000).await;
    assert_eq!(
        server.fetches(),
        2,
        "one more fetch once the minute is over"
    );

    // Known keys never wait for the endpoint.
    assert!(verifier.verify(&key.sign(&claims)).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_fetch_is_not_repeated_until_the_backoff_has_passed() {
    let server = KeyServer::start().await;
    let key = SigningKey::generate("key-1");
    server.publish(&[&key]);
    server.fail(true);
    let clock = ManualClock::at(now());
    let verifier = Arc::new(verifier(&server, &clock));
    let token = key.sign(&claims_at(now()));

    let refusals = futures::future::join_all((0..200).map(|_| verifier.verify(&token))).await;
    assert!(
        refusals
            .iter()
            .all(|r| r == &Err(Rejection::KeysUnavailable))
    );
    assert_eq!(server.fetches(), 1);

    clock.advance(herald::token::FAILED_FETCH_BACKOFF - Duration::from_secs(1));
    assert_eq!(
        verifier.verify(&token).await,
        Err(Rejection::KeysUnavailable)
    );
    assert_eq!(server.fetches(), 1, "still within the backoff");

    clock.advance(Duration::from_secs(1));
    server.fail(false);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_withdrawn_key_stops_verifying_once_the_cached_keys_are_an_hour_old() {
    let server = KeyServer::start().await;
    let withdrawn = SigningKey::generate("key-old");
    let current = SigningKey::generate("key-new");
    server.publish(&[&withdrawn]);
    let start = now();
    let clock = ManualClock::at(start);
    let verifier = verifier(&server, &clock);
    let token = withdrawn.sign(&claims_at(start));
    assert!(verifier.verify(&token).await.is_ok());

    // The pool rotates: the old key is no longer published.
    server.publish(&[&current]);
    clock.advance(herald::token::MAX_KEY_AGE - Duration::from_secs(1));
    assert!(
        verifier.verify(&token).await.is_ok(),
        "cached keys are still trusted"
    );
    assert_eq!(server.fetches(), 1);

    clock.advance(Duration::from_secs(1));
    assert_eq!(verifier.verify(&token).await, Err(Rejection::UnknownKey));
    assert_eq!(server.fetches(), 2, "keys an hour old were fetched again");
    assert!(
        verifier
            .verify(&current.sign(&claims_at(start)))
            .await
            .is_ok()
    );
}
