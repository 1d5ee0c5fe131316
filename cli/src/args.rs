//! The command line: every command, its options and its `--help` examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes: 0 done; 2 bad arguments; 3 not logged in; 4 sign-in or token refused (401/403);
5 request refused (400/404/409/413/415/422); 6 rate limit or quota (429); 7 API unreachable
or failing (5xx); 10 bad CSV rows (nothing sent); 11 empty CSV; 12 no address column;
13 a template variable the CSV lacks; 14 malformed CSV; 15 a local file unreadable;
16 the watched batch finished with recipients not reached.";

#[derive(Parser)]
#[command(name = "herald", version, about = "Send SMS and email in bulk through Herald.",
    after_help = EXIT_CODES)]
pub struct Cli {
    /// The profile to use (each names an API and how it signs in).
    #[arg(long, global = true, env = "HERALD_PROFILE", default_value = "default")]
    pub profile: String,
    /// Where profiles and tokens live (default: $XDG_CONFIG_HOME/herald or ~/.config/herald).
    #[arg(long, global = true, env = "HERALD_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Sign in and remember the profile.
    #[command(after_help = "Examples:
  herald login --local --tenant acme --role sender
  HERALD_PASSWORD=... herald login --api https://api.example.com --cognito-url https://cognito-idp.eu-west-1.amazonaws.com/ --client-id 1abc --username ada@example.com
  HERALD_CLIENT_SECRET=... herald login --profile billing --api https://api.example.com --token-url https://auth.example.com/oauth2/token --client-id 5f2k")]
    Login(Login),
    /// Send one SMS or email.
    #[command(after_help = "Examples:
  herald send --to +14155550100 --body 'Your code is 1234'
  herald send --channel email --to ada@example.com --subject 'Hello' --body 'Hi Ada'")]
    Send(Send),
    /// Batches: send a CSV, watch one, export what failed.
    #[command(subcommand)]
    Batch(Batch),
    /// Today's sends against the quota, and the rate limit.
    #[command(after_help = "Example:\n  herald usage")]
    Usage,
    /// The tenant's suppression list: addresses Herald will not send to.
    #[command(subcommand)]
    Suppressions(Suppressions),
    /// The tenant's machine clients (admins).
    #[command(subcommand)]
    Clients(Clients),
    /// Tenants (operators).
    #[command(subcommand)]
    Tenants(Tenants),
    /// Redrive the send dead-letter queue once, now (operators); prints the report.
    #[command(after_help = "Example:\n  herald --profile ops redrive")]
    Redrive,
}

#[derive(Subcommand)]
pub enum Suppressions {
    /// Every suppressed address, one JSON object a line.
    #[command(
        after_help = "Examples:\n  herald suppressions list\n  herald suppressions list --channel email --reason bounced"
    )]
    List {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Suppress an address (Herald sends it nothing until it is removed).
    #[command(
        after_help = "Example:\n  herald suppressions add +14155550100 --note 'asked by phone'"
    )]
    Add {
        address: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Lift a suppression.
    #[command(after_help = "Example:\n  herald suppressions remove ada@example.com")]
    Remove { address: String },
}

