//! The OpenAPI document. Paths come from the handlers' `#[utoipa::path]` annotations,
//! listed once in `route_table!`, which builds both the document and the router; who
//! may call each route (security, roles and scopes, the answers of token checks) comes
//! from the policy table.

use std::sync::{Arc, OnceLock};

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use herald::auth::{Access, Permission, Role, Scope, route_access};
use herald::problem::{FieldError, Problem};
use strum::VariantArray;
use utoipa::PartialSchema;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{Components, Header, OpenApi, RefOr};

use crate::ProblemKind;

mod problems;
mod values;

pub(crate) use problems::*;

/// The security schemes' names in the document.
const BEARER: &str = "bearer";
const MACHINE_CLIENT: &str = "machineClient";

/// The token endpoint `docs/openapi.json` names: the committed document belongs to no
/// deployment, so it names Cognito's endpoint in its documented form; the document a
/// running API serves names its own pool's (`HERALD_TOKEN_URL`).
pub(crate) const TOKEN_URL_IN_DOCS: &str =
    "https://your-domain.auth.us-east-1.amazoncognito.com/oauth2/token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Multi-tenant bulk SMS and email. Send one message or a templated batch, follow \
            each message's status, and read your usage and audit log. People sign in with \
            Cognito; backends use machine clients (client credentials) that a tenant admin \
            registers. Errors are RFC 9457 \
            `application/problem+json`; every answer carries `x-correlation-id`."
    ),
    // ClientFilter is a query parameter's type only; no body names it.
    components(schemas(Problem, FieldError, herald::domain::ClientFilter)),
    tags(
        (name = "messages", description = "One SMS or email to one recipient."),
        (name = "batches", description = "One template to many recipients, with progress and cancel."),
        (name = "tenant", description = "Your tenant's usage and audit log."),
        (name = "clients", description = "Your tenant's machine clients (client-credentials tokens for backends)."),
        (name = "suppressions", description = "Your tenant's suppression list: addresses its messages are not sent to."),
        (name = "users", description = "Your tenant's people: invite, change roles, remove."),
        (name = "webhooks", description = "Your tenant's webhook endpoints: where Herald pushes status events, signed per Standard Webhooks."),
        (name = "operator", description = "Platform-wide actions for Herald's operators."),
        (name = "meta", description = "Liveness and this document; no token needed."),
    )
)]
pub(crate) struct ApiDoc;

/// Fills in what the policy table decides for every operation: the bearer token (and
/// the machine client scopes that may stand for it), the groups and scopes that may call
/// it, and the answers of token checks (401, 403, the tenant's rate limit, and the
/// dependency failures it can meet). `token_url` is where machine clients get tokens.
pub(crate) fn apply_policy(mut document: OpenApi, token_url: &str) -> OpenApi {
    add_problem_components(&mut document);
    values::add_value_components(document.components.get_or_insert_with(Components::new));
    document
        .components
        .get_or_insert_with(Components::new)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from Herald's Cognito user pool: a person's ID token (the tenant \
                         from its `custom:tenant_id` claim, roles from `cognito:groups`), or a \
                         machine client's client-credentials access token (the tenant the client \
                         is registered to, permissions from its `herald/...` scopes). Never from \
                         the request.",
                    ))
                    .build(),
            ),
        );
    document
        .components
        .get_or_insert_with(Components::new)
        .add_security_scheme(MACHINE_CLIENT, machine_client_scheme(token_url));
    for (path, item) in document.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            if let Some(Access::Requires(permission)) = route_access(method, path) {
                require(operation, permission);
            }
        }
    }
    document
}

