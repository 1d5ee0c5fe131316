//! Every table, index, queue, redrive policy, secret and identity resource declared in
//! template.yaml exists in the local cloud with the same definition, and every AWS
//! call the functions make is one their template policy allows.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::KeySchemaElement;
use aws_sdk_sqs::types::QueueAttributeName;
use herald_tests::TestCloud;
use herald_tests::herald_local::template::Template;
use serde_json::Value;

fn template() -> Template {
    Template::load(&herald_tests::herald_local::project_root().join("template.yaml")).unwrap()
}

/// `(name, type)` pairs of a declared list such as `KeySchema` or `AttributeDefinitions`.
fn declared_pairs(value: &Value, name: &str, kind: &str) -> BTreeSet<(String, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item[name].as_str().unwrap().to_owned(),
                item[kind].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn key_schema(value: &Value) -> BTreeSet<(String, String)> {
    declared_pairs(value, "AttributeName", "KeyType")
}

fn actual_keys(schema: &[KeySchemaElement]) -> BTreeSet<(String, String)> {
    schema
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tables_match_the_template() {
    let test = TestCloud::start("prov-tables").await;
    let dynamodb = &test.cloud.clients.dynamodb;
    let template = template();
    let tables: Vec<_> = template.resources_of_type("AWS::DynamoDB::Table").collect();
    assert!(!tables.is_empty());
    for (id, _) in tables {
        let declared = &test.cloud.stack.properties(id).unwrap();
        let name = test.cloud.stack.reference(id).unwrap();
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();

        let keys = actual_keys(table.key_schema());
        assert_eq!(keys, key_schema(&declared["KeySchema"]), "{id} key schema");

        let attributes: BTreeSet<_> = table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        let declared_attributes = declared_pairs(
            &declared["AttributeDefinitions"],
            "AttributeName",
            "AttributeType",
        );
        assert_eq!(attributes, declared_attributes, "{id} attributes");

        let indexes: HashMap<_, _> = table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let keys = actual_keys(i.key_schema());
                let projection = i
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned());
                (i.index_name().unwrap().to_owned(), (keys, projection))
            })
            .collect();
        let declared_indexes = declared["GlobalSecondaryIndexes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(indexes.len(), declared_indexes.len(), "{id} index count");
        for index in declared_indexes {
            let name = index["IndexName"].as_str().unwrap();
            let (keys, projection) = indexes
                .get(name)
                .unwrap_or_else(|| panic!("{id} lacks index {name}"));
            assert_eq!(keys, &key_schema(&index["KeySchema"]), "{id}.{name} keys");
            assert_eq!(
                projection.as_deref(),
                index["Projection"]["ProjectionType"].as_str(),
                "{id}.{name} projection"
            );
        }

        let ttl = dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(
            ttl.attribute_name(),
            declared["TimeToLiveSpecification"]["AttributeName"].as_str(),
            "{id} TTL attribute"
        );
        assert_eq!(
            ttl.time_to_live_status().map(|s| s.as_str()),
            Some("ENABLED")
        );

        let backups = dynamodb
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let pitr = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str().to_owned());
        assert_eq!(pitr.as_deref(), Some("ENABLED"), "{id} PITR");
        assert_eq!(
            table.deletion_protection_enabled(),
            declared["DeletionProtectionEnabled"].as_bool(),
            "{id} deletion protection"
        );
    }
}

