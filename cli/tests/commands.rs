//! The built `herald` command against the local cloud: signing in from a stack
//! description, a 25,000-row CSV sent as three batches exactly once however often the
//! command runs, bad rows and bad files refused with their own exit codes and nothing
//! sent, an expired token renewed, a machine client's login, and the recipients the
//! sandbox rejected exported. Two stacks in all: one with its queues paused (sending
//! would add nothing to what the intake proves), one sending with receipts.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use herald_local::seed;
use herald_tests::{TEST_LIMITS, TestCloud, eventually};
use serde_json::{Value, json};

struct Herald {
    config_dir: PathBuf,
    work: PathBuf,
}

impl Herald {
    fn new(test: &str) -> Self {
        let work =
            std::env::temp_dir().join(format!("herald-cli-{test}-{}", herald_local::random_hex(8)));
        std::fs::create_dir_all(&work).expect("a work directory");
        Self {
            config_dir: work.join("config"),
            work,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[]).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_CONFIG_DIR", &self.config_dir)
            .env_remove("HERALD_PROFILE")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("herald runs")
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.work.join(name);
        std::fs::write(&path, bytes).expect("file written");
        path.to_str().expect("utf-8 path").to_owned()
    }

    /// Signs `role` of `tenant` in through `herald login --local`, from a stack
    /// description written as `make dev` writes it.
    async fn log_in_locally(&self, cloud: &TestCloud, tenant: &str, role: &str) {
        self.log_in_locally_as("default", cloud, tenant, role).await
    }

    async fn log_in_locally_as(&self, profile: &str, cloud: &TestCloud, tenant: &str, role: &str) {
        cloud.register_tenant(tenant, TEST_LIMITS).await;
        let cognito = &cloud.cloud.clients.cognito;
        let user = seed::user(cognito, cloud.pool(), tenant, role)
            .await
            .expect("user");
        seed::record_user(
            &cloud.cloud.sender.store,
            cognito,
            cloud.pool(),
            tenant,
            role,
            &user,
        )
        .await
        .expect("user recorded");
        let description = json!({
            "api": cloud.cloud.gateway_url, "emulator": cloud.cloud.emulator,
            "client_id": cloud.client_id(),
            "tenants": {tenant: {role: {"username": user.username, "password": user.password}}},
        });
        let local = self.file("local.json", description.to_string().as_bytes());
        let out = self
            .run(&[
                "login",
                "--profile",
                profile,
                "--local",
                "--local-file",
                &local,
                "--tenant",
                tenant,
                "--role",
                role,
            ])
            .await;
        assert_success(&out);
    }

    fn tokens(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tokens_path()).expect("tokens cached"))
            .expect("tokens JSON")
    }

    fn tokens_path(&self) -> PathBuf {
        self.config_dir.join("tokens").join("default.json")
    }
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "herald failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

