//! Who is calling and what they may do. The tenant comes only from verified token
//! claims; the route policy is one table, and a route that is not in it is denied.
//!
//! One room on purpose: roles, scopes, permissions and the route table are read together
//! whenever a route is added; about 100 of its lines are tests.

use serde_json::{Map, Value};

use crate::domain::stored_enum;
use crate::ids::TenantId;

/// The claim that carries a user's tenant (a Cognito custom attribute).
pub const TENANT_CLAIM: &str = "custom:tenant_id";
pub const GROUPS_CLAIM: &str = "cognito:groups";

stored_enum! {
    /// A person's role: the Cognito group of the same name.
    pub enum Role {
        Admin,
        Sender,
        Viewer,
        Operator,
    }
}

impl Role {
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                SendMessages,
                ReadMessages,
                CancelBatches,
                ReadUsage,
                ReadAudit,
                ManageClients,
                ManageSuppressions,
                ManageUsers,
                ManageWebhooks,
            ],
            Role::Sender => &[SendMessages, ReadMessages, CancelBatches, ReadUsage],
            Role::Viewer => &[ReadMessages, ReadUsage],
            Role::Operator => &[ManageTenants, ReadAnyAudit, RedriveDeadLetters],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    SendMessages,
    ReadMessages,
    CancelBatches,
    ReadUsage,
    /// The caller's own tenant's audit log.
    ReadAudit,
    /// Register and revoke the tenant's machine clients.
    ManageClients,
    /// Add addresses to the tenant's suppression list and lift what it may.
    ManageSuppressions,
    /// Invite the tenant's people, change their roles and remove them.
    ManageUsers,
    /// Register, change and remove the tenant's webhook endpoints (issue 15).
    ManageWebhooks,
    /// Platform-wide: create, suspend and resume any tenant, and set where it may text.
    ManageTenants,
    /// Platform-wide: any tenant's audit log.
    ReadAnyAudit,
    /// Platform-wide: move the send DLQ back to the send queue.
    RedriveDeadLetters,
}

impl Permission {
    /// Platform-wide permissions act on other tenants, named in the path; the caller's
    /// own tenant's plan and limits do not apply to them.
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Permission::ManageTenants | Permission::ReadAnyAudit | Permission::RedriveDeadLetters
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (and the gateway does not ask for one).
    Public,
    Requires(Permission),
}

/// Route → access. Paths use the router's syntax (`{id}`), so the API can look up the
/// matched path directly.
pub const ROUTE_POLICY: &[(&str, &str, Access)] = &[
    ("GET", "/v1/health", Access::Public),
    // Which build answers, for deploy smoke tests and people: no tenant data.
    ("GET", "/v1/version", Access::Public),
    // The document describes the API's shape, not anyone's data; clients and code
    // generators fetch it before they hold a token.
    ("GET", "/v1/openapi.json", Access::Public),
    (
        "POST",
        "/v1/messages",
        Access::Requires(Permission::SendMessages),
    ),
    (
        "GET",
        "/v1/messages/{id}",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "POST",
        "/v1/batches",
        Access::Requires(Permission::SendMessages),
    ),
    (
        "GET",
        "/v1/batches/{id}",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "GET",
        "/v1/batches/{id}/messages",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "POST",
        "/v1/batches/{id}/cancel",
        Access::Requires(Permission::CancelBatches),
    ),
    ("GET", "/v1/usage", Access::Requires(Permission::ReadUsage)),
    ("GET", "/v1/audit", Access::Requires(Permission::ReadAudit)),
    (
        "POST",
        "/v1/clients",
        Access::Requires(Permission::ManageClients),
    ),
    (
        "GET",
        "/v1/clients",
        Access::Requires(Permission::ManageClients),
    ),
    (
        "POST",
        "/v1/clients/{id}/revoke",
        Access::Requires(Permission::ManageClients),
    ),
    // Who is suppressed, and why, is message data: whoever reads messages reads it.
    (
        "GET",
        "/v1/suppressions",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "POST",
        "/v1/suppressions",
        Access::Requires(Permission::ManageSuppressions),
    ),
    (
        "DELETE",
        "/v1/suppressions/{address}",
        Access::Requires(Permission::ManageSuppressions),
    ),
    (
        "POST",
        "/v1/users",
        Access::Requires(Permission::ManageUsers),
    ),
    (
        "GET",
        "/v1/users",
        Access::Requires(Permission::ManageUsers),
    ),
    (
        "GET",
        "/v1/users/{id}",
        Access::Requires(Permission::ManageUsers),
    ),
    (
        "POST",
        "/v1/users/{id}/role",
        Access::Requires(Permission::ManageUsers),
    ),
    (
        "POST",
        "/v1/users/{id}/remove",
        Access::Requires(Permission::ManageUsers),
    ),
    // Endpoints receive the tenant's events and hold their signing secret: admins only.
    (
        "POST",
        "/v1/webhooks/endpoints",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "GET",
        "/v1/webhooks/endpoints",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "GET",
        "/v1/webhooks/endpoints/{id}",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "PUT",
        "/v1/webhooks/endpoints/{id}",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "DELETE",
        "/v1/webhooks/endpoints/{id}",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/disable",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/enable",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/rotate-secret",
        Access::Requires(Permission::ManageWebhooks),
    ),
    // An endpoint's attempts carry its events' bodies; recover and test send to it.
    (
        "GET",
        "/v1/webhooks/endpoints/{id}/attempts",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/recover",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/test",
        Access::Requires(Permission::ManageWebhooks),
    ),
    (
        "POST",
        "/v1/tenants",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "GET",
        "/v1/tenants/{id}",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "POST",
        "/v1/tenants/{id}/suspend",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "POST",
        "/v1/tenants/{id}/resume",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "PUT",
        "/v1/tenants/{id}/sms-policy",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "PUT",
        "/v1/tenants/{id}/sms-sender",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "GET",
        "/v1/tenants/{id}/audit",
        Access::Requires(Permission::ReadAnyAudit),
    ),
    (
        "POST",
        "/v1/operator/redrive",
        Access::Requires(Permission::RedriveDeadLetters),
    ),
];

