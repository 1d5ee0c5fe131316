//! `POST /webhooks/ses`: SES's events as SNS posts them to the HTTPS subscription. A
//! message is taken only when it is for the configured topic, its signing certificate
//! comes from SNS's own host (`herald::webhook::sns`), and its signature verifies
//! under that certificate. A notification then goes onto the events queue; a
//! subscription confirmation for the topic is confirmed by visiting its (equally
//! checked) `SubscribeURL`.
//!
//! Certificates are fetched once per URL and kept for the life of the process: SNS
//! signs with a new certificate under a new URL, never a new one under an old URL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::CorrelationId;
use herald::domain::EventSource;
use herald::webhook::sns::{self, SnsMessage, SnsType};
use herald::webhook::{ENVELOPE_VERSION, EventEnvelope, EventKind};
use tokio::sync::Mutex;

use crate::{App, Refusal, Rejection, refuse, within_limit};

/// How long a certificate fetch or a subscription confirmation may take: SNS waits 15
/// seconds for an answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Certificates kept: SNS uses one per region at a time, and a rotation adds one.
const MAX_CERTIFICATES: usize = 16;

/// SNS's signing certificates by URL, and the client that fetches them.
pub struct Certificates {
    http: reqwest::Client,
    cached: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Default for Certificates {
    fn default() -> Self {
        Self {
            // No redirects: a certificate (or a confirmation) is fetched from the URL
            // that was checked, and nowhere it might point to.
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client without custom TLS builds"),
            cached: Mutex::new(HashMap::new()),
        }
    }
}

impl Certificates {
    /// The certificate at `url` (already checked to be SNS's), fetched on first use.
    /// The lock is held across the fetch, so concurrent first uses fetch once.
    async fn get(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        let mut cached = self.cached.lock().await;
        if let Some(pem) = cached.get(url) {
            return Ok(pem.clone());
        }
        let pem = fetch(&self.http, url).await?;
        let pem = Arc::new(pem.to_vec());
        if cached.len() >= MAX_CERTIFICATES {
            cached.clear();
        }
        cached.insert(url.to_owned(), pem.clone());
        Ok(pem)
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Bytes, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    response.bytes().await.map_err(|e| e.to_string())
}

/// Checks one SNS message and acts on it; the answer SNS gets, or why not.
pub(crate) async fn receive(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    correlation: CorrelationId,
) -> Result<Response, Refusal> {
    within_limit(app, body)?;
    let message = SnsMessage::parse(body).map_err(|e| (Rejection::Malformed, e.to_string()))?;
    let kind = message
        .message_type()
        .map_err(|e| (Rejection::Malformed, e.to_string()))?;
    let announced = headers
        .get(sns::MESSAGE_TYPE_HEADER)
        .and_then(|v| v.to_str().ok());
    if announced.is_some_and(|a| a != message.kind) {
        return Err((
            Rejection::Malformed,
            "The message type header does not match the message.".into(),
        ));
    }
    if app.config.ses_topic_arn.as_deref() != Some(message.topic_arn.as_str()) {
        return Err((
            Rejection::WrongTopic,
            "Messages from this topic are not taken.".into(),
        ));
    }
    let local = app.config.sns_local_cert_url.as_deref();
    if !sns::certificate_url_allowed(&message.signing_cert_url, local) {
        return Err((
            Rejection::CertificateUrl,
            "The signing certificate is not SNS's.".into(),
        ));
    }
    let certificate = match app.certificates.get(&message.signing_cert_url).await {
        Ok(certificate) => certificate,
        Err(e) => {
            tracing::error!(error = %e, url = %message.signing_cert_url, "SNS's certificate could not be fetched");
            // SNS delivers again later; nothing was stored.
            return Ok(unavailable());
        }
    };
    message
        .verify(&certificate)
        .map_err(|e| (Rejection::BadSignature, e.to_string()))?;
    match kind {
        SnsType::Notification => notification(app, &message, correlation).await,
        SnsType::SubscriptionConfirmation => confirm(app, &message, local).await,
        SnsType::UnsubscribeConfirmation => {
            // Unsubscribing is an operator's act in the console or the template; the
            // receiver confirms nothing it did not ask for.
            tracing::warn!(topic = %message.topic_arn, "the topic says Herald's subscription was removed");
            Ok(StatusCode::OK.into_response())
        }
    }
}

async fn notification(
    app: &App,
    message: &SnsMessage,
    correlation: CorrelationId,
) -> Result<Response, Refusal> {
    let envelope = EventEnvelope {
        v: ENVELOPE_VERSION,
        source: EventSource::Ses,
        kind: EventKind::Notification,
        received_at: app.clock.timestamp(),
        correlation_id: correlation,
        query: Default::default(),
        form: message.signed_fields(),
    };
    envelope
        .event()
        .map_err(|e| (Rejection::Invalid, e.to_string()))?;
    if let Err(e) = app.queue.enqueue(&envelope).await {
        tracing::error!(error = %herald::telemetry::error_chain(&e), "the event could not be queued");
        return Ok(unavailable());
    }
    Ok(StatusCode::OK.into_response())
}

/// Marks the answer to a subscription confirmation the receiver confirmed (counted as
/// `SubscriptionsConfirmed`, not as an event taken).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Confirmation;

/// Confirms the subscription to the configured topic by visiting its `SubscribeURL`,
/// which must be on SNS's host as the certificate is.
async fn confirm(
    app: &App,
    message: &SnsMessage,
    local: Option<&str>,
) -> Result<Response, Refusal> {
    let url = message.subscribe_url.as_deref().unwrap_or_default();
    if !sns::certificate_url_allowed(url, local) {
        return Err((
            Rejection::Invalid,
            "The subscription URL is not SNS's.".into(),
        ));
    }
    match fetch(&app.certificates.http, url).await {
        Ok(_) => {
            tracing::info!(topic = %message.topic_arn, "subscription confirmed");
            let mut answer = StatusCode::OK.into_response();
            answer.extensions_mut().insert(Confirmation);
            Ok(answer)
        }
        Err(e) => {
            tracing::error!(error = %e, "the subscription could not be confirmed");
            Ok(unavailable())
        }
    }
}

fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Try again shortly.",
    )
}