#[tokio::test]
async fn a_csv_is_sent_once_in_parts_and_bad_files_send_nothing() {
    let cloud = TestCloud::start_with("cli-csv", |o| o.run_queues = false).await;
    let herald = Herald::new("csv");
    herald.log_in_locally(&cloud, "acme", "sender").await;
    assert_eq!(
        mode(&herald.tokens_path()),
        0o600,
        "the token cache is the owner's only"
    );

    // 25,000 rows, numbers repeating every 10,000 (a part holds each once): three batches.
    let mut rows = b"to,name\n".to_vec();
    for i in 0..25_000 {
        let number = format!("+1415{:07}", 5_500_000 + (i % 10_000));
        rows.extend_from_slice(format!("{number},n{i}\n").as_bytes());
    }
    let big = herald.file("big.csv", &rows);
    let template = "Hi {{name}}";
    let first = herald
        .run(&["batch", "send", &big, "--template", template])
        .await;
    assert_success(&first);
    let ids = stdout_lines(&first);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let token = cloud.token("acme", "sender").await;
    let mut totals = Vec::new();
    for id in &ids {
        totals.push(cloud.get(&format!("/v1/batches/{id}"), &token).await.body["total"].clone());
    }
    assert_eq!(totals, [json!(10_000), json!(10_000), json!(5_000)]);
    let used = || async { cloud.get("/v1/usage", &token).await.body["sends"]["used"].clone() };
    assert_eq!(used().await, json!(25_000));

    // Run again (as after an interruption): the same batches, nothing new accepted.
    let again = herald
        .run(&["batch", "send", &big, "--template", template])
        .await;
    assert_success(&again);
    assert_eq!(stdout_lines(&again), ids);
    assert_eq!(used().await, json!(25_000));

    // Three bad rows: each named by its line, nothing sent.
    let bad = herald.file(
        "bad.csv",
        b"to,name\n+14155550100,a\nnot-a-number,b\n+14155550101,c\n+1415,d\n+14155550102,e\n+14155550100,f\n",
    );
    let refused = herald
        .run(&["batch", "send", &bad, "--template", template])
        .await;
    assert_eq!(refused.status.code(), Some(10));
    let said = String::from_utf8_lossy(&refused.stderr);
    for line in ["line 3:", "line 5:", "line 7:"] {
        assert!(said.contains(line), "{line} missing from {said}");
    }
    assert!(
        !said.contains("line 2:") && !said.contains("line 4:") && !said.contains("line 6:"),
        "{said}"
    );
    assert_eq!(used().await, json!(25_000));

    // --skip-bad sends the three good rows only.
    let skipped = herald
        .run(&["batch", "send", &bad, "--template", template, "--skip-bad"])
        .await;
    assert_success(&skipped);
    let skipped_id = stdout_lines(&skipped).pop().expect("a batch id");
    let batch = cloud
        .get(&format!("/v1/batches/{skipped_id}"), &token)
        .await;
    assert_eq!(batch.body["total"], 3);

    // A BOM, CRLF line endings and a quoted comma are read as a spreadsheet writes them.
    let excel = herald.file(
        "excel.csv",
        b"\xEF\xBB\xBFto,name\r\n+14155550110,\"Smith, Ada\"\r\n",
    );
    let sent = herald
        .run(&["batch", "send", &excel, "--template", template])
        .await;
    assert_success(&sent);
    let id = stdout_lines(&sent).pop().expect("a batch id");
    let listed = cloud
        .get(&format!("/v1/batches/{id}/messages"), &token)
        .await;
    assert_eq!(listed.body["messages"][0]["to"], "+14155550110");

    // Bad files: each its own exit code and message, nothing sent.
    let before = used().await;
    let cases: [(&str, &[u8], &str, i32, &str); 5] = [
        ("empty.csv", b"", template, 11, "empty"),
        ("header.csv", b"to,name\n", template, 11, "no rows"),
        (
            "nocolumn.csv",
            b"phone,name\n+14155550100,a\n",
            template,
            12,
            "\"to\" column",
        ),
        (
            "novariable.csv",
            b"to,name\n+14155550100,a\n",
            "Hi {{name}}, code {{code}}",
            13,
            "{{code}}",
        ),
        (
            "ragged.csv",
            b"to,name\n+14155550100,Smith, Ada\n",
            template,
            14,
            "line 2",
        ),
    ];
    for (name, bytes, template, code, says) in cases {
        let path = herald.file(name, bytes);
        let out = herald
            .run(&["batch", "send", &path, "--template", template])
            .await;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {said}");
        assert!(
            said.contains(says),
            "{name}: {said:?} does not say {says:?}"
        );
    }
    assert_eq!(used().await, before);

    // A refused request prints the problem's title and each field error on its own line.
    let refused = herald
        .run(&["send", "--to", "not-a-number", "--body", "hi"])
        .await;
    assert_eq!(refused.status.code(), Some(5));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("Invalid request") && said.contains("\n  /to: "),
        "{said}"
    );

    // An admin's profile beside it: the suppression list and machine clients.
    herald
        .log_in_locally_as("admin", &cloud, "acme", "admin")
        .await;
    let admin = |args: &'static [&'static str]| {
        let herald = &herald;
        async move { herald.run(&[&["--profile", "admin"], args].concat()).await }
    };
    assert_success(&admin(&["suppressions", "add", "+14155550199", "--note", "asked"]).await);
    let listed = admin(&["suppressions", "list"]).await;
    assert_success(&listed);
    let lines = stdout_lines(&listed);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("+14155550199"), "{lines:?}");
    assert_success(&admin(&["suppressions", "remove", "+14155550199"]).await);
    assert!(stdout_lines(&admin(&["suppressions", "list"]).await).is_empty());
    assert_eq!(
        admin(&["suppressions", "remove", "+14155550199"])
            .await
            .status
            .code(),
        Some(5)
    );
    let created = admin(&["clients", "create", "reports", "--scope", "messages:read"]).await;
    assert_success(&created);
    let client: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    assert!(client["client_secret"].is_string());
    let clients = admin(&["clients", "list"]).await;
    assert_eq!(stdout_lines(&clients).len(), 1);

    // An expired token is renewed with the refresh token, and cached again (0600).
    let mut cached = herald.tokens();
    cached["bearer"] = json!("expired-and-no-longer-valid");
    cached["expires_at"] = json!(0);
    std::fs::write(herald.tokens_path(), cached.to_string()).expect("cache rewritten");
    let usage = herald.run(&["usage"]).await;
    assert_success(&usage);
    assert!(String::from_utf8_lossy(&usage.stdout).contains("acme"));
    let renewed = herald.tokens();
    assert_ne!(renewed["bearer"], cached["bearer"]);
    assert!(renewed["expires_at"].as_u64().expect("expiry") > 0);
    assert_eq!(mode(&herald.tokens_path()), 0o600);

    cloud.cloud.stop().await;
    let _ = std::fs::remove_dir_all(&herald.work);
}

