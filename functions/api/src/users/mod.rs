//! A tenant admin's people: invite by email with a role, list, read, change the role,
//! remove. Cognito holds the sign-in (through `herald::identity`); the table holds the
//! record every request of a person is checked against (`layers::tenant`), so a role
//! change or a removal (`change`) refuses the tokens issued before it on the next
//! request.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::AuditEntry;
use herald::domain::{TenantRole, TenantUser, UserStatus, one_of, printable};
use herald::identity::{Invitation, TenantUsers};
use herald::{EmailAddress, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{QueryProblems, UserInviteProblems, UserReadProblems};
use crate::paging;
use crate::{ApiError, App, FieldErrors};

pub mod change;

const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteUser {
    /// Where Cognito sends the invitation with a temporary password; the user signs
    /// in with it. Compared and kept in lower case.
    #[schema(value_type = EmailAddress)]
    email: String,
    #[schema(value_type = TenantRole)]
    role: String,
    /// How the user is shown in the list: 1 to 100 characters, no control characters.
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]{1,100}$")]
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserBody {
    user_id: String,
    email: String,
    name: Option<String>,
    role: TenantRole,
    /// `removed` users are disabled in Cognito and all their tokens refused.
    status: UserStatus,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// Who invited them.
    created_by: String,
    /// When their role last changed or they were removed: their tokens from before
    /// are refused.
    #[schema(value_type = Option<String>, format = DateTime)]
    changed_at: Option<Timestamp>,
}

impl From<TenantUser> for UserBody {
    fn from(u: TenantUser) -> Self {
        Self {
            user_id: u.user_id,
            email: u.email,
            name: u.name,
            role: u.role,
            status: u.status,
            created_at: u.created_at,
            created_by: u.created_by,
            changed_at: u.changed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserList {
    /// Newest first, removed ones too.
    users: Vec<UserBody>,
    /// Absent on the last page.
    next_cursor: Option<String>,
    next_url: Option<String>,
}

/// The role a request names, or the failure added to `errors` (`operator` is no
/// tenant role).
fn role(raw: &str, errors: &mut FieldErrors) -> Option<TenantRole> {
    let parsed = raw.parse::<TenantRole>().ok();
    if parsed.is_none() {
        errors.add("/role", one_of::<TenantRole>());
    }
    parsed
}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    operation_id = "inviteUser",
    summary = "Invite a person",
    description = "Creates the user in your tenant with the role given; Cognito emails them \
        a temporary password, which they replace when they first sign in. An email address \
        signs in to one tenant.",
    params(IdempotencyKeyHeader),
    request_body = InviteUser,
    responses(
        (status = 201, description = "Invited.", body = UserBody, headers(
            ("Location" = String, description = "The user's URL."),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        UserInviteProblems,
    ),
)]
pub async fn invite(
    State(app): State<Arc<App>>,
    caller: Caller,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<InviteUser>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let email = person("", &request.email, request.name.as_deref(), &mut errors);
    let role = role(&request.role, &mut errors);
    errors.check()?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(ApiError::Misrouted("field errors checked above"));
    };
    let name = request.name;
    let canonical = serde_json::json!({ "email": email, "role": role, "name": name });
    let (app, caller) = (&app, &caller);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let tenant = caller.principal.tenant();
        let user_id = send_invitation(app, tenant, &email, role, "/email").await?;
        let audit = intake::audit_entry(app, caller, "user.invited", &user_id);
        let user = invited(
            caller,
            tenant,
            user_id.clone(),
            email.clone(),
            name,
            role,
            &audit,
        );
        let recorded = app
            .store
            .record_user(&user, Some(&audit), app.clock.epoch_seconds())
            .await;
        if !matches!(recorded, Ok(true)) {
            forget(app, &user).await;
            recorded?;
            return Err(ApiError::Misrouted(
                "a new Cognito user was recorded already",
            ));
        }
        Ok(intake::stored_json(
            StatusCode::CREATED,
            &UserBody::from(user),
            Some(format!("/v1/users/{user_id}")),
        ))
    })
    .await
}

/// A person's address (answered folded, for Cognito and the record) and display name,
/// checked; the failures go to `errors` under `{at}/email` and `{at}/name`.
pub(crate) fn person(
    at: &str,
    email: &str,
    name: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<String> {
    if let Some(name) = name {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            errors.add(
                format!("{at}/name"),
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            );
        } else if !printable(name) || name.contains(['\n', '\r', '\t']) {
            errors.add(format!("{at}/name"), "must hold no control characters");
        }
    }
    EmailAddress::parse(email)
        .inspect_err(|e| errors.add(format!("{at}/email"), e.to_string()))
        .ok()
        .map(|email| email.folded())
}

/// Creates the person in Cognito (emailing the invitation); answers their user id. An
/// address already a user is a 409 naming `field`.
pub(crate) async fn send_invitation(
    app: &App,
    tenant: &TenantId,
    email: &str,
    role: TenantRole,
    field: &'static str,
) -> Result<String, ApiError> {
    let invitation = tenant_users(app)
        .invite(tenant, email, role)
        .await
        .map_err(ApiError::Identity)?;
    match invitation {
        Invitation::Sent { user_id } => Ok(user_id),
        Invitation::EmailTaken => Err(ApiError::UserExists { field }),
    }
}

/// The record of a person the caller invited now (`audit`'s time).
pub(crate) fn invited(
    caller: &Caller,
    tenant: &TenantId,
    user_id: String,
    email: String,
    name: Option<String>,
    role: TenantRole,
    audit: &AuditEntry,
) -> TenantUser {
    TenantUser {
        user_id,
        tenant: tenant.clone(),
        email,
        name,
        role,
        status: UserStatus::Active,
        created_at: audit.at,
        created_by: caller.principal.subject().to_owned(),
        tokens_after: 0,
        changed_at: None,
    }
}

/// Deletes an invited person the record does not hold, so they cannot sign in; a
/// retry invites them anew.
pub(crate) async fn forget(app: &App, user: &TenantUser) {
    if let Err(cleanup) = tenant_users(app).delete(&user.email).await {
        let user_id = &user.user_id;
        tracing::warn!(%user_id, "could not delete an unrecorded user: {cleanup}");
    }
}

/// The user pool's users, through `herald::identity`.
fn tenant_users(app: &App) -> TenantUsers {
    TenantUsers::new(app.cognito.clone(), &app.config.auth.user_pool_id)
}

#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    operation_id = "listUsers",
    summary = "Your tenant's people",
    description = "Newest first, a page at a time; removed users included.",
    params(paging::PageQuery),
    responses(
        (status = 200, description = "One page of users.", body = UserList),
        QueryProblems,
    ),
)]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<UserList>, ApiError> {
    let tenant = caller.principal.tenant();
    let listing = paging::plain_listing(&route, tenant, query.as_deref())?;
    let limit = listing.limit;
    let after = listing.start(&app.cursors).await?;
    let page = app.store.user_page(tenant, after.as_deref(), limit).await?;
    let (next_cursor, next_url) = listing.next(&app.cursors, page.after.as_deref()).await?;
    Ok(Json(UserList {
        users: page.items.into_iter().map(UserBody::from).collect(),
        next_cursor,
        next_url,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "getUser",
    summary = "One of your tenant's people",
    params(("id" = String, Path, description = "The user id.")),
    responses(
        (status = 200, description = "The user.", body = UserBody),
        UserReadProblems,
    ),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserBody>, ApiError> {
    let user = app
        .store
        .tenant_user(caller.principal.tenant(), &id)
        .await?
        .ok_or(ApiError::NotFound("No such user."))?;
    Ok(Json(UserBody::from(user)))
}
