//! `herald-local`: runs Herald's local cloud (`up`), prints tokens for its demo users
//! (`token`), redrives its send DLQ (`redrive`), and manages the emulator the tests
//! start (`emulator`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use herald::config::RedriverConfig;
use herald_local::seed::{self, DEMO_PLANS, DEMO_ROLES, DEMO_TENANTS, PLATFORM_TENANT, User};
use herald_local::{CloudOptions, LocalCloud, emulator, project_root};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(about = "Herald's local cloud")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the emulator (unless one answers), provision the stack from
    /// template.yaml, seed the demo tenants, and run the gateway, sender and sandbox
    /// provider until Ctrl-C.
    Up {
        #[arg(long, default_value = "herald-local")]
        stack: String,
        #[arg(long, default_value = "127.0.0.1:3000")]
        gateway: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:3100")]
        sandbox: SocketAddr,
    },
    /// Print a fresh ID token for a demo user of the running stack.
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: String,
    },
    /// Run one redrive of the running stack's send DLQ into its send queue, as the
    /// scheduled redriver does in AWS, and print the report as JSON. Exits non-zero if
    /// a send or delete failed.
    Redrive {
        /// Messages to try to move this run (default: the template's RedriveMaxMessages).
        #[arg(long)]
        max_messages: Option<usize>,
        /// Messages per second (default: the template's RedriveRatePerSecond).
        #[arg(long)]
        rate: Option<f64>,
        /// Redrives after which a message is parked (default: the template's RedriveLimit).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Start or stop a background emulator.
    Emulator {
        #[command(subcommand)]
        action: EmulatorAction,
    },
}

#[derive(Subcommand)]
enum EmulatorAction {
    /// Start one in the background unless one already answers (as the tests do).
    Start,
    /// Stop the emulator the tests started, if they started one.
    Stop {
        #[arg(long)]
        started_by_tests: bool,
    },
}

/// `.herald/local.json`: how to reach the running stack. Holds local-only passwords,
/// which is why `.herald/` is never committed.
#[derive(Serialize, Deserialize)]
struct LocalDescription {
    api: String,
    sandbox_provider: String,
    emulator: String,
    region: String,
    stack: String,
    user_pool_id: String,
    client_id: String,
    issuer: String,
    /// Where machine clients get client-credentials tokens.
    token_url: String,
    jwks_url: String,
    table: String,
    send_queue_url: String,
    send_dlq_url: String,
    /// Where providers call Herald's webhooks (status callbacks, inbound texts).
    #[serde(default)]
    webhooks_base_url: String,
    #[serde(default)]
    events_queue_url: String,
    #[serde(default)]
    events_dlq_url: String,
    provider_secret_id: String,
    /// The redriver's template-derived environment, so `redrive` runs it exactly as
    /// configured for this stack.
    #[serde(default)]
    redriver_environment: BTreeMap<String, String>,
    tenants: BTreeMap<String, BTreeMap<String, User>>,
    get_a_token: String,
}

fn herald_dir() -> PathBuf {
    project_root().join(".herald")
}

#[tokio::main]
async fn main() -> Result<()> {
    herald::telemetry::init();
    match Cli::parse().command {
        Command::Up {
            stack,
            gateway,
            sandbox,
        } => up(stack, gateway, sandbox).await,
        Command::Token { tenant, role } => token(&tenant, &role).await,
        Command::Redrive {
            max_messages,
            rate,
            limit,
        } => redrive(max_messages, rate, limit).await,
        Command::Emulator {
            action: EmulatorAction::Start,
        } => emulator::ensure_for_tests(&project_root(), &emulator::endpoint()).await,
        Command::Emulator {
            action: EmulatorAction::Stop { started_by_tests },
        } => {
            if !started_by_tests {
                bail!(
                    "only --started-by-tests is supported: `make dev` stops its own emulator on Ctrl-C"
                );
            }
            emulator::stop_test_emulator(&project_root())
        }
    }
}

