//! The test harness: each test gets its own stack (table, queues, secret, user pool)
//! in one shared emulator, started on demand, so tests run in parallel without
//! seeing each other's data.
//!
//! One room on purpose, for now: `TestCloud`'s methods are what every suite reads
//! first, and they are kept together so a test's vocabulary (send, wait, count the
//! queues, break a queue) is found in one place; the larger topics already live in
//! modules (`outbound`, `bad_request`, `documented`). The next split is the queue
//! helpers (receive, poll, depth, break and restore) into a module of their own.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use herald_local::emulator::SentEmail;
use herald_local::runner::QueueRunner;
use herald_local::sandbox::LedgerEntry;
use herald_local::{CloudOptions, LocalCloud, emulator, project_root, seed};
use serde_json::Value;

pub use herald_local;
pub mod bad_request;
pub mod documented;
pub mod iam;
// Status webhooks to tenants (issue 15).
pub mod outbound;
pub mod restores;
pub mod webhooks;

use herald::domain::{Limits, Plan};
use herald::provider::Provider;
use herald::provider::twilio::TwilioProvider;
use herald::secrets::SecretsCache;

/// Limits of the tenants tests register: far above what any test but the limit tests
/// reaches.
/// The queues intake puts chunks on: bulk, and the express lane for small batches.
const SEND_QUEUES: [&str; 2] = ["SendQueue", "ExpressQueue"];

pub const TEST_LIMITS: Limits = Limits {
    api_requests_per_second: 1_000,
    sends_per_day: 1_000_000,
};

pub struct TestCloud {
    pub cloud: LocalCloud,
    http: reqwest::Client,
    /// Every AWS call of the stack's functions (the test's own counter if it set one).
    requests: herald_local::requests::RequestCounter,
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestCloud {
    /// A fresh stack named after the test.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, |_| {}).await
    }

    pub async fn start_with(test: &str, configure: impl FnOnce(&mut CloudOptions)) -> Self {
        let endpoint = emulator::endpoint();
        emulator::ensure_for_tests(&project_root(), &endpoint)
            .await
            .expect("the emulator runs");
        let stack = format!("t-{test}-{}", herald_local::random_hex(8));
        let mut options = CloudOptions::ephemeral(&stack);
        configure(&mut options);
        let requests = options.count_requests.get_or_insert_default().clone();
        let cloud = LocalCloud::start(&endpoint, options)
            .await
            .unwrap_or_else(|e| panic!("local cloud for {test} did not start: {e:#}"));
        Self {
            cloud,
            http: reqwest::Client::new(),
            requests,
        }
    }

    /// Checks every AWS call the stack's functions made so far against their policies
    /// in template.yaml (`iam`), panicking with those none allows; the `(caller, IAM
    /// action)` pairs checked.
    pub fn assert_calls_allowed_by_template(&self) -> BTreeSet<(String, String)> {
        let template =
            herald_local::template::Template::load(&project_root().join("template.yaml"))
                .expect("template.yaml reads");
        let (refused, checked) = iam::disallowed(&template, &self.requests.snapshot());
        assert!(refused.is_empty(), "{refused:#?}");
        checked
    }

    pub fn pool(&self) -> &str {
        self.cloud.stack.reference("UserPool").expect("user pool")
    }

    pub fn client_id(&self) -> &str {
        self.cloud
            .stack
            .reference("UserPoolClient")
            .expect("client")
    }

    /// A user of `tenant` in group `role`, signed in through the stack's app client.
    /// The tenant is registered first (limits high enough that only the tests about
    /// limits meet them), unless it exists.
    pub async fn tokens(&self, tenant: &str, role: &str) -> seed::Tokens {
        if role != "operator" {
            self.register_tenant(tenant, TEST_LIMITS).await;
        }
        let cognito = &self.cloud.clients.cognito;
        let user = seed::user(cognito, self.pool(), tenant, role)
            .await
            .expect("user created");
        let store = &self.cloud.sender.store;
        seed::record_user(store, cognito, self.pool(), tenant, role, &user)
            .await
            .expect("user recorded");
        seed::sign_in(cognito, self.client_id(), &user)
            .await
            .expect("signed in")
    }

