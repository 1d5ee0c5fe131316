//! `herald`: the command-line client of the Herald API (issue 17). Wiring only: each
//! command's work lives in its module (`auth`, `batch`, `recipients`).

mod admin;
mod api;
mod args;
mod auth;
mod batch;
mod config;
mod failure;
mod recipients;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use serde_json::{Value, json};

use crate::api::Api;
use crate::args::{Batch, Cli, Command, Login};
use crate::config::{ConfigDir, Profile, SignIn};
use crate::failure::{Failure, Result};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("herald: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let dir = ConfigDir::locate(cli.config_dir)?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::Unavailable(format!("no HTTP client: {e}")))?;
    let profile = cli.profile;
    if let Command::Login(login) = cli.command {
        return log_in(&http, &dir, &profile, login).await;
    }
    if let Command::Batch(Batch::Send(send)) = &cli.command
        && send.dry_run
    {
        return batch::dry_run(&campaign(send)?, &send.file, send.skip_bad);
    }
    let api = Api::new(
        http.clone(),
        &dir.profile(&profile)?.api,
        auth::bearer(&http, &dir, &profile).await?,
    );
    match cli.command {
        Command::Login(_) => unreachable!("handled above"),
        Command::Send(send) => {
            let mut body = json!({"channel": send.channel, "to": send.to, "body": send.body});
            if let Some(subject) = send.subject {
                body["subject"] = json!(subject);
            }
            let answer = api
                .post("/v1/messages", send.idempotency_key.as_deref(), &body)
                .await?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
        }
        Command::Batch(Batch::Send(send)) => {
            let channel = send.channel.parse().map_err(|_| {
                Failure::Usage(format!("--channel is sms or email, not {:?}", send.channel))
            })?;
            let campaign = recipients::Campaign::new(
                channel,
                &send.template,
                send.subject.as_deref(),
                send.to_column,
                send.part_size as usize,
            )?;
            let ids = batch::send_csv(&api, &campaign, &send.file, send.skip_bad).await?;
            if send.watch {
                let mut unreached = Ok(());
                for id in ids {
                    let finished = batch::watch(&api, &id, false, Duration::from_secs(2)).await?;
                    unreached = unreached.and(batch::require_reached(&finished));
                }
                unreached?;
            }
        }
        Command::Batch(Batch::Watch(watch)) => {
            let every = Duration::from_secs_f64(watch.every.max(0.1));
            let finished = batch::watch(&api, &watch.id, watch.json, every).await?;
            batch::require_reached(&finished)?;
        }
        Command::Batch(Batch::Failures(failures)) => {
            let count = match &failures.csv {
                Some(path) => {
                    let mut file =
                        std::fs::File::create(path).map_err(|e| Failure::io(path.display(), e))?;
                    batch::failures(&api, &failures.id, &mut file).await?
                }
                None => batch::failures(&api, &failures.id, &mut std::io::stdout()).await?,
            };
            eprintln!("{count} recipient(s) not reached");
        }
        Command::Usage => {
            let usage = api.get("/v1/usage").await?;
            print_usage(&usage);
        }
        Command::Suppressions(command) => admin::suppressions(&api, command).await?,
        Command::Clients(command) => admin::clients(&api, command).await?,
        Command::Tenants(command) => admin::tenants(&api, command).await?,
        Command::Redrive => admin::redrive(&api).await?,
    }
    Ok(())
}

fn campaign(send: &args::BatchSend) -> Result<recipients::Campaign> {
    let channel = send.channel.parse().map_err(|_| {
        Failure::Usage(format!("--channel is sms or email, not {:?}", send.channel))
    })?;
    recipients::Campaign::new(
        channel,
        &send.template,
        send.subject.as_deref(),
        send.to_column.clone(),
        send.part_size as usize,
    )
}

fn print_usage(usage: &Value) {
    let sends = &usage["sends"];
    println!(
        "{} ({} plan) on {}: {} of {} sends used, {} left, resets at {}; {} requests per second",
        usage["tenant_id"].as_str().unwrap_or(""),
        usage["plan"].as_str().unwrap_or(""),
        usage["day"].as_str().unwrap_or(""),
        sends["used"],
        sends["limit"],
        sends["remaining"],
        sends["resets_at"].as_str().unwrap_or(""),
        usage["rate_limit"]["requests_per_second"],
    );
}

async fn log_in(http: &reqwest::Client, dir: &ConfigDir, name: &str, login: Login) -> Result<()> {
    let (profile, tokens) = if login.local {
        let text = std::fs::read(&login.local_file).map_err(|e| {
            Failure::NotLoggedIn(format!(
                "{} is not readable ({e}): is `make dev` running?",
                login.local_file.display()
            ))
        })?;
        let local: Value = serde_json::from_slice(&text)
            .map_err(|e| Failure::Io(format!("{}: {e}", login.local_file.display())))?;
        let (tenant, role) = (
            login.tenant.unwrap_or_default(),
            login.role.unwrap_or_default(),
        );
        let user = &local["tenants"][&tenant][&role];
        let (Some(username), Some(password)) =
            (user["username"].as_str(), user["password"].as_str())
        else {
            return Err(Failure::Usage(format!(
                "{} has no {role} of tenant {tenant}",
                login.local_file.display()
            )));
        };
        let field = |name: &str| local[name].as_str().unwrap_or_default().to_owned();
        let sign_in = SignIn::User {
            cognito_url: field("emulator"),
            client_id: field("client_id"),
            username: username.to_owned(),
        };
        let tokens = auth::sign_in_user(
            http,
            &field("emulator"),
            &field("client_id"),
            username,
            password,
            login.mfa_code.as_deref(),
        )
        .await?;
        (
            Profile {
                api: field("api"),
                sign_in,
            },
            tokens,
        )
    } else {
        let api = login.api.expect("clap requires --api");
        let client_id = login.client_id.expect("clap requires --client-id");
        if let Some(token_url) = login.token_url {
            let secret = secret_from("HERALD_CLIENT_SECRET", "client secret")?;
            let tokens = auth::client_credentials(http, &token_url, &client_id, &secret).await?;
            let sign_in = SignIn::Client {
                token_url,
                client_id,
            };
            (Profile { api, sign_in }, tokens)
        } else {
            let cognito_url = login.cognito_url.ok_or_else(|| {
                Failure::Usage("give --cognito-url and --username (a person) or --token-url (a machine client)".into())
            })?;
            let username = login.username.expect("clap requires --username");
            let password = secret_from("HERALD_PASSWORD", "password")?;
            let tokens = auth::sign_in_user(
                http,
                &cognito_url,
                &client_id,
                &username,
                &password,
                login.mfa_code.as_deref(),
            )
            .await?;
            let sign_in = SignIn::User {
                cognito_url,
                client_id,
                username,
            };
            (Profile { api, sign_in }, tokens)
        }
    };
    let api = profile.api.clone();
    auth::remember(dir, name, profile, &tokens)?;
    eprintln!("signed in: profile {name:?} for {api}");
    Ok(())
}

/// A secret from its environment variable, else one line of standard input (never an
/// argument, which other users of the machine can read in the process list).
fn secret_from(variable: &str, what: &str) -> Result<String> {
    if let Ok(value) = std::env::var(variable)
        && !value.is_empty()
    {
        return Ok(value);
    }
    eprint!("{what}: ");
    let line = auth::read_line()?;
    if line.is_empty() {
        return Err(Failure::Usage(format!(
            "no {what} given ({variable} or standard input)"
        )));
    }
    Ok(line)
}
