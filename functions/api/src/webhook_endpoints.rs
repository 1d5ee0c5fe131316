//! A tenant admin's webhook endpoints (issue 15): where Herald pushes the tenant's
//! status events, signed per Standard Webhooks. Registering answers with the signing
//! secret; Herald keeps it only sealed (`herald::outbound::secret`), and shows it again
//! only to a retry of the same registration (same `Idempotency-Key`), as machine
//! clients do. URLs pass `herald::outbound::url_rules` when registered or changed.
//!
//! Longer than most: eight routes over one resource, with their request and answer
//! types beside them so the document and the handlers read together. Splitting it the
//! way `users/` is split (reads, changes) is the next step when it grows.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald::Timestamp;
use herald::aws::SecretsManagerClient;
use herald::domain::{
    DisabledReason, EndpointChange, EndpointSettings, EndpointStatus, EventType, WebhookEndpoint,
    one_of, printable,
};
use herald::idempotency::StoredResponse;
use herald::outbound::secret::{Sealer, SigningSecret};
use herald::outbound::url_rules::{EndpointUrl, MAX_URL_CHARS};
use herald::schema::{self, PRINTABLE};
use herald::secrets::SecretsCache;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{
    QueryProblems, WebhookCreateProblems, WebhookReadProblems, WebhookStatusProblems,
    WebhookUpdateProblems,
};
use crate::paging;
use crate::{ApiError, App, FieldErrors};

const MAX_DESCRIPTION_CHARS: usize = 256;
const MAX_RATE_PER_SECOND: u32 = 1000;
/// How long a rotated-out secret keeps signing beside the new one.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// How long the sealing key is used before it is read again.
const KEY_TTL: Duration = Duration::from_secs(900);

/// The key signing secrets are sealed with, read from Secrets Manager and cached.
pub struct SealingKey {
    secrets: SecretsCache,
    secret_id: String,
}

impl SealingKey {
    pub fn new(client: SecretsManagerClient, secret_id: &str) -> Self {
        Self {
            secrets: SecretsCache::new(client, KEY_TTL),
            secret_id: secret_id.to_owned(),
        }
    }

    async fn sealer(&self) -> Result<Sealer, ApiError> {
        let secret = self.secrets.get(&self.secret_id).await?;
        Ok(Sealer::from_secret(&secret))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointRequest {
    /// Where events are posted: `https://`, at most 2048 characters, no user name or
    /// password, and a host that is neither a loopback, private, link-local, shared,
    /// multicast, reserved or cloud metadata address (in any spelling, IPv6-mapped
    /// included) nor a name resolving to one. A dev stack also takes `http://127.0.0.1`.
    #[schema(max_length = 2048, example = "https://hooks.example.com/herald")]
    url: String,
    #[schema(schema_with = event_types_schema)]
    event_types: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    description: String,
    /// Deliveries per second to this endpoint, at most; absent for Herald's own pace.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    rate_limit_per_second: Option<u32>,
}

/// At most 256 characters, printable (`herald::domain::printable`).
fn description_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    schema::done(
        schema::string(0, MAX_DESCRIPTION_CHARS, &format!("{PRINTABLE}*")).description(Some(
            "For people reading the list: at most 256 characters, no control characters \
             but tab, line feed and carriage return. Empty when absent.",
        )),
    )
}

/// At least one event type, each at most once.
fn event_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::PartialSchema as _;
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(EventType::schema())
        .min_items(Some(1))
        .unique_items(true)
        .description(Some("The events this endpoint receives."))
        .examples([serde_json::json!([
            "message.delivered",
            "message.undelivered"
        ])])
        .build()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub(crate) struct EndpointBody {
    /// `ep_` and a ULID.
    id: String,
    url: String,
    event_types: Vec<EventType>,
    description: String,
    rate_limit_per_second: Option<u32>,
    status: EndpointStatus,
    /// Why it is disabled: `admin` (an admin disabled it), `gone` (it answered 410),
    /// `failing` (every delivery failed for 5 days).
    disabled_reason: Option<DisabledReason>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// Who registered it.
    created_by: String,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    /// Until when the secret replaced by the last rotation still signs beside the
    /// current one (both signatures in `webhook-signature`); absent when none does.
    #[schema(value_type = Option<String>, format = DateTime)]
    previous_secret_until: Option<Timestamp>,
}

impl From<WebhookEndpoint> for EndpointBody {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            event_types: e.event_types,
            description: e.description,
            rate_limit_per_second: e.rate_limit_per_second,
            status: e.status,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            created_by: e.created_by,
            updated_at: e.updated_at,
            previous_secret_until: e.previous_secret.map(|(_, until)| until),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RegisteredWebhookEndpoint)]
