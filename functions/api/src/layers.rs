//! The layers every routed request passes, one job each and in this order: correlate
//! (an id and a span), policy (what the route requires; a route without a policy is
//! denied), authenticate (the token, verified here: API Gateway's authorizer cannot know
//! machine clients registered at run time), authorize (the permission), tenant (the
//! caller's profile, active), rate limit (the tenant's request rate, with `RateLimit-*`
//! headers). Each hands what it learned to the next through the request's extensions.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header, header::HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald::CorrelationId;
use herald::auth::{Access, Permission, Principal, Scope, route_access};
use herald::domain::{Admission, TenantProfile, TenantStatus, UserStatus};
use herald::token::{Rejection, Verified, Verifier};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tracing::Instrument;

use crate::extract::Correlation;
use crate::{ApiError, App};

pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Gives every request a correlation id (the caller's `x-correlation-id` when it is
/// well-formed), a span that carries it, and echoes it in the response.
pub async fn correlate(mut request: Request, next: Next) -> Response {
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

fn request_id(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

/// Looks the matched route up in the policy table; a route without a policy is denied.
pub async fn policy(mut request: Request, next: Next) -> Result<Response, ApiError> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(access) = route_access(request.method().as_str(), &route) else {
        tracing::error!(%route, "route has no policy; denying");
        return Err(ApiError::forbidden("This route is not open to anyone."));
    };
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// The permission the route requires, or `None` on a public route.
fn required(request: &Request) -> Result<Option<Permission>, ApiError> {
    match request.extensions().get::<Access>() {
        Some(Access::Public) => Ok(None),
        Some(Access::Requires(permission)) => Ok(Some(*permission)),
        None => Err(ApiError::Misrouted("the policy layer did not run")),
    }
}

/// Who the token says the caller is; public routes need no token.
pub async fn authenticate(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if required(&request)?.is_none() {
        return Ok(next.run(request).await);
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = identify(&app, header).await?;
    tracing::Span::current().record("tenant_id", principal.tenant().as_str());
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// A user's id token, or a registered, unrevoked machine client's access token. Every
/// failure is a 401 naming the reason, except a valid user token without a usable tenant
/// (403: signing in again will not help).
async fn identify(app: &App, header: Option<&str>) -> Result<Principal, ApiError> {
    let token = Verifier::bearer(header)?;
    let user_clients = &app.config.auth.user_client_ids;
    let claims = match app.verifier.verify(token).await? {
        Verified::User(claims) => {
            let audience = claims
                .get("aud")
                .and_then(|a| a.as_str())
                .unwrap_or_default();
            if !user_clients.iter().any(|c| c == audience) {
                return Err(Rejection::Audience.into());
            }
            claims
        }
        Verified::Access { client_id, claims } if user_clients.contains(&client_id) => claims,
        Verified::Access { client_id, claims } => {
            let client = match app.store.machine_client(&client_id).await? {
                None => return Err(Rejection::Audience.into()),
                Some(c) if c.revoked_at.is_some() => return Err(Rejection::Revoked.into()),
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
    Principal::from_claims(&claims).map_err(|e| ApiError::forbidden(e.to_string()))
}

/// Whether the caller's roles or scopes hold the route's permission.
pub async fn authorize(request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(permission) = required(&request)? {
        let principal = principal(&request)?;
        if !principal.may(permission) {
            return Err(ApiError::forbidden(
                "Your role (or this client's scopes) does not allow this action.",
            ));
        }
    }
    Ok(next.run(request).await)
}

fn principal(request: &Request) -> Result<&Principal, ApiError> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or(ApiError::Misrouted("the authenticate layer did not run"))
}

/// Whether the route acts within the caller's own tenant (not public, not platform-wide).
fn tenant_route(request: &Request) -> Result<bool, ApiError> {
    Ok(required(request)?.is_some_and(|p| !p.is_platform()))
}

/// The caller's tenant profile, for tenant routes: a tenant Herald does not know is
/// refused, and so is a suspended one. A person's token is checked against their
/// record, read at the same time: refused when they were removed, or when it was
/// issued before their role last changed (a user Herald holds no record of, made
/// outside the API, is governed by Cognito alone).
pub async fn tenant(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !tenant_route(&request)? {
        return Ok(next.run(request).await);
    }
    let caller = principal(&request)?;
    let tenant = caller.tenant().clone();
    let profile = match caller.user_token_issued_at() {
        // A person: their record is read with the profile, and refuses a token issued
        // before their role changed or they were removed.
        Some(issued_at) => {
            let (profile, user) = app
                .store
                .tenant_with_user(&tenant, caller.subject())
                .await?;
            match user {
                Some(user) if user.status == UserStatus::Removed => {
                    return Err(Rejection::UserRemoved.into());
                }
                Some(user) if !user.accepts_token_issued_at(issued_at) => {
                    return Err(Rejection::Superseded.into());
                }
                _ => profile,
            }
        }
        None => app.store.get_tenant(&tenant).await?,
    };
    let profile =
        profile.ok_or_else(|| ApiError::forbidden("Your tenant is not registered with Herald."))?;
    if profile.status == TenantStatus::Suspended {
        return Err(ApiError::TenantSuspended);
    }
    request.extensions_mut().insert(profile);
    Ok(next.run(request).await)
}

/// The tenant's request rate: one-second windows counted in DynamoDB, shared by every
/// instance of the function.
pub async fn rate_limit(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !tenant_route(&request)? {
        return Ok(next.run(request).await);
    }
    let profile = request
        .extensions()
        .get::<TenantProfile>()
        .ok_or(ApiError::Misrouted("the tenant layer did not run"))?;
    let limit = profile.limits.api_requests_per_second;
    let admission = app
        .store
        .admit_request(&profile.tenant, limit, app.clock.epoch_seconds())
        .await?;
    let (mut response, remaining) = match admission {
        Admission::Admitted { remaining, .. } => (next.run(request).await, remaining),
        Admission::Limited {
            retry_after_secs, ..
        } => {
            let limited = ApiError::RateLimited {
                limit,
                retry_after_secs,
            };
            (limited.into_response(), 0)
        }
    };
    rate_limit_headers(&mut response, limit, remaining);
    Ok(response)
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
