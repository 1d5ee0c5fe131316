//! The tenant-facing HTTP API. `router` is what Lambda runs (through `lambda_http`)
//! and what the local gateway calls in-process; both hand it API Gateway v2 requests.
//! The API verifies each request's Cognito token itself (see `docs/decisions.md`,
//! "Machine clients": API Gateway's JWT authorizer cannot know clients registered at
//! run time).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::{Extension, Router};
use herald::aws::CognitoClient;
use herald::clock::SharedClock;
use herald::config::ApiConfig;
use herald::idempotency::Idempotency;
use herald::lease::RedriveLease;
use herald::metrics::Metrics;
use herald::queue::SendQueue;
use herald::redrive::Redriver;
use herald::store::Store;
use herald::token::Verifier;
use tower::ServiceBuilder;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod audit;
mod batches;
mod clients;
mod error;
mod extract;
mod fields;
mod intake;
mod layers;
mod messages;
mod openapi;
mod paging;
mod redrive;
mod sms_policy;
mod sms_sender;
mod suppressions;
mod tenants;
mod usage;
mod users;
mod webhook_endpoints;
// Status webhooks' attempts, recover and test events (issue 15).
mod webhook_attempts;

pub use error::{ApiError, ProblemKind};
pub use fields::FieldErrors;
pub use layers::CORRELATION_HEADER;

pub struct App {
    pub config: ApiConfig,
    pub store: Store,
    pub idempotency: Idempotency,
    pub queue: SendQueue,
    pub redriver: Redriver,
    /// Taken by the operator's redrive, so it never runs beside the scheduled one.
    pub redrive_lease: RedriveLease,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pub verifier: Verifier,
    pub cognito: CognitoClient,
    /// The key listing cursors are sealed with.
    pub cursors: paging::Cursors,
    /// The key webhook signing secrets are sealed with.
    pub webhook_sealing: webhook_endpoints::SealingKey,
    /// Where webhook recover and test deliveries go (issue 15).
    pub deliveries: herald::outbound::job::DeliveryQueue,
}

