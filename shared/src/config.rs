//! Typed configuration, read once at cold start. A missing or malformed setting stops
//! the function with a message naming it, instead of failing later on a request.
//!
//! One room on purpose: every function's settings are read the same way, in one place;
//! about 150 of its lines are tests.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::address::EmailAddress;
use crate::domain::Country;
use crate::keys::CHUNK_SIZE;
use crate::queue::ExpressLane;
use crate::redrive::RedriveLimits;
use crate::store::MAX_WAITING;

/// Recipients one batch request may hold unless `HERALD_MAX_RECIPIENTS` says otherwise
/// (the OpenAPI document states this default).
pub const DEFAULT_MAX_RECIPIENTS: usize = 10_000;

/// The backup check's, kept beside the drill it configures.
pub use crate::restore::BackupCheckConfig;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration {0} is not set")]
    Missing(&'static str),
    #[error("configuration {key} is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Where settings come from: the process environment in Lambda, a map when the local
/// cloud runs several functions (each with its own template-derived environment) in
/// one process.
pub trait Settings {
    fn get(&self, key: &str) -> Option<String>;

    fn required(&self, key: &'static str) -> Result<String, ConfigError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing(key))
    }

    fn number<T: std::str::FromStr>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                key,
                reason: format!("{raw:?}: {e}"),
            }),
        }
    }
}

pub struct ProcessEnv;

impl Settings for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Settings for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The stack's environment (`dev`, `staging`, `prod`), as `GET /v1/version` says.
    pub environment: String,
    pub table: String,
    pub send_queue_url: String,
    /// Where small batches go (issue 14).
    pub express: ExpressLane,
    pub send_dlq_url: String,
    /// For the operator's redrive route.
    pub redrive: RedriveLimits,
    /// The secret whose value signs listing cursors.
    pub cursor_secret_id: String,
    /// The secret whose value seals webhook endpoints' signing secrets.
    pub webhook_secret_key_id: String,
    /// Where webhook recover and test deliveries are queued (issue 15).
    pub deliveries_queue_url: String,
    /// The stack's environment is dev: webhook endpoints may be `http://127.0.0.1`.
    pub dev: bool,
    /// The countries a tenant may text unless its profile names its own.
    pub default_sms_countries: BTreeSet<Country>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most recipients one batch request may name.
    pub max_recipients: usize,
    /// Chunks of one batch on the send queue at once (issue 14, `docs/concurrency.md`).
    pub chunk_window: u32,
    /// A tenant's bulk batches that may wait for their turn before intake refuses
    /// more (`docs/concurrency.md`, "Turns").
    pub max_waiting_batches: usize,
    /// How long an idempotency key stays locked by the request using it: longer than
    /// the function timeout, so a live request is never taken over.
    pub idempotency_lock: Duration,
    pub auth: AuthConfig,
}

/// Where tokens come from and where machine clients are registered.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub tokens: crate::token::TokenSettings,
    /// The app clients people sign in through; their id tokens are accepted.
    pub user_client_ids: Vec<String>,
    pub user_pool_id: String,
    /// The user pool domain's OAuth2 token endpoint, told to new machine clients.
    pub token_url: String,
    /// Active machine clients a tenant may hold (Cognito allows 1,000 app clients per
    /// user pool by default, shared by every tenant).
    pub max_clients_per_tenant: u32,
}

