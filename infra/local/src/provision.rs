//! Creates the template's resources in the emulator. Each supported resource type is
//! created from its resolved `Properties`; types that have no local meaning are listed
//! in `NOT_EMULATED` with the reason, and any other type stops provisioning, so a new
//! resource in the template cannot silently go missing locally.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_cognitoidentityprovider as cognito;
use aws_sdk_dynamodb as dynamodb;
use aws_sdk_secretsmanager as secretsmanager;
use aws_sdk_sesv2 as sesv2;
use aws_sdk_sqs as sqs;
use serde_json::Value;

use crate::template::{ACCOUNT_ID, Physical, REGION, Resolver, Template};

/// Resource types the local cloud does not create, and why.
pub const NOT_EMULATED: &[(&str, &str)] = &[
    (
        "AWS::KMS::Key",
        "encryption at rest is AWS's; the emulator stores plain data",
    ),
    (
        "AWS::Logs::LogGroup",
        "functions log to the terminal locally",
    ),
    ("AWS::CloudWatch::Alarm", "no metrics are collected locally"),
    ("AWS::SNS::Topic", "only alarms publish to it"),
    (
        "AWS::Serverless::Function",
        "run in-process by the gateway and the queue runner",
    ),
    (
        "AWS::Serverless::HttpApi",
        "played by the local gateway, which reads its routes and authorizer",
    ),
];

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
    pub dynamodb: dynamodb::Client,
    pub sqs: sqs::Client,
    pub secrets: secretsmanager::Client,
    pub cognito: cognito::Client,
    pub ses: sesv2::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: dynamodb::Client::new(sdk),
            sqs: sqs::Client::new(sdk),
            secrets: secretsmanager::Client::new(sdk),
            cognito: cognito::Client::new(sdk),
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
    let stack = &options.stack_name;
    let parameters = template.parameters(&options.parameters);
    let mut resources: HashMap<String, Physical> = HashMap::new();

    for (id, resource) in template.resources() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        let known = NOT_EMULATED.iter().any(|(t, _)| *t == kind)
            || [
                "AWS::DynamoDB::Table",
                "AWS::SQS::Queue",
                "AWS::SecretsManager::Secret",
                "AWS::Cognito::UserPool",
                "AWS::Cognito::UserPoolClient",
                "AWS::Cognito::UserPoolGroup",
                "AWS::Cognito::UserPoolResourceServer",
                "AWS::Cognito::UserPoolDomain",
            ]
            .contains(&kind);
        if !known {
            bail!(
                "template resource {id} has type {kind}, which the local cloud does not provision"
            );
        }
        if NOT_EMULATED.iter().any(|(t, _)| *t == kind) {
            let arn = format!("arn:aws:local:{REGION}:{ACCOUNT_ID}:{stack}/{id}");
            resources.insert(
                id.clone(),
                Physical {
                    reference: format!("{stack}-{id}"),
                    attributes: HashMap::from([("Arn".to_owned(), arn)]),
                },
            );
        }
    }

    // Queues first without redrive policies (a policy names its DLQ's ARN), tables and
    // secrets need nothing else.
    for (id, _) in template.resources_of_type("AWS::DynamoDB::Table") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let physical = create_table(&clients.dynamodb, &format!("{stack}-{id}"), &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::SQS::Queue") {
        let physical = create_queue(&clients.sqs, &format!("{stack}-{id}"))
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::SQS::Queue") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        configure_queue(&clients.sqs, &resources[id], &props, options)
            .await
            .with_context(|| format!("configuring {id}"))?;
    }
    for (id, _) in template.resources_of_type("AWS::SecretsManager::Secret") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let value = match options.secret_values.get(id) {
            Some(v) => v.clone(),
            None => generate_secret(&props)?,
        };
        let physical = create_secret(&clients.secrets, &format!("{stack}-{id}"), &props, &value)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::Cognito::UserPool") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let physical = create_user_pool(&clients.cognito, &format!("{stack}-{id}"), &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::Cognito::UserPoolClient") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let physical = create_user_pool_client(&clients.cognito, &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::Cognito::UserPoolGroup") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let physical = create_group(&clients.cognito, &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::Cognito::UserPoolResourceServer") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        let physical = create_resource_server(&clients.cognito, &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }
    for (id, _) in template.resources_of_type("AWS::Cognito::UserPoolDomain") {
        let props = properties(template, stack, &parameters, &resources, id)?;
        // Domains are global; each local stack gets its own. The emulator serves the
        // token endpoint at its own address (`/oauth2/token`), not under the domain.
        let domain = format!("{stack}-{id}").to_lowercase();
        let physical = create_domain(&clients.cognito, &domain, &props)
            .await
            .with_context(|| format!("provisioning {id}"))?;
        resources.insert(id.clone(), physical);
    }

    // The SES identity email goes out from. In AWS it is a prerequisite of the account
    // (a domain verified through DNS, or an address through a link), shared by every
    // stack there, not a stack resource; SES, like the emulator, only sends from an
    // identity it holds, so the local cloud creates the one the parameter names.
    if template.body["Parameters"]
        .get(EMAIL_FROM_PARAMETER)
        .is_some()
    {
        let from = parameters
            .get(EMAIL_FROM_PARAMETER)
            .with_context(|| format!("template parameter {EMAIL_FROM_PARAMETER} has no value"))?;
        verify_email_identity(&clients.ses, from)
            .await
            .with_context(|| format!("verifying the email identity {from}"))?;
    }

    Ok(Stack {
        name: stack.clone(),
        template: template.clone(),
        parameters,
        resources,
    })
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

