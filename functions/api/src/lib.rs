//! The tenant-facing HTTP API. `router` is what Lambda runs (through `lambda_http`)
//! and what the local gateway calls in-process; both hand it API Gateway v2 requests.
//! The API verifies each request's Cognito token itself (see `docs/decisions.md`,
//! "Machine clients": API Gateway's JWT authorizer cannot know clients registered at
//! run time).

// Handlers answer early with a ready `Response`; it is built once per request, so
// boxing it to shrink the `Err` variant would buy nothing.
#![allow(clippy::result_large_err)]

use herald::metrics::Metrics;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header, header::HeaderName};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use herald::CorrelationId;
use herald::auth::{Access, Principal, Scope, route_access};
use herald::aws::CognitoClient;
use herald::clock::SharedClock;
use herald::config::ApiConfig;
use herald::domain::{Admission, TenantStatus};
use herald::idempotency::Idempotency;
use herald::problem::Problem;
use herald::queue::SendQueue;
use herald::redrive::Redriver;
use herald::store::Store;
use herald::token::{Rejection, Verified, Verifier};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tracing::Instrument;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod batches;
mod clients;
mod error;
mod intake;
mod messages;
mod openapi;
mod tenants;

pub use error::ApiError;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

pub struct App {
    pub config: ApiConfig,
    pub store: Store,
    pub idempotency: Idempotency,
    pub queue: SendQueue,
    pub redriver: Redriver,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pub verifier: Verifier,
    pub cognito: CognitoClient,
}

impl App {
    pub fn new(config: ApiConfig, clients: &herald::aws::Clients, clock: SharedClock) -> Self {
        // One client (one connection pool) for every DynamoDB repository.
        let dynamodb = clients.dynamodb();
        let sqs = clients.sqs();
        Self {
            store: Store::new(dynamodb.clone(), &config.table),
            idempotency: Idempotency::new(dynamodb, &config.table),
            queue: SendQueue::new(sqs.clone(), &config.send_queue_url),
            redriver: Redriver::new(
                sqs,
                &config.send_dlq_url,
                &config.send_queue_url,
                config.redrive,
            ),
            verifier: Verifier::new(config.auth.tokens.clone(), clock.clone()),
            cognito: clients.cognito(),
            config,
            metrics: Metrics::stdout(clock.clone()),
            clock,
        }
    }

    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Every route, registered once: the router and the OpenAPI document are both built from
/// these `routes!` calls, so the document (and the route walk in the tests) cannot miss
/// a route the router serves.
fn registered() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi::serve))
        .routes(routes!(messages::create))
        .routes(routes!(messages::show))
        .routes(routes!(batches::create))
        .routes(routes!(batches::show))
        .routes(routes!(batches::messages))
        .routes(routes!(batches::cancel))
        .routes(routes!(tenants::usage))
        .routes(routes!(tenants::own_audit))
        .routes(routes!(clients::register, clients::list))
        .routes(routes!(clients::revoke))
        .routes(routes!(tenants::create))
        .routes(routes!(tenants::show))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume))
        .routes(routes!(tenants::audit))
        .routes(routes!(tenants::redrive))
}

pub fn router(app: Arc<App>) -> Router {
    let (routes, document) = registered().split_for_parts();
    let served = openapi::Served(render(openapi::apply_policy(document)).into());
    routes
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize))
        .fallback(|| async { Problem::not_found().detail("No such route.") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
            )
        })
        .layer(Extension(served))
        .layer(middleware::from_fn(correlate))
        // The body is already in memory (it arrives inside the Lambda event, which API
        // Gateway caps); the handlers check `max_body_bytes` and answer 413 as
        // problem+json, which axum's own limit would answer as plain text.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// The OpenAPI document of the router, with the policy table's security applied.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::apply_policy(registered().into_openapi())
}

/// The document as `GET /v1/openapi.json` serves it and `docs/openapi.json` holds it.
pub fn openapi_json() -> String {
    render(openapi())
}

fn render(document: utoipa::openapi::OpenApi) -> String {
    let mut json = document
        .to_pretty_json()
        .expect("an OpenAPI document is plain JSON data");
    json.push('\n');
    json
}