impl ApiConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            environment: settings.required("HERALD_ENV")?,
            table: settings.required("HERALD_TABLE")?,
            send_queue_url: settings.required("HERALD_SEND_QUEUE_URL")?,
            express: express_lane(settings)?,
            send_dlq_url: settings.required("HERALD_SEND_DLQ_URL")?,
            redrive: redrive_limits(settings)?,
            // Under Lambda's 6 MB request payload limit, and room for 10,000
            // recipients with variables.
            max_body_bytes: settings.number("HERALD_MAX_BODY_BYTES", 5 * 1024 * 1024)?,
            max_recipients: settings.number("HERALD_MAX_RECIPIENTS", DEFAULT_MAX_RECIPIENTS)?,
            chunk_window: chunk_window(settings)?,
            max_waiting_batches: max_waiting_batches(settings)?,
            idempotency_lock: Duration::from_secs(
                settings.number("HERALD_IDEMPOTENCY_LOCK_SECONDS", 35)?,
            ),
            cursor_secret_id: settings.required("HERALD_CURSOR_SECRET_ID")?,
            webhook_secret_key_id: settings.required("HERALD_WEBHOOK_SECRET_KEY_ID")?,
            deliveries_queue_url: settings.required("HERALD_DELIVERIES_QUEUE_URL")?,
            dev: settings.required("HERALD_ENV")? == "dev",
            default_sms_countries: countries(settings, "HERALD_DEFAULT_SMS_COUNTRIES")?,
            auth: AuthConfig {
                tokens: crate::token::TokenSettings {
                    issuer: settings.required("HERALD_TOKEN_ISSUER")?,
                    jwks_url: settings.required("HERALD_JWKS_URL")?,
                },
                user_client_ids: settings
                    .required("HERALD_USER_CLIENT_IDS")?
                    .split(',')
                    .map(|id| id.trim().to_owned())
                    .filter(|id| !id.is_empty())
                    .collect(),
                user_pool_id: settings.required("HERALD_USER_POOL_ID")?,
                token_url: settings.required("HERALD_TOKEN_URL")?,
                max_clients_per_tenant: settings.number("HERALD_MAX_CLIENTS_PER_TENANT", 10)?,
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub table: String,
    /// Where a counted chunk queues its batch's next one (the window, issue 14).
    pub send_queue_url: String,
    /// Where records that can never succeed go directly.
    pub dead_letter_queue_url: String,
    pub provider_secret_id: String,
    pub sms_api_base: String,
    /// The address every email is sent from (`FromEmailAddress`); SES must hold it, or
    /// its domain, as a verified identity.
    pub email_from: EmailAddress,
    /// Recipients sent at once inside one invocation.
    pub parallelism: usize,
    /// The provider account's messages per second, shared by all sender instances.
    pub provider_rate_per_second: f64,
    /// The most sender instances that run at once (reserved concurrency).
    pub max_instances: u32,
    /// How far ahead of now a block of the shared rate's send slots may start
    /// (`docs/concurrency.md`, "The shared rate"): what a newcomer waits behind blocks
    /// taken before it, at most, and how far a send may follow its sender slot.
    pub rate_horizon: Duration,
    /// How long a chunk paced by its sender number's own rate claims before it yields
    /// its instance and goes on at the back of the queue (`docs/concurrency.md`).
    pub sender_slice: Duration,
    /// Provider attempts per recipient within one invocation before the chunk is
    /// handed back to SQS for a later retry.
    pub max_attempts: u32,
    /// How long a claim stays exclusive.
    pub lease: Duration,
    /// How long a settle may wait for the instance's other claims to settle with it in
    /// one request (issue 18); at most 1 s, inside the settle's margin.
    pub settle_linger: Duration,
    /// Longest wait for one provider request; past it the outcome is ambiguous.
    pub provider_timeout: Duration,
    /// How long the provider secret is cached; a rotation's grace period covers it
    /// (`docs/decisions.md`, issue 20).
    pub secret_cache_ttl: Duration,
    /// The public base URL of Herald's webhook receiver (`https://hooks.example.com`),
    /// for each text's status callback; `None` (unset or empty) asks for no receipts.
    pub webhooks_base_url: Option<String>,
    /// The SES configuration set every email names, whose event destination publishes
    /// its events (delivery, bounce, complaint...) to the receipts topic; `None` asks
    /// for no email receipts.
    pub ses_configuration_set: Option<String>,
}

