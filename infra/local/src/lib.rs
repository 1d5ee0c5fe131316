//! Herald's local cloud: the AWS emulator provisioned from `template.yaml`, the
//! functions run in-process behind a local API Gateway and SQS event source, and a
//! sandbox SMS provider. `make dev` runs it; the tests start one per test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::FutureExt;
use herald::config::{
    ApiConfig, BackupCheckConfig, EventsConfig, RedriverConfig, SenderConfig, WebhooksConfig,
};
use herald::redrive::RedriveReport;
use herald_redriver::{RedriveError, RedriveRun};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod cpu;
pub mod emulator;
pub mod gateway;
pub mod hostile;
pub mod log_subscription;
pub mod provision;
pub mod requests;
pub mod restores;
pub mod rotation;
pub mod runner;
pub mod sandbox;
pub mod seed;
pub mod stack;
pub mod template;
// Status webhooks to tenants, the pipeline (issue 15).
pub mod outbound;
pub mod stream_runner;

pub use provision::Stack;

/// The address local email is sent from (a reserved `.test` domain: nothing can
/// ever be delivered to or from it).
pub const LOCAL_EMAIL_FROM: &str = "herald@herald.test";

/// The project root (where `template.yaml` is).
pub fn project_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

pub fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}

pub fn random_token(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Credentials the sandbox accepts, stored in the stack's provider secret.
#[derive(Debug, Clone)]
pub struct ProviderCredentials {
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
}

impl ProviderCredentials {
    pub fn generate() -> Self {
        Self {
            account_sid: format!("AC{}", random_hex(32)),
            auth_token: random_token(32),
            // Twilio's magic "from" number that always works in test credentials.
            from: "+15005550006".into(),
        }
    }

    pub fn secret_json(&self) -> String {
        serde_json::json!({
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from": self.from,
        })
        .to_string()
    }
}

#[derive(Clone)]
pub struct CloudOptions {
    pub stack_name: String,
    pub gateway_addr: SocketAddr,
    pub sandbox_addr: SocketAddr,
    /// Replaces the queues' visibility timeout (tests want redelivery in seconds).
    pub visibility_timeout: Option<u32>,
    /// Whether to poll the queues; tests that drive the sender by hand turn it off.
    pub run_queues: bool,
    /// Environment values that replace the template's in every function (tests use
    /// short leases and timeouts).
    pub env_overrides: HashMap<String, String>,
    /// Whether to run scheduled functions on their template schedule (`up` does;
    /// tests call them when they want them).
    pub run_schedules: bool,
    /// Keep metric lines in memory (`LocalCloud::metrics`) for tests to add up, rather
    /// than printing them beside the logs as Lambda does (`up`).
    pub keep_metrics: bool,
    pub parameters: HashMap<String, String>,
    /// Counts every AWS request the functions and the queue's event source make, per
    /// caller, service and operation (the benchmark's requests per message).
    pub count_requests: Option<requests::RequestCounter>,
    /// Replaces the backup check's template schedule when schedules run (`make dev`
    /// compresses it: `restores::compress_for_dev`).
    pub backup_check_period: Option<Duration>,
    /// Whether the sender asks the provider for status callbacks (receipts) at the
    /// gateway (`up` does; tests that count receipts turn it on, others leave messages
    /// `sent` as the sender left them).
    pub receipts: bool,
    /// Whether the status webhooks' fan-out reads the table's stream and the deliverer
    /// takes the deliveries queue (issue 15; `up` does, and the tests of webhooks).
    pub outbound: bool,
    /// Whether SNS logs its texts' delivery status and the template's subscription
    /// filters hand them to the events function (`log_subscription`). The SMS
    /// attributes and SNS's log groups belong to the account, which every stack in one
    /// emulator shares: a stack that follows them also receives other stacks' texts'
    /// records (kept as orphans, as in an account two deployments shared).
    pub sms_delivery_logs: bool,
    /// The clock the status webhooks' fan-out and deliverer read, as `main` passes
    /// theirs (the system clock when `None`): a test moves it to reach a policy measured
    /// in days (five failing days disable an endpoint) without waiting for them.
    pub outbound_clock: Option<herald::clock::SharedClock>,
}

impl CloudOptions {
    pub fn ephemeral(stack_name: &str) -> Self {
        Self {
            stack_name: stack_name.to_owned(),
            gateway_addr: "127.0.0.1:0".parse().expect("address"),
            sandbox_addr: "127.0.0.1:0".parse().expect("address"),
            visibility_timeout: None,
            run_queues: true,
            run_schedules: false,
            keep_metrics: true,
            env_overrides: HashMap::new(),
            parameters: HashMap::new(),
            count_requests: None,
            backup_check_period: None,
            receipts: false,
            outbound: false,
            sms_delivery_logs: false,
            outbound_clock: None,
        }
    }
}

/// Pollers of the events queue locally: the template allows 20 concurrent invocations,
/// but every idle poller costs the one emulator a long poll a second.
const LOCAL_EVENT_POLLERS: usize = 4;

/// Where the emulator serves the certificate its SNS signs HTTP deliveries with
/// (`ses_events.py`); only the local cloud's receiver trusts it.
pub const SNS_LOCAL_CERTIFICATE_PATH: &str = "/_herald/sns/certificate.pem";

/// The template's SES events path, played locally: the events topic in the emulator's
/// SNS, the gateway's `/webhooks/ses` subscribed to it over plain HTTP, and the
/// configuration set's event destination registered with the emulator's SES. The
/// topic's ARN and the subscription's, which stays pending until the receiver confirms
/// it (`confirmed`).
async fn ses_events(
    sdk: &herald::aws::SdkConfig,
    emulator: &str,
    stack: &Stack,
    gateway_url: &str,
) -> Result<(String, String)> {
    let sns = aws_sdk_sns::Client::new(sdk);
    let topic = sns
        .create_topic()
        .name(stack.reference("SesEventsTopic")?)
        .send()
        .await
        .context("creating the SES events topic")?
        .topic_arn
        .context("the emulator named no topic")?;
    let subscription = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(format!("{gateway_url}{}", herald::webhook::sns::SES_PATH))
        .return_subscription_arn(true)
        .send()
        .await
        .context("subscribing the receiver to the SES events topic")?
        .subscription_arn
        .context("the emulator named no subscription")?;
    let answer = reqwest::Client::new()
        .post(format!("{emulator}/_herald/ses/event-destinations"))
        .json(&serde_json::json!({
            "configuration_set": stack.reference("SesConfigurationSet")?,
            "topic_arn": topic,
        }))
        .send()
        .await
        .context("registering the SES event destination")?;
    anyhow::ensure!(
        answer.status().is_success(),
        "the emulator refused the SES event destination: {}",
        answer.status()
    );
    Ok((topic, subscription))
}

/// Waits until the receiver has confirmed `subscription` (the emulator's SNS posts the
/// `SubscriptionConfirmation` and delivers nothing before), as a deploy waits for its
/// HTTPS subscription.
async fn confirmed(sdk: &herald::aws::SdkConfig, subscription: &str) -> Result<()> {
    let sns = aws_sdk_sns::Client::new(sdk);
    for _ in 0..300 {
        let attributes = sns
            .get_subscription_attributes()
            .subscription_arn(subscription)
            .send()
            .await
            .context("reading the SES events subscription")?
            .attributes
            .unwrap_or_default();
        if attributes.get("PendingConfirmation").map(String::as_str) == Some("false") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the receiver did not confirm the SES events subscription in 30 s")
}

/// One running stack and every local piece around it.
pub struct LocalCloud {
    pub emulator: String,
    pub sdk: herald::aws::SdkConfig,
    pub clients: provision::Clients,
    pub stack: Stack,
    pub credentials: ProviderCredentials,
    pub sandbox: Arc<sandbox::Sandbox>,
    pub sandbox_url: String,
    pub gateway_url: String,
    /// The API's configuration, as the local cloud runs it.
    pub api_config: ApiConfig,
    pub sender: Arc<herald_sender::Deps>,
    pub send_runner: Arc<runner::QueueRunner>,
    /// One of the express lane's instances, for tests that take its queue by hand.
    pub express_runner: Arc<runner::QueueRunner>,
    /// The events function (receipts, STOP and START) and its queue's poller, which
    /// tests pause (`pause_events`) to keep events waiting on the queue.
    pub events: Arc<herald_events::Deps>,
    pub events_runner: Arc<runner::QueueRunner>,
    /// Where providers call Herald's webhooks (the gateway).
    pub webhooks_base_url: String,
    /// The receiver's configuration, as the local cloud runs it.
    pub webhooks_config: WebhooksConfig,
    /// The API's and every sender instance's metric lines.
    pub metrics: herald::metrics::Metrics,
    send_runners: Vec<Arc<runner::QueueRunner>>,
    /// The redriver, built from its template environment: run on its template
    /// schedule when `run_schedules` is set, and once by `redrive`/`scheduled_run`.
    pub redriver: Arc<herald_redriver::Deps>,
    redriver_timeout: Duration,
    /// The backup check (restore drill, tenant recoveries), built from its template
    /// environment; on its schedule when `run_schedules` is set.
    pub backup_check: Arc<restores::BackupCheck>,
    /// The provider credential rotator (issue 20), built from its template
    /// environment; its retirement pass on its template schedule when `run_schedules`.
    pub rotator: Arc<herald_rotator::Deps>,
    /// Status webhooks to tenants (issue 15), when `CloudOptions::outbound` asks.
    pub outbound: Option<outbound::Outbound>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalCloud {
    pub async fn start(emulator: &str, options: CloudOptions) -> Result<Self> {
        let sdk = herald::aws::for_emulator(emulator).await;
        let clients = provision::Clients::new(&sdk);
        let template = template::Template::load(&project_root().join("template.yaml"))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let credentials = ProviderCredentials::generate();
        let sandbox = sandbox::Sandbox::new(&credentials.account_sid, &credentials.auth_token);
        let sandbox_listener = TcpListener::bind(options.sandbox_addr)
            .await
            .with_context(|| format!("binding the sandbox provider to {}", options.sandbox_addr))?;
        let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
        tasks.push(serve(
            sandbox_listener,
            sandbox::router(sandbox.clone()),
            shutdown_rx.clone(),
        ));

        // The provider's address is the one parameter the local cloud overrides; the
        // email sender's address has no default in the template (a deployment must
        // name its own verified one), so the local cloud gives one unless asked.
        let mut parameters = options.parameters.clone();
        parameters.insert("SmsApiBase".into(), sandbox_url.clone());
        parameters
            .entry(provision::EMAIL_FROM_PARAMETER.into())
            .or_insert_with(|| LOCAL_EMAIL_FROM.into());
        let stack = provision::provision(
            &clients,
            &template,
            &provision::Options {
                stack_name: options.stack_name.clone(),
                parameters,
                secret_values: HashMap::from([(
                    "ProviderSecret".to_owned(),
                    credentials.secret_json(),
                )]),
                visibility_timeout: options.visibility_timeout,
            },
        )
        .await?;

        // Bound first: the gateway's address is the webhooks' public base URL, which
        // the sender and the receiver are configured with.
        let gateway_listener = TcpListener::bind(options.gateway_addr)
            .await
            .with_context(|| format!("binding the gateway to {}", options.gateway_addr))?;
        let gateway_url = format!("http://{}", gateway_listener.local_addr()?);
        sandbox.set_webhooks_base(&gateway_url);

        let api_config = ApiConfig::load(&api_env(&stack, emulator, &options)?)?;
        // Each function's clients, as its `main` builds them, counted under its name
        // when asked.
        let clients_of = |caller: &'static str| {
            let clients = herald::aws::Clients::new(sdk.clone());
            match &options.count_requests {
                Some(counter) => clients.with_interceptor(counter.interceptor(caller)),
                None => clients,
            }
        };
        let metrics = if options.keep_metrics {
            herald::metrics::Metrics::in_memory(herald::clock::system())
        } else {
            herald::metrics::Metrics::stdout(herald::clock::system())
        };
        let api = herald_api::App::new(
            api_config.clone(),
            &clients_of("api"),
            herald::clock::system(),
        )
        .with_metrics(metrics.clone());
        let mut webhooks_env = function_env(&stack, "WebhooksFunction", &options)?;
        webhooks_env.insert("HERALD_WEBHOOKS_BASE_URL".into(), gateway_url.clone());
        let (ses_topic, ses_subscription) =
            ses_events(&sdk, emulator, &stack, &gateway_url).await?;
        webhooks_env.insert("HERALD_SES_TOPIC_ARN".into(), ses_topic);
        // Locally the emulator is SNS's endpoint: its certificate and the `SubscribeURL`
        // of its confirmations are both on it.
        webhooks_env.insert("HERALD_SNS_LOCAL_CERT_URL".into(), format!("{emulator}/"));
        let webhooks_config = WebhooksConfig::load(&webhooks_env)?;
        let webhooks = herald_webhooks::App::new(
            webhooks_config.clone(),
            &clients_of("webhooks"),
            herald::clock::system(),
        )
        .with_metrics(metrics.clone());
        let api = herald_api::router(Arc::new(api));
        let webhooks = herald_webhooks::router(Arc::new(webhooks));
        let mut routes = Vec::new();
        for (function, router) in [("ApiFunction", &api), ("WebhooksFunction", &webhooks)] {
            for route in stack.http_routes(function)? {
                routes.push((route, router.clone()));
            }
        }
        let gateway = Arc::new(gateway::Gateway { routes });
        tasks.push(serve(
            gateway_listener,
            gateway::router(gateway),
            shutdown_rx.clone(),
        ));
        confirmed(&sdk, &ses_subscription).await?;

        // One sender per concurrent instance, as Lambda runs them: each takes its own
        // blocks of send slots from the stack's shared rate item, so together they
        // reach the provider's rate (and no more), as in AWS. The express lane's
        // instances (issue 14) are the same code on a queue of their own.
        let event_source_sqs = clients_of("event source").sqs();
        let build = |function: &str| {
            sender_instances(
                &stack,
                function,
                &options,
                &gateway_url,
                &|| clients_of("sender"),
                &event_source_sqs,
                &metrics,
            )
        };
        let (senders, bulk_runners) = build("SenderFunction")?;
        let (_, express_runners) = build("ExpressSenderFunction")?;
        let send_runners: Vec<_> = bulk_runners
            .iter()
            .chain(&express_runners)
            .cloned()
            .collect();
        if options.run_queues {
            for runner in &send_runners {
                let runner = runner.clone();
                let rx = shutdown_rx.clone();
                tasks.push(tokio::spawn(async move {
                    runner::QueueRunner::run(runner, 1, rx).await;
                }));
            }
        }
        let sender = senders[0].clone();
        let send_runner = bulk_runners[0].clone();
        let express_runner = express_runners[0].clone();

        let events = Arc::new(
            herald_events::Deps::from_config(
                EventsConfig::load(&function_env(&stack, "EventsFunction", &options)?)?,
                &clients_of("events"),
                herald::clock::system(),
            )
            .with_metrics(metrics.clone()),
        );
        // The events function's event source is its own, as its DynamoDB requests are:
        // its polls are no part of sending a message (`make bench` counts the sender's
        // and its event source's requests per message, and these apart).
        let events_source_sqs = clients_of("events event source").sqs();
        let mut events_trigger = stack.queue_trigger("EventsFunction")?;
        if let Some(visibility) = options.visibility_timeout {
            events_trigger.function_timeout_secs = events_trigger
                .function_timeout_secs
                .min(u64::from(visibility));
        }
        let events_pollers = events_trigger.max_concurrency.clamp(1, LOCAL_EVENT_POLLERS);
        let handler_deps = events.clone();
        let events_runner = Arc::new(runner::QueueRunner {
            sqs: events_source_sqs.clone(),
            trigger: events_trigger,
            handler: Arc::new(move |event, _deadline| {
                let deps = handler_deps.clone();
                async move { herald_events::handle(&deps, event).await }.boxed()
            }),
            timed_out: Default::default(),
            paused: Default::default(),
        });
        if options.run_queues {
            let runner = events_runner.clone();
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                runner::QueueRunner::run(runner, events_pollers, rx).await;
            }));
        }
        if options.sms_delivery_logs {
            let deps = events.clone();
            let handler: log_subscription::LogsHandler = Arc::new(move |payload| {
                let deps = deps.clone();
                async move {
                    herald_events::invoke(&deps, payload)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                .boxed()
            });
            log_subscription::enable_sms_delivery_logs(&aws_sdk_sns::Client::new(&sdk), &stack)
                .await?;
            let subscription = log_subscription::LogSubscription::new(
                emulator,
                log_subscription::subscribed_groups(&stack, "EventsFunction")?,
                handler,
                events_source_sqs.clone(),
                stack.reference("EventsDLQ")?.to_owned(),
                herald::clock::system().epoch_millis(),
            );
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move { subscription.run(rx).await }));
        }

        let redriver = Arc::new(
            herald_redriver::Deps::from_config(
                RedriverConfig::load(&function_env(&stack, "RedriverFunction", &options)?)?,
                &clients_of("redriver"),
                herald::clock::system(),
            )
            .with_metrics(metrics.clone()),
        );
        let redriver_timeout =
            Duration::from_secs(stack.function_timeout_secs("RedriverFunction")?);
        if options.run_schedules
            && let Some(period) = stack.schedule_period("RedriverFunction")?
        {
            tasks.push(schedule(
                period,
                redriver.clone(),
                redriver_timeout,
                shutdown_rx.clone(),
            ));
        }

        let backup_check = Arc::new(restores::BackupCheck {
            deps: Arc::new(
                herald_backup_check::Deps::from_config(
                    BackupCheckConfig::load(&function_env(
                        &stack,
                        "BackupCheckFunction",
                        &options,
                    )?)?,
                    &clients_of("backup-check"),
                    herald::clock::system(),
                )
                .with_metrics(metrics.clone()),
            ),
            timeout: Duration::from_secs(stack.function_timeout_secs("BackupCheckFunction")?),
        });
        if options.run_schedules
            && let Some(period) = options
                .backup_check_period
                .or(stack.schedule_period("BackupCheckFunction")?)
        {
            tasks.push(backup_check.clone().schedule(period, shutdown_rx.clone()));
        }

        let rotator = Arc::new(
            herald_rotator::Deps::from_config(
                herald_rotator::RotatorConfig::load(&function_env(
                    &stack,
                    "RotatorFunction",
                    &options,
                )?)?,
                &clients_of("rotator"),
                herald::clock::system(),
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        );
        if options.run_schedules
            && let Some(period) = stack.schedule_period("RotatorFunction")?
        {
            tasks.push(rotation::schedule(
                period,
                rotator.clone(),
                shutdown_rx.clone(),
            ));
        }

        // Status webhooks to tenants (issue 15).
        let outbound = if options.outbound {
            let clients = clients_of("outbound");
            let deps = outbound::Outbound::deps(
                &function_env(&stack, "OutboundDeliverFunction", &options)?,
                &clients,
                options
                    .outbound_clock
                    .clone()
                    .unwrap_or_else(herald::clock::system),
                metrics.clone(),
            )?;
            Some(outbound::Outbound::start(
                &stack,
                deps,
                &clients,
                &sdk,
                &shutdown_rx,
                &mut tasks,
            )?)
        } else {
            None
        };

        Ok(Self {
            emulator: emulator.to_owned(),
            sdk,
            clients,
            stack,
            credentials,
            sandbox,
            sandbox_url,
            gateway_url: gateway_url.clone(),
            api_config,
            sender,
            send_runner,
            express_runner,
            events,
            events_runner,
            webhooks_base_url: gateway_url,
            webhooks_config,
            send_runners,
            metrics,
            redriver,
            redriver_timeout,
            backup_check,
            rotator,
            outbound,
            shutdown,
            tasks,
        })
    }

    /// Stops the events function taking events (they wait on the queue, as in SQS
    /// while the function is down); `resume_events` starts it again.
    pub fn pause_events(&self) {
        self.events_runner
            .paused
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn resume_events(&self) {
        self.events_runner
            .paused
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sender invocations the local event source stopped at the function timeout.
    pub fn send_invocations_timed_out(&self) -> usize {
        self.send_runners
            .iter()
            .map(|r| r.timed_out.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// The redriver's scheduled run, now: sweep, then redrive.
    pub async fn scheduled_run(
        &self,
    ) -> Result<herald_redriver::ScheduledReport, herald_redriver::ScheduledError> {
        let deadline = tokio::time::Instant::now()
            + self
                .redriver_timeout
                .saturating_sub(herald_redriver::DEADLINE_MARGIN);
        herald_redriver::scheduled(&self.redriver, deadline).await
    }

    /// One redrive of the send DLQ, as a scheduled invocation would run it (same
    /// handler, same deadline), returning its report whether or not it was clean.
    /// Panics if it could not run: another redrive held the lease, or the lease could
    /// not be read (tests hold their stack's only redriver).
    pub async fn redrive(&self) -> RedriveReport {
        match self.redrive_run().await {
            Ok(RedriveRun::Ran(report))
            | Err(RedriveError::Incomplete(herald_redriver::Incomplete(report))) => report,
            Ok(skipped @ RedriveRun::Skipped { .. }) => {
                panic!("the redrive did not run: {skipped:?}")
            }
            Err(e @ RedriveError::Lease(_)) => panic!("the redrive did not run: {e}"),
        }
    }

    /// One redrive of the send DLQ under the redrive lease, as a scheduled invocation
    /// runs it: what it did, or that another redrive held the lease.
    pub async fn redrive_run(&self) -> Result<RedriveRun, RedriveError> {
        let deadline = tokio::time::Instant::now()
            + self
                .redriver_timeout
                .saturating_sub(herald_redriver::DEADLINE_MARGIN);
        herald_redriver::handle(&self.redriver, deadline).await
    }

    /// The environment the template gives `function` (a template id, `SenderFunction`),
    /// with the API's token endpoints on the emulator as the local cloud sets them.
    pub fn function_env(&self, function: &str) -> Result<HashMap<String, String>> {
        let options = CloudOptions::ephemeral(&self.stack.name);
        match function {
            "ApiFunction" => api_env(&self.stack, &self.emulator, &options),
            _ => function_env(&self.stack, function, &options),
        }
    }

    /// Registers `tenant` (an enterprise tenant with `limits`) and signs a new
    /// `sender` of it in; answers the ID token its requests carry.
    pub async fn sender_token(
        &self,
        tenant: &str,
        limits: herald::domain::Limits,
    ) -> Result<String> {
        // Through the provisioning clients, which count no requests.
        let store = herald::store::Store::new(
            self.clients.dynamodb.clone(),
            self.stack.reference("HeraldTable")?,
        );
        seed::tenant(
            &store,
            tenant,
            herald::domain::Plan::Enterprise,
            Some(limits),
        )
        .await?;
        let cognito = &self.clients.cognito;
        let user = seed::user(cognito, self.stack.reference("UserPool")?, tenant, "sender").await?;
        let tokens = seed::sign_in(cognito, self.stack.reference("UserPoolClient")?, &user).await?;
        Ok(tokens.id_token)
    }

    /// A new batch, as a client posts it through the gateway (with a fresh
    /// Idempotency-Key): the HTTP status and the JSON answer.
    pub async fn post_batch(&self, token: &str, body: Vec<u8>) -> Result<(u16, serde_json::Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/batches", self.gateway_url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("idempotency-key", random_token(26))
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.context("the answer is JSON")?))
    }

    /// A single message, as a client posts it through the gateway (with a fresh
    /// Idempotency-Key): the HTTP status and the JSON answer.
    pub async fn post_message(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/messages", self.gateway_url))
            .bearer_auth(token)
            .header("idempotency-key", random_token(26))
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.context("the answer is JSON")?))
    }

    /// Starts a cloud, runs `work` on it and stops it, whatever `work` returned: for
    /// programs that use one for a while and go (the benches).
    pub async fn with<T>(
        emulator: &str,
        options: CloudOptions,
        work: impl AsyncFnOnce(&LocalCloud) -> Result<T>,
    ) -> Result<T> {
        let cloud = Self::start(emulator, options).await?;
        let result = work(&cloud).await;
        cloud.stop().await;
        result
    }

    /// Stops the servers and pollers and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// A function's environment as the template sets it, with the options' overrides.
