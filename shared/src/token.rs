//! Verifies the Cognito tokens that come with API requests: RS256 against the user
//! pool's JWKS, issuer, expiry, not-before, issue time and token use, with every claim
//! in the form Cognito issues it. Which client a token was issued to is left to the
//! caller, because machine clients are registered at run time (see
//! `docs/decisions.md`, "Machine clients").
//!
//! The key cache is built for hostile traffic (`docs/decisions.md`, "Hardening"):
//! one fetch at a time however many requests wait for it, unknown key ids refetch at
//! most once a minute, a failed fetch is remembered for `FAILED_FETCH_BACKOFF`, and
//! keys are trusted for at most `MAX_KEY_AGE` after they were fetched.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::clock::SharedClock;

/// How far in the future `nbf` and `iat` may lie: clocks differ a little between
/// Cognito and the API, never by minutes.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How often an unknown key id may make the verifier fetch the JWKS again (Cognito
/// rotates keys rarely; a flood of forged key ids must not become a flood of fetches).
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// How long a failed fetch is remembered: requests that need the keys meanwhile are
/// answered 503 with this as `Retry-After`, without asking the endpoint again.
pub const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);
/// How long fetched keys are trusted: a key the user pool withdrew stops verifying
/// tokens at most this long after it was withdrawn.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("no token in the Authorization header")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with {0}; only RS256 is accepted")]
    Algorithm(String),
    #[error("the token names no signing key (kid)")]
    NoKeyId,
    #[error("the token's signing key is not one of the user pool's keys")]
    UnknownKey,
    #[error("the token's signature does not verify against the user pool's keys")]
    Signature,
    #[error("the token was issued by {0}, not this API's user pool")]
    Issuer(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("the token was issued in the future (its iat is ahead of this API's clock)")]
    IssuedInFuture,
    #[error("the token's {0} claim {1}")]
    Claim(&'static str, &'static str),
    #[error("the token was issued to a client this API does not know")]
    Audience,
    #[error("the token's machine client was revoked")]
    Revoked,
    #[error("the token was issued before the user's role changed; sign in again")]
    Superseded,
    #[error("the token's user was removed from the tenant")]
    UserRemoved,
    #[error("the token is neither an id nor an access token")]
    TokenUse,
    #[error("the user pool's keys could not be fetched")]
    KeysUnavailable,
}

/// What a verified token says about its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// A user's id token (it carries the custom attributes and groups; its `aud` is
    /// one client id, a string).
    User(Map<String, Value>),
    /// An access token: a user's (from a console client) or a machine client's.
    Access {
        client_id: String,
        claims: Map<String, Value>,
    },
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `https://cognito-idp.{region}.amazonaws.com/{pool}`.
    pub issuer: String,
    pub jwks_url: String,
}

/// What the verifier knows of the user pool's keys, in epoch seconds of its clock.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When `keys` were fetched; `None` before the first successful fetch.
    fetched_at: Option<u64>,
    /// The last fetch, successful or not.
    attempted_at: Option<u64>,
    /// The last fetch, if it failed.
    failed_at: Option<u64>,
}

/// What one request can do with the cache as it stands.
enum Lookup {
    Found(DecodingKey),
    Refused(Rejection),
    Fetch,
}

impl KeyCache {
    fn lookup(&self, kid: &str, now: u64) -> Lookup {
        let since = |at: Option<u64>| at.map(|at| now.saturating_sub(at));
        let fresh = since(self.fetched_at).is_some_and(|age| age < MAX_KEY_AGE.as_secs());
        if fresh && let Some(key) = self.keys.get(kid) {
            return Lookup::Found(key.clone());
        }
        if since(self.failed_at).is_some_and(|ago| ago < FAILED_FETCH_BACKOFF.as_secs()) {
            return Lookup::Refused(Rejection::KeysUnavailable);
        }
        if !fresh || since(self.attempted_at).is_none_or(|ago| ago >= REFETCH_AFTER.as_secs()) {
            return Lookup::Fetch;
        }
        Lookup::Refused(Rejection::UnknownKey)
    }
}

pub struct Verifier {
    settings: TokenSettings,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// Held by the one request fetching the JWKS; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    clock: SharedClock,
}