/// A settle's linger stays well inside the sender's margin for its writes (3 s).
const MAX_SETTLE_LINGER: Duration = Duration::from_secs(1);

impl SenderConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        let config = Self {
            table: settings.required("HERALD_TABLE")?,
            send_queue_url: settings.required("HERALD_SEND_QUEUE_URL")?,
            dead_letter_queue_url: settings.required("HERALD_SEND_DLQ_URL")?,
            provider_secret_id: settings.required("HERALD_PROVIDER_SECRET_ID")?,
            sms_api_base: settings.required("HERALD_SMS_API_BASE")?,
            email_from: EmailAddress::parse(&settings.required("HERALD_EMAIL_FROM")?).map_err(
                |e| ConfigError::Invalid {
                    key: "HERALD_EMAIL_FROM",
                    reason: e.to_string(),
                },
            )?,
            parallelism: settings.number("HERALD_SEND_PARALLELISM", 16)?,
            provider_rate_per_second: settings.number("HERALD_PROVIDER_RATE_PER_SECOND", 50.0)?,
            max_instances: settings.number("HERALD_SENDER_MAX_CONCURRENCY", 5)?,
            rate_horizon: Duration::from_millis(settings.number("HERALD_RATE_HORIZON_MS", 1_000)?),
            sender_slice: Duration::from_secs(settings.number("HERALD_SENDER_SLICE_SECONDS", 10)?),
            max_attempts: settings.number("HERALD_SEND_MAX_ATTEMPTS", 4)?,
            lease: Duration::from_secs(settings.number("HERALD_LEASE_SECONDS", 60)?),
            settle_linger: Duration::from_millis(settings.number("HERALD_SETTLE_LINGER_MS", 200)?),
            provider_timeout: Duration::from_millis(
                settings.number("HERALD_PROVIDER_TIMEOUT_MS", 10_000)?,
            ),
            secret_cache_ttl: Duration::from_secs(
                settings.number("HERALD_SECRET_CACHE_SECONDS", 300)?,
            ),
            webhooks_base_url: public_base_url(settings)?,
            ses_configuration_set: settings
                .get("HERALD_SES_CONFIGURATION_SET")
                .filter(|v| !v.is_empty()),
        };
        if config.parallelism == 0 {
            return Err(ConfigError::Invalid {
                key: "HERALD_SEND_PARALLELISM",
                reason: "must be at least 1".into(),
            });
        }
        if config.provider_rate_per_second.is_nan() || config.provider_rate_per_second <= 0.0 {
            return Err(ConfigError::Invalid {
                key: "HERALD_PROVIDER_RATE_PER_SECOND",
                reason: "must be a positive number".into(),
            });
        }
        if config.sender_slice.is_zero() {
            return Err(ConfigError::Invalid {
                key: "HERALD_SENDER_SLICE_SECONDS",
                reason: "must be a positive number".into(),
            });
        }
        if config.rate_horizon.is_zero() {
            return Err(ConfigError::Invalid {
                key: "HERALD_RATE_HORIZON_MS",
                reason: "must be a positive number".into(),
            });
        }
        if config.settle_linger > MAX_SETTLE_LINGER {
            return Err(ConfigError::Invalid {
                key: "HERALD_SETTLE_LINGER_MS",
                reason: format!("must be at most {} ms", MAX_SETTLE_LINGER.as_millis()),
            });
        }
        if config.max_instances == 0 || config.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                key: "HERALD_SENDER_MAX_CONCURRENCY",
                reason: "instances and attempts must be at least 1".into(),
            });
        }
        Ok(config)
    }
}

