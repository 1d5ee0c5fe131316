//! Demo tenants and users, and tokens for them, through the local user pool.

use anyhow::{Result, anyhow};
use aws_sdk_cognitoidentityprovider as cognito;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType, MessageActionType};
use herald::domain::{
    DEFAULT_NUMBER_TYPES, Limits, NumberType, Plan, SmsPolicy, TenantProfile, TenantRole,
    TenantStatus, TenantUser, UserStatus,
};
use serde::{Deserialize, Serialize};

pub const DEMO_TENANTS: &[&str] = &["acme", "globex"];
pub const DEMO_ROLES: &[&str] = &["admin", "sender", "viewer"];
/// Each demo tenant's plan.
pub const DEMO_PLANS: &[(&str, Plan)] = &[("acme", Plan::Growth), ("globex", Plan::Starter)];
/// The tenant the platform's operators sign in under; it sends nothing itself.
pub const PLATFORM_TENANT: &str = "herald";

/// Registers `tenant` on `plan` (with `limits` instead of the plan's, when given),
/// with the platform's SMS policy. An existing tenant is left as it is.
pub async fn tenant(
    store: &herald::store::Store,
    tenant: &str,
    plan: Plan,
    limits: Option<Limits>,
) -> Result<()> {
    tenant_with(store, tenant, plan, limits, SmsPolicy::default()).await
}

/// The demo tenants' SMS policy: the platform's, plus personal numbers, because the
/// sandbox's magic numbers (Twilio's test numbers, such as the always-invalid
/// `+15005550001`) are US 500 numbers, which the phone library calls personal numbers.
pub fn demo_sms_policy() -> SmsPolicy {
    let mut number_types: std::collections::BTreeSet<NumberType> =
        DEFAULT_NUMBER_TYPES.iter().copied().collect();
    number_types.insert(NumberType::PersonalNumber);
    SmsPolicy {
        countries: None,
        number_types: Some(number_types),
    }
}

/// `tenant`, with its own SMS policy.
pub async fn tenant_with(
    store: &herald::store::Store,
    tenant: &str,
    plan: Plan,
    limits: Option<Limits>,
    sms_policy: SmsPolicy,
) -> Result<()> {
    let now = herald::clock::system().timestamp();
    store
        .create_tenant(&TenantProfile {
            tenant: herald::TenantId::parse(tenant).map_err(|e| anyhow!("{e}"))?,
            plan,
            status: TenantStatus::Active,
            limits: limits.unwrap_or(plan.limits()),
            sms_provider: Default::default(),
            sms_policy,
            sms_sender: None,
            sms_sender_rate: None,
            created_at: now,
            updated_at: now,
        })
        .await?;
    Ok(())
}

/// Records a seeded user of a tenant role in the table, as an invitation through the
/// API would (without its audit entry): the user then appears in `GET /v1/users`,
/// counts as an admin, and their tokens are checked against the record. An operator
/// (no tenant role) is left to Cognito alone; a recorded user is left as it is.
pub async fn record_user(
    store: &herald::store::Store,
    cognito: &cognito::Client,
    pool: &str,
    tenant: &str,
    role: &str,
    user: &User,
) -> Result<()> {
    let Ok(role) = role.parse::<TenantRole>() else {
        return Ok(());
    };
    let users = herald::identity::TenantUsers::new(cognito.clone(), pool);
    let user_id = users
        .user_id(&user.username)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("seeded user {} is not in the pool", user.username))?;
    let clock = herald::clock::system();
    let record = TenantUser {
        user_id,
        tenant: herald::TenantId::parse(tenant).map_err(|e| anyhow!("{e}"))?,
        email: user.username.to_lowercase(),
        name: None,
        role,
        status: UserStatus::Active,
        created_at: clock.timestamp(),
        created_by: "seed".to_owned(),
        tokens_after: 0,
        changed_at: None,
    };
    store
        .record_user(&record, None, clock.epoch_seconds())
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub password: String,
}

