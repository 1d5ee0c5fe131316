//! Changing a person's access: their role, or removing them. Cognito is changed
//! first and the record second: a token issued between the two carries the new groups
//! and an `iat` the record then refuses, so no moment exists in which a lowered role
//! still acts with the old one once the answer is sent. When the record refuses the
//! change (the last admin, taken by a concurrent request), Cognito is put back as the
//! record says.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald::domain::{TenantRole, TenantUser, UserChange, UserStatus};
use herald::idempotency::StoredResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{UserBody, role, tenant_users};
use crate::extract::{Caller, IdempotencyKeyHeader, Idempotent, JsonBody};
use crate::intake;
use crate::openapi::{UserRemoveProblems, UserRoleProblems};
use crate::{ApiError, App, FieldErrors};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeRole {
    #[schema(value_type = TenantRole)]
    role: String,
}

/// The user an admin acts on: in the caller's tenant, and not the caller.
async fn target(app: &App, caller: &Caller, id: &str) -> Result<TenantUser, ApiError> {
    if caller.principal.subject() == id {
        return Err(ApiError::OwnAccount);
    }
    app.store
        .tenant_user(caller.principal.tenant(), id)
        .await?
        .ok_or(ApiError::NotFound("No such user."))
}

/// Refuses early (before Cognito is touched) to take the role from the last admin;
/// the record's transaction checks it again against concurrent changes.
async fn keep_an_admin(app: &App, user: &TenantUser) -> Result<(), ApiError> {
    if user.role == TenantRole::Admin && app.store.admin_count(&user.tenant).await? < 2 {
        return Err(ApiError::LastAdmin);
    }
    Ok(())
}

/// Puts Cognito back the way the record says, after the record refused a change
/// Cognito already made.
async fn restore_cognito(app: &App, user: &TenantUser) -> Result<(), ApiError> {
    let users = tenant_users(app);
    let restored = match user.status {
        UserStatus::Active => match users.set_role(&user.email, user.role).await {
            Ok(()) => users.enable(&user.email).await,
            Err(e) => Err(e),
        },
        UserStatus::Removed => users.disable(&user.email).await,
    };
    restored.map_err(ApiError::Identity)
}

/// The stored answer to a role change or removal of `before` (the user as read before
/// it), from what the record came to; Cognito follows the record when it refused.
async fn settled(
    app: &App,
    before: &TenantUser,
    change: UserChange,
) -> Result<StoredResponse, ApiError> {
    match change {
        UserChange::Changed(user) => Ok(answer(user)),
        UserChange::Unchanged(current) => {
            // A concurrent request changed the user first.
            restore_cognito(app, &current).await?;
            Ok(answer(current))
        }
        UserChange::LastAdmin => {
            restore_cognito(app, before).await?;
            Err(ApiError::LastAdmin)
        }
        UserChange::NotFound => Err(ApiError::NotFound("No such user.")),
    }
}

fn answer(user: TenantUser) -> StoredResponse {
    intake::stored_json(StatusCode::OK, &UserBody::from(user), None)
}

#[utoipa::path(
    post,
    path = "/v1/users/{id}/role",
    tag = "users",
    operation_id = "changeUserRole",
    summary = "Change a person's role",
    description = "Moves the user to the role's group and signs them out everywhere; the \
        tokens they hold are refused from this answer on, and they sign in again for the \
        new role. The last active admin keeps the role; an admin cannot change their own.",
    params(("id" = String, Path, description = "The user id."), IdempotencyKeyHeader),
    request_body = ChangeRole,
    responses(
        (status = 200, description = "The user, with the role.", body = UserBody, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        UserRoleProblems,
    ),
)]
pub async fn change_role(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
    JsonBody(request): JsonBody<ChangeRole>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let role = role(&request.role, &mut errors);
    errors.check()?;
    let Some(role) = role else {
        return Err(ApiError::Misrouted("field errors checked above"));
    };
    // Before the key is taken: a missing user or the caller's own leaves nothing.
    target(&app, &caller, &id).await?;
    let canonical = serde_json::json!({ "user_id": id, "role": role });
    let (app, caller, id) = (&app, &caller, &id);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let user = target(app, caller, id).await?;
        if user.status == UserStatus::Removed {
            return Err(ApiError::UserRemoved);
        }
        if user.role == role {
            return Ok(answer(user));
        }
        if role != TenantRole::Admin {
            keep_an_admin(app, &user).await?;
        }
        tenant_users(app)
            .set_role(&user.email, role)
            .await
            .map_err(ApiError::Identity)?;
        let action = format!("user.role_changed:{}->{role}", user.role);
        let audit = intake::audit_entry(app, caller, &action, id);
        let change = app
            .store
            .change_user_role(&user, role, &audit, app.clock.epoch_seconds())
            .await?;
        settled(app, &user, change).await
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/users/{id}/remove",
    tag = "users",
    operation_id = "removeUser",
    summary = "Remove a person",
    description = "Disables the user in Cognito and signs them out everywhere: they cannot \
        sign in or refresh, and every token they hold is refused from this answer on. The \
        last active admin cannot be removed; an admin cannot remove themselves. Removing a \
        removed user answers the same.",
    params(("id" = String, Path, description = "The user id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The user, removed.", body = UserBody, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        UserRemoveProblems,
    ),
)]
pub async fn remove(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    idempotent: Idempotent,
) -> Result<Response, ApiError> {
    target(&app, &caller, &id).await?;
    let canonical = serde_json::json!({ "user_id": id });
    let (app, caller, id) = (&app, &caller, &id);
    intake::once(app, caller, &idempotent, &canonical, |_| async move {
        let user = target(app, caller, id).await?;
        if user.status == UserStatus::Removed {
            return Ok(answer(user));
        }
        keep_an_admin(app, &user).await?;
        tenant_users(app)
            .disable(&user.email)
            .await
            .map_err(ApiError::Identity)?;
        let audit = intake::audit_entry(app, caller, "user.removed", id);
        let mut before = user;
        let mut change = app
            .store
            .remove_user(&before, &audit, app.clock.epoch_seconds())
            .await?;
        // A concurrent role change moved the user first: remove them as they are now.
        if let UserChange::Unchanged(current) = &change
            && current.status == UserStatus::Active
        {
            before = current.clone();
            keep_an_admin(app, &before).await?;
            change = app
                .store
                .remove_user(&before, &audit, app.clock.epoch_seconds())
                .await?;
        }
        settled(app, &before, change).await
    })
    .await
}