fn properties(
    template: &Template,
    stack: &str,
    parameters: &HashMap<String, String>,
    resources: &HashMap<String, Physical>,
    id: &str,
) -> Result<Value> {
    let resolver = Resolver::new(template, stack, parameters, resources)?;
    resolver.resolve(&template.resource(id)?["Properties"])
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

// ---------------------------------------------------------------- DynamoDB

fn key_schema(value: &Value) -> Result<Vec<dynamodb::types::KeySchemaElement>> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            Ok(dynamodb::types::KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                .key_type(dynamodb::types::KeyType::from(
                    k["KeyType"].as_str().unwrap_or_default(),
                ))
                .build()?)
        })
        .collect()
}

async fn create_table(client: &dynamodb::Client, name: &str, props: &Value) -> Result<Physical> {
    let attributes = props["AttributeDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            Ok(dynamodb::types::AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(dynamodb::types::ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap_or_default(),
                ))
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let indexes = props["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let projection = dynamodb::types::Projection::builder()
                .projection_type(dynamodb::types::ProjectionType::from(
                    i["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
                ))
                .set_non_key_attributes(i["Projection"].get("NonKeyAttributes").map(str_list))
                .build();
            Ok(dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(i["IndexName"].as_str().unwrap_or_default())
                .set_key_schema(Some(key_schema(&i["KeySchema"])?))
                .projection(projection)
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let created = client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&props["KeySchema"])?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(dynamodb::types::BillingMode::from(
            props["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST"),
        ))
        .deletion_protection_enabled(
            props["DeletionProtectionEnabled"]
                .as_bool()
                .unwrap_or(false),
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => {
            return Err(dynamodb::error::DisplayErrorContext(e).to_string())
                .map_err(|e| anyhow!(e));
        }
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification")
        && ttl["Enabled"].as_bool() == Some(true)
    {
        let spec = dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(ttl["AttributeName"].as_str().unwrap_or_default())
            .enabled(true)
            .build()?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?;
    }
    if props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool()
        == Some(true)
    {
        let spec = dynamodb::types::PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()?;
        client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?;
    }
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?
        .table
        .ok_or_else(|| anyhow!("table {name} not described"))?;
    Ok(Physical {
        reference: name.to_owned(),
        attributes: HashMap::from([("Arn".to_owned(), table.table_arn.unwrap_or_default())]),
    })
}

// ---------------------------------------------------------------- SQS

async fn create_queue(client: &sqs::Client, name: &str) -> Result<Physical> {
    let url = match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url.unwrap_or_default(),
        Err(_) => client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| anyhow!(sqs::error::DisplayErrorContext(e).to_string()))?
            .queue_url
            .unwrap_or_default(),
    };
    let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}");
    Ok(Physical {
        reference: url.clone(),
        attributes: HashMap::from([
            ("Arn".to_owned(), arn),
            ("QueueName".to_owned(), name.to_owned()),
            ("QueueUrl".to_owned(), url),
        ]),
    })
}