/// `HERALD_CHUNK_WINDOW`: chunks of one batch on the queue at once, at least 1; by
/// default one fewer than the sender instances (`HERALD_SENDER_MAX_CONCURRENCY`, 5), so
/// a batch alone leaves one instance free for other tenants' messages while the shared
/// rate lets the others use all of it (`docs/concurrency.md`, "The window").
fn chunk_window(settings: &impl Settings) -> Result<u32, ConfigError> {
    let instances: u32 = settings.number("HERALD_SENDER_MAX_CONCURRENCY", 5)?;
    let window = settings.number("HERALD_CHUNK_WINDOW", instances.saturating_sub(1).max(1))?;
    if window == 0 {
        return Err(ConfigError::Invalid {
            key: "HERALD_CHUNK_WINDOW",
            reason: "must be at least 1".into(),
        });
    }
    Ok(window)
}

/// `HERALD_MAX_WAITING_BATCHES`: 1 to `MAX_WAITING` (1,000, the default), which keeps
/// a tenant's line, one item, far below DynamoDB's 400 KB.
fn max_waiting_batches(settings: &impl Settings) -> Result<usize, ConfigError> {
    let most = settings.number("HERALD_MAX_WAITING_BATCHES", MAX_WAITING)?;
    if !(1..=MAX_WAITING).contains(&most) {
        return Err(ConfigError::Invalid {
            key: "HERALD_MAX_WAITING_BATCHES",
            reason: format!("must be 1 to {MAX_WAITING}"),
        });
    }
    Ok(most)
}

/// `HERALD_EXPRESS_QUEUE_URL` and `HERALD_EXPRESS_MAX_RECIPIENTS` (1 to one chunk's
/// 100; 10 by default): small enough that a flood of small batches still moves at the
/// express instances' pace, large enough for a household of one-time passwords.
fn express_lane(settings: &impl Settings) -> Result<ExpressLane, ConfigError> {
    let max_recipients = settings.number("HERALD_EXPRESS_MAX_RECIPIENTS", 10)?;
    if !(1..=CHUNK_SIZE as usize).contains(&max_recipients) {
        return Err(ConfigError::Invalid {
            key: "HERALD_EXPRESS_MAX_RECIPIENTS",
            reason: format!("must be 1 to {CHUNK_SIZE}"),
        });
    }
    Ok(ExpressLane {
        queue_url: settings.required("HERALD_EXPRESS_QUEUE_URL")?,
        max_recipients,
    })
}

/// `HERALD_WEBHOOKS_BASE_URL`: an http(s) URL without a query, or nothing.
fn public_base_url(settings: &impl Settings) -> Result<Option<String>, ConfigError> {
    let Some(raw) = settings
        .get("HERALD_WEBHOOKS_BASE_URL")
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let scheme_ok = raw.starts_with("https://") || raw.starts_with("http://");
    if !scheme_ok || raw.contains(['?', '#', ' ']) {
        return Err(ConfigError::Invalid {
            key: "HERALD_WEBHOOKS_BASE_URL",
            reason: format!("{raw:?} is not an http(s) URL without query or fragment"),
        });
    }
    Ok(Some(raw.trim_end_matches('/').to_owned()))
}

/// The webhook receiver: verify, then enqueue.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    pub events_queue_url: String,
    pub provider_secret_id: String,
    /// The public base URL providers call (the signed URL is this and the path);
    /// `None`: `https://` and the domain the request came to (the API's own).
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes (a provider's callback is a few KiB).
    pub max_body_bytes: usize,
    /// The SNS topic SES publishes its events to; `None`: `/webhooks/ses` takes nothing.
    pub ses_topic_arn: Option<String>,
    /// A URL prefix SNS signing certificates may also be fetched from besides
    /// `https://sns.<region>.amazonaws.com`: the local emulator's, set by the local
    /// cloud only (the template never sets it).
    pub sns_local_cert_url: Option<String>,
}

