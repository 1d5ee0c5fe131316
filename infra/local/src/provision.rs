//! Creates the template's resources in the emulator. One table, `RESOURCE_TYPES`, says
//! for every resource type either which provisioner creates it or why the local cloud
//! has no use for it; provisioning and the "is this type supported" check both read it,
//! and any type missing from it stops provisioning, so a new resource in the template
//! cannot silently go missing locally.

mod cognito;
mod dynamodb;
mod secrets;
mod sqs;

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_cognitoidentityprovider as cognito_sdk;
use aws_sdk_dynamodb as dynamodb_sdk;
use aws_sdk_secretsmanager as secretsmanager_sdk;
use aws_sdk_sesv2 as sesv2;
use aws_sdk_sqs as sqs_sdk;
use serde_json::Value;

use crate::template::{ACCOUNT_ID, Physical, REGION, Resolver, Template};

/// What creates one resource type locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioner {
    Table,
    Queue,
    Secret,
    UserPool,
    UserPoolClient,
    UserPoolGroup,
    UserPoolResourceServer,
    UserPoolDomain,
}

/// How the local cloud treats one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Created in the emulator.
    Provisioned(Provisioner),
    /// Not created, for this reason. `Ref` and `Fn::GetAtt ... Arn` still resolve (to a
    /// local name and ARN), so resources that name it can be provisioned.
    NotEmulated(&'static str),
}

/// Every resource type the template may use. Provisioned types are created in this
/// order, all resources of one type before the next type: a user pool exists before
/// the clients, groups and domain that name it.
pub const RESOURCE_TYPES: &[(&str, Local)] = &[
    (
        "AWS::DynamoDB::Table",
        Local::Provisioned(Provisioner::Table),
    ),
    ("AWS::SQS::Queue", Local::Provisioned(Provisioner::Queue)),
    (
        "AWS::SecretsManager::Secret",
        Local::Provisioned(Provisioner::Secret),
    ),
    (
        "AWS::Cognito::UserPool",
        Local::Provisioned(Provisioner::UserPool),
    ),
    (
        "AWS::Cognito::UserPoolClient",
        Local::Provisioned(Provisioner::UserPoolClient),
    ),
    (
        "AWS::Cognito::UserPoolGroup",
        Local::Provisioned(Provisioner::UserPoolGroup),
    ),
    (
        "AWS::Cognito::UserPoolResourceServer",
        Local::Provisioned(Provisioner::UserPoolResourceServer),
    ),
    (
        "AWS::Cognito::UserPoolDomain",
        Local::Provisioned(Provisioner::UserPoolDomain),
    ),
    (
        "AWS::KMS::Key",
        Local::NotEmulated("encryption at rest is AWS's; the emulator stores plain data"),
    ),
    (
        "AWS::Logs::LogGroup",
        Local::NotEmulated(
            "functions log to the terminal and the local gateway keeps no access log",
        ),
    ),
    (
        "AWS::CloudWatch::Alarm",
        Local::NotEmulated("no metrics are collected locally"),
    ),
    (
        "AWS::SNS::Topic",
        Local::NotEmulated(
            "alarms publish to it in AWS only; the SES events topic is created by the local cloud, which knows the gateway's address",
        ),
    ),
    (
        "AWS::SNS::TopicPolicy",
        Local::NotEmulated("the emulator enforces no resource policy"),
    ),
    (
        "AWS::SNS::Subscription",
        Local::NotEmulated(
            "the local cloud subscribes the gateway's /webhooks/ses (plain HTTP) to the SES events topic",
        ),
    ),
    (
        "AWS::SES::ConfigurationSet",
        Local::NotEmulated(
            "the emulator's SES takes any configuration set name; the events of one are registered with the emulator by the local cloud",
        ),
    ),
    (
        "AWS::SES::ConfigurationSetEventDestination",
        Local::NotEmulated(
            "registered with the emulator by the local cloud (emulator.py, ses_events.py)",
        ),
    ),
    (
        "AWS::CloudWatch::Dashboard",
        Local::NotEmulated("no metrics are collected locally"),
    ),
    (
        "AWS::Serverless::Function",
        Local::NotEmulated("run in-process by the gateway and the queue runner"),
    ),
    // Restores (issue 13): the emulator has no AWS Backup, and checks no IAM.
    (
        "AWS::Backup::BackupVault",
        Local::NotEmulated(
            "the emulator has no AWS Backup; point-in-time restores, which the drill and the tenant recovery use, are emulated",
        ),
    ),
    (
        "AWS::Backup::BackupPlan",
        Local::NotEmulated("the emulator has no AWS Backup (no scheduled backup jobs run locally)"),
    ),
    (
        "AWS::Backup::BackupSelection",
        Local::NotEmulated("the emulator has no AWS Backup"),
    ),
    (
        "AWS::IAM::Role",
        Local::NotEmulated(
            "the emulator enforces no IAM; AWS Backup and SNS (its SMS delivery logs) assume these roles",
        ),
    ),
    // Credential rotation (issue 20).
    (
        "AWS::SecretsManager::RotationSchedule",
        Local::NotEmulated(
            "the emulator invokes no Lambda: `herald-local rotate` and the tests run the rotator's steps as RotateSecret would",
        ),
    ),
    (
        "AWS::Lambda::Permission",
        Local::NotEmulated(
            "the emulator enforces no IAM; Secrets Manager invokes the rotator, CloudWatch Logs the events function",
        ),
    ),
    (
        "AWS::Logs::SubscriptionFilter",
        Local::NotEmulated(
            "played by the local cloud's log subscription (log_subscription.rs) for a stack that asks for SNS's SMS delivery logs",
        ),
    ),
    (
        "AWS::Serverless::HttpApi",
        Local::NotEmulated(
            "played by the local gateway, which reads its routes from the functions' events",
        ),
    ),
];

