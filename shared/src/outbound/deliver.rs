//! One delivery attempt of one event to one endpoint: the URL checked again
//! (`url_rules`, with the name resolved by a resolver that refuses forbidden addresses,
//! so the connection goes to exactly the addresses checked), the body signed per
//! Standard Webhooks with every secret that signs now, one POST with no redirect
//! followed, no proxy, and a 15 s timeout, and the answer read as what to do next:
//! only a 2xx is a delivery; 410 says the endpoint is gone; 429 and 503 carry the
//! wait they ask for (`Retry-After`); anything else, or no answer, is retried on the
//! schedule.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use reqwest::dns::{Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::secret::SigningSecret;
use super::signature::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header};
use super::url_rules::{EndpointUrl, UrlProblem, forbidden};
use crate::provider::retry_after;

/// How long an endpoint has to answer, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an answer's body an attempt keeps, for the tenant to read.
pub const EXCERPT_BYTES: usize = 256;

/// What is sent: the exact bytes signed are the bytes posted.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `webhook-id`: the event's id, the same on every attempt.
    pub id: &'a str,
    /// `webhook-timestamp`: Unix seconds of this attempt.
    pub timestamp: u64,
    pub body: &'a [u8],
}

/// What an attempt's answer (or its absence) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: delivered.
    Delivered,
    /// 410 Gone: the endpoint asks to be disabled.
    Gone,
    /// Try again on the schedule, not before `not_before` when the endpoint said so
    /// (429 or 503 with `Retry-After`).
    Retry { not_before: Option<Duration> },
    /// The URL is refused now (a name that resolves to a forbidden address, or a URL
    /// the rules no longer take): nothing was sent.
    Refused(UrlProblem),
}

/// One attempt, as the tenant's attempt log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The answer's status; none when there was no answer.
    pub status: Option<u16>,
    pub duration: Duration,
    /// The start of the answer's body (lossy UTF-8), or why there was no answer.
    pub excerpt: String,
}

/// Sends deliveries. One per function: its connection pool is shared (a clone shares
/// it too).
#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    dev: bool,
}

impl Deliverer {
    /// `dev`: the stack's environment is dev (`http://127.0.0.1` allowed).
    pub fn new(dev: bool, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent("Herald-Webhooks/1")
            .build()
            .expect("the HTTP client's settings are valid");
        Self { http, dev }
    }

    /// One attempt of `delivery` to `url`, signed with each of `secrets`.
    pub async fn attempt(
        &self,
        url: &str,
        secrets: &[&SigningSecret],
        delivery: Delivery<'_>,
    ) -> Attempt {
        let started = Instant::now();
        let refused = |problem: UrlProblem| Attempt {
            excerpt: format!("not sent: the URL {problem}"),
            outcome: Outcome::Refused(problem),
            status: None,
            duration: started.elapsed(),
        };
        let url = match EndpointUrl::parse(url, self.dev) {
            Ok(url) => url,
            Err(problem) => return refused(problem),
        };
        let signature = signature_header(secrets, delivery.id, delivery.timestamp, delivery.body);
        let sent = self
            .http
            .post(url.url().clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ID_HEADER, delivery.id)
            .header(TIMESTAMP_HEADER, delivery.timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(delivery.body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                if let Some(problem) = refusal_in(&error) {
                    return refused(problem);
                }
                return Attempt {
                    outcome: Outcome::Retry { not_before: None },
                    status: None,
                    duration: started.elapsed(),
                    excerpt: if error.is_timeout() {
                        format!("no answer within {} s", TIMEOUT.as_secs())
                    } else {
                        "could not connect".to_owned()
                    },
                };
            }
        };
        let status = response.status().as_u16();
        let wait = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after::parse(v, SystemTime::now()));
        let outcome = match status {
            200..=299 => Outcome::Delivered,
            410 => Outcome::Gone,
            429 | 503 => Outcome::Retry { not_before: wait },
            _ => Outcome::Retry { not_before: None },
        };
        let excerpt = excerpt(response).await;
        Attempt {
            outcome,
            status: Some(status),
            duration: started.elapsed(),
            excerpt,
        }
    }
}

/// The first `EXCERPT_BYTES` of the answer's body, read no further.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(EXCERPT_BYTES);
    String::from_utf8_lossy(&kept).into_owned()
}

/// The URL refusal a failed request carries, when the guarded resolver refused it.
fn refusal_in(error: &reqwest::Error) -> Option<UrlProblem> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal.0.clone());
        }
        source = e.source();
    }
    None
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(UrlProblem);