/// How a webhook route (`functions/webhooks`) is let in. Providers hold no Herald
/// token, so these routes take none; each is public to the internet and verified by
/// its provider's signature instead, and anything else is refused with 403 before
/// anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAccess {
    /// `X-Twilio-Signature`: HMAC-SHA1 with the account's auth token (or the previous
    /// one while it is rotated) over the URL as called and the sorted form.
    TwilioSignature,
    /// SNS's message signature (RSA, version 1 or 2) under the certificate SNS serves
    /// from its own host, for the one configured topic.
    SnsSignature,
}

/// The webhook receiver's routes and how each is verified. A route not listed is not
/// served; `template.yaml`'s events for the function name exactly these (a test checks).
pub const WEBHOOK_POLICY: &[(&str, &str, WebhookAccess)] = &[
    // A message's delivery status, at the per-message URL the sender gave Twilio.
    (
        "POST",
        crate::webhook::twilio::STATUS_PATH,
        WebhookAccess::TwilioSignature,
    ),
    // A text a recipient sent to a sender number (STOP, START...): the number's (or
    // messaging service's) incoming-message webhook.
    (
        "POST",
        crate::webhook::twilio::INBOUND_PATH,
        WebhookAccess::TwilioSignature,
    ),
    // SES's events (Send, Delivery, Bounce, Complaint...), through the SNS topic its
    // configuration set publishes to.
    (
        "POST",
        crate::webhook::sns::SES_PATH,
        WebhookAccess::SnsSignature,
    ),
];

pub fn route_access(method: &str, path: &str) -> Option<Access> {
    ROUTE_POLICY
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, access)| *access)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the token carries no tenant")]
    NoTenant,
    #[error("the token's tenant is not a valid tenant id")]
    BadTenant,
    #[error("the token has no subject")]
    NoSubject,
}

stored_enum! {
    /// The OAuth scopes a machine client can hold. Cognito and tokens name them
    /// `herald/{scope}` (`RESOURCE_SERVER`).
    pub enum Scope {
        #[serde(rename = "messages:send")]
        #[strum(serialize = "messages:send")]
        MessagesSend,
        #[serde(rename = "messages:read")]
        #[strum(serialize = "messages:read")]
        MessagesRead,
    }
}

/// The user pool's resource server for Herald's scopes.
pub const RESOURCE_SERVER: &str = "herald";

impl Scope {
    /// The name in Cognito and in tokens: `herald/messages:send`.
    pub fn oauth_name(self) -> String {
        format!("{RESOURCE_SERVER}/{self}")
    }

    pub fn from_oauth_name(raw: &str) -> Option<Scope> {
        raw.strip_prefix(RESOURCE_SERVER)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|name| name.parse().ok())
    }

    /// A machine client never manages clients, tenants or audit: those stay with people.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Scope::MessagesSend => &[SendMessages, CancelBatches],
            Scope::MessagesRead => &[ReadMessages, ReadUsage],
        }
    }
}

/// Who holds the token: a person in Cognito groups, or a tenant's machine client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User { roles: Vec<Role> },
    Client { scopes: Vec<Scope> },
}

/// The verified caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    tenant: TenantId,
    subject: String,
    caller: Caller,
    /// A user token's `iat` (epoch seconds): checked against the user's record, which
    /// refuses tokens issued before their role changed or they were removed.
    issued_at: Option<u64>,
}

