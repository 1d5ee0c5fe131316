//! The Cognito resources: the user pool, its app client, groups, resource server
//! (machine clients' scopes) and domain. Each is looked up first, so provisioning a
//! running stack again reuses what exists.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use aws_sdk_cognitoidentityprovider as cognito;
use serde_json::Value;

use super::{str_list, text};
use crate::template::{ACCOUNT_ID, Physical, REGION};

pub(super) async fn create_user_pool(
    client: &cognito::Client,
    name: &str,
    props: &Value,
) -> Result<Physical> {
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

pub(super) async fn create_user_pool_client(
    client: &cognito::Client,
    props: &Value,
) -> Result<Physical> {
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

pub(super) async fn create_resource_server(
    client: &cognito::Client,
    props: &Value,
) -> Result<Physical> {
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

pub(super) async fn create_domain(
    client: &cognito::Client,
    domain: &str,
    props: &Value,
) -> Result<Physical> {
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

pub(super) async fn create_group(client: &cognito::Client, props: &Value) -> Result<Physical> {
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