/// How the local cloud treats `kind`, or `None` when the table does not know it.
pub fn local_treatment(kind: &str) -> Option<Local> {
    RESOURCE_TYPES
        .iter()
        .find(|(t, _)| *t == kind)
        .map(|(_, local)| *local)
}

/// The resource types the local cloud does not create, with the reason.
pub fn not_emulated() -> impl Iterator<Item = (&'static str, &'static str)> {
    RESOURCE_TYPES
        .iter()
        .filter_map(|(kind, local)| match local {
            Local::NotEmulated(reason) => Some((*kind, *reason)),
            Local::Provisioned(_) => None,
        })
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Prefix of every physical name; tests use a unique one each.
    pub stack_name: String,
    pub parameters: HashMap<String, String>,
    /// Values for secrets by logical id (others are generated per their template).
    pub secret_values: HashMap<String, String>,
    /// Replaces every queue's visibility timeout, so tests see redelivery in seconds.
    pub visibility_timeout: Option<u32>,
}

pub struct Clients {
    pub dynamodb: dynamodb_sdk::Client,
    pub sqs: sqs_sdk::Client,
    pub secrets: secretsmanager_sdk::Client,
    pub cognito: cognito_sdk::Client,
    pub ses: sesv2::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: dynamodb_sdk::Client::new(sdk),
            sqs: sqs_sdk::Client::new(sdk),
            secrets: secretsmanager_sdk::Client::new(sdk),
            cognito: cognito_sdk::Client::new(sdk),
            ses: sesv2::Client::new(sdk),
        }
    }
}

/// A provisioned stack: the template plus what each resource became locally.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub template: Template,
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, Physical>,
}

pub async fn provision(clients: &Clients, template: &Template, options: &Options) -> Result<Stack> {
    let mut run = Run {
        clients,
        template,
        options,
        parameters: template.parameters(&options.parameters),
        resources: HashMap::new(),
    };

    // Every type is checked before anything is created.
    for (id, resource) in template.resources() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        match local_treatment(kind) {
            None => bail!(
                "template resource {id} has type {kind}, which the local cloud does not provision"
            ),
            Some(Local::NotEmulated(_)) => {
                let physical = run.placeholder(id);
                run.resources.insert(id.clone(), physical);
            }
            Some(Local::Provisioned(_)) => {}
        }
        // SAM gives a function without a `Role` one of its own, `<id>Role`, which
        // another function may name (the express sender runs with the sender's).
        if kind == "AWS::Serverless::Function" && resource["Properties"]["Role"].is_null() {
            let role = format!("{id}Role");
            let physical = run.placeholder(&role);
            run.resources.insert(role, physical);
        }
    }

    for (kind, local) in RESOURCE_TYPES {
        let Local::Provisioned(provisioner) = *local else {
            continue;
        };
        let ids: Vec<String> = template
            .resources_of_type(kind)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let physical = run
                .create(provisioner, id)
                .await
                .with_context(|| format!("provisioning {id}"))?;
            run.resources.insert(id.clone(), physical);
        }
        for id in &ids {
            run.configure(provisioner, id)
                .await
                .with_context(|| format!("configuring {id}"))?;
        }
    }

    // The SES identity email goes out from. In AWS it is a prerequisite of the account
    // (a domain verified through DNS, or an address through a link), shared by every
    // stack there, not a stack resource; SES, like the emulator, only sends from an
    // identity it holds, so the local cloud creates the one the parameter names.
    if template.body["Parameters"]
        .get(EMAIL_FROM_PARAMETER)
        .is_some()
    {
        let from = run
            .parameters
            .get(EMAIL_FROM_PARAMETER)
            .with_context(|| format!("template parameter {EMAIL_FROM_PARAMETER} has no value"))?;
        verify_email_identity(&clients.ses, from)
            .await
            .with_context(|| format!("verifying the email identity {from}"))?;
    }

    Ok(Stack {
        name: options.stack_name.clone(),
        template: template.clone(),
        parameters: run.parameters,
        resources: run.resources,
    })
}