impl WebhooksConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            events_queue_url: settings.required("HERALD_EVENTS_QUEUE_URL")?,
            provider_secret_id: settings.required("HERALD_PROVIDER_SECRET_ID")?,
            public_base_url: public_base_url(settings)?,
            max_body_bytes: settings.number("HERALD_WEBHOOK_MAX_BODY_BYTES", 16 * 1024)?,
            ses_topic_arn: settings
                .get("HERALD_SES_TOPIC_ARN")
                .filter(|v| !v.is_empty()),
            sns_local_cert_url: settings
                .get("HERALD_SNS_LOCAL_CERT_URL")
                .filter(|v| !v.is_empty()),
        })
    }
}

/// The events function: receipts and inbound texts applied to the table.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub table: String,
    /// Where records that can never succeed go directly.
    pub dead_letter_queue_url: String,
    /// The platform's provider secret: its `from` is the shared sender number.
    pub provider_secret_id: String,
    /// The events queue: SNS's SMS delivery logs, which CloudWatch Logs hands to the
    /// function directly, are put on it and applied from there like every event.
    pub events_queue_url: String,
}

impl EventsConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            table: settings.required("HERALD_TABLE")?,
            dead_letter_queue_url: settings.required("HERALD_EVENTS_DLQ_URL")?,
            provider_secret_id: settings.required("HERALD_PROVIDER_SECRET_ID")?,
            events_queue_url: settings.required("HERALD_EVENTS_QUEUE_URL")?,
        })
    }
}

/// The scheduled redrive of the send DLQ into the send queue.
#[derive(Debug, Clone)]
pub struct RedriverConfig {
    pub table: String,
    pub send_queue_url: String,
    pub dead_letter_queue_url: String,
    /// The events queue and its DLQ, redriven after the send DLQ with the same limits.
    pub events_queue_url: String,
    pub events_dlq_url: String,
    pub limits: RedriveLimits,
    /// How old an unqueued batch must be before the sweeper enqueues it: longer than
    /// the API's timeout, so a request still running is never raced.
    pub sweep_after: Duration,
    /// How long a batch's window may go without a chunk counted before the sweeper
    /// restarts it: longer than a chunk's redelivery (visibility timeout plus the
    /// function's), so a chunk SQS will hand back anyway is not queued twice.
    pub window_stall_after: Duration,
    /// Where machine clients live, to delete those Herald does not know.
    pub user_pool_id: String,
    /// How old an unrecorded machine client must be before it is deleted: longer than
    /// the API's timeout, so a registration still running is never raced.
    pub client_sweep_grace: Duration,
}

impl RedriverConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        let limits = redrive_limits(settings)?;
        Ok(Self {
            table: settings.required("HERALD_TABLE")?,
            send_queue_url: settings.required("HERALD_SEND_QUEUE_URL")?,
            dead_letter_queue_url: settings.required("HERALD_SEND_DLQ_URL")?,
            events_queue_url: settings.required("HERALD_EVENTS_QUEUE_URL")?,
            events_dlq_url: settings.required("HERALD_EVENTS_DLQ_URL")?,
            limits,
            sweep_after: Duration::from_secs(settings.number("HERALD_SWEEP_AFTER_SECONDS", 120)?),
            window_stall_after: Duration::from_secs(
                settings.number("HERALD_WINDOW_STALL_SECONDS", 600)?,
            ),
            user_pool_id: settings.required("HERALD_USER_POOL_ID")?,
            client_sweep_grace: Duration::from_secs(
                settings.number("HERALD_CLIENT_SWEEP_GRACE_SECONDS", 600)?,
            ),
        })
    }
}

/// A comma-separated list of ISO 3166-1 alpha-2 codes (`US,CA`); required, and may
/// not be empty (a platform that texts nowhere by default says so per tenant).
fn countries(
    settings: &impl Settings,
    key: &'static str,
) -> Result<BTreeSet<Country>, ConfigError> {
    let raw = settings.required(key)?;
    raw.split(',')
        .map(|code| {
            Country::parse(code.trim()).map_err(|e| ConfigError::Invalid {
                key,
                reason: format!("{code:?} {e}"),
            })
        })
        .collect()
}

