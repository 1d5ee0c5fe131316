//! `herald-local`: runs Herald's local cloud (`up`), prints tokens for its demo users
//! (`token`), redrives its send DLQ (`redrive`), runs a step of the restore drill
//! (`backup-check`) and a tenant recovery (`recover-tenant`), and manages the emulator
//! the tests start (`emulator`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use herald::config::{BackupCheckConfig, RedriverConfig};
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
    /// a send or delete failed, or if another redrive held the lease (nothing moved).
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
    /// Run the backup check once on the running stack, as its schedule does in AWS:
    /// write a canary, take the restore drill's next step (start it when due, check
    /// and delete its scratch table once restored), move running tenant recoveries on.
    /// Prints the report as JSON; exits non-zero when the drill failed or a scratch
    /// table was left behind.
    BackupCheck {
        /// Start a drill now rather than when due (refused while one runs).
        #[arg(long)]
        start: bool,
    },
    /// Recover one tenant's items as they were at a point in time: restore the table
    /// into a scratch table, put back the tenant's items missing from the live table
    /// (never overwriting one), delete the scratch table. The same function and events
    /// as in AWS (docs/runbooks/restore.md), run to the end. Prints the job as JSON.
    RecoverTenant {
        #[arg(long)]
        tenant: String,
        /// The point in time, RFC 3339 (e.g. 2026-05-01T10:00:00Z).
        #[arg(long)]
        at: String,
        /// Count what would be put back, by kind; write nothing of the tenant's.
        #[arg(long)]
        dry_run: bool,
        /// The scratch table's name (default: the recovery prefix and the job id).
        #[arg(long)]
        scratch_table: Option<String>,
        /// Who asks, for the tenant's audit log (default: $USER).
        #[arg(long)]
        requested_by: Option<String>,
    },
    /// Rotate the running stack's provider API key now, as Secrets Manager's schedule
    /// does in AWS: the rotator's four steps (create a key at the sandbox provider,
    /// store it AWSPENDING, test it, make it AWSCURRENT), then its retirement pass.
    /// The replaced key keeps working until its grace period is over; `--retire` runs
    /// only the retirement pass, which deletes it then. Prints JSON.
    Rotate {
        #[arg(long)]
        retire: bool,
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
    /// The backup check's, as `up` runs it (its drill schedule compressed).
    #[serde(default)]
    backup_check_environment: BTreeMap<String, String>,
    /// The rotator's (issue 20), for `rotate`.
    #[serde(default)]
    rotator_environment: BTreeMap<String, String>,
    tenants: BTreeMap<String, BTreeMap<String, User>>,
    get_a_token: String,
}

fn herald_dir() -> PathBuf {
    project_root().join(".herald")
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // The restore commands print their report as JSON on standard output: only
    // warnings and errors are logged beside it (unless RUST_LOG says otherwise).
    match cli.command {
        Command::BackupCheck { .. } | Command::RecoverTenant { .. } | Command::Rotate { .. } => {
            herald::telemetry::init_with_default("warn")
        }
        _ => herald::telemetry::init(),
    }
    match cli.command {
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
        Command::BackupCheck { start } => backup_check(start).await,
        Command::Rotate { retire } => rotate(retire).await,
        Command::RecoverTenant {
            tenant,
            at,
            dry_run,
            scratch_table,
            requested_by,
        } => recover_tenant(tenant, at, dry_run, scratch_table, requested_by).await,
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
            emulator::stop_test_emulators(&project_root())
        }
    }
}