async fn configure_queue(
    client: &sqs::Client,
    queue: &Physical,
    props: &Value,
    options: &Options,
) -> Result<()> {
    use sqs::types::QueueAttributeName as A;
    let mut attributes = HashMap::new();
    if let Some(v) = options
        .visibility_timeout
        .map(|v| v.to_string())
        .or_else(|| text(&props["VisibilityTimeout"]))
    {
        attributes.insert(A::VisibilityTimeout, v);
    }
    if let Some(v) = text(&props["MessageRetentionPeriod"]) {
        attributes.insert(A::MessageRetentionPeriod, v);
    }
    if let Some(policy) = props.get("RedrivePolicy") {
        let policy = serde_json::json!({
            "deadLetterTargetArn": policy["deadLetterTargetArn"],
            "maxReceiveCount": text(&policy["maxReceiveCount"]).unwrap_or_default().parse::<u32>()?,
        });
        attributes.insert(A::RedrivePolicy, policy.to_string());
    }
    if attributes.is_empty() {
        return Ok(());
    }
    client
        .set_queue_attributes()
        .queue_url(&queue.reference)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| anyhow!(sqs::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

// ---------------------------------------------------------------- Secrets Manager

/// A value shaped by the template's `GenerateSecretString`, with a random key.
fn generate_secret(props: &Value) -> Result<String> {
    let spec = &props["GenerateSecretString"];
    let random = crate::random_token(32);
    match (
        spec["SecretStringTemplate"].as_str(),
        spec["GenerateStringKey"].as_str(),
    ) {
        (Some(template), Some(key)) => {
            let mut value: serde_json::Map<String, Value> = serde_json::from_str(template)?;
            value.insert(key.to_owned(), Value::String(random));
            Ok(Value::Object(value).to_string())
        }
        _ => Ok(random),
    }
}

async fn create_secret(
    client: &secretsmanager::Client,
    name: &str,
    props: &Value,
    value: &str,
) -> Result<Physical> {
    let arn = match client
        .create_secret()
        .name(name)
        .set_description(props["Description"].as_str().map(str::to_owned))
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => out.arn.unwrap_or_default(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            // Re-provisioning a running stack puts the value asked for now.
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| anyhow!(secretsmanager::error::DisplayErrorContext(e).to_string()))?
                .arn
                .unwrap_or_default()
        }
        Err(e) => bail!(secretsmanager::error::DisplayErrorContext(e).to_string()),
    };
    Ok(Physical {
        reference: arn.clone(),
        attributes: HashMap::from([("Id".to_owned(), arn)]),
    })
}

// ---------------------------------------------------------------- Cognito

async fn create_user_pool(client: &cognito::Client, name: &str, props: &Value) -> Result<Physical> {
    use cognito::types::{
        AdminCreateUserConfigType, AttributeDataType, PasswordPolicyType, SchemaAttributeType,
        StringAttributeConstraintsType, UserPoolMfaType, UserPoolPolicyType,
    };
    let existing = client
        .list_user_pools()
        .max_results(60)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?
        .user_pools
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| p.id);
    let id = match existing {
        Some(id) => id,
        None => {
            let password = &props["Policies"]["PasswordPolicy"];
            let policy = PasswordPolicyType::builder()
                .set_minimum_length(password["MinimumLength"].as_i64().map(|n| n as i32))
                .set_require_lowercase(password["RequireLowercase"].as_bool())
                .set_require_uppercase(password["RequireUppercase"].as_bool())
                .set_require_numbers(password["RequireNumbers"].as_bool())
                .set_require_symbols(password["RequireSymbols"].as_bool())
                .build();
            let schema = props["Schema"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let constraints = &a["StringAttributeConstraints"];
                    SchemaAttributeType::builder()
                        .name(a["Name"].as_str().unwrap_or_default())
                        .attribute_data_type(AttributeDataType::from(
                            a["AttributeDataType"].as_str().unwrap_or("String"),
                        ))
                        .set_mutable(a["Mutable"].as_bool())
                        .set_string_attribute_constraints(constraints.is_object().then(|| {
                            StringAttributeConstraintsType::builder()
                                .set_min_length(text(&constraints["MinLength"]))
                                .set_max_length(text(&constraints["MaxLength"]))
                                .build()
                        }))
                        .build()
                })
                .collect();
            client
                .create_user_pool()
                .pool_name(name)
                .policies(
                    UserPoolPolicyType::builder()
                        .password_policy(policy)
                        .build(),
                )
                .set_schema(Some(schema))
                .admin_create_user_config(
                    AdminCreateUserConfigType::builder()
                        .set_allow_admin_create_user_only(
                            props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"].as_bool(),
                        )
                        .build(),
                )
                .set_mfa_configuration(
                    props["MfaConfiguration"]
                        .as_str()
                        .map(UserPoolMfaType::from),
                )
                .send()
                .await
                .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?
                .user_pool
                .and_then(|p| p.id)
                .ok_or_else(|| anyhow!("user pool created without an id"))?
        }
    };
    let provider_name = format!("cognito-idp.{REGION}.amazonaws.com/{id}");
    Ok(Physical {
        reference: id.clone(),
        attributes: HashMap::from([
            (
                "Arn".to_owned(),
                format!("arn:aws:cognito-idp:{REGION}:{ACCOUNT_ID}:userpool/{id}"),
            ),
            ("ProviderName".to_owned(), provider_name.clone()),
            ("ProviderURL".to_owned(), format!("https://{provider_name}")),
            ("UserPoolId".to_owned(), id),
        ]),
    })
}

