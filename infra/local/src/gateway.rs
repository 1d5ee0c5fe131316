//! The local API Gateway: matches the template's routes and calls the function each
//! route belongs to (`api`, `webhooks`) in-process with an API Gateway v2 (payload 2.0)
//! event, as the template's HTTP API (which has no authorizer: the API verifies
//! tokens, the receiver providers' signatures) does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::stack::HttpRoute;

/// API Gateway's payload limit for HTTP APIs.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

pub struct Gateway {
    /// Each template route and the function (router) it integrates with.
    pub routes: Vec<(HttpRoute, axum::Router)>,
}

pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gateway)
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let Some(((route, function), path_parameters)) = gateway
        .routes
        .iter()
        .find_map(|r| match_route(&r.0, &method, &path).map(|params| (r, params)))
    else {
        // What API Gateway itself answers for a route it does not have.
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    };
    let route_key = format!("{} {}", route.method, route.path);
    let event = match to_event(request, &route_key, path_parameters).await {
        Ok(event) => event,
        Err(response) => return response,
    };
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "gateway built an event lambda_http cannot read");
            // What API Gateway answers when its integration fails.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"message": "Internal Server Error"})),
            )
                .into_response();
        }
    };
    match function.clone().oneshot(request).await {
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

/// The API Gateway v2 event for `request` on the route `route_key` (`POST /v1/batches`),
/// as Lambda hands it to the function; an answer of API Gateway's own when it has one.
pub async fn to_event(
    request: Request,
    route_key: &str,
    path_parameters: Map<String, Value>,
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
    let context = json!({
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
        "time": herald::Timestamp::from_epoch_millis(now_ms).to_string(),
        "timeEpoch": now_ms,
    });
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
}