pub(crate) struct Registered {
    #[serde(flatten)]
    endpoint: EndpointBody,
    /// The signing secret (`whsec_` and base64 of 32 bytes): verify each delivery's
    /// `webhook-signature` with it. Shown here only; absent once the endpoint is deleted.
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
pub(crate) struct EndpointList {
    /// Newest first.
    endpoints: Vec<EndpointBody>,
    /// Absent on the last page.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

/// The request's settings, or every failing field.
async fn settings(app: &App, request: EndpointRequest) -> Result<EndpointSettings, ApiError> {
    let mut errors = FieldErrors::default();
    match EndpointUrl::parse(&request.url, app.config.dev) {
        Err(problem) => errors.add("/url", problem.to_string()),
        Ok(url) => {
            if let Err(problem) = url.check_registration().await {
                errors.add("/url", problem.to_string());
            }
        }
    }
    let mut event_types = Vec::new();
    if request.event_types.is_empty() {
        errors.add("/event_types", "must name at least one event type");
    }
    for (i, raw) in request.event_types.iter().enumerate() {
        match raw.parse::<EventType>().ok() {
            None => errors.add(format!("/event_types/{i}"), one_of::<EventType>()),
            Some(event) if event_types.contains(&event) => {
                errors.add(format!("/event_types/{i}"), "is listed twice");
            }
            Some(event) => event_types.push(event),
        }
    }
    let description = request.description;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.add(
            "/description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    } else if !printable(&description) {
        errors.add(
            "/description",
            "must hold no control characters but tab, line feed and carriage return",
        );
    }
    if let Some(rate) = request.rate_limit_per_second
        && !(1..=MAX_RATE_PER_SECOND).contains(&rate)
    {
        errors.add(
            "/rate_limit_per_second",
            format!("must be from 1 to {MAX_RATE_PER_SECOND}"),
        );
    }
    errors.check()?;
    Ok(EndpointSettings {
        url: request.url,
        event_types,
        description,
        rate_limit_per_second: request.rate_limit_per_second,
    })
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    operation_id = "createWebhookEndpoint",
    summary = "Register a webhook endpoint",
    description = "Herald posts the tenant's events of the types named to the URL, signed \
        per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with \
        the secret in this answer, which is shown here only. Audited.",
    params(IdempotencyKeyHeader),
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "Registered, with its signing secret.", body = Registered, headers(
            ("Location" = String, description = "The endpoint's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        WebhookCreateProblems,
    ),
)]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<EndpointRequest>,
) -> Result<Response, ApiError> {
    let settings = settings(&app, request).await?;
    let canonical = serde_json::json!({
        "url": settings.url,
        "event_types": settings.event_types,
        "description": settings.description,
        "rate_limit_per_second": settings.rate_limit_per_second,
    });
    let (app, caller, settings) = (&app, &caller, &settings);
    let (stored, replayed) =
        intake::once_stored(app, caller, &idempotent, &canonical, |batch| async move {
            // The id the key pins, so a retry after a failure writes the same endpoint.
            let id = format!("ep_{batch}");
            let tenant = caller.principal.tenant();
            let sealer = app.webhook_sealing.sealer().await?;
            let audit = intake::audit_entry(app, caller, "webhook_endpoint.created", &id);
            let endpoint = WebhookEndpoint {
                tenant: tenant.clone(),
                sealed_secret: sealer.seal(tenant, &id, &SigningSecret::generate()),
                previous_secret: None,
                failing_since: None,
                id: id.clone(),
                url: settings.url.clone(),
                event_types: settings.event_types.clone(),
                description: settings.description.clone(),
                rate_limit_per_second: settings.rate_limit_per_second,
                status: EndpointStatus::Enabled,
                disabled_reason: None,
                created_at: audit.at,
                created_by: caller.principal.subject().to_owned(),
                updated_at: audit.at,
            };
            app.store
                .create_webhook_endpoint(&endpoint, &audit, app.clock.epoch_seconds())
                .await?;
            Ok(intake::stored_json(
                StatusCode::CREATED,
                &EndpointBody::from(endpoint),
                Some(format!("/v1/webhooks/endpoints/{id}")),
            ))
        })
        .await?;
    with_secret(app, caller, stored)
        .await
        .map(|stored| intake::answer_with(stored, replayed))
}

/// Adds the endpoint's current secret, opened from the store, to the stored answer (a
/// replay after a later rotation shows the secret of that one).
async fn with_secret(
    app: &App,
    caller: &Caller,
    mut stored: StoredResponse,
) -> Result<StoredResponse, ApiError> {
    let mut body: serde_json::Value =
        serde_json::from_str(&stored.body).expect("the stored answer is this route's JSON");
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let tenant = caller.principal.tenant();
    let secret = match app.store.webhook_endpoint(tenant, &id).await? {
        // Deleted since: the replay answers without a secret, as the endpoint has none.
        None => serde_json::Value::Null,
        Some(endpoint) => {
            let sealer = app.webhook_sealing.sealer().await?;
            let secret = sealer
                .open(tenant, &id, &endpoint.sealed_secret)
                .map_err(|e| ApiError::Sealing(e.to_string()))?;
            secret.reveal().into()
        }
    };
    body["secret"] = secret;
    stored.body = body.to_string();
    Ok(stored)
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    operation_id = "listWebhookEndpoints",
    summary = "The tenant's webhook endpoints",
    description = "Newest first, a page at a time, without secrets.",
    params(paging::PageQuery),
    responses(
        (status = 200, description = "One page of endpoints.", body = EndpointList),
        QueryProblems,
    ),
)]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<EndpointList>, ApiError> {
    let tenant = caller.principal.tenant();
    let listing = paging::plain_listing(&route, tenant, query.as_deref())?;
    let limit = listing.limit;
    let after = listing.start(&app.cursors).await?;
    let page = app
        .store
        .webhook_endpoint_page(tenant, after.as_deref(), limit)
        .await?;
    let (next_cursor, next_url) = listing.next(&app.cursors, page.after.as_deref()).await?;
    Ok(Json(EndpointList {
        endpoints: page.items.into_iter().map(EndpointBody::from).collect(),
        next_cursor,
        next_url,
    }))
}