async fn create_user_pool_client(client: &cognito::Client, props: &Value) -> Result<Physical> {
    use cognito::types::{ExplicitAuthFlowsType, PreventUserExistenceErrorTypes};
    let pool = props["UserPoolId"].as_str().unwrap_or_default();
    let name = props["ClientName"].as_str().unwrap_or("client");
    let existing = client
        .list_user_pool_clients()
        .user_pool_id(pool)
        .max_results(60)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?
        .user_pool_clients
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.client_name.as_deref() == Some(name))
        .and_then(|c| c.client_id);
    let id = match existing {
        Some(id) => id,
        None => client
            .create_user_pool_client()
            .user_pool_id(pool)
            .client_name(name)
            .generate_secret(props["GenerateSecret"].as_bool().unwrap_or(false))
            .set_explicit_auth_flows(Some(
                str_list(&props["ExplicitAuthFlows"])
                    .iter()
                    .map(|f| ExplicitAuthFlowsType::from(f.as_str()))
                    .collect(),
            ))
            .set_prevent_user_existence_errors(
                props["PreventUserExistenceErrors"]
                    .as_str()
                    .map(PreventUserExistenceErrorTypes::from),
            )
            .set_read_attributes(props.get("ReadAttributes").map(str_list))
            .set_write_attributes(props.get("WriteAttributes").map(str_list))
            .send()
            .await
            .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?
            .user_pool_client
            .and_then(|c| c.client_id)
            .ok_or_else(|| anyhow!("client created without an id"))?,
    };
    Ok(Physical {
        reference: id.clone(),
        attributes: HashMap::from([("ClientId".to_owned(), id)]),
    })
}

async fn create_resource_server(client: &cognito::Client, props: &Value) -> Result<Physical> {
    use cognito::types::ResourceServerScopeType;
    let pool = props["UserPoolId"].as_str().unwrap_or_default();
    let identifier = props["Identifier"]
        .as_str()
        .ok_or_else(|| anyhow!("resource server without Identifier"))?;
    let exists = client
        .describe_resource_server()
        .user_pool_id(pool)
        .identifier(identifier)
        .send()
        .await
        .is_ok();
    if !exists {
        let scopes = props["Scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|scope| {
                ResourceServerScopeType::builder()
                    .scope_name(scope["ScopeName"].as_str().unwrap_or_default())
                    .scope_description(scope["ScopeDescription"].as_str().unwrap_or_default())
                    .build()
                    .map_err(|e| anyhow!(e))
            })
            .collect::<Result<Vec<_>>>()?;
        client
            .create_resource_server()
            .user_pool_id(pool)
            .identifier(identifier)
            .name(props["Name"].as_str().unwrap_or(identifier))
            .set_scopes(Some(scopes))
            .send()
            .await
            .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?;
    }
    Ok(Physical {
        reference: format!("{pool}|{identifier}"),
        attributes: HashMap::new(),
    })
}

async fn create_domain(client: &cognito::Client, domain: &str, props: &Value) -> Result<Physical> {
    let pool = props["UserPoolId"].as_str().unwrap_or_default();
    let existing = client
        .describe_user_pool_domain()
        .domain(domain)
        .send()
        .await
        .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?
        .domain_description
        .and_then(|d| d.user_pool_id);
    if existing.is_none() {
        client
            .create_user_pool_domain()
            .user_pool_id(pool)
            .domain(domain)
            .send()
            .await
            .map_err(|e| anyhow!(cognito::error::DisplayErrorContext(e).to_string()))?;
    }
    Ok(Physical {
        reference: domain.to_owned(),
        attributes: HashMap::new(),
    })
}

async fn create_group(client: &cognito::Client, props: &Value) -> Result<Physical> {
    let pool = props["UserPoolId"].as_str().unwrap_or_default();
    let name = props["GroupName"]
        .as_str()
        .ok_or_else(|| anyhow!("group without GroupName"))?;
    let created = client
        .create_group()
        .user_pool_id(pool)
        .group_name(name)
        .set_description(props["Description"].as_str().map(str::to_owned))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_group_exists_exception()) => {}
        Err(e) => bail!(cognito::error::DisplayErrorContext(e).to_string()),
    }
    Ok(Physical {
        reference: name.to_owned(),
        attributes: HashMap::new(),
    })
}
