//! The API keeps the promises of its OpenAPI document, as a client generated from it
//! would find: schemathesis (pinned in `infra/requirements-contract.txt`, hooks in
//! `tests/contract/hooks.py`) sends generated requests, valid and invalid, to the local
//! gateway with a token for each kind of caller, and every check must pass: no server
//! error, every status and body as documented, valid requests accepted, invalid ones
//! refused, documented links followed.

use std::path::{Path, PathBuf};
use std::process::Command;

use herald::auth::{Access, Permission, Role, Scope, route_access};
use herald_tests::TestCloud;
use serde_json::Value;

/// Fixed so a failure replays; the examples per operation bound the run's length.
const SEED: &str = "21";
const EXAMPLES_PER_OPERATION: &str = "25";
/// For the callers whose runs mostly meet 403s: what they may do is a subset of the
/// admin's, which the full run covers.
const EXAMPLES_PER_OPERATION_NARROW: &str = "8";

/// Checks left out, with why:
/// - `unsupported_method`: API Gateway answers a method no route lists with its own
///   `404 {"message":"Not Found"}`, before Herald sees the request; the document cannot
///   change that.
/// - `use_after_free`, `ensure_resource_availability`: they expect a deleted resource
///   to be gone; Herald deletes nothing a later request could read (a revoked client
///   and a cancelled batch stay readable by design).
const EXCLUDED_CHECKS: &str = "unsupported_method,use_after_free,ensure_resource_availability";

fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("HERALD_CONTRACT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".venv-contract"));
    let st = venv.join("bin/st");
    assert!(
        st.exists(),
        "{} is missing: run `make venv-contract` (make test does)",
        st.display()
    );
    st
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the project")
        .to_owned()
}

/// Runs schemathesis over the operations `tag_filter` picks, as the holder of `token`,
/// with `examples` per operation.
fn run_schemathesis(
    test: &TestCloud,
    token: &str,
    tag_filter: &[&str],
    examples: &str,
    report: &str,
) {
    let root = project_root();
    let contract = root.join("tests/contract");
    // Its working directory takes its cache of failures found: under .herald, not
    // tests/, one per run so parallel runs do not share it.
    let report_dir = root.join(".herald/contract").join(report);
    std::fs::create_dir_all(&report_dir).expect("report directory");
    let output = Command::new(schemathesis())
        .current_dir(&report_dir)
        .arg("--config-file")
        .arg(contract.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("docs/openapi.json"))
        .args(["--url", &test.cloud.gateway_url])
        .args(["--checks", "all", "--exclude-checks", EXCLUDED_CHECKS])
        .args(["--max-examples", examples, "--seed", SEED])
        .args(["--request-timeout", "30"])
        .args(tag_filter)
        .args(["--report", "junit", "--report-dir"])
        .arg(&report_dir)
        .args(["--report-junit-path"])
        .arg(report_dir.join(format!("{report}.xml")))
        .args(["--no-color", "--output-truncate", "false"])
        .env("HERALD_CONTRACT_TOKEN", token)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &contract)
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found the API and its document disagreeing ({report}):\n{stdout}\n{stderr}"
    );
    // A run that tested nothing passes too: make sure it did not.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis tested nothing ({report}):\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_routes_keep_the_documented_contract() {
    let test = TestCloud::start("contract-tenant").await;
    // An admin may call every tenant route.
    let admin = test.token("contract", "admin").await;
    run_schemathesis(
        &test,
        &admin,
        &["--exclude-tag", "operator"],
        EXAMPLES_PER_OPERATION,
        "tenant-routes",
    );
}

/// `--include-operation-id` for each tenant operation a caller with `may` can call,
/// from the document and the policy table (what each caller may not call is refused
/// 403 on every route, as `tests/isolation.rs` walks).
fn operations_allowed(may: impl Fn(Permission) -> bool) -> Vec<String> {
    let raw = std::fs::read_to_string(project_root().join("docs/openapi.json"))
        .expect("docs/openapi.json");
    let document: Value = serde_json::from_str(&raw).expect("the document is JSON");
    let mut args = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let Some(Access::Requires(permission)) = route_access(&method.to_uppercase(), path)
            else {
                continue;
            };
            if !permission.is_platform() && may(permission) {
                args.push("--include-operation-id".to_owned());
                args.push(operation["operationId"].as_str().expect("an id").to_owned());
            }
        }
    }
    assert!(!args.is_empty(), "the caller may call something");
    args
}

/// Runs schemathesis as `role` of its own tenant over the routes the role allows.
async fn run_as(role: Role) {
    let test = TestCloud::start(&format!("contract-{role}")).await;
    let token = test.token("contract", &role.to_string()).await;
    let allowed = operations_allowed(|p| role.permissions().contains(&p));
    let filter: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let report = role.to_string();
    run_schemathesis(
        &test,
        &token,
        &filter,
        EXAMPLES_PER_OPERATION_NARROW,
        &report,
    );
}

/// What a sender may do works as documented with a sender's token.
#[tokio::test(flavor = "multi_thread")]
async fn a_sender_gets_the_documented_answers() {
    run_as(Role::Sender).await;
}

/// What a viewer may do works as documented with a viewer's token.
#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_gets_the_documented_answers() {
    run_as(Role::Viewer).await;
}

/// What a machine client's scopes allow works as documented with its client-credentials
/// token.
#[tokio::test(flavor = "multi_thread")]
async fn a_machine_client_gets_the_documented_answers() {
    let test = TestCloud::start("contract-machine").await;
    let admin = test.token("contract", "admin").await;
    let (client, secret) = test
        .machine_client(&admin, &["messages:send", "messages:read"])
        .await;
    let token = test
        .client_token(&client, &secret, None)
        .await
        .expect("a client-credentials token");
    let scopes = [Scope::MessagesSend, Scope::MessagesRead];
    let allowed = operations_allowed(|p| scopes.iter().any(|s| s.permissions().contains(&p)));
    let filter: Vec<&str> = allowed.iter().map(String::as_str).collect();
    run_schemathesis(
        &test,
        &token,
        &filter,
        EXAMPLES_PER_OPERATION_NARROW,
        "machine-client",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_routes_keep_the_documented_contract() {
    let test = TestCloud::start("contract-operator").await;
    let operator = test.token("herald", "operator").await;
    run_schemathesis(
        &test,
        &operator,
        &["--include-tag", "operator"],
        EXAMPLES_PER_OPERATION,
        "operator-routes",
    );
}