const NO_SUCH_ENDPOINT: &str = "No such webhook endpoint.";

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "getWebhookEndpoint",
    summary = "One webhook endpoint",
    description = "Without its secret.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointBody),
        WebhookReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EndpointBody>, ApiError> {
    let tenant = caller.principal.tenant();
    match app.store.webhook_endpoint(tenant, &id).await? {
        Some(endpoint) => Ok(Json(endpoint.into())),
        None => Err(ApiError::NotFound(NO_SUCH_ENDPOINT)),
    }
}

#[utoipa::path(
    put,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "updateWebhookEndpoint",
    summary = "Change a webhook endpoint",
    description = "Replaces its URL, event types, description and rate limit (an absent \
        description is empty, an absent rate limit is none) by the rules of registration. \
        Its id, secret and status stay. Audited when something changed.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body = EndpointRequest,
    responses(
        (status = 200, description = "The endpoint as it is now.", body = EndpointBody),
        WebhookUpdateProblems,
    ),
)]
pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<EndpointRequest>,
) -> Result<Json<EndpointBody>, ApiError> {
    // A missing endpoint is a 404 before its body is judged.
    let tenant = caller.principal.tenant();
    if app.store.webhook_endpoint(tenant, &id).await?.is_none() {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    }
    let settings = settings(&app, request).await?;
    change(&app, &caller, &id, "webhook_endpoint.updated", |current| {
        WebhookEndpoint {
            url: settings.url.clone(),
            event_types: settings.event_types.clone(),
            description: settings.description.clone(),
            rate_limit_per_second: settings.rate_limit_per_second,
            ..current.clone()
        }
    })
    .await
    .map(Json)
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhookEndpoint",
    summary = "Delete a webhook endpoint",
    description = "No event is delivered to it from now on, and its secret is erased. \
        Audited.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        WebhookReadProblems,
    ),
)]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller.principal.tenant();
    let audit = intake::audit_entry(&app, &caller, "webhook_endpoint.deleted", &id);
    match app
        .store
        .delete_webhook_endpoint(tenant, &id, &audit, app.clock.epoch_seconds())
        .await?
    {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::NotFound(NO_SUCH_ENDPOINT)),
    }
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/disable",
    tag = "webhooks",
    operation_id = "disableWebhookEndpoint",
    summary = "Disable a webhook endpoint",
    description = "No event is delivered to it until it is enabled again. Disabling a \
        disabled endpoint answers the same. Audited.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The endpoint, disabled.", body = EndpointBody),
        WebhookStatusProblems,
    ),
)]
pub async fn disable(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    set_status(app, caller, id, idempotent, EndpointStatus::Disabled).await
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/enable",
    tag = "webhooks",
    operation_id = "enableWebhookEndpoint",
    summary = "Enable a webhook endpoint",
    description = "Events are delivered to it again, whoever or whatever disabled it (an \
        admin, a 410 answer, 5 days of failures). Audited.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The endpoint, enabled.", body = EndpointBody),
        WebhookStatusProblems,
    ),
)]
pub async fn enable(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    set_status(app, caller, id, idempotent, EndpointStatus::Enabled).await
}

