//! Delivering one event to a tenant's endpoints (issue 15), against the local stack's
//! table and secrets and a receiver on loopback that checks every delivery with its
//! own Standard Webhooks verification: each enabled endpoint subscribed to the event's
//! type gets it once, signed with its own secret; others get nothing; an endpoint
//! answering 410 is disabled, audited, and gets nothing more; after a secret's
//! rotation both secrets sign for 24 hours, then only the new one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use herald::domain::{Channel, EventType, MessageStatus, MessageView};
use herald::outbound::deliver::{Deliverer, Outcome, TIMEOUT};
use herald::outbound::dispatch::Dispatcher;
use herald::outbound::events::message_event;
use herald::outbound::secret::Sealer;
use herald::store::Store;
use herald::{BatchId, MessageId, TenantId, Timestamp};
use herald_tests::TestCloud;
use herald_tests::outbound::verifies;
use serde_json::json;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// Records every request; `/gone...` answers 410, anything else 200.
async fn receiver() -> (String, Seen) {
    async fn answer(
        State(seen): State<Seen>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let gone = path.starts_with("gone");
        seen.lock().unwrap().push((path, headers, body.to_vec()));
        if gone {
            StatusCode::GONE
        } else {
            StatusCode::OK
        }
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

async fn dispatcher(test: &TestCloud) -> Dispatcher {
    let clients = &test.cloud.clients;
    let key_id = test.cloud.stack.reference("WebhookSecretKey").unwrap();
    let key = clients
        .secrets
        .get_secret_value()
        .secret_id(key_id)
        .send()
        .await
        .unwrap();
    let table = test.cloud.stack.reference("HeraldTable").unwrap();
    Dispatcher {
        store: Store::new(clients.dynamodb.clone(), table),
        deliverer: Deliverer::new(test.cloud.api_config.dev, TIMEOUT),
        sealer: Sealer::from_key_material(key.secret_string().unwrap().as_bytes()),
        clock: herald::clock::system(),
    }
}

#[tokio::test]
async fn an_event_reaches_each_subscribed_endpoint_once_signed_and_a_410_disables_its_endpoint() {
    let test = TestCloud::start("webhook-delivery").await;
    let admin = test.token("acme", "admin").await;
    let (base, seen) = receiver().await;
    let mut secrets = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for (name, events) in [
        ("ok", json!(["message.delivered"])),
        ("gone", json!(["message.sent", "message.delivered"])),
        ("batches", json!(["batch.completed"])),
        ("off", json!(["message.delivered"])),
    ] {
        let body = json!({ "url": format!("{base}/{name}"), "event_types": events });
        let created = test
            .post_json("/v1/webhooks/endpoints", &admin, &body.to_string())
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        secrets.insert(name, created.body["secret"].as_str().unwrap().to_owned());
        ids.insert(name, created.body["id"].as_str().unwrap().to_owned());
    }
    let off = format!("/v1/webhooks/endpoints/{}/disable", ids["off"]);
    assert_eq!(test.post_json(&off, &admin, "").await.status, 200);

    let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
    let delivered = MessageView {
        id: MessageId::new(BatchId::new(), 3),
        channel: Channel::Sms,
        to: "+14155550100".into(),
        status: MessageStatus::Delivered,
        provider: Some("twilio".into()),
        provider_ref: Some("SM1".into()),
        attempts: 1,
        error_code: None,
        error_reason: None,
        created_at: at,
        updated_at: at,
        history: Vec::new(),
    };
    let event = message_event(Some(MessageStatus::Sent), &delivered).unwrap();
    assert_eq!(event.event_type, EventType::MessageDelivered);
    let dispatcher = dispatcher(&test).await;
    let acme = TenantId::parse("acme").unwrap();

    let mut attempts = dispatcher.dispatch(&acme, &event).await.unwrap();
    attempts.sort_by_key(|a| a.endpoint_id == ids["gone"]);
    let outcomes: Vec<(&str, &Outcome)> = attempts
        .iter()
        .map(|a| (a.endpoint_id.as_str(), &a.attempt.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (ids["ok"].as_str(), &Outcome::Delivered),
            (ids["gone"].as_str(), &Outcome::Gone)
        ]
    );
    {
        let seen = seen.lock().unwrap();
        let mut paths: Vec<&str> = seen.iter().map(|(p, ..)| p.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["gone", "ok"]);
        for (path, headers, body) in seen.iter() {
            assert_eq!(body, &event.body, "the bytes signed are the bytes sent");
            assert_eq!(headers["webhook-id"], event.id.as_str());
            assert!(verifies(&secrets[path.as_str()], headers, body), "{path}");
            let other = if path == "ok" { "gone" } else { "ok" };
            assert!(
                !verifies(&secrets[other], headers, body),
                "{path} verifies with {other}'s secret"
            );
        }
        assert!(!String::from_utf8_lossy(&seen[0].2).contains("4155550100"));
    }

    // The endpoint that answered 410 is disabled, by Herald, audited.
    let (gone, by_herald) = test.disabled_by_herald(&admin, &ids["gone"]).await;
    assert_eq!(gone["status"], "disabled", "{gone:?}");
    assert_eq!(gone["disabled_reason"], "gone");
    assert_eq!(by_herald.len(), 1, "{by_herald:?}");
    assert_eq!(by_herald[0]["action"], "webhook_endpoint.disabled");
    assert_eq!(by_herald[0]["target"], ids["gone"].as_str());

    // The event again (a retry): only the endpoint still enabled, with the same id.
    let again = dispatcher.dispatch(&acme, &event).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].endpoint_id, ids["ok"]);
    {
        let seen = seen.lock().unwrap();
        let ok: Vec<&HeaderMap> = seen
            .iter()
            .filter(|(p, ..)| p == "ok")
            .map(|(_, h, _)| h)
            .collect();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0]["webhook-id"], ok[1]["webhook-id"]);
        assert_eq!(
            seen.len(),
            3,
            "nothing reached the disabled or unsubscribed endpoints"
        );
    }

    // A rotation: for 24 hours both secrets sign, then only the new one.
    let rotate = format!("/v1/webhooks/endpoints/{}/rotate-secret", ids["ok"]);
    let rotated = test.post_json(&rotate, &admin, "").await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secrets["ok"]);
    assert!(rotated.body["previous_secret_until"].is_string());
    let last_ok = |seen: &Seen| {
        let seen = seen.lock().unwrap();
        let (_, headers, body) = seen.iter().rev().find(|(p, ..)| p == "ok").unwrap();
        (headers.clone(), body.clone())
    };
    dispatcher.dispatch(&acme, &event).await.unwrap();
    let (headers, body) = last_ok(&seen);
    assert!(verifies(&new_secret, &headers, &body));
    assert!(verifies(&secrets["ok"], &headers, &body));
    let later = Dispatcher {
        clock: Arc::new(Ahead(Duration::from_secs(24 * 3600 + 60))),
        ..dispatcher
    };
    later.dispatch(&acme, &event).await.unwrap();
    let (headers, body) = last_ok(&seen);
    assert!(verifies(&new_secret, &headers, &body));
    assert!(
        !verifies(&secrets["ok"], &headers, &body),
        "the old secret signs after 24 h"
    );
    assert_eq!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    test.assert_calls_allowed_by_template();
}

/// The system clock, set ahead by its duration.
struct Ahead(Duration);

impl herald::clock::Clock for Ahead {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
    }
}