#[derive(Subcommand)]
pub enum Clients {
    /// Every machine client, one JSON object a line (never their secrets).
    #[command(after_help = "Example:\n  herald clients list --status active")]
    List {
        #[arg(long, default_value = "all")]
        status: String,
    },
    /// Register a machine client; prints its id and secret once.
    #[command(
        after_help = "Example:\n  herald clients create 'billing backend' --scope messages:send --scope messages:read"
    )]
    Create {
        name: String,
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Revoke a machine client: its tokens are refused at once.
    #[command(after_help = "Example:\n  herald clients revoke 5f2k...")]
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum Tenants {
    /// A tenant's plan, limits and status.
    #[command(after_help = "Example:\n  herald tenants show acme")]
    Show { id: String },
    /// Suspend a tenant: its requests get 403 and its queued work is held.
    #[command(after_help = "Example:\n  herald tenants suspend acme")]
    Suspend { id: String },
    /// Resume a suspended tenant.
    #[command(after_help = "Example:\n  herald tenants resume acme")]
    Resume { id: String },
}

#[derive(Args)]
pub struct Login {
    /// Sign in to the local cloud `make dev` runs, from `.herald/local.json`.
    #[arg(long, requires_all = ["tenant", "role"])]
    pub local: bool,
    /// The stack description `--local` reads.
    #[arg(long, default_value = ".herald/local.json")]
    pub local_file: PathBuf,
    /// With --local: the demo tenant whose user signs in.
    #[arg(long)]
    pub tenant: Option<String>,
    /// With --local: the demo user's role (admin, sender, viewer).
    #[arg(long)]
    pub role: Option<String>,
    /// The API's base URL.
    #[arg(long, required_unless_present = "local")]
    pub api: Option<String>,
    /// The app client id (a person) or the machine client's id.
    #[arg(long, required_unless_present = "local")]
    pub client_id: Option<String>,
    /// A person: Cognito's endpoint (https://cognito-idp.REGION.amazonaws.com/).
    #[arg(long, conflicts_with = "token_url", requires = "username")]
    pub cognito_url: Option<String>,
    /// A person: the user name; the password is read from HERALD_PASSWORD or standard input.
    #[arg(long)]
    pub username: Option<String>,
    /// A person: the MFA code, when the pool asks for one (else read from standard input).
    #[arg(long)]
    pub mfa_code: Option<String>,
    /// A machine client: the token URL; the secret is read from HERALD_CLIENT_SECRET or
    /// standard input.
    #[arg(long)]
    pub token_url: Option<String>,
}

#[derive(Args)]
pub struct Send {
    #[arg(long, default_value = "sms")]
    pub channel: String,
    /// An E.164 number (SMS) or an email address.
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub body: String,
    /// Email only.
    #[arg(long)]
    pub subject: Option<String>,
    /// Sending again with the same key sends nothing new (default: a fresh key).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Subcommand)]
pub enum Batch {
    /// Send a CSV of recipients as batches of at most --part-size.
    #[command(
        after_help = "The header names the address column (--to-column, default `to`) and the
variables; every row is checked first and bad rows are listed by line; nothing is sent
if any row is bad, unless --skip-bad. Each part's Idempotency-Key comes from the file's
SHA-256 and the part number: the same command again (after an interruption) sends
nothing twice, and prints the same batch ids.

Examples:
  herald batch send recipients.csv --template 'Hi {{name}}, your code is {{code}}'
  herald batch send recipients.csv --template 'Hi {{name}}' --dry-run
  herald batch send list.csv --channel email --to-column email --subject 'Hi {{name}}' --template 'Hello {{name}}' --watch"
    )]
    Send(BatchSend),
    /// Watch a batch until it is finished.
    #[command(
        after_help = "Examples:\n  herald batch watch 01M873YTT69CFJQ2S2G3BE7DDM\n  herald batch watch 01M873YTT69CFJQ2S2G3BE7DDM --json | jq .done"
    )]
    Watch(Watch),
    /// Every recipient the batch did not reach (failed, undelivered, unknown, suppressed).
    #[command(
        after_help = "Example:\n  herald batch failures 01M873YTT69CFJQ2S2G3BE7DDM --csv failed.csv"
    )]
    Failures(Failures),
}

#[derive(Args)]
pub struct BatchSend {
    pub file: PathBuf,
    #[arg(long)]
    pub template: String,
    /// Email only: the subject, templated like the text.
    #[arg(long)]
    pub subject: Option<String>,
    #[arg(long, default_value = "sms")]
    pub channel: String,
    /// The column that holds the addresses.
    #[arg(long, default_value = "to")]
    pub to_column: String,
    /// Send the good rows and leave the bad ones out.
    #[arg(long)]
    pub skip_bad: bool,
    /// Recipients per batch: the API's limit (HERALD_MAX_RECIPIENTS) or less.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub part_size: u32,
    /// Watch the batches once sent.
    #[arg(long)]
    pub watch: bool,
    /// Check every row and say what would be sent, without signing in or sending.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct Watch {
    pub id: String,
    /// One JSON line per poll instead of a progress bar.
    #[arg(long)]
    pub json: bool,
    /// Seconds between polls.
    #[arg(long, default_value_t = 2.0)]
    pub every: f64,
}

#[derive(Args)]
pub struct Failures {
    pub id: String,
    /// Where to write the CSV (default: standard output).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}