impl Verifier {
    pub fn new(settings: TokenSettings, clock: SharedClock) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client with a timeout builds");
        Self {
            settings,
            http,
            cache: RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
            clock,
        }
    }

    /// Extracts the token from an `Authorization: Bearer …` header value.
    pub fn bearer(header: Option<&str>) -> Result<&str, Rejection> {
        header
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .unwrap_or(v)
                    .trim()
            })
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::Missing)
    }

    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        // Only the algorithm Cognito signs with: an HS256 token "signed" with the
        // public key as its secret, or any other algorithm, never reaches a key.
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(Rejection::NoKeyId)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Times are checked below against Herald's clock; the audience by the caller.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                _ => Rejection::Malformed,
            })?
            .claims;
        self.check_claims(claims)
    }

    /// Everything but the signature, in the order a caller would fix it.
    fn check_claims(&self, claims: Map<String, Value>) -> Result<Verified, Rejection> {
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if issuer != self.settings.issuer {
            return Err(Rejection::Issuer(issuer.to_owned()));
        }
        let now = self.clock.epoch_seconds();
        let latest = now.saturating_add(CLOCK_SKEW.as_secs());
        if seconds(&claims, "exp")?.ok_or(Rejection::Claim("exp", "is missing"))? <= now {
            return Err(Rejection::Expired);
        }
        if seconds(&claims, "nbf")?.is_some_and(|nbf| nbf > latest) {
            return Err(Rejection::NotYetValid);
        }
        if seconds(&claims, "iat")?.ok_or(Rejection::Claim("iat", "is missing"))? > latest {
            return Err(Rejection::IssuedInFuture);
        }
        match claims.get("token_use").and_then(Value::as_str) {
            Some("id") => {
                // Cognito's id tokens name one client, as a string.
                match claims.get("aud") {
                    Some(Value::String(aud)) if !aud.is_empty() => Ok(Verified::User(claims)),
                    _ => Err(Rejection::Claim("aud", "must be one client id, a string")),
                }
            }
            Some("access") => {
                let client_id = claims
                    .get("client_id")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .ok_or(Rejection::Audience)?
                    .to_owned();
                Ok(Verified::Access { client_id, claims })
            }
            _ => Err(Rejection::TokenUse),
        }
    }

    /// The key `kid` names, from the cache or from one fetch shared by every request
    /// that needs it.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Rejection> {
        match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(rejection) => return Err(rejection),
            Lookup::Fetch => {}
        }
        let _single_flight = self.fetching.lock().await;
        // A request that waited finds what the fetch before it found, and fetches
        // only if the cache still says so (the previous fetch was long ago).
        match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(rejection) => return Err(rejection),
            Lookup::Fetch => {}
        }
        let fetched = self.fetch().await;
        let now = self.clock.epoch_seconds();
        {
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            cache.attempted_at = Some(now);
            match fetched {
                Some(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                    cache.failed_at = None;
                }
                None => cache.failed_at = Some(now),
            }
        }
        match self.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Refused(rejection) => Err(rejection),
            // Only a clock that jumped during the fetch gets here.
            Lookup::Fetch => Err(Rejection::KeysUnavailable),
        }
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let now = self.clock.epoch_seconds();
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lookup(kid, now)
    }

    /// The user pool's RS256 keys by key id, or `None` (logged) when they could not be
    /// fetched.
    async fn fetch(&self) -> Option<HashMap<String, DecodingKey>> {
        let url = &self.settings.jwks_url;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let set = match response {
            Ok(r) => r.json::<JwkSet>().await,
            Err(e) => Err(e),
        };
        let set = set
            .inspect_err(|e| {
                tracing::error!(%url, error = %crate::telemetry::error_chain(e), "fetching the JWKS failed");
            })
            .ok()?;
        Some(
            set.keys
                .iter()
                .filter_map(|jwk| {
                    let kid = jwk.common.key_id.clone()?;
                    DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
                })
                .collect(),
        )
    }
}

/// A time claim as Cognito writes it (whole seconds since the epoch), `None` when it
/// is absent; a string, a fraction or a negative number is refused.
fn seconds(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(Rejection::Claim(name, "must be a whole number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn cache_with(kid: &str, fetched_at: u64) -> KeyCache {
        let key = DecodingKey::from_rsa_components("AQAB", "AQAB").expect("a key");
        KeyCache {
            keys: HashMap::from([(kid.to_owned(), key)]),
            fetched_at: Some(fetched_at),
            attempted_at: Some(fetched_at),
            failed_at: None,
        }
    }

    fn decision(lookup: Lookup) -> String {
        match lookup {
            Lookup::Found(_) => "found".into(),
            Lookup::Refused(rejection) => format!("{rejection:?}"),
            Lookup::Fetch => "fetch".into(),
        }
    }

    #[test]
    fn an_empty_cache_fetches() {
        assert_eq!(decision(KeyCache::default().lookup("k", T0)), "fetch");
    }

    #[test]
    fn an_unknown_key_fetches_at_most_once_a_minute() {
        let cache = cache_with("k", T0);
        assert_eq!(decision(cache.lookup("k", T0 + 59)), "found");
        assert_eq!(decision(cache.lookup("other", T0 + 59)), "UnknownKey");
        assert_eq!(decision(cache.lookup("other", T0 + 60)), "fetch");
    }

    #[test]
    fn keys_are_trusted_for_an_hour_after_their_fetch() {
        let cache = cache_with("k", T0);
        assert_eq!(decision(cache.lookup("k", T0 + 3599)), "found");
        assert_eq!(decision(cache.lookup("k", T0 + 3600)), "fetch");
    }

    #[test]
    fn a_failed_fetch_is_remembered_for_the_backoff() {
        let mut cache = KeyCache {
            attempted_at: Some(T0),
            failed_at: Some(T0),
            ..KeyCache::default()
        };
        assert_eq!(decision(cache.lookup("k", T0 + 4)), "KeysUnavailable");
        assert_eq!(decision(cache.lookup("k", T0 + 5)), "fetch");
        // Keys still fresh keep verifying while the endpoint fails.
        cache = cache_with("k", T0);
        cache.attempted_at = Some(T0 + 100);
        cache.failed_at = Some(T0 + 100);
        assert_eq!(decision(cache.lookup("k", T0 + 101)), "found");
        assert_eq!(decision(cache.lookup("other", T0 + 101)), "KeysUnavailable");
    }
}
