//! Secrets Manager secrets from `AWS::SecretsManager::Secret`, with a value given by
//! the caller or generated the way the template's `GenerateSecretString` asks.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use aws_sdk_secretsmanager as secretsmanager;
use serde_json::Value;

use crate::template::Physical;

/// A value shaped by the template's `GenerateSecretString`, with a random key.
pub(super) fn generate_secret(props: &Value) -> Result<String> {
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

pub(super) async fn create_secret(
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