async fn up(stack: String, gateway: SocketAddr, sandbox: SocketAddr) -> Result<()> {
    let endpoint = emulator::endpoint();
    let root = project_root();
    let _own_emulator =
        emulator::reuse_or_start(&root, &endpoint, &herald_dir().join("emulator.log")).await?;

    let mut options = CloudOptions::ephemeral(&stack);
    options.gateway_addr = gateway;
    options.sandbox_addr = sandbox;
    options.run_schedules = true;
    options.keep_metrics = false;
    herald_local::restores::compress_for_dev(&mut options);
    let overrides = options.env_overrides.clone();
    options.receipts = true;
    options.outbound = true;
    let cloud = LocalCloud::start(&endpoint, options).await?;

    let pool = cloud.stack.reference("UserPool")?.to_owned();
    let mut tenants = BTreeMap::new();
    for (tenant, plan) in DEMO_PLANS {
        let policy = seed::demo_sms_policy();
        seed::tenant_with(&cloud.sender.store, tenant, *plan, None, policy).await?;
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
            let cognito = &cloud.clients.cognito;
            let user = seed::user(cognito, &pool, tenant, role).await?;
            seed::record_user(&cloud.sender.store, cognito, &pool, tenant, role, &user).await?;
            users.insert(role.to_string(), user);
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
        backup_check_environment: cloud
            .stack
            .function_env("BackupCheckFunction")?
            .into_iter()
            .chain(overrides)
            .collect(),
        rotator_environment: cloud
            .stack
            .function_env("RotatorFunction")?
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

async fn rotate(retire_only: bool) -> Result<()> {
    let description = running_stack()?;
    if description.rotator_environment.is_empty() {
        bail!("the running stack predates the rotator: restart `make dev`");
    }
    let environment: HashMap<String, String> =
        description.rotator_environment.into_iter().collect();
    let config = herald_rotator::RotatorConfig::load(&environment)?;
    let clients = herald::aws::Clients::new(herald::aws::for_emulator(&description.emulator).await);
    let deps = herald_rotator::Deps::from_config(config, &clients, herald::clock::system())?;
    // Secrets Manager's tokens are 32 to 64 characters.
    let token = (!retire_only).then(|| herald_local::random_hex(32));
    if let Some(token) = &token {
        herald_rotator::rotate_now(&deps, token).await?;
    }
    let retirement = herald_rotator::retire(&deps).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "rotated_to_version": token,
            "grace_period_seconds": deps.config.grace.as_secs(),
            "retirement": retirement,
        }))?
    );
    Ok(())
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
    match herald_redriver::handle(&deps, deadline).await {
        Ok(run) => {
            println!("{}", serde_json::to_string_pretty(&run)?);
            match run {
                herald_redriver::RedriveRun::Ran(_) => Ok(()),
                herald_redriver::RedriveRun::Skipped { .. } => {
                    bail!("another redrive is running; nothing was moved")
                }
            }
        }
        Err(herald_redriver::RedriveError::Incomplete(incomplete)) => {
            println!("{}", serde_json::to_string_pretty(&incomplete.0)?);
            Err(incomplete.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The running stack's backup check, as `up` configured it.
async fn running_backup_check() -> Result<herald_local::restores::BackupCheck> {
    let description = running_stack()?;
    if description.backup_check_environment.is_empty() {
        bail!("the running stack predates the backup check: restart `make dev`");
    }
    let environment: HashMap<String, String> =
        description.backup_check_environment.into_iter().collect();
    let config = BackupCheckConfig::load(&environment)?;
    let clients = herald::aws::Clients::new(herald::aws::for_emulator(&description.emulator).await);
    let clock = herald::clock::system();
    Ok(herald_local::restores::BackupCheck {
        // The report carries what the metrics would; locally nothing collects them.
        deps: std::sync::Arc::new(
            herald_backup_check::Deps::from_config(config, &clients, clock.clone())
                .with_metrics(herald::metrics::Metrics::in_memory(clock)),
        ),
        // The template's timeout (a recovery here runs until it has finished).
        timeout: std::time::Duration::from_secs(900),
    })
}

async fn backup_check(start: bool) -> Result<()> {
    let check = running_backup_check().await?;
    let event = if start {
        serde_json::json!({ "start_drill": true })
    } else {
        serde_json::json!({})
    };
    match check.invoke(event).await {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Err(
            herald_backup_check::BackupCheckError::DrillFailed { report }
            | herald_backup_check::BackupCheckError::LeftBehind { report },
        ) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            bail!("the backup check failed: {}", report.drill_failures())
        }
        Err(e) => Err(e.into()),
    }
}

async fn recover_tenant(
    tenant: String,
    at: String,
    dry_run: bool,
    scratch_table: Option<String>,
    requested_by: Option<String>,
) -> Result<()> {
    let request = herald::restore::RecoveryRequest {
        tenant: herald::TenantId::parse(&tenant).map_err(|e| anyhow!("--tenant: {e}"))?,
        at: herald::Timestamp::parse(&at).map_err(|e| anyhow!("--at: {e}"))?,
        dry_run,
        scratch_table,
        requested_by: requested_by
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".into()),
    };
    let check = running_backup_check().await?;
    match check.recover_tenant(&request).await {
        Ok(job) => {
            println!("{}", serde_json::to_string_pretty(&job)?);
            Ok(())
        }
        Err(herald_backup_check::BackupCheckError::RecoveryFailed(job)) => {
            println!("{}", serde_json::to_string_pretty(&job)?);
            bail!("the recovery failed: {}", job.failure.unwrap_or_default())
        }
        Err(e) => Err(e.into()),
    }
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