/// Creates (or resets) a user of `tenant` in group `role`, with a fresh password that
/// meets the pool's policy.
pub async fn user(client: &cognito::Client, pool: &str, tenant: &str, role: &str) -> Result<User> {
    let username = format!("{role}@{tenant}.example");
    let password = format!("Hx9-{}", crate::random_token(20));
    let created = client
        .admin_create_user()
        .user_pool_id(pool)
        .username(&username)
        .message_action(MessageActionType::Suppress)
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(&username)
                .build()?,
        )
        .user_attributes(
            AttributeType::builder()
                .name("custom:tenant_id")
                .value(tenant)
                .build()?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_username_exists_exception()) => {}
        Err(e) => return Err(anyhow!(cognito::error::DisplayErrorContext(e).to_string())),
    }
    client
        .admin_set_user_password()
        .user_pool_id(pool)
        .username(&username)
        .password(&password)
        .permanent(true)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?;
    client
        .admin_add_user_to_group()
        .user_pool_id(pool)
        .username(&username)
        .group_name(role)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?;
    Ok(User { username, password })
}

/// Tokens for a user, as a client application gets them from Cognito.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

pub async fn sign_in(client: &cognito::Client, client_id: &str, user: &User) -> Result<Tokens> {
    let out = client
        .initiate_auth()
        .client_id(client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", &user.username)
        .auth_parameters("PASSWORD", &user.password)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?;
    let result = out
        .authentication_result
        .ok_or_else(|| anyhow!("sign-in asked for a challenge instead of issuing tokens"))?;
    Ok(Tokens {
        id_token: result.id_token.ok_or_else(|| anyhow!("no id token"))?,
        access_token: result
            .access_token
            .ok_or_else(|| anyhow!("no access token"))?,
    })
}

/// Records message `id` of `chunk` as `sent` by `provider` the way the sender does
/// (claim, then settle), without a provider call: the benchmarks measure the table's
/// side alone, or seed sent messages for receipts to find.
pub async fn claim_and_settle(
    store: &herald::store::Store,
    tenant: &herald::TenantId,
    id: herald::MessageId,
    chunk: &herald::domain::Chunk,
    to: &herald::Address,
    provider: &str,
) -> Result<()> {
    use herald::domain::{ClaimOutcome, Lease, Settlement};
    let clock = herald::clock::system();
    let lease = Lease::starting(clock.timestamp(), std::time::Duration::from_secs(60));
    let ClaimOutcome::Claimed { token } = store.claim(tenant, id, chunk, to, &lease).await? else {
        anyhow::bail!("a fresh message ({id}) could not be claimed");
    };
    let sent = Settlement::Sent {
        provider: provider.into(),
        provider_ref: format!("SM{}", id.index()),
    };
    let settled = store
        .settle(tenant, id, &token, &sent, clock.timestamp())
        .await?;
    anyhow::ensure!(settled, "the claim on {id} was lost before its settle");
    Ok(())
}

/// Posts Twilio's signed `delivered` status callback for `id` (sent as `SM{index}`, as
/// `claim_and_settle` records it) through the local gateway; whether it was taken (2xx).
pub async fn post_delivered(
    http: &reqwest::Client,
    cloud: &crate::LocalCloud,
    tenant: &herald::TenantId,
    id: herald::MessageId,
) -> Result<bool> {
    use herald::webhook::twilio;
    let url = twilio::status_callback(
        &cloud.webhooks_base_url,
        tenant,
        id,
        &herald::CorrelationId::new(),
    );
    let form: Vec<(String, String)> = [
        ("AccountSid", cloud.credentials.account_sid.clone()),
        ("MessageSid", format!("SM{}", id.index())),
        ("MessageStatus", "delivered".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let signature = twilio::signature(&cloud.credentials.auth_token, &url, &form);
    let answer = http
        .post(&url)
        .header(twilio::SIGNATURE_HEADER, signature)
        .form(&form)
        .send()
        .await
        .map_err(|e| anyhow!("the gateway answers: {e}"))?;
    Ok(answer.status().is_success())
}
