//! The webhook receiver: providers' requests in, verified events out. It only checks
//! and persists: a request within the size limit, read strictly, signed by the
//! provider, and naming what Herald needs goes onto the events queue as it came, and
//! is answered 2xx at once; anything else is refused (413, 415, 400, 403) and nothing
//! is stored. The events function does the work, so an hour of it being down costs
//! nothing but an hour's wait in SQS. Routes and their verification come from
//! `herald::auth::WEBHOOK_POLICY`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use herald::CorrelationId;
use herald::auth::{WEBHOOK_POLICY, WebhookAccess};
use herald::clock::SharedClock;
use herald::config::WebhooksConfig;
use herald::domain::EventSource;
use herald::metrics::{Metrics, Record};
use herald::problem::Problem;
use herald::provider::twilio::TwilioCredentials;
use herald::secrets::SecretsCache;
use herald::webhook::{ENVELOPE_VERSION, EventEnvelope, EventKind, EventsQueue};
use herald::webhook::{sns, twilio};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use tracing::Instrument;

mod ses;

/// A signature that does not verify may mean the auth token was rotated since it was
/// cached; the secret is read again, but no more often than this, so a flood of bad
/// signatures cannot become a flood of Secrets Manager calls.
const SECRET_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

pub struct App {
    pub config: WebhooksConfig,
    pub queue: EventsQueue,
    pub secrets: SecretsCache,
    pub clock: SharedClock,
    pub metrics: Metrics,
    last_refresh: Mutex<Option<Instant>>,
    certificates: ses::Certificates,
}

impl App {
    pub fn new(config: WebhooksConfig, clients: &herald::aws::Clients, clock: SharedClock) -> Self {
        Self {
            queue: EventsQueue::new(clients.sqs(), &config.events_queue_url),
            secrets: SecretsCache::new(clients.secrets_manager(), Duration::from_secs(300)),
            config,
            metrics: Metrics::stdout(clock.clone()),
            clock,
            last_refresh: Mutex::new(None),
            certificates: ses::Certificates::default(),
        }
    }

    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// The receiver's routes, one per `WEBHOOK_POLICY` entry.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for (method, path, access) in WEBHOOK_POLICY {
        assert_eq!(*method, "POST", "providers post their webhooks");
        let kind = match (*access, *path) {
            (WebhookAccess::TwilioSignature, twilio::STATUS_PATH) => EventKind::Status,
            (WebhookAccess::TwilioSignature, twilio::INBOUND_PATH) => EventKind::Inbound,
            (WebhookAccess::SnsSignature, sns::SES_PATH) => {
                router = router.route(path, post(ses_event));
                continue;
            }
            (_, other) => panic!("no handler for the webhook route {other}"),
        };
        router = router.route(
            path,
            post(move |state, request| twilio_event(state, kind, request)),
        );
    }
    router
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "not-found", "No such webhook route.") })
        .with_state(app)
}

/// Why a request was refused: its metric, status and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    TooLarge,
    NotForm,
    Malformed,
    Unsigned,
    BadSignature,
    Invalid,
    /// An SNS message from a topic other than the configured one.
    WrongTopic,
    /// An SNS message whose signing certificate is not on SNS's host.
    CertificateUrl,
}

impl Rejection {
    fn metric(self) -> &'static str {
        match self {
            Self::TooLarge => "RejectedTooLarge",
            Self::NotForm => "RejectedNotForm",
            Self::Malformed => "RejectedMalformed",
            Self::Unsigned => "RejectedUnsigned",
            Self::BadSignature => "RejectedSignature",
            Self::Invalid => "RejectedInvalid",
            Self::WrongTopic => "RejectedTopic",
            Self::CertificateUrl => "RejectedCertificateUrl",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Malformed | Self::Invalid => StatusCode::BAD_REQUEST,
            Self::Unsigned | Self::BadSignature | Self::WrongTopic | Self::CertificateUrl => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

async fn twilio_event(
    State(app): State<Arc<App>>,
    kind: EventKind,
    request: axum::extract::Request,
) -> Response {
    let domain = domain_name(&request);
    let (parts, body) = request.into_parts();
    let (uri, headers) = (parts.uri, parts.headers);
    // API Gateway has the whole body in the event already; the limit is checked below.
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "webhook-refused",
                "The body could not be read.",
            );
        }
    };
    let correlation = sending_request(&uri);
    let span =
        tracing::info_span!("webhook", source = "twilio", ?kind, correlation_id = %correlation);
    let _entered = span.enter();
    let result = receive(
        &app,
        kind,
        &uri,
        &headers,
        &body,
        correlation,
        domain.as_deref(),
    )
    .await;
    answer(&app, "twilio", result)
}