impl Principal {
    /// A user, from the claims of a verified id token.
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Self, AuthError> {
        let raw_tenant = claims
            .get(TENANT_CLAIM)
            .and_then(Value::as_str)
            .ok_or(AuthError::NoTenant)?;
        let tenant = TenantId::parse(raw_tenant).map_err(|_| AuthError::BadTenant)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::NoSubject)?
            .to_owned();
        let roles = claims
            .get(GROUPS_CLAIM)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|group| group.parse::<Role>().ok())
            .collect();
        Ok(Self {
            tenant,
            subject,
            caller: Caller::User { roles },
            issued_at: claims.get("iat").and_then(Value::as_u64),
        })
    }

    /// A machine client registered to `tenant`. `scopes` are those both the token and
    /// the registration grant.
    pub fn machine(tenant: TenantId, client_id: &str, scopes: Vec<Scope>) -> Self {
        Self {
            tenant,
            subject: format!("client:{client_id}"),
            caller: Caller::Client { scopes },
            issued_at: None,
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Who acted, for the audit log: a user's `sub`, or `client:{client_id}`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// For a person: when their token was issued (epoch seconds; `0` when it does not
    /// say, which no user record accepts). `None` for a machine client.
    pub fn user_token_issued_at(&self) -> Option<u64> {
        match self.caller {
            Caller::User { .. } => Some(self.issued_at.unwrap_or(0)),
            Caller::Client { .. } => None,
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        match &self.caller {
            Caller::User { roles } => roles.iter().any(|r| r.permissions().contains(&permission)),
            Caller::Client { scopes } => {
                scopes.iter().any(|s| s.permissions().contains(&permission))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn principal_comes_from_tenant_and_groups_claims() {
        let p = Principal::from_claims(&claims(serde_json::json!({
            "sub": "u-1",
            TENANT_CLAIM: "acme",
            GROUPS_CLAIM: ["viewer", "sender", "unknown"],
        })))
        .unwrap();
        assert_eq!(p.tenant().as_str(), "acme");
        assert_eq!(
            p.caller(),
            &Caller::User {
                roles: vec![Role::Viewer, Role::Sender]
            }
        );
        assert!(p.may(Permission::SendMessages));
    }

    #[test]
    fn a_token_without_tenant_is_refused() {
        let err = Principal::from_claims(&claims(serde_json::json!({"sub": "u-1"}))).unwrap_err();
        assert_eq!(err, AuthError::NoTenant);
        let err = Principal::from_claims(&claims(
            serde_json::json!({"sub": "u", TENANT_CLAIM: "A#B"}),
        ))
        .unwrap_err();
        assert_eq!(err, AuthError::BadTenant);
    }

    #[test]
    fn viewers_read_but_do_not_send_and_operators_hold_no_tenant_rights() {
        assert!(
            !Role::Viewer
                .permissions()
                .contains(&Permission::SendMessages)
        );
        assert!(
            Role::Viewer
                .permissions()
                .contains(&Permission::ReadMessages)
        );
        assert!(Role::Operator.permissions().iter().all(|p| p.is_platform()));
        assert!(
            [Role::Admin, Role::Sender, Role::Viewer]
                .iter()
                .all(|r| r.permissions().iter().all(|p| !p.is_platform()))
        );
    }

    #[test]
    fn admins_read_the_audit_log_and_senders_cancel() {
        assert!(Role::Admin.permissions().contains(&Permission::ReadAudit));
        assert!(!Role::Sender.permissions().contains(&Permission::ReadAudit));
        assert!(
            Role::Sender
                .permissions()
                .contains(&Permission::CancelBatches)
        );
        assert!(
            !Role::Viewer
                .permissions()
                .contains(&Permission::CancelBatches)
        );
    }

    #[test]
    fn scopes_grant_messages_only() {
        let client = Principal::machine(
            TenantId::parse("acme").unwrap(),
            "abc",
            vec![Scope::MessagesRead],
        );
        assert!(client.may(Permission::ReadMessages));
        assert!(!client.may(Permission::SendMessages));
        assert!(!client.may(Permission::ManageClients));
        assert_eq!(client.subject(), "client:abc");
        assert!(Scope::VARIANTS.iter().all(|s| {
            s.permissions().iter().all(|p| {
                !p.is_platform()
                    && !matches!(
                        p,
                        Permission::ManageClients
                            | Permission::ManageUsers
                            | Permission::ManageWebhooks
                            | Permission::ReadAudit
                    )
            })
        }));
        assert_eq!(
            Scope::from_oauth_name("herald/messages:send"),
            Some(Scope::MessagesSend)
        );
        assert_eq!(Scope::from_oauth_name("other/messages:send"), None);
        assert_eq!(Scope::MessagesRead.oauth_name(), "herald/messages:read");
    }

    #[test]
    fn unknown_routes_have_no_policy() {
        assert_eq!(route_access("GET", "/v1/health"), Some(Access::Public));
        assert_eq!(route_access("DELETE", "/v1/messages/{id}"), None);
    }
}
