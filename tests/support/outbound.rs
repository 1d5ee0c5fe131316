//! Status webhooks as a tenant receives them (issue 15): a receiver on loopback that
//! records every request and answers by its path (`/ok...` 200, `/gone...` 410,
//! `/down...` 500, `/flaky...` 500 to every other request, starting with the first,
//! `/halved...` 500 to the first request of each `webhook-id` and 200 to the next),
//! the Standard Webhooks check as a tenant writes it, apart from Herald's signer, the
//! delivery proof's assertions (shared by the 40- and 500-message runs), and a clock
//! the deliverer reads that a test moves ahead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::TestCloud;

/// One request the receiver got, and its answer.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Received {
    pub fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    per_path: HashMap<String, usize>,
    /// Requests per path and `webhook-id`.
    per_event: HashMap<(String, String), usize>,
}

#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(answer))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Requests to `path` grouped by `webhook-id`, each with the statuses answered in
    /// order.
    pub fn by_id(&self, path: &str) -> BTreeMap<String, Vec<u16>> {
        let mut ids: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for r in self.at(path) {
            ids.entry(r.webhook_id()).or_default().push(r.answered);
        }
        ids
    }

    /// Whether the batch's `messages` events reached `/ok` (each `message.sent` and the
    /// `batch.completed`) and each `message.sent` ended with a 200 at `retried` (an
    /// endpoint that fails some requests).
    pub fn batch_arrived(&self, messages: usize, retried: &str) -> bool {
        self.at("ok").len() == messages + 1
            && self
                .by_id(retried)
                .values()
                .filter(|answers| answers.last() == Some(&200))
                .count()
                == messages
    }

    /// Every request to `path`, in order of arrival.
    pub fn at(&self, path: &str) -> Vec<Received> {
        let log = self.log.lock().unwrap();
        log.received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn answer(
    State(log): State<Arc<Mutex<Log>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut log = log.lock().unwrap();
    *log.per_path.entry(path.clone()).or_default() += 1;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let tries = log.per_event.entry((path.clone(), id)).or_default();
    *tries += 1;
    let first_try = *tries == 1;
    let count = log.per_path[&path];
    let status = if path.starts_with("gone") {
        StatusCode::GONE
    } else if path.starts_with("down")
        || (path.starts_with("flaky") && count % 2 == 1)
        || (path.starts_with("halved") && first_try)
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    log.received.push(Received {
        path,
        headers,
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    status
}

/// Whether one of the delivery's signatures is `secret`'s, as a tenant checks it.
pub fn verifies(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = [
        headers["webhook-id"].as_bytes(),
        b".",
        headers["webhook-timestamp"].as_bytes(),
        b".",
        body,
    ]
    .concat();
    let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &signed);
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .filter_map(|s| STANDARD.decode(s.strip_prefix("v1,")?).ok())
        .any(|s| s == expected.as_ref())
}

impl TestCloud {
    /// Registers an endpoint at `url` for `event_types`; answers its id and secret.
    pub async fn register_endpoint(
        &self,
        admin: &str,
        url: &str,
        event_types: &[&str],
    ) -> (String, String) {
        let body = serde_json::json!({ "url": url, "event_types": event_types });
        let created = self
            .post_json("/v1/webhooks/endpoints", admin, &body.to_string())
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        (
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// The endpoint `id` as its admin reads it, with the audit entries Herald itself
    /// wrote (actor `herald`): what a 410 or five failing days leave behind.
    pub async fn disabled_by_herald(
        &self,
        admin: &str,
        id: &str,
    ) -> (serde_json::Value, Vec<serde_json::Value>) {
        let endpoint = self
            .get(&format!("/v1/webhooks/endpoints/{id}"), admin)
            .await
            .body;
        let audit = self.get("/v1/audit", admin).await.body;
        let by_herald = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == "herald")
            .cloned()
            .collect();
        (endpoint, by_herald)
    }

    /// Deliveries on the queue: visible, in flight and delayed (a retry waiting).
    pub async fn deliveries_pending(&self) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = self
            .cloud
            .stack
            .reference("DeliveriesQueue")
            .expect("queue");
        let names = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let out = self
            .cloud
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .expect("queue attributes");
        let attributes = out.attributes.unwrap_or_default();
        names
            .iter()
            .filter_map(|a| attributes.get(a)?.parse::<usize>().ok())
            .sum()
    }
}

/// The events a batch's messages produce: one per message, `{message id}.{status}`,
/// from each message's final status as the API lists it (`sent`, or `unknown` when a
/// provider's answer was lost), and the count of each status.
pub async fn batch_events(
    test: &TestCloud,
    token: &str,
    batch: &str,
) -> (BTreeSet<String>, BTreeMap<String, usize>) {
    let mut events = BTreeSet::new();
    let mut counts = BTreeMap::new();
    let mut next = Some(format!("/v1/batches/{batch}/messages?limit=100"));
    while let Some(path) = next {
        let page = test.get(&path, token).await;
        assert_eq!(page.status, 200, "{path}: {:?}", page.body);
        for message in page.body["messages"].as_array().unwrap() {
            let status = message["status"].as_str().unwrap();
            events.insert(format!("{}.{status}", message["id"].as_str().unwrap()));
            *counts.entry(status.to_owned()).or_default() += 1;
        }
        next = page.body["next_url"].as_str().map(str::to_owned);
    }
    (events, counts)
}

/// The proof at `/ok` (answering 200, subscribed to the batch's message events and
/// `batch.completed`): exactly `expected` (`batch_events`) and the batch's completion,
/// each once, each signed with `secret` and not with `other` (another endpoint's), the
/// address masked, the completion counting `counts`.
pub fn assert_each_event_once(
    receiver: &Receiver,
    batch: &str,
    (expected, counts): (&BTreeSet<String>, &BTreeMap<String, usize>),
    (secret, other): (&str, &str),
) {
    let mut expected = expected.clone();
    expected.insert(format!("{batch}.completed"));
    let ok = receiver.at("ok");
    let ok_ids: BTreeSet<String> = ok.iter().map(|r| r.webhook_id()).collect();
    assert_eq!(
        ok.len(),
        ok_ids.len(),
        "a webhook-id repeated on a 200 endpoint"
    );
    assert_eq!(ok_ids, expected);
    let messages: usize = counts.values().sum();
    for r in &ok {
        assert!(verifies(secret, &r.headers, &r.body), "{}", r.webhook_id());
        assert!(!verifies(other, &r.headers, &r.body));
        let body = r.json();
        if let Some(status) = body["type"].as_str().unwrap().strip_prefix("message.") {
            assert_eq!(body["data"]["status"], status);
            assert_eq!(body["data"]["batch_id"], batch);
            let to = body["data"]["to"].as_str().unwrap();
            assert_eq!(&to[..10], "+14*******", "address not masked: {to}");
            // The provider's reference is its random id (hex, which may hold any run
            // of digits); every other field is Herald's and must not carry the number.
            let mut ours = body.clone();
            ours["data"]["provider_ref"] = serde_json::Value::Null;
            assert!(!ours.to_string().contains("415555"), "address in {ours}");
        } else {
            assert_eq!(body["type"], "batch.completed");
            assert_eq!(body["data"]["total"], messages);
            for (status, count) in counts {
                assert_eq!(body["data"][status], *count, "{status}");
            }
        }
    }
}

/// The proof at `path` (an endpoint failing some requests, subscribed to the batch's
/// message events): every one of `expected` arrived, signed with `secret`; an id
/// repeats only after a failure, and ends with the one 200. Answers the ids with their
/// answers.
pub fn assert_retried_until_delivered(
    receiver: &Receiver,
    path: &str,
    expected: &BTreeSet<String>,
    secret: &str,
) -> BTreeMap<String, Vec<u16>> {
    let flaky_ids = receiver.by_id(path);
    assert_eq!(
        &flaky_ids.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    let mut retried = 0;
    for (id, answers) in &flaky_ids {
        let (last, before) = answers.split_last().unwrap();
        assert_eq!(*last, 200, "{id}: {answers:?}");
        assert!(before.iter().all(|a| *a == 500), "{id}: {answers:?}");
        retried += before.len();
    }
    assert!(retried > 0, "the flaky receiver failed nothing");
    for r in receiver.at(path) {
        assert!(verifies(secret, &r.headers, &r.body));
    }
    flaky_ids
}

/// The system's clock, moved ahead by what a test says: the deliverer reads it
/// (`CloudOptions::outbound_clock`) so a policy measured in days is reached without
/// waiting for them, while time still passes between the moves as it does for the
/// queues' delays.
#[derive(Default)]
pub struct MovedClock {
    ahead_millis: AtomicU64,
}

impl MovedClock {
    pub fn move_ahead(&self, by: Duration) {
        self.ahead_millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl herald::clock::Clock for MovedClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.ahead_millis.load(Ordering::SeqCst))
    }
}
