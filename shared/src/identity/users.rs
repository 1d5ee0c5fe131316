//! A tenant's people as Cognito holds them: invited with the tenant's id (immutable)
//! and one role's group, moved between role groups, disabled, and signed out
//! everywhere. Herald's record of them (`store::users`) is written beside these calls.

use aws_sdk_cognitoidentityprovider::types::{AttributeType, DeliveryMediumType};
use strum::VariantArray;

use super::{IdentityError, unless_missing};
use crate::auth::TENANT_CLAIM;
use crate::aws::CognitoClient;
use crate::domain::TenantRole;
use crate::ids::TenantId;

/// What an invitation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitation {
    /// Created and emailed a temporary password; the user's `sub`.
    Sent { user_id: String },
    /// The email is a user of the pool already (of this tenant or another).
    EmailTaken,
}

#[derive(Clone)]
pub struct TenantUsers {
    cognito: CognitoClient,
    user_pool_id: String,
}

fn attribute(name: &str, value: &str) -> Result<AttributeType, IdentityError> {
    Ok(AttributeType::builder().name(name).value(value).build()?)
}

impl TenantUsers {
    pub fn new(cognito: CognitoClient, user_pool_id: impl Into<String>) -> Self {
        Self {
            cognito,
            user_pool_id: user_pool_id.into(),
        }
    }

    /// Creates the user (user name = `email`, verified, so recovery goes to it) in
    /// `tenant` and `role`'s group; Cognito emails them a temporary password, to be
    /// replaced at first sign-in. A user left half made (no group) is deleted.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %role))]
    pub async fn invite(
        &self,
        tenant: &TenantId,
        email: &str,
        role: TenantRole,
    ) -> Result<Invitation, IdentityError> {
        let created = self
            .cognito
            .admin_create_user()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .user_attributes(attribute("email", email)?)
            .user_attributes(attribute("email_verified", "true")?)
            .user_attributes(attribute(TENANT_CLAIM, tenant.as_str())?)
            .send()
            .await;
        let user = match created {
            Ok(out) => out.user,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_username_exists_exception()) =>
            {
                return Ok(Invitation::EmailTaken);
            }
            Err(e) => return Err(Box::new(e)),
        };
        let user_id = user
            .iter()
            .flat_map(|u| u.attributes())
            .find(|a| a.name() == "sub")
            .and_then(|a| a.value())
            .map(str::to_owned)
            .ok_or("Cognito created a user without a sub")?;
        if let Err(e) = self.add_to_group(email, role).await {
            if let Err(cleanup) = self.delete(email).await {
                tracing::warn!("could not delete a user left without a group: {cleanup}");
            }
            return Err(e);
        }
        Ok(Invitation::Sent { user_id })
    }

    /// The user's `sub`; `None` when there is no such user.
    #[tracing::instrument(skip_all)]
    pub async fn user_id(&self, email: &str) -> Result<Option<String>, IdentityError> {
        let got = self
            .cognito
            .admin_get_user()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .send()
            .await;
        Ok(
            unless_missing(got, |e| e.is_user_not_found_exception())?.and_then(|out| {
                out.user_attributes()
                    .iter()
                    .find(|a| a.name() == "sub")
                    .and_then(|a| a.value())
                    .map(str::to_owned)
            }),
        )
    }

    /// Puts the user in `role`'s group and no other role's, and signs them out
    /// everywhere (their refresh tokens stop working). Safe to repeat.
    #[tracing::instrument(skip_all, fields(%role))]
    pub async fn set_role(&self, email: &str, role: TenantRole) -> Result<(), IdentityError> {
        for other in TenantRole::VARIANTS.iter().filter(|r| **r != role) {
            self.cognito
                .admin_remove_user_from_group()
                .user_pool_id(&self.user_pool_id)
                .username(email)
                .group_name(other.to_string())
                .send()
                .await?;
        }
        self.add_to_group(email, role).await?;
        self.sign_out_everywhere(email).await
    }

    /// Disables the user (no sign-in, no refresh) and signs them out everywhere.
    #[tracing::instrument(skip_all)]
    pub async fn disable(&self, email: &str) -> Result<(), IdentityError> {
        self.cognito
            .admin_disable_user()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .send()
            .await?;
        self.sign_out_everywhere(email).await
    }

    /// Undoes `disable`, for a removal the store refused after Cognito's part was done.
    #[tracing::instrument(skip_all)]
    pub async fn enable(&self, email: &str) -> Result<(), IdentityError> {
        self.cognito
            .admin_enable_user()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .send()
            .await?;
        Ok(())
    }

    /// Deletes the user; one already gone counts as deleted.
    #[tracing::instrument(skip_all)]
    pub async fn delete(&self, email: &str) -> Result<(), IdentityError> {
        let deleted = self
            .cognito
            .admin_delete_user()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .send()
            .await;
        unless_missing(deleted, |e| e.is_user_not_found_exception()).map(|_| ())
    }

    async fn add_to_group(&self, email: &str, role: TenantRole) -> Result<(), IdentityError> {
        self.cognito
            .admin_add_user_to_group()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .group_name(role.to_string())
            .send()
            .await?;
        Ok(())
    }

    async fn sign_out_everywhere(&self, email: &str) -> Result<(), IdentityError> {
        self.cognito
            .admin_user_global_sign_out()
            .user_pool_id(&self.user_pool_id)
            .username(email)
            .send()
            .await?;
        Ok(())
    }
}
