//! The local API Gateway: matches the template's routes, verifies the JWT the way the
//! template's authorizer does, and calls the `api` function in-process with an API
//! Gateway v2 (payload 2.0) event carrying the verified claims.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald::clock::SharedClock;
use herald::problem::Problem;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::stack::{HttpRoute, JwtAuthorizer};

/// API Gateway's payload limit for HTTP APIs.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

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
    #[error("the token is not for this API's client")]
    Audience,
    #[error("the token is neither an id nor an access token")]
    TokenUse,
}

pub struct JwtVerifier {
    authorizer: JwtAuthorizer,
    keys: JwkSet,
    clock: SharedClock,
}

impl JwtVerifier {
    /// Fetches the user pool's JWKS from the emulator (where AWS would fetch it from
    /// `{issuer}/.well-known/jwks.json`).
    pub async fn fetch(
        emulator: &str,
        authorizer: JwtAuthorizer,
        clock: SharedClock,
    ) -> Result<Self> {
        let pool = authorizer
            .issuer
            .rsplit('/')
            .next()
            .ok_or_else(|| anyhow!("issuer {} names no user pool", authorizer.issuer))?;
        let url = format!("{emulator}/{pool}/.well-known/jwks.json");
        let keys: JwkSet = reqwest::get(&url)
            .await
            .with_context(|| format!("fetching {url}"))?
            .error_for_status()?
            .json()
            .await
            .context("JWKS is not a key set")?;
        Ok(Self {
            authorizer,
            keys,
            clock,
        })
    }

    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }

    /// Checks signature (RS256 against the JWKS), issuer, expiry, audience (`aud` for
    /// id tokens, `client_id` for access tokens) and token use, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Signature);
        }
        let jwk = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None => None,
        }
        .ok_or(Rejection::Signature)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Rejection::Signature)?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Expiry and audience are checked below, against our clock and both claims.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                    _ => Rejection::Malformed,
                }
            })?;
        let claims = data.claims;
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if issuer != self.authorizer.issuer {
            return Err(Rejection::Issuer(issuer.to_owned()));
        }
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(Rejection::Expired)?;
        if expires <= self.clock.epoch_seconds() {
            return Err(Rejection::Expired);
        }
        let token_use = claims.get("token_use").and_then(Value::as_str);
        let audience = match token_use {
            Some("id") => claims.get("aud"),
            Some("access") => claims.get("client_id"),
            _ => return Err(Rejection::TokenUse),
        }
        .and_then(Value::as_str)
        .unwrap_or_default();
        if !self.authorizer.audiences.iter().any(|a| a == audience) {
            return Err(Rejection::Audience);
        }
        Ok(claims)
    }
}

pub struct Gateway {
    pub routes: Vec<HttpRoute>,
    pub verifier: JwtVerifier,
    pub api: axum::Router,
}

pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gateway)
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let Some((route, path_parameters)) = gateway
        .routes
        .iter()
        .find_map(|r| match_route(r, &method, &path).map(|params| (r, params)))
    else {
        // What API Gateway itself answers for a route it does not have.
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    };
    let claims = if route.public {
        None
    } else {
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .unwrap_or(v)
                    .trim()
            })
            .filter(|t| !t.is_empty());
        let verified = token
            .ok_or(Rejection::Missing)
            .and_then(|t| gateway.verifier.verify(t));
        match verified {
            Ok(claims) => Some(claims),
            Err(rejection) => {
                tracing::info!(%method, %path, reason = %rejection, "token rejected");
                return Problem::unauthorized(&rejection.to_string()).into_response();
            }
        }
    };
    let route_key = format!("{} {}", route.method, route.path);
    let event = match to_event(request, &route_key, path_parameters, claims).await {
        Ok(event) => event,
        Err(response) => return response,
    };
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "gateway built an event lambda_http cannot read");
            return Problem::internal().into_response();
        }
    };
    match gateway.api.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// Matches `/v1/messages/{id}` style paths (and `{proxy+}`), returning the parameters.
fn match_route(route: &HttpRoute, method: &str, path: &str) -> Option<Map<String, Value>> {
    if route.method != "ANY" && route.method != method {
        return None;
    }
    let mut params = Map::new();
    let mut actual = path.trim_start_matches('/').split('/');
    for (i, expected) in route.path.trim_start_matches('/').split('/').enumerate() {
        if let Some(name) = expected
            .strip_prefix('{')
            .and_then(|e| e.strip_suffix("+}"))
        {
            let rest: Vec<&str> = path.trim_start_matches('/').split('/').skip(i).collect();
            params.insert(name.to_owned(), Value::String(rest.join("/")));
            return Some(params);
        }
        let segment = actual.next()?;
        match expected.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => {
                params.insert(name.to_owned(), Value::String(segment.to_owned()));
            }
            Some(_) => return None,
            None if expected == segment => {}
            None => return None,
        }
    }
    actual.next().is_none().then_some(params)
}

/// API Gateway hands claims to the function as strings: arrays as `[a b]`.
fn claim_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(claim_string).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

async fn to_event(
    request: Request,
    route_key: &str,
    path_parameters: Map<String, Value>,
    claims: Option<Map<String, Value>>,
) -> Result<Value, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES)
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({"message": "Request Entity Too Large"})),
            )
                .into_response()
        })?;
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split("; ").map(|c| Value::String(c.to_owned())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let mut query = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match query.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                query.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(&body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(&body)),
            true,
        ),
    };
    let authorizer = claims.map(|claims| {
        let scopes: Option<Vec<String>> = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split(' ').map(str::to_owned).collect());
        let claims: Map<String, Value> = claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(claim_string(v))))
            .collect();
        json!({ "jwt": { "claims": claims, "scopes": scopes } })
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let mut context = json!({
        "accountId": crate::template::ACCOUNT_ID,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or_default(),
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": headers.get("user-agent").cloned().unwrap_or(Value::String(String::new())),
        },
        "requestId": ulid::Ulid::new().to_string(),
        "routeKey": route_key,
        "stage": "$default",
        "time": herald::clock::rfc3339(now_ms),
        "timeEpoch": now_ms,
    });
    if let Some(authorizer) = authorizer {
        context["authorizer"] = authorizer;
    }
    Ok(json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "cookies": cookies,
        "headers": headers,
        "queryStringParameters": query,
        "pathParameters": path_parameters,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> HttpRoute {
        HttpRoute {
            method: method.into(),
            path: path.into(),
            public: false,
        }
    }

    #[test]
    fn routes_match_like_api_gateway() {
        let r = route("GET", "/v1/messages/{id}");
        assert_eq!(
            match_route(&r, "GET", "/v1/messages/abc").unwrap()["id"],
            "abc"
        );
        assert!(match_route(&r, "POST", "/v1/messages/abc").is_none());
        assert!(match_route(&r, "GET", "/v1/messages").is_none());
        assert!(match_route(&r, "GET", "/v1/messages/abc/x").is_none());
        assert!(match_route(&r, "GET", "/v1/messages/").is_none());
        let proxy = route("ANY", "/v1/{proxy+}");
        assert_eq!(
            match_route(&proxy, "PUT", "/v1/a/b").unwrap()["proxy"],
            "a/b"
        );
    }

    #[test]
    fn claims_are_stringified_as_api_gateway_does() {
        assert_eq!(claim_string(&json!(["admin", "sender"])), "[admin sender]");
        assert_eq!(claim_string(&json!(1700000000)), "1700000000");
        assert_eq!(claim_string(&json!("acme")), "acme");
    }
}