/// Every route the router serves, as `(METHOD, path)` in the router's path syntax: read
/// from the document, which comes from the same registrations as the router.
pub fn routes() -> Vec<(String, String)> {
    openapi()
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            openapi::operations(item).map(move |(method, _)| (method.to_owned(), path.clone()))
        })
        .collect()
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`: the function is up. It does not check dependencies.
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "meta",
    operation_id = "getHealth",
    summary = "Liveness",
    responses((status = 200, description = "The API is up.", body = Health)),
)]
async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Clone)]
pub struct Correlation(pub CorrelationId);

/// Gives every request a correlation id (the caller's `x-correlation-id` when it is
/// well-formed), a span that carries it, and echoes it in the response.
async fn correlate(mut request: Request, next: Next) -> Response {
    let supplied = request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok());
    let correlation = CorrelationId::from_header(supplied);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %correlation,
        function_request_id = request_id(&request).unwrap_or_default(),
        tenant_id = tracing::field::Empty,
    );
    request
        .extensions_mut()
        .insert(Correlation(correlation.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "answered"));
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), value);
    }
    response
}

/// Who the token says the caller is. Every failure is a 401 naming the reason, except a
/// valid user token without a usable tenant (403: signing in again will not help).
async fn identify(app: &App, header: Option<&str>) -> Result<Principal, Response> {
    let unauthorized = |rejection: Rejection| {
        tracing::info!(reason = %rejection, "token rejected");
        match rejection {
            Rejection::KeysUnavailable => Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "keys-unavailable",
                "Service Unavailable",
            )
            .detail("The sign-in keys could not be fetched; retry shortly.")
            .header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            .into_response(),
            other => Problem::unauthorized(&other.to_string()).into_response(),
        }
    };
    let token = Verifier::bearer(header).map_err(unauthorized)?;
    let user_clients = &app.config.auth.user_client_ids;
    let claims = match app.verifier.verify(token).await.map_err(unauthorized)? {
        Verified::User(claims) => {
            let audience = claims
                .get("aud")
                .and_then(|a| a.as_str())
                .unwrap_or_default();
            if !user_clients.iter().any(|c| c == audience) {
                return Err(unauthorized(Rejection::Audience));
            }
            claims
        }
        Verified::Access { client_id, claims } if user_clients.contains(&client_id) => claims,
        Verified::Access { client_id, claims } => {
            let client = app
                .store
                .machine_client(&client_id)
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            let client = match client {
                None => return Err(unauthorized(Rejection::Audience)),
                Some(c) if c.revoked_at.is_some() => return Err(unauthorized(Rejection::Revoked)),
                Some(c) => c,
            };
            // What the token was granted and the registration still allows.
            let granted: Vec<Scope> = claims
                .get("scope")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .split(' ')
                .filter_map(Scope::from_oauth_name)
                .filter(|scope| client.scopes.contains(scope))
                .collect();
            return Ok(Principal::machine(client.tenant, &client_id, granted));
        }
    };
    Principal::from_claims(&claims).map_err(|e| Problem::forbidden(&e.to_string()).into_response())
}

fn request_id(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

/// Looks the matched route up in the policy table; a route without a policy is denied.
/// The caller's identity comes only from a verified token: a user's id token, or a
/// registered machine client's access token. A tenant route then needs an active tenant
/// profile and a place in the tenant's request rate.
async fn authorize(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let access = route_access(request.method().as_str(), &route);
    let permission = match access {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Requires(permission)) => permission,
        None => {
            tracing::error!(%route, "route has no policy; denying");
            return Problem::forbidden("This route is not open to anyone.").into_response();
        }
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match identify(&app, header).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    tracing::Span::current().record("tenant_id", principal.tenant().as_str());
    if !principal.may(permission) {
        return Problem::forbidden(
            "Your role (or this client's scopes) does not allow this action.",
        )
        .into_response();
    }
    if permission.is_platform() {
        request.extensions_mut().insert(principal);
        return next.run(request).await;
    }
    let profile = match app.store.get_tenant(principal.tenant()).await {
        Ok(Some(profile)) => profile,
        Ok(None) => {
            return Problem::forbidden("Your tenant is not registered with Herald.")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if profile.status == TenantStatus::Suspended {
        return Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "tenant-suspended",
            "Tenant suspended",
        )
        .detail("Your tenant is suspended; its requests are refused and its queued messages are held. Contact support.")
        .into_response();
    }
    let limit = profile.limits.api_requests_per_second;
    let admission = app
        .store
        .admit_request(principal.tenant(), limit, app.clock.epoch_seconds())
        .await;
    let remaining = match admission {
        Ok(Admission::Admitted { remaining, .. }) => remaining,
        Ok(Admission::Limited {
            retry_after_secs, ..
        }) => {
            let mut response = Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            )
            .detail(format!(
                "Your tenant may make {limit} requests per second; retry after the Retry-After delay."
            ))
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
            .into_response();
            rate_limit_headers(&mut response, limit, 0);
            return response;
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(profile);
    let mut response = next.run(request).await;
    rate_limit_headers(&mut response, limit, remaining);
    response
}

/// The IETF draft's `RateLimit-*` fields: one-second windows.
fn rate_limit_headers(response: &mut Response, limit: u32, remaining: u32) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from_static("1"));
    if let Ok(policy) = HeaderValue::from_str(&format!("{limit};w=1")) {
        headers.insert("ratelimit-policy", policy);
    }
}