/// The correlation id of the request that sent the message a status callback is about
/// (its URL carries it, see `twilio::status_callback`), so the receipt's lines join the
/// request's; a fresh one for an inbound text or a callback without a valid one. The
/// signature is checked later: an id from an unsigned request is only ever logged.
fn sending_request(uri: &axum::http::Uri) -> CorrelationId {
    let query = twilio::parse_form(uri.query().unwrap_or_default().as_bytes()).unwrap_or_default();
    let supplied = query
        .iter()
        .find(|(name, _)| name == twilio::CORRELATION_PARAMETER)
        .map(|(_, value)| value.as_str());
    CorrelationId::from_header(supplied)
}

/// `POST /webhooks/ses`: SNS's messages for SES's events (`ses::receive`).
async fn ses_event(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let correlation = CorrelationId::new();
    let span = tracing::info_span!("webhook", source = "ses", correlation_id = %correlation);
    let result = ses::receive(&app, &headers, &body, correlation)
        .instrument(span)
        .await;
    answer(&app, "ses", result)
}

/// The answer to one request, counted as accepted or rejected (and why).
fn answer(app: &App, source: &str, result: Result<Response, Refusal>) -> Response {
    match result {
        Ok(answer) => {
            // A subscription confirmation is taken, but it is no provider event.
            let metric = match answer.extensions().get::<ses::Confirmation>() {
                Some(_) => "SubscriptionsConfirmed",
                None => "WebhooksAccepted",
            };
            app.metrics.emit(
                Record::new("webhooks")
                    .count(metric, 1)
                    .property("source", source),
            );
            answer
        }
        Err((rejection, detail)) => {
            tracing::warn!(source, ?rejection, %detail, "webhook refused");
            app.metrics.emit(
                Record::new("webhooks")
                    .count("WebhooksRejected", 1)
                    .count(rejection.metric(), 1)
                    .property("source", source),
            );
            refuse(rejection.status(), "webhook-refused", &detail)
        }
    }
}

pub(crate) type Refusal = (Rejection, String);

/// Refuses a body over `HERALD_WEBHOOK_MAX_BODY_BYTES` (413), whatever the provider.
pub(crate) fn within_limit(app: &App, body: &[u8]) -> Result<(), Refusal> {
    let max = app.config.max_body_bytes;
    if body.len() > max {
        return Err((
            Rejection::TooLarge,
            format!("The body may be at most {max} bytes."),
        ));
    }
    Ok(())
}