/// The API's environment, with the two Cognito addresses that differ locally: the
/// emulator serves each pool's JWKS under its own address, and the client-credentials
/// token endpoint (see `emulator.py`) instead of a user pool domain.
fn api_env(
    stack: &Stack,
    emulator: &str,
    options: &CloudOptions,
) -> Result<HashMap<String, String>> {
    let mut env = stack.function_env("ApiFunction")?;
    let pool = stack.reference("UserPool")?;
    env.insert(
        "HERALD_JWKS_URL".into(),
        format!("{emulator}/{pool}/.well-known/jwks.json"),
    );
    env.insert(
        "HERALD_TOKEN_URL".into(),
        format!("{emulator}/oauth2/token"),
    );
    env.extend(options.env_overrides.clone());
    Ok(env)
}

/// Sender instances, and each one's queue runner.
type SenderInstances = (Vec<Arc<herald_sender::Deps>>, Vec<Arc<runner::QueueRunner>>);

/// The sender instances of `function` (`SenderFunction`, or the express lane's), one
/// per concurrent invocation its event source allows, each with its queue's runner.
fn sender_instances(
    stack: &Stack,
    function: &str,
    options: &CloudOptions,
    gateway_url: &str,
    // Each instance its own clients (and connection pools), as in Lambda.
    clients: &dyn Fn() -> herald::aws::Clients,
    event_source_sqs: &aws_sdk_sqs::Client,
    metrics: &herald::metrics::Metrics,
) -> Result<SenderInstances> {
    let mut env = function_env(stack, function, options)?;
    if !options
        .env_overrides
        .contains_key("HERALD_WEBHOOKS_BASE_URL")
    {
        let base = if options.receipts { gateway_url } else { "" };
        env.insert("HERALD_WEBHOOKS_BASE_URL".into(), base.into());
    }
    let config = SenderConfig::load(&env)?;
    let mut trigger = stack.queue_trigger(function)?;
    // AWS requires a queue's visibility timeout to cover its function's timeout, or
    // a record would be redelivered while its invocation still runs. A test that
    // shortens the visibility shortens the invocation with it.
    if let Some(visibility) = options.visibility_timeout {
        trigger.function_timeout_secs = trigger.function_timeout_secs.min(u64::from(visibility));
    }
    let mut senders = Vec::new();
    let mut runners = Vec::new();
    for _ in 0..trigger.max_concurrency.max(1) {
        let deps = Arc::new(
            herald_sender::Deps::from_config(config.clone(), &clients(), herald::clock::system())
                .map_err(|e| anyhow::anyhow!(e))?
                .with_metrics(metrics.clone()),
        );
        let handler_deps = deps.clone();
        runners.push(Arc::new(runner::QueueRunner {
            sqs: event_source_sqs.clone(),
            trigger: trigger.clone(),
            handler: Arc::new(move |event, deadline| {
                let deps = handler_deps.clone();
                async move { herald_sender::handle(&deps, event, deadline).await }.boxed()
            }),
            timed_out: Default::default(),
            paused: Default::default(),
        }));
        senders.push(deps);
    }
    Ok((senders, runners))
}

fn function_env(
    stack: &Stack,
    function: &str,
    options: &CloudOptions,
) -> Result<HashMap<String, String>> {
    let mut env = stack.function_env(function)?;
    env.extend(options.env_overrides.clone());
    Ok(env)
}

/// The local EventBridge schedule: `run` every `period`, the first a period after
/// start, until shutdown. Each function logs its own report and errors.
pub fn every<F, Fut>(
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut run: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticks.tick() => run().await,
            }
        }
    })
}

/// The redriver's scheduled run (sweep, then redrive) every `period`.
fn schedule(
    period: Duration,
    redriver: Arc<herald_redriver::Deps>,
    timeout: Duration,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    every(period, shutdown, move || {
        let redriver = redriver.clone();
        async move {
            let deadline = tokio::time::Instant::now()
                + timeout.saturating_sub(herald_redriver::DEADLINE_MARGIN);
            if let Err(e) = herald_redriver::scheduled(&redriver, deadline).await {
                tracing::error!(error = %e, "scheduled redriver run failed");
            }
        }
    })
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    })
}