#[tokio::test]
async fn a_machine_client_sends_and_the_rejected_recipients_are_exported() {
    let cloud = TestCloud::start_with("cli-failures", |o| o.receipts = true).await;
    let admin = cloud.token("acme", "admin").await;
    cloud.allow_magic_numbers("acme").await;
    let (client_id, secret) = cloud
        .machine_client(&admin, &["messages:send", "messages:read"])
        .await;
    let herald = Herald::new("failures");
    let token_url = cloud.cloud.api_config.auth.token_url.clone();
    let login = herald
        .run_with(
            &[
                "login",
                "--api",
                &cloud.cloud.gateway_url,
                "--client-id",
                &client_id,
                "--token-url",
                &token_url,
            ],
            &[("HERALD_CLIENT_SECRET", &secret)],
        )
        .await;
    assert_success(&login);
    assert_eq!(mode(&herald.tokens_path()), 0o600);

    let csv = herald.file(
        "campaign.csv",
        b"to,name\n+14155550120,a\n+15005550001,b\n+14155550121,c\n+15005550009,d\n",
    );
    let sent = herald
        .run(&["batch", "send", &csv, "--template", "Hi {{name}}"])
        .await;
    assert_success(&sent);
    let id = stdout_lines(&sent).pop().expect("a batch id");

    // Watched to the end as JSON lines; it finished with recipients not reached.
    let watched = herald
        .run(&["batch", "watch", &id, "--json", "--every", "0.5"])
        .await;
    assert_eq!(
        watched.status.code(),
        Some(16),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let last: Value =
        serde_json::from_str(stdout_lines(&watched).last().expect("a line")).expect("JSON");
    assert_eq!(
        (last["status"].clone(), last["done"].clone()),
        (json!("completed"), json!(4))
    );

    // The export holds exactly what the sandbox rejected, once the receipt is in.
    let out = herald.work.join("failed.csv");
    let out_path = out.to_str().expect("utf-8");
    let exported = eventually("both rejections exported", || async {
        assert_success(
            &herald
                .run(&["batch", "failures", &id, "--csv", out_path])
                .await,
        );
        let text = std::fs::read_to_string(&out).expect("export written");
        (text.lines().count() == 3).then_some(text)
    })
    .await;
    let mut rows: Vec<Vec<&str>> = exported
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect())
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            vec!["+15005550001", "failed", "21211"],
            vec!["+15005550009", "undelivered", "30006"]
        ]
    );

    cloud.cloud.stop().await;
    let _ = std::fs::remove_dir_all(&herald.work);
}