impl App {
    pub fn new(config: ApiConfig, clients: &herald::aws::Clients, clock: SharedClock) -> Self {
        // One client (one connection pool) for every DynamoDB repository.
        let dynamodb = clients.dynamodb();
        let sqs = clients.sqs();
        let store = Store::new(dynamodb.clone(), &config.table);
        Self {
            redrive_lease: RedriveLease::new(store.clone(), clock.clone()),
            store,
            idempotency: Idempotency::new(dynamodb, &config.table),
            queue: SendQueue::new(sqs.clone(), &config.send_queue_url)
                .with_express_lane(config.express.clone()),
            redriver: Redriver::new(
                sqs,
                &config.send_dlq_url,
                &config.send_queue_url,
                config.redrive,
            ),
            verifier: Verifier::new(config.auth.tokens.clone(), clock.clone()),
            cognito: clients.cognito(),
            cursors: paging::Cursors::new(clients.secrets_manager(), &config.cursor_secret_id),
            webhook_sealing: webhook_endpoints::SealingKey::new(
                clients.secrets_manager(),
                &config.webhook_secret_key_id,
            ),
            deliveries: herald::outbound::job::DeliveryQueue::new(
                clients.sqs(),
                &config.deliveries_queue_url,
            ),
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

/// Defines `documented` and `undocumented` from one list of handlers, so the document
/// (and the route walk in the tests) cannot miss a route the router serves.
macro_rules! route_table {
    ($( $($segment:ident)::+ ),+ $(,)?) => {
        /// The routes with their OpenAPI document (the operations of one path merge).
        fn documented() -> OpenApiRouter<Arc<App>> {
            OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
                $( .routes(routes!($($segment)::+)) )+
        }

        /// The same routes without their document, which is what the API serves:
        /// building the document (every operation and schema) at start was a quarter of
        /// the API's heap, and most instances never serve it (docs/performance.md).
        /// `routes!(@path [...] of handler)` is how `routes!` itself reads a handler's
        /// path and methods from `#[utoipa::path]`, without building its operation.
        fn undocumented() -> Router<Arc<App>> {
            use utoipa_axum::PathItemExt as _;
            Router::new()
            $(
                // axum merges the methods routed to one path.
                .route(
                    &routes!(@path [path()] of $($segment)::+),
                    routes!(@path [methods()] of $($segment)::+).iter().fold(
                        axum::routing::MethodRouter::new(),
                        |router, method| router.on(method.to_method_filter(), $($segment)::+),
                    ),
                )
            )+
        }

        /// Each `(METHOD, path)` `undocumented` routes, as `routes` reads them from the
        /// document.
        #[cfg(test)]
        fn undocumented_routes() -> Vec<(String, String)> {
            let mut routes = Vec::new();
            $(
                for method in routes!(@path [methods()] of $($segment)::+) {
                    let path = routes!(@path [path()] of $($segment)::+);
                    let method = serde_json::to_value(method).expect("a method name");
                    routes.push((method.as_str().expect("a string").to_uppercase(), path));
                }
            )+
            routes
        }
    };
}

route_table! {
    health,
    version,
    openapi::serve,
    messages::create,
    messages::show,
    batches::create,
    batches::show,
    batches::listing::messages,
    batches::cancel,
    usage::usage,
    audit::own_audit,
    clients::register,
    clients::list,
    clients::revoke,
    suppressions::list,
    suppressions::add,
    suppressions::remove,
    users::invite,
    users::list,
    users::show,
    users::change::change_role,
    users::change::remove,
    webhook_endpoints::create,
    webhook_endpoints::list,
    webhook_endpoints::show,
    webhook_endpoints::update,
    webhook_endpoints::delete,
    webhook_endpoints::disable,
    webhook_endpoints::enable,
    webhook_endpoints::rotate_secret,
    webhook_attempts::attempts,
    webhook_attempts::recover,
    webhook_attempts::send_test,
    tenants::create,
    tenants::show,
    tenants::suspend,
    tenants::resume,
    sms_policy::set,
    sms_sender::set,
    audit::any_tenant,
    redrive::redrive,
}

pub fn router(app: Arc<App>) -> Router {
    let routes = undocumented();
    let served = openapi::Served::with_token_url(app.config.auth.token_url.clone());
    routes
        // In the order listed, each one job (see `layers`).
        .route_layer(
            ServiceBuilder::new()
                .layer(from_fn(layers::policy))
                .layer(from_fn_with_state(app.clone(), layers::authenticate))
                .layer(from_fn(layers::authorize))
                .layer(from_fn_with_state(app.clone(), layers::tenant))
                .layer(from_fn_with_state(app.clone(), layers::rate_limit)),
        )
        .fallback(|| async { ApiError::NotFound("No such route.") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(served))
        .layer(from_fn(layers::correlate))
        // The body is already in memory (it arrives inside the Lambda event, which API
        // Gateway caps); `extract::JsonBody` checks `max_body_bytes` and answers 413 as
        // problem+json, which axum's own limit would answer as plain text.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// The OpenAPI document of the router, with the policy table's security applied.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::apply_policy(documented().into_openapi(), openapi::TOKEN_URL_IN_DOCS)
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

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Version {
    /// The commit the running API was built from, or `unknown` for a build made
    /// outside the deploy pipeline (`make sam-build`).
    commit: &'static str,
    /// When it was built (RFC 3339, UTC), or `unknown` likewise.
    built_at: &'static str,
    /// The stack's environment.
    #[schema(example = "prod")]
    environment: String,
}

#[utoipa::path(
    get,
    path = "/v1/version",
    tag = "meta",
    operation_id = "getVersion",
    summary = "Which build answers",
    responses((status = 200, description = "The build and the environment.", body = Version)),
)]
async fn version(State(app): State<Arc<App>>) -> axum::Json<Version> {
    axum::Json(Version {
        commit: herald::version::COMMIT,
        built_at: herald::version::BUILT_AT,
        environment: app.config.environment.clone(),
    })
}
