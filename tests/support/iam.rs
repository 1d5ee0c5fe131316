//! The template's IAM policies against the calls the functions made: the emulator does
//! not enforce IAM, so a permission missing from template.yaml would otherwise first
//! show in AWS.

use std::collections::BTreeSet;

use herald_local::requests::RequestCounts;
use herald_local::template::Template;
use serde_json::Value;

/// The template's functions whose role each caller of the local cloud plays (the
/// express sender runs with the sender's role; the outbound caller is both outbound
/// functions, so its calls need only be allowed to one of them). The SQS event sources
/// are Lambda's own pollers, which SAM gives the functions' roles a policy for.
fn functions_of(caller: &str) -> &'static [&'static str] {
    match caller {
        "api" => &["ApiFunction"],
        "webhooks" => &["WebhooksFunction"],
        "sender" => &["SenderFunction"],
        "events" => &["EventsFunction"],
        "redriver" => &["RedriverFunction"],
        "backup-check" => &["BackupCheckFunction"],
        "rotator" => &["RotatorFunction"],
        "outbound" => &["OutboundFanoutFunction", "OutboundDeliverFunction"],
        other => panic!("caller {other:?} is not mapped to a function of the template"),
    }
}

/// Each call in `counts` whose IAM action no policy of its caller's functions allows,
/// and the `(caller, action)` pairs checked.
pub fn disallowed(
    template: &Template,
    counts: &RequestCounts,
) -> (Vec<String>, BTreeSet<(String, String)>) {
    let mut refused = Vec::new();
    let mut checked = BTreeSet::new();
    for kind in counts.0.keys() {
        if kind.caller.contains("event source") {
            continue;
        }
        let Some(action) = iam_action(&kind.service, &kind.operation) else {
            continue;
        };
        let functions = functions_of(kind.caller);
        if !functions
            .iter()
            .any(|f| allows(&allowed_actions(template, f), &action))
        {
            refused.push(format!(
                "{} calls {action} ({} {}) but no policy of {functions:?} allows it",
                kind.caller, kind.service, kind.operation
            ));
        }
        checked.insert((kind.caller.to_owned(), action));
    }
    (refused, checked)
}

/// The IAM action that authorises an SDK operation (`service` as the SDK names it), or
/// `None` for a transaction, whose items are each authorised as their own action.
fn iam_action(service: &str, operation: &str) -> Option<String> {
    let prefix = match service {
        "DynamoDB" => "dynamodb",
        "SQS" => "sqs",
        "Secrets Manager" => "secretsmanager",
        "SNS" => "sns",
        "SESv2" => "ses",
        "Cognito Identity Provider" => "cognito-idp",
        other => panic!("no IAM prefix known for the SDK's service {other:?}: add it here"),
    };
    let action = match (prefix, operation) {
        ("dynamodb", "TransactWriteItems") => return None,
        ("dynamodb", "TransactGetItems") => "GetItem",
        ("sqs", batch) if batch.ends_with("Batch") => batch.trim_end_matches("Batch"),
        (_, operation) => operation,
    };
    Some(format!("{prefix}:{action}"))
}

/// The actions `function`'s inline policy statements allow.
fn allowed_actions(template: &Template, function: &str) -> Vec<String> {
    let resource = template.resource(function).unwrap();
    let mut actions = Vec::new();
    for policy in resource["Properties"]["Policies"].as_array().unwrap() {
        for statement in policy["Statement"].as_array().into_iter().flatten() {
            if statement["Effect"] != "Allow" {
                continue;
            }
            match &statement["Action"] {
                Value::String(action) => actions.push(action.clone()),
                Value::Array(list) => {
                    actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)))
                }
                other => panic!("{function}: an Action of {other}"),
            }
        }
    }
    actions
}

fn allows(actions: &[String], wanted: &str) -> bool {
    actions.iter().any(|action| match action.strip_suffix('*') {
        Some(prefix) => wanted.starts_with(prefix),
        None => action == wanted,
    })
}
