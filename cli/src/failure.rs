//! Every way a command can fail, each with its own exit code, so scripts can tell a bad
//! file from a refused request from a lost connection without reading the text.

use std::fmt::Write as _;
use std::process::ExitCode;

/// The exit codes, documented in the README ("The `herald` command") and `--help`.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// 2 is clap's own for bad arguments; this is ours for arguments clap cannot judge.
    #[error("{0}")]
    Usage(String),
    /// 3: no profile, or a profile without tokens: run `herald login`.
    #[error("{0}")]
    NotLoggedIn(String),
    /// 4: the identity provider refused the sign-in, or the API refused the token (401/403).
    #[error("{0}")]
    Auth(String),
    /// 5: the API refused the request (400, 404, 409, 413, 415, 422).
    #[error("{0}")]
    Refused(String),
    /// 6: over the tenant's rate limit or daily quota (429).
    #[error("{0}")]
    Limited(String),
    /// 7: the API or identity provider could not be reached, or failed (5xx).
    #[error("{0}")]
    Unavailable(String),
    /// 10: some rows of the CSV are not valid recipients; nothing was sent.
    #[error("{0}")]
    BadRows(String),
    /// 11: the CSV holds no recipients at all.
    #[error("{0}")]
    EmptyFile(String),
    /// 12: the CSV's header lacks the address column.
    #[error("{0}")]
    MissingColumn(String),
    /// 13: the template (or subject) uses a variable the CSV has no column for.
    #[error("{0}")]
    MissingVariable(String),
    /// 14: the file is not well-formed CSV (a row with another number of fields, bytes
    /// that are not UTF-8).
    #[error("{0}")]
    MalformedCsv(String),
    /// 15: a local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// 16: `batch send --watch` or `batch watch`: the batch finished with messages not
    /// sent (failed, undelivered, unknown, suppressed).
    #[error("{0}")]
    FinishedWithFailures(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Usage(_) => 2,
            Failure::NotLoggedIn(_) => 3,
            Failure::Auth(_) => 4,
            Failure::Refused(_) => 5,
            Failure::Limited(_) => 6,
            Failure::Unavailable(_) => 7,
            Failure::BadRows(_) => 10,
            Failure::EmptyFile(_) => 11,
            Failure::MissingColumn(_) => 12,
            Failure::MissingVariable(_) => 13,
            Failure::MalformedCsv(_) => 14,
            Failure::Io(_) => 15,
            Failure::FinishedWithFailures(_) => 16,
        })
    }

    pub fn io(what: impl std::fmt::Display, error: std::io::Error) -> Self {
        Failure::Io(format!("{what}: {error}"))
    }

    /// A problem+json answer: its title, then each field error on its own line.
    pub fn from_problem(status: u16, body: &serde_json::Value) -> Self {
        let mut text = body["title"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the API answered {status}"));
        if let Some(detail) = body["detail"].as_str() {
            let _ = write!(text, ": {detail}");
        }
        for error in body["errors"].as_array().into_iter().flatten() {
            let field = error["field"].as_str().unwrap_or("");
            let message = error["message"].as_str().unwrap_or("");
            let _ = write!(text, "\n  {field}: {message}");
        }
        match status {
            401 | 403 => Failure::Auth(text),
            429 => Failure::Limited(text),
            500.. => Failure::Unavailable(text),
            _ => Failure::Refused(text),
        }
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;