async fn up(stack: String, gateway: SocketAddr, sandbox: SocketAddr) -> Result<()> {
    let endpoint = emulator::endpoint();
    let root = project_root();
    let _own_emulator = if emulator::is_up(&endpoint).await {
        eprintln!("Using the emulator already answering at {endpoint}.");
        None
    } else {
        eprintln!("Starting the emulator at {endpoint} (log: .herald/emulator.log)...");
        Some(emulator::start(&root, &endpoint, &herald_dir().join("emulator.log"), false).await?)
    };

    let mut options = CloudOptions::ephemeral(&stack);
    options.gateway_addr = gateway;
    options.sandbox_addr = sandbox;
    options.run_schedules = true;
    options.keep_metrics = false;
    options.receipts = true;
    let cloud = LocalCloud::start(&endpoint, options).await?;

    let pool = cloud.stack.reference("UserPool")?.to_owned();
    let mut tenants = BTreeMap::new();
    for (tenant, plan) in DEMO_PLANS {
        seed::tenant(&cloud.sender.store, tenant, *plan, None).await?;
    }
    tenants.insert(
        PLATFORM_TENANT.to_owned(),
        BTreeMap::from([(
            "operator".to_owned(),
            seed::user(&cloud.clients.cognito, &pool, PLATFORM_TENANT, "operator").await?,
        )]),
    );
    for tenant in DEMO_TENANTS {
        let mut users = BTreeMap::new();
        for role in DEMO_ROLES {
            users.insert(
                role.to_string(),
                seed::user(&cloud.clients.cognito, &pool, tenant, role).await?,
            );
        }
        tenants.insert(tenant.to_string(), users);
    }
    let description = LocalDescription {
        api: cloud.gateway_url.clone(),
        sandbox_provider: cloud.sandbox_url.clone(),
        emulator: endpoint.clone(),
        region: herald_local::template::REGION.into(),
        stack: stack.clone(),
        jwks_url: format!("{endpoint}/{pool}/.well-known/jwks.json"),
        user_pool_id: pool,
        client_id: cloud.stack.reference("UserPoolClient")?.to_owned(),
        issuer: cloud.api_config.auth.tokens.issuer.clone(),
        token_url: cloud.api_config.auth.token_url.clone(),
        table: cloud.stack.reference("HeraldTable")?.to_owned(),
        send_queue_url: cloud.stack.reference("SendQueue")?.to_owned(),
        send_dlq_url: cloud.stack.reference("SendDLQ")?.to_owned(),
        webhooks_base_url: cloud.webhooks_base_url.clone(),
        events_queue_url: cloud.stack.reference("EventsQueue")?.to_owned(),
        events_dlq_url: cloud.stack.reference("EventsDLQ")?.to_owned(),
        provider_secret_id: cloud.stack.reference("ProviderSecret")?.to_owned(),
        redriver_environment: cloud
            .stack
            .function_env("RedriverFunction")?
            .into_iter()
            .collect(),
        tenants,
        get_a_token: "cargo run -q -p herald-local -- token --tenant acme --role sender".into(),
    };
    std::fs::create_dir_all(herald_dir())?;
    let path = herald_dir().join("local.json");
    serde_json::to_writer_pretty(File::create(&path)?, &description)?;

    let api = &cloud.gateway_url;
    let sandbox = &cloud.sandbox_url;
    println!(
        r#"
Herald is running locally.

  API gateway       {api}
  sandbox provider  {sandbox}   (ledger: GET {sandbox}/sandbox/messages, faults: POST {sandbox}/sandbox/faults)
  AWS emulator      {endpoint}
  stack description {path}
  demo tenants      acme, globex (users: admin, sender, viewer)

Send an SMS as acme's sender and read its status:

  TOKEN=$(cargo run -q -p herald-local -- token --tenant acme --role sender)
  curl -s -X POST {api}/v1/messages -H "Authorization: Bearer $TOKEN" \
       -H 'Content-Type: application/json' -H "Idempotency-Key: $(date +%s%N)" \
       -d '{{"to": "+14155550100", "body": "Hello from Herald"}}'
  curl -s {api}/v1/messages/<id from the answer> -H "Authorization: Bearer $TOKEN"

Press Ctrl-C to stop everything this command started.
"#,
        path = path.display(),
    );

    wait_for_stop().await;
    eprintln!("Stopping...");
    cloud.stop().await;
    // `_own_emulator` is killed when dropped here.
    Ok(())
}

async fn wait_for_stop() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn running_stack() -> Result<LocalDescription> {
    let path = herald_dir().join("local.json");
    Ok(serde_json::from_reader(File::open(&path).with_context(
        || format!("{} not found: is `make dev` running?", path.display()),
    )?)?)
}

async fn redrive(max_messages: Option<usize>, rate: Option<f64>, limit: Option<u32>) -> Result<()> {
    let description = running_stack()?;
    if description.redriver_environment.is_empty() {
        bail!("the running stack predates the redriver: restart `make dev`");
    }
    let mut environment: HashMap<String, String> =
        description.redriver_environment.into_iter().collect();
    for (key, value) in [
        (
            "HERALD_REDRIVE_MAX_MESSAGES",
            max_messages.map(|v| v.to_string()),
        ),
        (
            "HERALD_REDRIVE_RATE_PER_SECOND",
            rate.map(|v| v.to_string()),
        ),
        ("HERALD_REDRIVE_LIMIT", limit.map(|v| v.to_string())),
    ] {
        if let Some(value) = value {
            environment.insert(key.to_owned(), value);
        }
    }
    let config = RedriverConfig::load(&environment)?;
    // No Lambda deadline here: long enough for the whole run at its rate, and no
    // longer, since messages it holds stay hidden until then if it is killed.
    let run = config.limits.max_messages as f64 / config.limits.rate_per_second;
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs_f64((run + 30.0).min(3600.0));
    let clients = herald::aws::Clients::new(herald::aws::for_emulator(&description.emulator).await);
    let deps = herald_redriver::Deps::from_config(config, &clients, herald::clock::system());
    let result = herald_redriver::handle(&deps, deadline).await;
    let report = match &result {
        Ok(report) | Err(herald_redriver::Incomplete(report)) => report,
    };
    println!("{}", serde_json::to_string_pretty(report)?);
    result.map(|_| ()).map_err(Into::into)
}

async fn token(tenant: &str, role: &str) -> Result<()> {
    let description = running_stack()?;
    let user = description
        .tenants
        .get(tenant)
        .and_then(|users| users.get(role))
        .ok_or_else(|| {
            anyhow!("no demo user for tenant {tenant:?} and role {role:?} (tenants: acme, globex with roles admin, sender, viewer; herald with role operator)")
        })?;
    let sdk = herald::aws::for_emulator(&description.emulator).await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let tokens = seed::sign_in(&cognito, &description.client_id, user).await?;
    println!("{}", tokens.id_token);
    Ok(())
}
