//! Every call Herald makes to Cognito's user pool API. Machine clients (here) as
//! Cognito holds them: created for a tenant with the
//! client-credentials grant and Herald's scopes and nothing else, asked for their
//! secret, listed, and deleted, for the API's client routes and the redriver's client
//! sweep alike; a tenant's people in `users`.

use aws_sdk_cognitoidentityprovider::types::{
    ExplicitAuthFlowsType, OAuthFlowType, PreventUserExistenceErrorTypes, TimeUnitsType,
    TokenValidityUnitsType, UserPoolClientType,
};

use aws_sdk_cognitoidentityprovider::error::SdkError;

use crate::auth::Scope;
use crate::aws::CognitoClient;
use crate::ids::TenantId;

mod users;

pub use users::{Invitation, TenantUsers};

/// Every machine client's Cognito name starts with this; the console's client does not.
pub const MACHINE_CLIENT_PREFIX: &str = "herald-m2m-";

/// Machine tokens live an hour, like users' (Cognito allows 5 minutes to a day).
const ACCESS_TOKEN_MINUTES: i32 = 60;

/// The failure of a Cognito call, as the SDK reports it.
pub type IdentityError = Box<dyn std::error::Error + Send + Sync>;

/// A call's answer, `None` when Cognito says there is no such thing (as `missing`
/// tells from the service's error).
fn unless_missing<O, E, R>(
    result: Result<O, SdkError<E, R>>,
    missing: impl Fn(&E) -> bool,
) -> Result<Option<O>, IdentityError>
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(missing) => Ok(None),
        Err(e) => Err(Box::new(e)),
    }
}

#[derive(Clone)]
pub struct MachineClients {
    cognito: CognitoClient,
    user_pool_id: String,
}

impl MachineClients {
    pub fn new(cognito: CognitoClient, user_pool_id: impl Into<String>) -> Self {
        Self {
            cognito,
            user_pool_id: user_pool_id.into(),
        }
    }

    /// Creates an app client for `tenant` that can do one thing: get access tokens
    /// with `scopes` through the client-credentials grant. No sign-in flow for users
    /// (only refresh-token auth, which Cognito always keeps and a client-credentials
    /// client never uses), no user attributes to read or write, and Cognito's answers
    /// never tell whether a user exists. Answers its client id.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        scopes: &[Scope],
    ) -> Result<String, IdentityError> {
        let out = self
            .cognito
            .create_user_pool_client()
            .user_pool_id(&self.user_pool_id)
            .client_name(format!(
                "{MACHINE_CLIENT_PREFIX}{tenant}-{}",
                name.replace(' ', "_")
            ))
            .generate_secret(true)
            .allowed_o_auth_flows_user_pool_client(true)
            .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
            .set_allowed_o_auth_scopes(Some(scopes.iter().map(|s| s.oauth_name()).collect()))
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .set_read_attributes(Some(Vec::new()))
            .set_write_attributes(Some(Vec::new()))
            .access_token_validity(ACCESS_TOKEN_MINUTES)
            .token_validity_units(
                TokenValidityUnitsType::builder()
                    .access_token(TimeUnitsType::Minutes)
                    .build(),
            )
            .send()
            .await?;
        out.user_pool_client
            .and_then(|c| c.client_id)
            .ok_or_else(|| "Cognito created a client without an id".into())
    }

    /// The client's secret; `None` once the client is gone (revoked since).
    #[tracing::instrument(skip_all, fields(%client_id))]
    pub async fn secret(&self, client_id: &str) -> Result<Option<String>, IdentityError> {
        Ok(self
            .describe(client_id)
            .await?
            .and_then(|c| c.client_secret))
    }

    /// When Cognito created the client (epoch seconds); `None` when it does not say,
    /// or the client is gone.
    #[tracing::instrument(skip_all, fields(%client_id))]
    pub async fn created_epoch(&self, client_id: &str) -> Result<Option<u64>, IdentityError> {
        let client = self.describe(client_id).await?;
        Ok(client
            .and_then(|c| c.creation_date)
            .map(|d| d.secs().max(0) as u64))
    }

    /// The client as Cognito describes it; `None` when there is no such client.
    async fn describe(&self, client_id: &str) -> Result<Option<UserPoolClientType>, IdentityError> {
        let described = self
            .cognito
            .describe_user_pool_client()
            .user_pool_id(&self.user_pool_id)
            .client_id(client_id)
            .send()
            .await;
        Ok(
            unless_missing(described, |e| e.is_resource_not_found_exception())?
                .and_then(|out| out.user_pool_client),
        )
    }

    /// Deletes the client; one already gone counts as deleted.
    #[tracing::instrument(skip_all, fields(%client_id))]
    pub async fn delete(&self, client_id: &str) -> Result<(), IdentityError> {
        let deleted = self
            .cognito
            .delete_user_pool_client()
            .user_pool_id(&self.user_pool_id)
            .client_id(client_id)
            .send()
            .await;
        unless_missing(deleted, |e| e.is_resource_not_found_exception()).map(|_| ())
    }

    /// The ids of every machine client in the pool (by name; other app clients are
    /// left out).
    #[tracing::instrument(skip_all)]
    pub async fn list(&self) -> Result<Vec<String>, IdentityError> {
        let mut ids = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .cognito
                .list_user_pool_clients()
                .user_pool_id(&self.user_pool_id)
                .max_results(60)
                .set_next_token(next)
                .send()
                .await?;
            for client in page.user_pool_clients() {
                let machine = client
                    .client_name()
                    .is_some_and(|n| n.starts_with(MACHINE_CLIENT_PREFIX));
                if let Some(id) = client.client_id().filter(|_| machine) {
                    ids.push(id.to_owned());
                }
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(ids);
            }
        }
    }
}