/// OAuth2 client credentials at the pool's token endpoint, with every scope a machine
/// client can hold.
fn machine_client_scheme(token_url: &str) -> SecurityScheme {
    let scopes = Scope::VARIANTS.iter().map(|&scope| {
        let allows = match scope {
            Scope::MessagesSend => "Send messages and batches, and cancel batches.",
            Scope::MessagesRead => "Read messages, batches and usage.",
        };
        (scope.oauth_name(), allows.to_owned())
    });
    let mut scheme = OAuth2::new([Flow::ClientCredentials(ClientCredentials::new(
        token_url,
        Scopes::from_iter(scopes),
    ))]);
    scheme.description = Some(
        "A tenant's machine client (registered with `POST /v1/clients`) asks the token \
         endpoint for an access token with HTTP Basic authentication (client id and secret) \
         and sends it as the bearer token. The tenant is the one the client is registered to."
            .to_owned(),
    );
    SecurityScheme::OAuth2(scheme)
}

fn require(operation: &mut Operation, permission: Permission) {
    let machine_scopes: Vec<String> = Scope::VARIANTS
        .iter()
        .filter(|scope| scope.permissions().contains(&permission))
        .map(|scope| scope.oauth_name())
        .collect();
    let mut security = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
    if !machine_scopes.is_empty() {
        security.push(SecurityRequirement::new(MACHINE_CLIENT, machine_scopes));
    }
    operation.security = Some(security);
    let groups: Vec<String> = Role::VARIANTS
        .iter()
        .filter(|role| role.permissions().contains(&permission))
        .map(|role| format!("`{role}`"))
        .collect();
    let scopes: Vec<String> = Scope::VARIANTS
        .iter()
        .filter(|scope| scope.permissions().contains(&permission))
        .map(|scope| format!("`{}`", scope.oauth_name()))
        .collect();
    let mut note = format!("Groups allowed: {}.", groups.join(", "));
    if !scopes.is_empty() {
        note.push_str(&format!(" Machine client scopes: {}.", scopes.join(", ")));
    }
    let mut kinds = vec![
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::Internal,
        ProblemKind::Unavailable,
        ProblemKind::KeysUnavailable,
    ];
    if !permission.is_platform() {
        note.push_str(" Counts against your tenant's request rate; answers carry `RateLimit-*`.");
        kinds.extend([ProblemKind::TenantSuspended, ProblemKind::RateLimited]);
        for (status, answer) in operation.responses.responses.iter_mut() {
            if let RefOr::T(answer) = answer
                && status.starts_with('2')
            {
                answer.headers.extend(rate_limit_headers());
            }
        }
    }
    add_problems(operation, &kinds);
    operation.description = Some(match operation.description.take() {
        Some(description) => format!("{description}\n\n{note}"),
        None => note,
    });
}

/// Each operation of a path with its method as the policy table spells it.
pub(crate) fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation.as_ref()?)))
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("OPTIONS", &mut item.options),
        ("HEAD", &mut item.head),
        ("PATCH", &mut item.patch),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
}

/// The document as served, built and rendered at its first request: most instances
/// never serve it, and building and rendering it at start was a quarter of the API's
/// start-up heap and a tenth of its cold start (docs/performance.md). Cloning it per
/// request shares the bytes.
#[derive(Clone)]
pub(crate) struct Served(Arc<Document>);

struct Document {
    token_url: String,
    rendered: OnceLock<Bytes>,
}

impl Served {
    pub(crate) fn with_token_url(token_url: String) -> Self {
        Self(Arc::new(Document {
            token_url,
            rendered: OnceLock::new(),
        }))
    }

    fn document(&self) -> Bytes {
        let Document {
            token_url,
            rendered,
        } = &*self.0;
        rendered
            .get_or_init(|| {
                crate::render(apply_policy(crate::documented().into_openapi(), token_url)).into()
            })
            .clone()
    }
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    operation_id = "getOpenApi",
    summary = "This document",
    description = "The OpenAPI 3.1 document of this API, generated from the code that serves it.",
    responses((status = 200, description = "The document.", body = Object, content_type = "application/json")),
)]
pub(crate) async fn serve(Extension(served): Extension<Served>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        served.document(),
    )
        .into_response()
}

fn header_of<T: PartialSchema>(description: &str) -> Header {
    let mut header = Header::new(T::schema());
    header.description = Some(description.to_owned());
    header
}

