//! Verifies the Cognito tokens that come with API requests: RS256 against the user
//! pool's JWKS, issuer, expiry and token use. Which client a token was issued to is
//! left to the caller, because machine clients are registered at run time (see
//! `docs/decisions.md`, "Machine clients").

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::clock::SharedClock;

/// How often an unknown key id may make the verifier fetch the JWKS again (Cognito
/// rotates keys rarely; a flood of forged key ids must not become a flood of fetches).
const REFETCH_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("no token in the Authorization header")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signature does not verify against the user pool's keys")]
    Signature,
    #[error("the token was issued by {0}, not this API's user pool")]
    Issuer(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued to a client this API does not know")]
    Audience,
    #[error("the token's machine client was revoked")]
    Revoked,
    #[error("the token is neither an id nor an access token")]
    TokenUse,
    #[error("the user pool's keys could not be fetched")]
    KeysUnavailable,
}

/// What a verified token says about its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// A user's id token (it carries the custom attributes and groups).
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

pub struct Verifier {
    settings: TokenSettings,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, u64)>>,
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
            keys: RwLock::new(None),
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
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Signature);
        }
        let kid = header.kid.ok_or(Rejection::Signature)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Expiry is checked below against Herald's clock; the audience by the caller.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                _ => Rejection::Malformed,
            })?
            .claims;
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if issuer != self.settings.issuer {
            return Err(Rejection::Issuer(issuer.to_owned()));
        }
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(Rejection::Expired)?;
        if expires <= self.clock.epoch_seconds() {
            return Err(Rejection::Expired);
        }
        match claims.get("token_use").and_then(Value::as_str) {
            Some("id") => Ok(Verified::User(claims)),
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

    async fn key(&self, kid: &str) -> Result<DecodingKey, Rejection> {
        let now = self.clock.epoch_seconds();
        let stale = {
            let keys = self.keys.read().await;
            match keys.as_ref() {
                Some((set, _)) if set.find(kid).is_some() => {
                    return DecodingKey::from_jwk(set.find(kid).expect("found above"))
                        .map_err(|_| Rejection::Signature);
                }
                Some((_, fetched)) => now.saturating_sub(*fetched) >= REFETCH_AFTER.as_secs(),
                None => true,
            }
        };
        if !stale {
            return Err(Rejection::Signature);
        }
        let fresh = self.fetch().await?;
        let key = fresh
            .find(kid)
            .map(|jwk| DecodingKey::from_jwk(jwk).map_err(|_| Rejection::Signature));
        *self.keys.write().await = Some((fresh, now));
        key.unwrap_or(Err(Rejection::Signature))
    }

    async fn fetch(&self) -> Result<JwkSet, Rejection> {
        let url = &self.settings.jwks_url;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let keys = match response {
            Ok(r) => r.json::<JwkSet>().await,
            Err(e) => Err(e),
        };
        keys.map_err(|e| {
            tracing::error!(%url, error = %crate::telemetry::error_chain(&e), "fetching the JWKS failed");
            Rejection::KeysUnavailable
        })
    }
}