#[tokio::test]
async fn queues_and_redrive_policies_match_the_template() {
    let test = TestCloud::start("prov-queues").await;
    let sqs = &test.cloud.clients.sqs;
    let template = template();
    let queues: Vec<_> = template.resources_of_type("AWS::SQS::Queue").collect();
    assert!(queues.len() >= 2);
    for (id, _) in queues {
        let declared = &test.cloud.stack.properties(id).unwrap();
        let url = test.cloud.stack.reference(id).unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        for (name, attribute) in [
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
        ] {
            if let Some(expected) = declared.get(name) {
                assert_eq!(
                    attributes.get(&attribute).map(String::as_str),
                    Some(expected.to_string().as_str()),
                    "{id} {name}"
                );
            }
        }
        match declared.get("RedrivePolicy") {
            Some(policy) => {
                let actual: Value =
                    serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
                // Provider events and tenants' webhook deliveries have their own dead
                // letters (redriven to their own queue).
                let dlq_id = match id.as_str() {
                    "EventsQueue" => "EventsDLQ",
                    "DeliveriesQueue" => "DeliveriesDLQ",
                    _ => "SendDLQ",
                };
                let dlq = &test.cloud.stack.resources[dlq_id].attributes["Arn"];
                assert_eq!(
                    actual["deadLetterTargetArn"], policy["deadLetterTargetArn"],
                    "{id} DLQ"
                );
                assert_eq!(
                    policy["deadLetterTargetArn"],
                    dlq.as_str(),
                    "{id} redrives to {dlq_id}"
                );
                assert_eq!(
                    actual["maxReceiveCount"].to_string(),
                    policy["maxReceiveCount"].to_string(),
                    "{id} maxReceiveCount"
                );
            }
            None => assert!(
                !attributes.contains_key(&QueueAttributeName::RedrivePolicy),
                "{id} has no redrive policy"
            ),
        }
    }
}