fn rate_limit_headers() -> [(String, Header); 4] {
    [
        (
            "RateLimit-Limit",
            header_of::<u32>("Requests your tenant may make per second."),
        ),
        (
            "RateLimit-Remaining",
            header_of::<u32>("Requests left in the current one-second window."),
        ),
        (
            "RateLimit-Reset",
            header_of::<u32>("Seconds until the window resets: always 1."),
        ),
        (
            "RateLimit-Policy",
            header_of::<String>("The limit and its window, as `{limit};w=1`."),
        ),
    ]
    .map(|(name, header)| (name.to_owned(), header))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use herald::MessageStatus;
    use herald::auth::{Access, ROUTE_POLICY, route_access};
    use herald::domain::{BatchStatus, Channel, Plan, SmsProviderKind, TenantStatus, names};
    use serde_json::Value;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    fn served() -> BTreeSet<(String, String)> {
        crate::routes().into_iter().collect()
    }

    #[test]
    fn the_router_serves_each_route_of_the_document_and_no_other() {
        let undocumented: BTreeSet<_> = crate::undocumented_routes().into_iter().collect();
        assert_eq!(undocumented.len(), crate::undocumented_routes().len());
        assert_eq!(undocumented, served());
    }

    #[test]
    fn every_route_the_router_serves_has_a_policy() {
        let missing: Vec<_> = served()
            .into_iter()
            .filter(|(method, path)| route_access(method, path).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "routes without a policy in herald::auth::ROUTE_POLICY (the authorizer denies them): {missing:?}"
        );
    }

    #[test]
    fn every_policy_names_a_route_the_router_serves() {
        let served = served();
        let stale: Vec<_> = ROUTE_POLICY
            .iter()
            .map(|(method, path, _)| (method.to_string(), path.to_string()))
            .filter(|route| !served.contains(route))
            .collect();
        assert!(
            stale.is_empty(),
            "policies for routes the router does not serve: {stale:?}"
        );
    }

    #[test]
    fn only_public_routes_go_without_a_token() {
        let document = crate::openapi();
        for (path, item) in &document.paths.paths {
            for (method, operation) in super::operations(item) {
                let public = route_access(method, path) == Some(Access::Public);
                assert_eq!(operation.security.is_none(), public, "{method} {path}");
                assert_eq!(
                    operation.responses.responses.contains_key("401"),
                    !public,
                    "{method} {path}"
                );
            }
        }
        assert!(served().contains(&("GET".to_owned(), "/v1/openapi.json".to_owned())));
        assert_eq!(
            route_access("GET", "/v1/openapi.json"),
            Some(Access::Public)
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_for_this_build() {
        let document: Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "Herald");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn every_reference_points_into_the_document() {
        fn refs(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        found.push(target.clone());
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let document: Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} is not in the document"
            );
        }
    }

    #[test]
    fn status_names_in_the_document_are_the_ones_the_api_answers() {
        fn documented<T: utoipa::PartialSchema>() -> Vec<String> {
            let schema = serde_json::to_value(T::schema()).unwrap();
            serde_json::from_value(schema["enum"].clone()).unwrap()
        }
        assert_eq!(documented::<MessageStatus>(), names::<MessageStatus>());
        assert_eq!(documented::<BatchStatus>(), names::<BatchStatus>());
        assert_eq!(documented::<TenantStatus>(), names::<TenantStatus>());
        assert_eq!(documented::<Channel>(), names::<Channel>());
        assert_eq!(documented::<Plan>(), names::<Plan>());
        assert_eq!(documented::<SmsProviderKind>(), names::<SmsProviderKind>());
    }

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = crate::openapi_json();
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        if committed != generated {
            let first_difference = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "its length".to_owned(), |i| format!("line {}", i + 1));
            panic!(
                "docs/openapi.json differs from the document the code generates (at {first_difference}); \
                 run `make openapi` and commit the result"
            );
        }
    }
}