    /// Registers `tenant` with `limits`, unless it exists.
    pub async fn register_tenant(&self, tenant: &str, limits: Limits) {
        seed::tenant(
            &self.cloud.sender.store,
            tenant,
            Plan::Enterprise,
            Some(limits),
        )
        .await
        .expect("tenant registered");
    }

    /// Registers a machine client for the admin's tenant; answers `(client_id, secret)`.
    pub async fn machine_client(&self, admin: &str, scopes: &[&str]) -> (String, String) {
        let body = serde_json::json!({ "name": "backend", "scopes": scopes }).to_string();
        let answer = self.post_json("/v1/clients", admin, &body).await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        (
            answer.body["client_id"]
                .as_str()
                .expect("client_id")
                .to_owned(),
            answer.body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        )
    }

    /// Asks the token endpoint for a client-credentials token (all the client's scopes
    /// when `scope` is `None`); answers the token, or the endpoint's status and body.
    pub async fn client_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> Result<String, (u16, serde_json::Value)> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(&self.cloud.api_config.auth.token_url)
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .expect("token endpoint answers");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("token endpoint JSON");
        match status {
            200 => Ok(body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned()),
            _ => Err((status, body)),
        }
    }

    /// Lets `tenant` text the sandbox's magic numbers: Twilio's, US 500 numbers, which
    /// are personal numbers, texted only once an operator allows them.
    pub async fn allow_magic_numbers(&self, tenant: &str) {
        let operator = self.token("herald", "operator").await;
        let policy = r#"{"number_types": ["mobile", "fixed_line_or_mobile", "personal_number"]}"#;
        let allowed = self
            .request(
                "PUT",
                &format!("/v1/tenants/{tenant}/sms-policy"),
                Some(&operator),
                Some("application/json"),
                Some(policy.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    }

    /// The ID token clients send as their bearer token.
    pub async fn token(&self, tenant: &str, role: &str) -> String {
        self.tokens(tenant, role).await.id_token
    }

    /// A request as a client sends it; a POST carries a fresh Idempotency-Key.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let key = (method == "POST").then(|| ulid::Ulid::new().to_string());
        self.request_with_key(method, path, token, content_type, body, key.as_deref())
            .await
    }

    /// A request with exactly the Idempotency-Key given (none for `None`).
    pub async fn request_with_key(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.cloud.gateway_url);
        let mut request = self.http.request(method.parse().expect("method"), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        documented::assert_documented(method, path, status, &body);
        Answer {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &str) -> Answer {
        self.request(
            "POST",
            path,
            Some(token),
            Some("application/json"),
            Some(body.as_bytes().to_vec()),
        )
        .await
    }

    pub async fn post_json_with_key(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: &str,
    ) -> Answer {
        self.request_with_key(
            "POST",
            path,
            Some(token),
            Some("application/json"),
            Some(body.as_bytes().to_vec()),
            Some(key),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request("GET", path, Some(token), None, None).await
    }

    /// Sends one SMS and returns its message id.
    pub async fn send_sms(&self, token: &str, to: &str, body: &str) -> String {
        let payload = serde_json::json!({ "to": to, "body": body }).to_string();
        let answer = self.post_json("/v1/messages", token, &payload).await;
        assert_eq!(answer.status, 202, "send answered {:?}", answer.body);
        answer.body["id"].as_str().expect("message id").to_owned()
    }

    /// Sends one email and returns its message id.
    pub async fn send_email(&self, token: &str, to: &str, subject: &str, body: &str) -> String {
        let payload = serde_json::json!({
            "channel": "email", "to": to, "subject": subject, "body": body,
        })
        .to_string();
        let answer = self.post_json("/v1/messages", token, &payload).await;
        assert_eq!(answer.status, 202, "send answered {:?}", answer.body);
        answer.body["id"].as_str().expect("message id").to_owned()
    }

    /// Sends one email batch of `recipients` (address and variables) and returns its id.
    pub async fn send_email_batch(
        &self,
        token: &str,
        subject: &str,
        template: &str,
        recipients: &[Value],
    ) -> String {
        let payload = serde_json::json!({
            "channel": "email",
            "subject": subject,
            "template": template,
            "recipients": recipients,
        });
        let answer = self
            .post_json("/v1/batches", token, &payload.to_string())
            .await;
        assert_eq!(answer.status, 202, "batch answered {:?}", answer.body);
        answer.body["batch_id"]
            .as_str()
            .expect("batch id")
            .to_owned()
    }

    /// This test's own email domain. SES's record of sent email is shared by every
    /// stack in the emulator, so each test sends to addresses only it uses.
    pub fn email_domain(&self) -> String {
        let name: String = self
            .cloud
            .stack
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{}.test", name.trim_matches('-'))
    }

    /// The address of test recipient `i`, at this test's domain.
    pub fn email(&self, i: usize) -> String {
        format!("user{i}@{}", self.email_domain())
    }

    /// Every email SES accepted for this test's domain.
    pub async fn sent_emails(&self) -> Vec<SentEmail> {
        emulator::sent_emails(&self.cloud.emulator, &self.email_domain())
            .await
            .expect("the emulator reports sent email")
    }

    /// Every email SES accepted for `domain` (for a test of shared addresses, such as
    /// SES's mailbox simulator's, which only its own subjects tell apart).
    pub async fn sent_emails_at(&self, domain: &str) -> Vec<SentEmail> {
        emulator::sent_emails(&self.cloud.emulator, domain)
            .await
            .expect("the emulator reports sent email")
    }

    /// How many emails SES accepted for each recipient of this test's domain.
    pub async fn emails_per_recipient(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for email in self.sent_emails().await {
            for to in email.to.iter().chain(&email.cc).chain(&email.bcc) {
                *counts.entry(to.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// Sends one batch of `recipients` (number and variables) and returns its id.
    pub async fn send_batch(&self, token: &str, template: &str, recipients: &[Value]) -> String {
        let payload = serde_json::json!({ "template": template, "recipients": recipients });
        let answer = self
            .post_json("/v1/batches", token, &payload.to_string())
            .await;
        assert_eq!(answer.status, 202, "batch answered {:?}", answer.body);
        answer.body["batch_id"]
            .as_str()
            .expect("batch id")
            .to_owned()
    }

    /// Exactly `expected` chunk records from the send queue and the express lane's
    /// (for tests that run the queues by hand), gathered over as many receives as it
    /// takes: the trigger's batch size may be smaller than `expected`.
    pub async fn receive_chunks(&self, expected: usize) -> SqsEvent {
        self.receive_records(
            &[&self.cloud.send_runner, &self.cloud.express_runner],
            expected,
        )
        .await
    }

    /// Exactly `expected` records from the events queue, as `receive_chunks` (for tests
    /// that pause the events function and hand it a batch themselves).
    pub async fn receive_events(&self, expected: usize) -> SqsEvent {
        self.receive_records(&[&self.cloud.events_runner], expected)
            .await
    }

    async fn receive_records(&self, runners: &[&QueueRunner], expected: usize) -> SqsEvent {
        let records = std::sync::Mutex::new(Vec::new());
        eventually(&format!("{expected} queue messages"), || async {
            let mut received = Vec::new();
            for runner in runners {
                received.extend(runner.receive().await.expect("receive").records);
            }
            let mut records = records.lock().unwrap();
            records.extend(received);
            assert!(
                records.len() <= expected,
                "more than {expected} queue messages"
            );
            (records.len() == expected).then_some(())
        })
        .await;
        let mut event = SqsEvent::default();
        event.records = records.into_inner().unwrap();
        event
    }

    /// Polls the batch (once a second: each poll costs the emulator three requests
    /// that large batches need for sending) until its status is `status`; returns its
    /// progress.
    pub async fn wait_for_batch(&self, token: &str, id: &str, status: &str) -> Value {
        let path = format!("/v1/batches/{id}");
        let what = format!("batch {id} to be {status}");
        eventually_every(&what, Duration::from_secs(1), || async {
            let answer = self.get(&path, token).await;
            (answer.body["status"] == status).then_some(answer.body)
        })
        .await
    }

    /// Polls the message until its status is `status`.
    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) -> Value {
        let path = format!("/v1/messages/{id}");
        eventually(&format!("message {id} to be {status}"), || async {
            let answer = self.get(&path, token).await;
            (answer.body["status"] == status).then_some(answer.body)
        })
        .await
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.cloud.sandbox.ledger()
    }

    /// Items in this stack's table, apart from tenant profiles, seeded users (with
    /// their admin count) and request-rate windows (every request counts in its
    /// window, even one refused as bad input).
    pub async fn table_items(&self) -> usize {
        let table = self.cloud.stack.reference("HeraldTable").expect("table");
        let out = self
            .cloud
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            // The tenant's registration and its seeded people (`tokens`) are the
            // test's setup, not what its requests wrote.
            .filter_expression("NOT (sk IN (:profile, :rate, :user, :admins))")
            .expression_attribute_values(
                ":profile",
                aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()),
            )
            .expression_attribute_values(
                ":user",
                aws_sdk_dynamodb::types::AttributeValue::S("USER".into()),
            )
            .expression_attribute_values(
                ":admins",
                aws_sdk_dynamodb::types::AttributeValue::S("ADMINS".into()),
            )
            .expression_attribute_values(
                ":rate",
                aws_sdk_dynamodb::types::AttributeValue::S("RATE".into()),
            )
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .expect("scan");
        out.count as usize
    }

    /// Every item under `tenant`'s keys, each rendered canonically,
    /// sorted: two snapshots are equal exactly when nothing of the tenant changed.
    pub async fn tenant_items(&self, tenant: &str) -> Vec<String> {
        let table = self.cloud.stack.reference("HeraldTable").expect("table");
        let prefix = format!("TENANT#{tenant}");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .cloud
                .clients
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                let under_prefix =
                    pk.is_some_and(|pk| pk == &prefix || pk.starts_with(&format!("{prefix}#")));
                // Items keyed by something else (a machine client by its client id) name
                // their tenant.
                let named = item
                    .get("tenant_id")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|t| t == tenant);
                if under_prefix || named {
                    items.push(canonical(&AttributeValue::M(item.clone())));
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        items.sort();
        items
    }

    /// Items of this stack's table whose sort key is `sk` (`META`: batches).
    pub async fn items_with_sk(&self, sk: &str) -> usize {
        let table = self.cloud.stack.reference("HeraldTable").expect("table");
        let out = self
            .cloud
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .filter_expression("sk = :sk")
            .expression_attribute_values(
                ":sk",
                aws_sdk_dynamodb::types::AttributeValue::S(sk.to_owned()),
            )
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .expect("scan");
        out.count as usize
    }

    /// The ids of every batch in this stack's table, oldest first.
    pub async fn batch_ids(&self) -> Vec<String> {
        let table = self.cloud.stack.reference("HeraldTable").expect("table");
        let out = self
            .cloud
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .filter_expression("sk = :sk")
            .expression_attribute_values(
                ":sk",
                aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
            )
            .send()
            .await
            .expect("scan");
        let mut ids: Vec<String> = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.get("batch_id")?.as_s().ok().cloned())
            .collect();
        ids.sort();
        ids
    }

    /// The Twilio-compatible adapter as the stack's sender builds it (the sandbox, the
    /// stack's provider secret), for tests that wrap it in some misbehaviour.
    pub fn twilio_adapter(&self) -> TwilioProvider {
        let config = &self.cloud.sender.config;
        let secrets = Arc::new(SecretsCache::new(
            herald::aws::SecretsManagerClient::new(&self.cloud.sdk),
            Duration::from_secs(300),
        ));
        TwilioProvider::new(
            &config.sms_api_base,
            &config.provider_secret_id,
            secrets,
            config.provider_timeout,
        )
        .expect("the sandbox adapter")
    }

    /// A sender like the stack's own (its configuration, table, queues and clock), with
    /// `provider` for every channel and tenant; its metrics go where the stack's go.
    pub fn sender_with(&self, provider: Arc<dyn Provider>) -> herald_sender::Deps {
        let sender = &self.cloud.sender;
        herald_sender::Deps::new(
            sender.config.clone(),
            sender.store.clone(),
            (sender.queue.clone(), sender.dead_letters.clone()),
            herald_sender::Providers::all(provider),
            sender.clock.clone(),
        )
        .with_metrics(self.cloud.metrics.clone())
    }

    /// One poll of the send queue and one of the express lane's, each handled as its
    /// event source would (for tests that run the queues by hand): records handled.
    pub async fn poll_send_queues(&self) -> usize {
        let mut handled = 0;
        for runner in [&self.cloud.send_runner, &self.cloud.express_runner] {
            handled += runner.poll_once().await.expect("a poll");
        }
        handled
    }

    /// Chunk messages on the send queue and the express lane's (in flight included).
    pub async fn chunks_queued(&self) -> usize {
        let mut queued = 0;
        for queue in SEND_QUEUES {
            queued += self.queue_depth(queue).await;
        }
        queued
    }

    /// Deletes the stack's send queues (the express lane's too): intake then fails
    /// between writing a batch and enqueuing it, as a crash there would leave it.
    /// `restore_send_queue` undoes it.
    pub async fn break_send_queue(&self) {
        for queue in SEND_QUEUES {
            let url = self.cloud.stack.reference(queue).expect("send queue");
            self.cloud
                .clients
                .sqs
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .expect("the send queue is deleted");
        }
    }

    /// Creates the send queues again under their names, so at their old URLs.
    pub async fn restore_send_queue(&self) {
        for queue in SEND_QUEUES {
            let url = self.cloud.stack.reference(queue).expect("send queue");
            let name = url.rsplit('/').next().expect("a queue name");
            let restored = self
                .cloud
                .clients
                .sqs
                .create_queue()
                .queue_name(name)
                .send()
                .await
                .expect("the send queue is created again");
            assert_eq!(restored.queue_url(), Some(url), "the same queue URL");
        }
    }

    /// Puts a message on one of this stack's queues (`SendDLQ`...) with these
    /// attributes, each `(name, data type, value)`.
    pub async fn put_on_queue(&self, queue: &str, body: &str, attributes: &[(&str, &str, &str)]) {
        let url = self.cloud.stack.reference(queue).expect("queue");
        let mut request = self
            .cloud
            .clients
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(body);
        for (name, data_type, value) in attributes {
            let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type(*data_type)
                .string_value(*value)
                .build()
                .expect("attribute");
            request = request.message_attributes(*name, value);
        }
        request.send().await.expect("message sent");
    }

    /// Visible plus in-flight messages of a queue of this stack.
    pub async fn queue_depth(&self, logical_id: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = self.cloud.stack.reference(logical_id).expect("queue");
        let out = self
            .cloud
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let attributes = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attributes
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

/// Queue redelivery in `visibility` seconds, for tests that wait for it. The local
/// invocation timeout shrinks to match (as AWS requires), so provider calls are given
/// up on after a second to leave each invocation time to claim and settle.
pub fn quick_redelivery(options: &mut CloudOptions, visibility: u32) {
    options.visibility_timeout = Some(visibility);
    options
        .env_overrides
        .insert("HERALD_PROVIDER_TIMEOUT_MS".into(), "1000".into());
}

/// The statuses of a message's history (as the API shows it), oldest first.
pub fn history_statuses(message: &Value) -> Vec<String> {
    message["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

/// An attribute value rendered with every map's keys in order, so equal values render
/// equally (the SDK's maps have no order).
pub fn canonical(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => {
            let sorted: std::collections::BTreeMap<_, _> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("{sorted:?}")
        }
        AttributeValue::L(list) => format!("{:?}", list.iter().map(canonical).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

/// A valid US number for test recipient `i` (distinct for every `i` below 8,000).
pub fn number(i: usize) -> String {
    format!("+1415555{:04}", 2000 + i)
}

/// Retries `check` every 100 ms until it yields a value; panics naming `what` after
/// three minutes. This waits for asynchronous work to finish; it asserts nothing about
/// how long it took.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, Duration::from_millis(100), check).await
}

/// Retries `check` every `interval` until it yields `Ok`; its `Err` says how far the
/// work has got, and the wait gives up naming `what` only when that has not changed for
/// three minutes. For work whose length depends on how loaded the machine is (hundreds
/// of messages through one emulator), where only a stall is a failure.
pub async fn eventually_progressing<T, P, F, Fut>(what: &str, interval: Duration, mut check: F) -> T
where
    P: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, P>>,
{
    let stall = Duration::from_secs(180);
    let mut last: Option<P> = None;
    let mut moved = tokio::time::Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(progress) => {
                if last.as_ref() != Some(&progress) {
                    last = Some(progress);
                    moved = tokio::time::Instant::now();
                } else if moved.elapsed() > stall {
                    panic!("gave up waiting for {what}: stalled at {last:?}");
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// `eventually`, retrying every `interval`.
pub async fn eventually_every<T, F, Fut>(what: &str, interval: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + Duration::from_secs(180);
    while tokio::time::Instant::now() < give_up {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(interval).await;
    }
    panic!("gave up waiting for {what}");
}