#[tokio::test]
async fn secrets_and_identity_match_the_template() {
    let test = TestCloud::start("prov-identity").await;
    let template = template();

    for (id, _) in template.resources_of_type("AWS::SecretsManager::Secret") {
        let arn = test.cloud.stack.reference(id).unwrap();
        let value = test
            .cloud
            .clients
            .secrets
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .unwrap();
        assert!(
            value.secret_string().is_some_and(|s| !s.is_empty()),
            "{id} has a value"
        );
    }
    // The provider secret holds credentials the sandbox accepts, generated at start-up.
    let provider = test.cloud.stack.reference("ProviderSecret").unwrap();
    let value = test
        .cloud
        .clients
        .secrets
        .get_secret_value()
        .secret_id(provider)
        .send()
        .await
        .unwrap();
    let credentials: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(
        credentials["account_sid"],
        test.cloud.credentials.account_sid.as_str()
    );

    let cognito = &test.cloud.clients.cognito;
    let pool = test.pool();
    let groups: BTreeSet<String> = cognito
        .list_groups()
        .user_pool_id(pool)
        .send()
        .await
        .unwrap()
        .groups()
        .iter()
        .filter_map(|g| g.group_name().map(str::to_owned))
        .collect();
    let declared_groups: BTreeSet<String> = template
        .resources_of_type("AWS::Cognito::UserPoolGroup")
        .map(|(_, g)| g["Properties"]["GroupName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(groups, declared_groups);
    assert_eq!(
        declared_groups,
        ["admin", "operator", "sender", "viewer"]
            .map(String::from)
            .into()
    );

    let described = cognito
        .describe_user_pool()
        .user_pool_id(pool)
        .send()
        .await
        .unwrap();
    let attributes: Vec<_> = described
        .user_pool()
        .unwrap()
        .schema_attributes()
        .iter()
        .filter_map(|a| a.name())
        .collect();
    assert!(
        attributes.contains(&"custom:tenant_id"),
        "pool schema: {attributes:?}"
    );

    let client = cognito
        .describe_user_pool_client()
        .user_pool_id(pool)
        .client_id(test.client_id())
        .send()
        .await
        .unwrap();
    let flows: BTreeSet<String> = client
        .user_pool_client()
        .unwrap()
        .explicit_auth_flows()
        .iter()
        .map(|f| f.as_str().to_owned())
        .collect();
    let declared_flows: BTreeSet<String> =
        test.cloud.stack.properties("UserPoolClient").unwrap()["ExplicitAuthFlows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
    assert_eq!(flows, declared_flows);
    assert!(
        declared_flows.contains("ALLOW_USER_PASSWORD_AUTH"),
        "the local (dev) stack signs users in with passwords"
    );
}

#[tokio::test]
async fn the_api_routes_are_the_templates_and_each_has_a_policy() {
    let test = TestCloud::start("prov-routes").await;
    let events = test.cloud.stack.http_routes("ApiFunction").unwrap();
    let template_routes: BTreeSet<(String, String)> = events
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let router_routes: BTreeSet<(String, String)> = herald_api::routes().into_iter().collect();
    assert_eq!(
        template_routes, router_routes,
        "template.yaml's HttpApi events and the api router disagree"
    );
    for (method, path) in &router_routes {
        assert!(
            herald::auth::route_access(method, path).is_some(),
            "{method} {path} has no policy"
        );
    }
}

#[test]
fn every_template_resource_type_is_provisioned_or_not_emulated_with_a_reason() {
    use herald_tests::herald_local::provision::{Local, local_treatment};
    let template = template();
    let unknown: Vec<String> = template
        .resources()
        .filter_map(|(id, resource)| {
            let kind = resource["Type"].as_str().unwrap_or_default();
            match local_treatment(kind) {
                None => Some(format!("{id} ({kind})")),
                Some(Local::NotEmulated(reason)) if reason.trim().is_empty() => {
                    Some(format!("{id} ({kind}, not emulated without a reason)"))
                }
                Some(_) => None,
            }
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "neither provisioned nor listed as not emulated in provision::RESOURCE_TYPES: {unknown:?}"
    );
}

/// A throttle keyed by a route the API does not have would be ignored by the
/// template's tests and refused by API Gateway at deploy time.
#[test]
fn each_route_throttle_names_a_route_of_the_api() {
    let template = template();
    let routes: BTreeSet<String> =
        template.resource("ApiFunction").unwrap()["Properties"]["Events"]
            .as_object()
            .unwrap()
            .values()
            .filter(|event| event["Type"] == "HttpApi")
            .map(|event| {
                format!(
                    "{} {}",
                    event["Properties"]["Method"]
                        .as_str()
                        .unwrap()
                        .to_uppercase(),
                    event["Properties"]["Path"].as_str().unwrap()
                )
            })
            .collect();
    let throttled: Vec<&String> =
        template.resource("HttpApi").unwrap()["Properties"]["RouteSettings"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
    assert!(!throttled.is_empty());
    for route in throttled {
        assert!(
            routes.contains(route),
            "RouteSettings names {route}, which is no route: {routes:?}"
        );
    }
}

/// Every AWS operation the functions made while a batch was sent, its receipts
/// applied, its messages listed and the redriver ran is one their template policies
/// allow (the outbound, backup-check and rotator functions are not exercised here). The
/// emulator does not enforce IAM: without this, a permission missing from
/// template.yaml would first show in AWS (as the events function's `BatchGetItem`
/// nearly did).
#[tokio::test]
async fn every_call_a_function_makes_is_allowed_by_its_template_policy() {
    let test = TestCloud::start_with("prov-iam", |o| {
        o.receipts = true;
        // An early receipt comes back in 5 s, not the queue's 60.
        herald_tests::quick_redelivery(o, 5);
    })
    .await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({ "to": herald_tests::number(i) }))
        .collect();
    let batch = test.send_batch(&token, "Hi", &recipients).await;
    for i in 0..3 {
        test.wait_for_status(&token, &format!("{batch}.{i}"), "delivered")
            .await;
    }
    let listing = test
        .get(&format!("/v1/batches/{batch}/messages"), &token)
        .await;
    assert_eq!(listing.status, 200, "{:?}", listing.body);
    test.cloud.scheduled_run().await.unwrap();

    let checked = test.assert_calls_allowed_by_template();
    // The run went through each of these functions, and read as the events function does.
    for caller in ["api", "webhooks", "sender", "events", "redriver"] {
        assert!(
            checked.iter().any(|(c, _)| c == caller),
            "{caller} made no call: {checked:?}"
        );
    }
    assert!(checked.contains(&("events".to_owned(), "dynamodb:BatchGetItem".to_owned())));
}