/// Checks one request and queues its event; the answer Twilio gets, or why not.
async fn receive(
    app: &App,
    kind: EventKind,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    correlation: CorrelationId,
    domain: Option<&str>,
) -> Result<Response, Refusal> {
    within_limit(app, body)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err((
            Rejection::NotForm,
            "Send the form as application/x-www-form-urlencoded.".into(),
        ));
    }
    let form = twilio::parse_form(body).map_err(|e| (Rejection::Malformed, e.to_string()))?;
    let query = twilio::parse_form(uri.query().unwrap_or_default().as_bytes())
        .map_err(|e| (Rejection::Malformed, format!("query: {e}")))?;
    let Some(signature) = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Err((Rejection::Unsigned, "The request is not signed.".into()));
    };
    let base = match (&app.config.public_base_url, domain) {
        (Some(base), _) => base.clone(),
        (None, Some(domain)) => format!("https://{domain}"),
        (None, None) => {
            tracing::error!("no public base URL configured and none in the request");
            return Err((
                Rejection::BadSignature,
                "The signature cannot be checked.".into(),
            ));
        }
    };
    let url = match uri.query() {
        Some(query) => format!("{base}{}?{query}", uri.path()),
        None => format!("{base}{}", uri.path()),
    };
    if !signed(app, &url, &form, signature).await? {
        return Err((
            Rejection::BadSignature,
            "The signature does not match the request.".into(),
        ));
    }
    let envelope = EventEnvelope {
        v: ENVELOPE_VERSION,
        source: EventSource::Twilio,
        kind,
        received_at: app.clock.timestamp(),
        correlation_id: correlation,
        query: query.into_iter().collect::<BTreeMap<_, _>>(),
        form: form.into_iter().collect::<BTreeMap<_, _>>(),
    };
    // Verified, but it must also be an event Herald can read: one that is not would
    // only be parked by the events function.
    envelope
        .event()
        .map_err(|e| (Rejection::Invalid, e.to_string()))?;
    if let Err(e) = app.queue.enqueue(&envelope).await {
        tracing::error!(error = %herald::telemetry::error_chain(&e), "the event could not be queued");
        // Twilio retries an answer it did not take; nothing was stored.
        return Ok(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again shortly.",
        ));
    }
    Ok(match kind {
        // (No HTTP route takes delivery logs: CloudWatch Logs hands them to the events
        // function.)
        EventKind::Status | EventKind::Notification | EventKind::DeliveryLog => {
            StatusCode::NO_CONTENT.into_response()
        }
        // An empty TwiML answer: Herald sends no reply of its own (Twilio answers STOP
        // and START itself, as carriers require).
        EventKind::Inbound => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response(),
    })
}

/// Whether the signature is Twilio's under the current or previous auth token; after
/// a mismatch the secret is read again (at most once a minute) in case it was rotated.
async fn signed(
    app: &App,
    url: &str,
    form: &[(String, String)],
    signature: &str,
) -> Result<bool, Refusal> {
    for refreshed in [false, true] {
        let secret = app.secrets.get(&app.config.provider_secret_id).await.map_err(|e| {
            tracing::error!(error = %herald::telemetry::error_chain(&e), "provider secret unavailable");
            (Rejection::BadSignature, "The signature cannot be checked now.".to_owned())
        })?;
        let credentials = TwilioCredentials::parse(&secret).map_err(|e| {
            tracing::error!(error = %e, "provider secret is not Twilio credentials");
            (
                Rejection::BadSignature,
                "The signature cannot be checked now.".to_owned(),
            )
        })?;
        let previous = credentials.previous_auth_token.as_ref();
        let tokens: Vec<&str> = std::iter::once(credentials.auth_token.expose_secret())
            .chain(previous.map(|t| t.expose_secret()))
            .collect();
        if twilio::verify(&tokens, url, form, signature) {
            return Ok(true);
        }
        if refreshed || !may_refresh(app).await {
            return Ok(false);
        }
        app.secrets.invalidate(&app.config.provider_secret_id).await;
    }
    Ok(false)
}

async fn may_refresh(app: &App) -> bool {
    let mut last = app.last_refresh.lock().await;
    if last.is_some_and(|at| at.elapsed() < SECRET_REFRESH_INTERVAL) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

/// The domain API Gateway received the request on (its request context).
fn domain_name(request: &axum::extract::Request) -> Option<String> {
    use lambda_http::RequestExt;
    match request.request_context_ref()? {
        lambda_http::request::RequestContext::ApiGatewayV2(context) => context.domain_name.clone(),
        _ => None,
    }
}

pub(crate) fn refuse(status: StatusCode, slug: &str, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    Problem::new(status, slug, title)
        .detail(detail)
        .into_response()
}
