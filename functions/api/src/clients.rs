//! A tenant admin's machine clients: Cognito app clients with the client-credentials
//! grant and Herald's scopes, registered to the admin's tenant. Their access tokens
//! act for that tenant with those scopes and nothing else.
//!
//! The secret is Cognito's: it is read from Cognito for every answer to a registration
//! (the first and any replay), never stored by Herald.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::Timestamp;
use herald::auth::Scope;
use herald::domain::{ClientFilter, MachineClient, Registration, Revocation, one_of};
use herald::idempotency::StoredResponse;
use herald::identity::MachineClients;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::extract::{self, Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{ClientRegisterProblems, ClientRevokeProblems, QueryProblems};
use crate::paging::{self, Listing};
use crate::{ApiError, App, FieldErrors};

const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterClient {
    /// What the client is, for people reading the list: letters, digits, space, `.`,
    /// `_` and `-`, at most 64 characters, not starting or ending with a space.
    #[schema(pattern = "^[A-Za-z0-9._-](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$")]
    name: String,
    #[schema(schema_with = scopes_schema)]
    scopes: Vec<String>,
}

/// At least one scope, each at most once.
fn scopes_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(Scope::schema())
        .min_items(Some(1))
        .unique_items(true)
        .description(Some(
            "What its tokens may do: `messages:send` (send and cancel), `messages:read` \
             (messages, batches and usage).",
        ))
        .examples([serde_json::json!(["messages:send", "messages:read"])])
        .build()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ClientBody {
    client_id: String,
    name: String,
    scopes: Vec<Scope>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// Who registered it.
    created_by: String,
    /// When it was revoked; its tokens are refused from then on.
    #[schema(value_type = Option<String>, format = DateTime)]
    revoked_at: Option<Timestamp>,
}

impl From<MachineClient> for ClientBody {
    fn from(c: MachineClient) -> Self {
        Self {
            client_id: c.client_id,
            name: c.name,
            scopes: c.scopes,
            created_at: c.created_at,
            created_by: c.created_by,
            revoked_at: c.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegisteredClient {
    #[serde(flatten)]
    client: ClientBody,
    /// The client's secret, for the token request. Absent once the client is revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// Where to ask for tokens: `POST` with `grant_type=client_credentials` and the
    /// client id and secret as HTTP Basic credentials.
    token_url: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `active` (tokens accepted), `revoked`, or `all` (the default).
    #[param(value_type = Option<ClientFilter>)]
    status: Option<String>,
    /// Where to go on: the `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Clients per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 50)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientList {
    /// Newest first; revoked ones too unless `status` says otherwise.
    clients: Vec<ClientBody>,
    /// Absent on the last page. A page filtered by `status` may be short before the end.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/clients",
    tag = "clients",
    operation_id = "registerClient",
    summary = "Register a machine client",
    description = "A client-credentials client for the caller's tenant. Its access tokens \
        (from `token_url`) act for this tenant with the scopes given here. A tenant holds \
        a limited number of active clients.",
    params(IdempotencyKeyHeader),
    request_body = RegisterClient,
    responses(
        (status = 201, description = "Registered, with the secret.", body = RegisteredClient, headers(
            ("Location" = String, description = "The client's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        ClientRegisterProblems,
    ),
)]
pub async fn register(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<RegisterClient>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let name = request.name.as_str();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.add("/name", format!("must be 1 to {MAX_NAME_CHARS} characters"));
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
    {
        errors.add(
            "/name",
            "may hold only letters, digits, space, '.', '_' and '-'",
        );
    } else if name.starts_with(' ') || name.ends_with(' ') {
        errors.add("/name", "must not start or end with a space");
    }
    let mut scopes = Vec::new();
    if request.scopes.is_empty() {
        errors.add("/scopes", "must name at least one scope");
    }
    for (i, raw) in request.scopes.iter().enumerate() {
        match raw.parse::<Scope>().ok() {
            None => errors.add(format!("/scopes/{i}"), one_of::<Scope>()),
            Some(scope) if scopes.contains(&scope) => {
                errors.add(format!("/scopes/{i}"), "is listed twice");
            }
            Some(scope) => scopes.push(scope),
        }
    }
    errors.check()?;
    let canonical = serde_json::json!({
        "name": name,
        "scopes": scopes,
    });
    let (app, caller) = (&app, &caller);
    let (stored, replayed) = intake::once_stored(app, caller, &idempotent, &canonical, |_| async move {
        let principal = &caller.principal;
        let client_id = machine_clients(app)
            .create(principal.tenant(), name, &scopes)
            .await
            .map_err(ApiError::Identity)?;
        let audit = intake::audit_entry(app, caller, "client.registered", &client_id);
        let client = MachineClient {
            client_id: client_id.clone(),
            tenant: principal.tenant().clone(),
            name: name.to_owned(),
            scopes,
            created_at: audit.at,
            created_by: principal.subject().to_owned(),
            revoked_at: None,
        };
        let limit = app.config.auth.max_clients_per_tenant;
        let registered = app
            .store
            .register_client(&client, limit, &audit, app.clock.epoch_seconds())
            .await;
        match registered {
            Ok(Registration::Registered) => {}
            Ok(Registration::LimitReached { limit }) => {
                delete_cognito_client(app, &client_id).await?;
                return Err(ApiError::ClientLimitReached { limit });
            }
            Err(e) => {
                // Unrecorded, the client's tokens would be refused anyway; deleting
                // it keeps Cognito's shared client limit for clients in use.
                if let Err(cleanup) = delete_cognito_client(app, &client_id).await {
                    tracing::warn!(%client_id, "could not delete an unrecorded client: {cleanup:?}");
                }
                return Err(e.into());
            }
        }
        let body = RegisteredClient {
            client: ClientBody::from(client),
            client_secret: None,
            token_url: app.config.auth.token_url.clone(),
        };
        Ok(intake::stored_json(
            StatusCode::CREATED,
            &body,
            Some(format!("/v1/clients/{client_id}")),
        ))
    })
    .await?;
    with_secret(app, stored)
        .await
        .map(|stored| intake::answer_with(stored, replayed))
}

/// Adds the client's secret, read from Cognito, to the stored answer.
async fn with_secret(app: &App, mut stored: StoredResponse) -> Result<StoredResponse, ApiError> {
    let mut body: serde_json::Value =
        serde_json::from_str(&stored.body).expect("the stored answer is this route's JSON");
    let client_id = body["client_id"].as_str().unwrap_or_default().to_owned();
    // Revoked since: the replay answers without a secret, as the client has none.
    let secret = machine_clients(app)
        .secret(&client_id)
        .await
        .map_err(ApiError::Identity)?;
    body["client_secret"] = secret.map_or(serde_json::Value::Null, Into::into);
    stored.body = body.to_string();
    Ok(stored)
}

/// The user pool's machine clients, through `herald::identity`.
fn machine_clients(app: &App) -> MachineClients {
    MachineClients::new(app.cognito.clone(), &app.config.auth.user_pool_id)
}

/// Deletes the Cognito client; one already gone counts as deleted.
async fn delete_cognito_client(app: &App, client_id: &str) -> Result<(), ApiError> {
    machine_clients(app)
        .delete(client_id)
        .await
        .map_err(ApiError::Identity)
}

#[utoipa::path(
    get,
    path = "/v1/clients",
    tag = "clients",
    operation_id = "listClients",
    summary = "The tenant's machine clients",
    description = "Newest first, a page at a time, without secrets; revoked ones included \
        unless `status` filters them out.",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of clients.", body = ClientList),
        QueryProblems,
    ),
)]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<ClientList>, ApiError> {
    let query: ListQuery = extract::query(query.as_deref())?;
    let mut errors = FieldErrors::default();
    let filter = match query.status.as_deref().map(str::parse::<ClientFilter>) {
        None => ClientFilter::default(),
        Some(Ok(filter)) => filter,
        Some(Err(_)) => {
            errors.add("status", one_of::<ClientFilter>());
            ClientFilter::default()
        }
    };
    let limit = paging::page_size(query.limit.as_deref(), &mut errors);
    errors.check()?;
    let tenant = caller.principal.tenant();
    let params = vec![("status", filter.to_string())];
    let path = route.as_str().to_owned();
    let listing = Listing::new(&route, tenant.clone(), path, params, limit, query.cursor);
    let after = listing.start(&app.cursors).await?;
    let page = app
        .store
        .client_page(tenant, filter, after.as_deref(), limit)
        .await?;
    let (next_cursor, next_url) = listing.next(&app.cursors, page.after.as_deref()).await?;
    Ok(Json(ClientList {
        clients: page.items.into_iter().map(ClientBody::from).collect(),
        next_cursor,
        next_url,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/clients/{id}/revoke",
    tag = "clients",
    operation_id = "revokeClient",
    summary = "Revoke a machine client",
    description = "Its tokens are refused at once, including those already issued, and it \
        can get no new ones. Revoking a revoked client answers the same.",
    params(("id" = String, Path, description = "The client id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The client, revoked.", body = ClientBody, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        ClientRevokeProblems,
    ),
)]
pub async fn revoke(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    let canonical = serde_json::json!({ "client_id": id });
    let (app, caller, id) = (&app, &caller, &id);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let audit = intake::audit_entry(app, caller, "client.revoked", id);
        let tenant = caller.principal.tenant();
        let revocation = app
            .store
            .revoke_client(tenant, id, &audit, app.clock.epoch_seconds())
            .await?;
        let client = match revocation {
            Revocation::NotFound => return Err(ApiError::NotFound("No such client.")),
            Revocation::Revoked(client) | Revocation::AlreadyRevoked(client) => client,
        };
        // Herald refuses the client's tokens from the store's mark on; deleting it
        // in Cognito stops new tokens. A failure here is retried by the next revoke.
        delete_cognito_client(app, id).await?;
        Ok(intake::stored_json(
            StatusCode::OK,
            &ClientBody::from(client),
            None,
        ))
    })
    .await
}