/// One provisioning run: what has been created so far, for the next resources'
/// `Ref`s and `Fn::GetAtt`s.
struct Run<'a> {
    clients: &'a Clients,
    template: &'a Template,
    options: &'a Options,
    parameters: HashMap<String, String>,
    resources: HashMap<String, Physical>,
}

impl Run<'_> {
    /// The resource's name in the emulator: unique per stack.
    fn physical_name(&self, id: &str) -> String {
        format!("{}-{id}", self.options.stack_name)
    }

    /// What a resource that is not emulated resolves to.
    fn placeholder(&self, id: &str) -> Physical {
        let stack = &self.options.stack_name;
        Physical {
            reference: self.physical_name(id),
            attributes: HashMap::from([(
                "Arn".to_owned(),
                format!("arn:aws:local:{REGION}:{ACCOUNT_ID}:{stack}/{id}"),
            )]),
        }
    }

    /// The resource's `Properties`, resolved against what exists so far.
    fn properties(&self, id: &str) -> Result<Value> {
        let resolver = Resolver::new(
            self.template,
            &self.options.stack_name,
            &self.parameters,
            &self.resources,
        )?;
        resolver.resolve(&self.template.resource(id)?["Properties"])
    }

    async fn create(&self, provisioner: Provisioner, id: &str) -> Result<Physical> {
        let clients = self.clients;
        let name = self.physical_name(id);
        match provisioner {
            Provisioner::Table => {
                dynamodb::create_table(&clients.dynamodb, &name, &self.properties(id)?).await
            }
            // Its attributes wait for `configure`: a redrive policy names another
            // queue's ARN, which exists only once every queue does.
            Provisioner::Queue => sqs::create_queue(&clients.sqs, &name).await,
            Provisioner::Secret => {
                let props = self.properties(id)?;
                let value = match self.options.secret_values.get(id) {
                    Some(v) => v.clone(),
                    None => secrets::generate_secret(&props)?,
                };
                secrets::create_secret(&clients.secrets, &name, &props, &value).await
            }
            Provisioner::UserPool => {
                cognito::create_user_pool(&clients.cognito, &name, &self.properties(id)?).await
            }
            Provisioner::UserPoolClient => {
                cognito::create_user_pool_client(&clients.cognito, &self.properties(id)?).await
            }
            Provisioner::UserPoolGroup => {
                cognito::create_group(&clients.cognito, &self.properties(id)?).await
            }
            Provisioner::UserPoolResourceServer => {
                cognito::create_resource_server(&clients.cognito, &self.properties(id)?).await
            }
            // Domains are global; each local stack gets its own. The emulator serves the
            // token endpoint at its own address (`/oauth2/token`), not under the domain.
            Provisioner::UserPoolDomain => {
                let props = self.properties(id)?;
                cognito::create_domain(&clients.cognito, &name.to_lowercase(), &props).await
            }
        }
    }

    /// Work that needs every resource of the type to exist first.
    async fn configure(&self, provisioner: Provisioner, id: &str) -> Result<()> {
        match provisioner {
            Provisioner::Queue => {
                let props = self.properties(id)?;
                sqs::configure_queue(&self.clients.sqs, &self.resources[id], &props, self.options)
                    .await
            }
            Provisioner::Table
            | Provisioner::Secret
            | Provisioner::UserPool
            | Provisioner::UserPoolClient
            | Provisioner::UserPoolGroup
            | Provisioner::UserPoolResourceServer
            | Provisioner::UserPoolDomain => Ok(()),
        }
    }
}

/// The template parameter naming the address emails are sent from.
pub const EMAIL_FROM_PARAMETER: &str = "EmailFromAddress";

/// Creates the SES identity for `address` unless it exists (identities belong to the
/// account, so every stack in the emulator shares them). The emulator treats an
/// identity it holds as verified.
async fn verify_email_identity(client: &sesv2::Client, address: &str) -> Result<()> {
    match client
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow!(aws_sdk_sesv2::error::DisplayErrorContext(e))),
    }
}

fn str_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_resource_type_is_listed_once() {
        let mut kinds: Vec<&str> = RESOURCE_TYPES.iter().map(|(kind, _)| *kind).collect();
        kinds.sort_unstable();
        let listed = kinds.len();
        kinds.dedup();
        assert_eq!(kinds.len(), listed, "a resource type is listed twice");
    }

    #[test]
    fn each_provisioner_serves_one_type() {
        let mut provisioners: Vec<String> = RESOURCE_TYPES
            .iter()
            .filter_map(|(_, local)| match local {
                Local::Provisioned(p) => Some(format!("{p:?}")),
                Local::NotEmulated(_) => None,
            })
            .collect();
        let listed = provisioners.len();
        provisioners.sort_unstable();
        provisioners.dedup();
        assert_eq!(provisioners.len(), listed);
    }
}