/// Resolves names for the delivery client and refuses any name with a forbidden
/// address among its answers: the connection uses exactly the addresses checked, so
/// a name cannot resolve one way for the check and another for the connection.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(kind) = addresses.iter().find_map(|a| forbidden(a.ip())) {
                return Err(Box::new(Refusal(UrlProblem::ResolvesForbidden(kind))) as _);
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against a receiver on loopback that records every request it gets.
    use std::sync::Mutex;

    use aws_lc_rs::hmac;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    type Seen = std::sync::Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

    async fn answer(
        State(seen): State<Seen>,
        Path(behaviour): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        seen.lock()
            .unwrap()
            .push((behaviour.clone(), headers, body.to_vec()));
        match behaviour.as_str() {
            "ok" => (StatusCode::OK, "fine").into_response(),
            "gone" => StatusCode::GONE.into_response(),
            "busy" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")]).into_response(),
            "unavailable" => {
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "3")]).into_response()
            }
            "moved" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                StatusCode::OK.into_response()
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(1000)).into_response(),
        }
    }

    async fn receiver() -> (String, Seen) {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/{behaviour}", axum::routing::post(answer))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    /// The Standard Webhooks check as a tenant writes it, apart from Herald's signer:
    /// whether one of the header's signatures is the secret's over `id.timestamp.body`.
    fn verifies(secret_text: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        let key = STANDARD
            .decode(secret_text.strip_prefix("whsec_").unwrap())
            .unwrap();
        let id = headers["webhook-id"].to_str().unwrap();
        let timestamp = headers["webhook-timestamp"].to_str().unwrap();
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &signed);
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .any(|s| s == expected.as_ref())
    }

    const BODY: &[u8] = br#"{"type":"message.delivered","data":{"id":"m.1"}}"#;

    fn delivery() -> Delivery<'static> {
        Delivery {
            id: "evt_01JQ0000000000000000000000",
            timestamp: 1_764_000_000,
            body: BODY,
        }
    }

    #[tokio::test]
    async fn a_2xx_delivers_signed_bytes_that_verify_independently() {
        let (base, seen) = receiver().await;
        let (new, old) = (SigningSecret::generate(), SigningSecret::generate());
        let deliverer = Deliverer::new(true, TIMEOUT);
        let attempt = deliverer
            .attempt(&format!("{base}/ok"), &[&new, &old], delivery())
            .await;
        assert_eq!(attempt.outcome, Outcome::Delivered);
        assert_eq!(
            (attempt.status, attempt.excerpt.as_str()),
            (Some(200), "fine")
        );
        let seen = seen.lock().unwrap();
        let (_, headers, body) = &seen[0];
        assert_eq!(body, BODY);
        assert_eq!(headers["webhook-id"], "evt_01JQ0000000000000000000000");
        assert_eq!(headers["webhook-timestamp"], "1764000000");
        assert_eq!(headers["content-type"], "application/json");
        // During a rotation both secrets verify; an unrelated one does not.
        assert!(verifies(&new.reveal(), headers, body));
        assert!(verifies(&old.reveal(), headers, body));
        assert!(!verifies(
            &SigningSecret::generate().reveal(),
            headers,
            body
        ));
        let mut altered = body.clone();
        altered[2] ^= 1;
        assert!(!verifies(&new.reveal(), headers, &altered));
    }

    #[tokio::test]
    async fn answers_other_than_2xx_say_what_comes_next() {
        let (base, seen) = receiver().await;
        let secret = SigningSecret::generate();
        let deliverer = Deliverer::new(true, TIMEOUT);
        let at = |path: &'static str| {
            let url = format!("{base}/{path}");
            let (deliverer, secret) = (&deliverer, &secret);
            async move { deliverer.attempt(&url, &[secret], delivery()).await }
        };
        assert_eq!(at("gone").await.outcome, Outcome::Gone);
        let busy = at("busy").await;
        assert_eq!(
            busy.outcome,
            Outcome::Retry {
                not_before: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            at("unavailable").await.outcome,
            Outcome::Retry {
                not_before: Some(Duration::from_secs(3))
            }
        );
        // A redirect is not followed: one request, and a retry like any failure.
        let moved = at("moved").await;
        assert_eq!(moved.outcome, Outcome::Retry { not_before: None });
        assert_eq!(moved.status, Some(302));
        let error = at("error").await;
        assert_eq!(error.status, Some(500));
        assert_eq!(error.excerpt, "x".repeat(EXCERPT_BYTES));
        let paths: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, ..)| p.clone())
            .collect();
        assert_eq!(paths, ["gone", "busy", "unavailable", "moved", "error"]);
    }

    #[tokio::test]
    async fn no_answer_in_time_or_no_listener_is_retried_and_forbidden_urls_are_not_sent() {
        let (base, seen) = receiver().await;
        let secret = SigningSecret::generate();
        let impatient = Deliverer::new(true, Duration::from_millis(300));
        let slow = impatient
            .attempt(&format!("{base}/slow"), &[&secret], delivery())
            .await;
        assert_eq!(
            (slow.outcome, slow.status),
            (Outcome::Retry { not_before: None }, None)
        );
        // A port nobody listens on (the receiver's, once it is gone, is not known
        // free: port 9, discard, is not served here).
        let closed = impatient
            .attempt("http://127.0.0.1:9/x", &[&secret], delivery())
            .await;
        assert_eq!(closed.outcome, Outcome::Retry { not_before: None });
        // Outside dev, loopback is refused before anything is sent.
        let production = Deliverer::new(false, TIMEOUT);
        let refused = production
            .attempt(&format!("{base}/ok"), &[&secret], delivery())
            .await;
        assert_eq!(refused.outcome, Outcome::Refused(UrlProblem::NotHttps));
        let metadata = production
            .attempt("https://169.254.169.254/", &[&secret], delivery())
            .await;
        assert_eq!(
            metadata.outcome,
            Outcome::Refused(UrlProblem::ForbiddenAddress("metadata"))
        );
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "only the slow request arrived"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_a_forbidden_address() {
        let refused = GuardedResolver.resolve("localhost".parse().unwrap()).await;
        let error = refused.err().expect("localhost resolves to loopback");
        assert_eq!(
            error.downcast_ref::<Refusal>().map(|r| r.0.clone()),
            Some(UrlProblem::ResolvesForbidden("loopback"))
        );
    }
}