async fn set_status(
    app: Arc<App>,
    caller: Caller,
    id: String,
    idempotent: Idempotent,
    status: EndpointStatus,
) -> Result<Response, ApiError> {
    let canonical = serde_json::json!({ "endpoint_id": id, "status": status });
    let (app, caller, id) = (&app, &caller, &id);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let (action, reason) = match status {
            EndpointStatus::Disabled => ("webhook_endpoint.disabled", Some(DisabledReason::Admin)),
            EndpointStatus::Enabled => ("webhook_endpoint.enabled", None),
        };
        let endpoint = change(app, caller, id, action, |current| {
            if current.status == status {
                return current.clone();
            }
            WebhookEndpoint {
                status,
                disabled_reason: reason,
                // Enabled again, it starts a new count of failing days.
                failing_since: None,
                ..current.clone()
            }
        })
        .await?;
        Ok(intake::stored_json(StatusCode::OK, &endpoint, None))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{id}/rotate-secret",
    tag = "webhooks",
    operation_id = "rotateWebhookEndpointSecret",
    summary = "Rotate a webhook endpoint's signing secret",
    description = "A new secret signs every delivery from now on; the one it replaces \
        signs beside it for 24 hours (both signatures in `webhook-signature`), then stops, \
        so receivers can switch without missing a delivery. A secret rotated out earlier \
        stops signing at once. The new secret is in this answer only. Audited.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The endpoint, with its new secret.", body = Registered, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        WebhookStatusProblems,
    ),
)]
pub async fn rotate_secret(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    let canonical = serde_json::json!({ "endpoint_id": id, "rotate": true });
    let (app, caller, id) = (&app, &caller, &id);
    let (stored, replayed) =
        intake::once_stored(app, caller, &idempotent, &canonical, |_| async move {
            let tenant = caller.principal.tenant();
            let sealed =
                app.webhook_sealing
                    .sealer()
                    .await?
                    .seal(tenant, id, &SigningSecret::generate());
            let until = app.clock.timestamp().plus(ROTATION_OVERLAP);
            let endpoint = change(
                app,
                caller,
                id,
                "webhook_endpoint.secret_rotated",
                |current| WebhookEndpoint {
                    sealed_secret: sealed.clone(),
                    previous_secret: Some((current.sealed_secret.clone(), until)),
                    ..current.clone()
                },
            )
            .await?;
            Ok(intake::stored_json(StatusCode::OK, &endpoint, None))
        })
        .await?;
    with_secret(app, caller, stored)
        .await
        .map(|stored| intake::answer_with(stored, replayed))
}

/// Changes the caller's endpoint `id` as `f` says, audited as `action` when it changed.
async fn change(
    app: &App,
    caller: &Caller,
    id: &str,
    action: &str,
    f: impl Fn(&WebhookEndpoint) -> WebhookEndpoint,
) -> Result<EndpointBody, ApiError> {
    let tenant = caller.principal.tenant();
    let audit = intake::audit_entry(app, caller, action, id);
    match app
        .store
        .change_webhook_endpoint(tenant, id, &audit, app.clock.epoch_seconds(), f)
        .await?
    {
        EndpointChange::Changed(endpoint) | EndpointChange::Unchanged(endpoint) => {
            Ok(endpoint.into())
        }
        EndpointChange::NotFound => Err(ApiError::NotFound(NO_SUCH_ENDPOINT)),
    }
}

/// The URL rules' limit, as the document states it.
const _: () = assert!(MAX_URL_CHARS == 2048);
