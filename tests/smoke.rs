//! The pipeline's smoke test (`infra/smoke.py`, run after every deploy) against the local
//! cloud, so the script a deploy relies on has run before any deploy: it passes on a
//! healthy stack and fails, saying why, on the wrong one.

use herald_tests::TestCloud;
use herald_tests::herald_local::project_root;

async fn smoke(test: &TestCloud, environment: &str, client: &(String, String)) -> (bool, String) {
    let output = tokio::process::Command::new("python3")
        .arg(project_root().join("infra/smoke.py"))
        .args(["--api-url", &test.cloud.gateway_url])
        .args(["--token-url", &test.cloud.api_config.auth.token_url])
        .args(["--environment", environment, "--wait-seconds", "60"])
        .env("HERALD_SMOKE_CLIENT_ID", &client.0)
        .env("HERALD_SMOKE_CLIENT_SECRET", &client.1)
        .env("HERALD_SMOKE_TO", "+14155550100")
        .env("HERALD_EXPECT_COMMIT", herald::version::COMMIT)
        .output()
        .await
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn the_smoke_test_passes_on_a_healthy_stack_and_names_what_is_wrong_otherwise() {
    let test = TestCloud::start("smoke").await;
    let admin = test.token("acme", "admin").await;
    let client = test
        .machine_client(&admin, &["messages:send", "messages:read"])
        .await;

    let (passed, output) = smoke(&test, "dev", &client).await;
    assert!(passed, "{output}");
    assert!(
        output.contains("is sent") || output.contains("is delivered"),
        "{output}"
    );
    assert_eq!(test.ledger().len(), 1, "one message reached the provider");

    let (passed, output) = smoke(&test, "prod", &client).await;
    assert!(!passed, "{output}");
    assert!(output.contains("not prod"), "{output}");
}