/// The redrive's rate, run size and limit, shared by the scheduled redriver and the
/// API's operator route.
pub fn redrive_limits(settings: &impl Settings) -> Result<RedriveLimits, ConfigError> {
    let limits = RedriveLimits {
        rate_per_second: settings.number("HERALD_REDRIVE_RATE_PER_SECOND", 10.0)?,
        max_messages: settings.number("HERALD_REDRIVE_MAX_MESSAGES", 600)?,
        redrive_limit: settings.number("HERALD_REDRIVE_LIMIT", 3)?,
    };
    if !limits.rate_per_second.is_finite() || limits.rate_per_second <= 0.0 {
        return Err(ConfigError::Invalid {
            key: "HERALD_REDRIVE_RATE_PER_SECOND",
            reason: "must be a positive number".into(),
        });
    }
    if limits.max_messages == 0 {
        return Err(ConfigError::Invalid {
            key: "HERALD_REDRIVE_MAX_MESSAGES",
            reason: "must be at least 1".into(),
        });
    }
    // A limit of 0 would park every dead letter: that is switching the redriver
    // off, which is done by not scheduling it.
    if limits.redrive_limit == 0 {
        return Err(ConfigError::Invalid {
            key: "HERALD_REDRIVE_LIMIT",
            reason: "must be at least 1".into(),
        });
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        assert_eq!(
            ApiConfig::load(&settings(&[])).unwrap_err(),
            ConfigError::Missing("HERALD_ENV")
        );
        let err = ApiConfig::load(&settings(&[
            ("HERALD_ENV", "dev"),
            ("HERALD_TABLE", "t"),
            ("HERALD_SEND_QUEUE_URL", "q"),
            ("HERALD_EXPRESS_QUEUE_URL", "e"),
            ("HERALD_SEND_DLQ_URL", "d"),
            ("HERALD_MAX_BODY_BYTES", "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("HERALD_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn a_tenants_line_holds_one_to_a_thousand_waiting_batches() {
        let read =
            |raw: &str| max_waiting_batches(&settings(&[("HERALD_MAX_WAITING_BATCHES", raw)]));
        assert_eq!(read(""), Ok(1_000));
        assert_eq!(read("2"), Ok(2));
        for bad in ["0", "1001", "-1", "many"] {
            let err = read(bad).unwrap_err();
            assert!(
                err.to_string().contains("HERALD_MAX_WAITING_BATCHES"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_chunk_window_is_at_least_one_chunk() {
        let read = |raw: &str| chunk_window(&settings(&[("HERALD_CHUNK_WINDOW", raw)]));
        assert_eq!(read(""), Ok(4), "one fewer than the default five instances");
        assert_eq!(read("2"), Ok(2));
        let of_instances =
            |n: &str| chunk_window(&settings(&[("HERALD_SENDER_MAX_CONCURRENCY", n)]));
        assert_eq!(of_instances("3"), Ok(2));
        assert_eq!(of_instances("1"), Ok(1), "never an empty window");
        for bad in ["0", "-1", "two"] {
            let err = read(bad).unwrap_err();
            assert!(
                err.to_string().contains("HERALD_CHUNK_WINDOW"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_express_lane_takes_one_chunk_at_most() {
        let read = |raw: &str| {
            express_lane(&settings(&[
                ("HERALD_EXPRESS_QUEUE_URL", "e"),
                ("HERALD_EXPRESS_MAX_RECIPIENTS", raw),
            ]))
            .map(|lane| lane.max_recipients)
        };
        assert_eq!(read(""), Ok(10));
        assert_eq!(read("1"), Ok(1));
        assert_eq!(read("100"), Ok(100));
        for bad in ["0", "101", "-1", "ten"] {
            let err = read(bad).unwrap_err();
            assert!(
                err.to_string().contains("HERALD_EXPRESS_MAX_RECIPIENTS"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            express_lane(&settings(&[])).unwrap_err(),
            ConfigError::Missing("HERALD_EXPRESS_QUEUE_URL")
        );
    }

    #[test]
    fn default_sms_countries_are_a_list_of_country_codes() {
        let key = "HERALD_DEFAULT_SMS_COUNTRIES";
        let read = |raw: &str| countries(&settings(&[(key, raw)]), key);
        let codes: Vec<String> = read("US, CA,GB")
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(codes, ["CA", "GB", "US"]);
        assert_eq!(read("").unwrap_err(), ConfigError::Missing(key));
        for bad in ["US,", "USA", "US;CA", "ZZ", "us"] {
            let err = read(bad).unwrap_err();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    /// Every setting the sender requires but its address.
    const SENDER_BASE: [(&str, &str); 5] = [
        ("HERALD_TABLE", "t"),
        ("HERALD_SEND_QUEUE_URL", "sq"),
        ("HERALD_SEND_DLQ_URL", "q"),
        ("HERALD_PROVIDER_SECRET_ID", "s"),
        ("HERALD_SMS_API_BASE", "http://x"),
    ];

    #[test]
    fn the_sender_needs_a_valid_from_address() {
        let base = SENDER_BASE;
        let err = SenderConfig::load(&settings(&base)).unwrap_err();
        assert_eq!(err, ConfigError::Missing("HERALD_EMAIL_FROM"));
        let mut pairs = base.to_vec();
        pairs.push(("HERALD_EMAIL_FROM", "not an address"));
        let err = SenderConfig::load(&settings(&pairs)).unwrap_err();
        assert!(err.to_string().contains("HERALD_EMAIL_FROM"), "{err}");
    }

    #[test]
    fn a_settles_linger_defaults_to_200_ms_and_stays_inside_its_margin() {
        let read = |raw: &str| {
            let mut pairs = SENDER_BASE.to_vec();
            pairs.push(("HERALD_EMAIL_FROM", "herald@example.com"));
            pairs.push(("HERALD_SETTLE_LINGER_MS", raw));
            SenderConfig::load(&settings(&pairs)).map(|c| c.settle_linger)
        };
        assert_eq!(read(""), Ok(Duration::from_millis(200)));
        assert_eq!(read("0"), Ok(Duration::ZERO));
        assert_eq!(read("1000"), Ok(Duration::from_secs(1)));
        for bad in ["1001", "-1", "soon"] {
            let err = read(bad).unwrap_err();
            assert!(
                err.to_string().contains("HERALD_SETTLE_LINGER_MS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn redriver_limits_default_and_refuse_values_that_would_stall_or_loop() {
        let base = [
            ("HERALD_TABLE", "t"),
            ("HERALD_SEND_QUEUE_URL", "q"),
            ("HERALD_SEND_DLQ_URL", "d"),
            ("HERALD_USER_POOL_ID", "pool"),
            ("HERALD_EVENTS_QUEUE_URL", "eq"),
            ("HERALD_EVENTS_DLQ_URL", "ed"),
        ];
        let config = RedriverConfig::load(&settings(&base)).unwrap();
        assert_eq!(config.limits.redrive_limit, 3);
        assert_eq!(config.client_sweep_grace, Duration::from_secs(600));
        for (key, bad) in [
            ("HERALD_REDRIVE_RATE_PER_SECOND", "0"),
            ("HERALD_REDRIVE_RATE_PER_SECOND", "NaN"),
            ("HERALD_REDRIVE_MAX_MESSAGES", "0"),
            ("HERALD_REDRIVE_LIMIT", "0"),
            ("HERALD_REDRIVE_LIMIT", "-1"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((key, bad));
            let err = RedriverConfig::load(&settings(&pairs)).unwrap_err();
            assert!(err.to_string().contains(key), "{key}={bad}: {err}");
        }
    }
}
