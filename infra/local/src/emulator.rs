//! The AWS emulator (moto in server mode, from the project's virtualenv). Reused when
//! one already answers at the endpoint; started otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// `HERALD_EMULATOR_URL`, or the default loopback port.
pub fn endpoint() -> String {
    std::env::var("HERALD_EMULATOR_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned())
}

/// Whether something accepts connections at the endpoint's port. Only a connect: any
/// request to moto's API grows with the data it holds and, on a loaded machine, could
/// time out and make a running emulator look absent (a second one would then be
/// started, fail to bind, and leave a wrong pid behind).
pub async fn is_up(endpoint: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(endpoint) else {
        return false;
    };
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(4566);
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// The virtualenv's Python (`HERALD_VENV`, or `.venv` in the project root), which
/// has the pinned emulator installed.
fn venv_python(root: &Path) -> PathBuf {
    let venv = std::env::var("HERALD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"));
    venv.join("bin").join("python")
}

/// The emulator at `endpoint`: the one already answering there (`None`), or one
/// started now with its output in `log`, which stops when the returned child is dropped.
pub async fn reuse_or_start(
    root: &Path,
    endpoint: &str,
    log: &Path,
) -> Result<Option<tokio::process::Child>> {
    if is_up(endpoint).await {
        eprintln!("Using the emulator already answering at {endpoint}.");
        return Ok(None);
    }
    eprintln!(
        "Starting an emulator at {endpoint} (log: {})...",
        log.display()
    );
    start(root, endpoint, log, false).await.map(Some)
}

/// Runs a bench's `work` against the emulator at [`endpoint`]: the one answering there,
/// or one started for it (its output in `.herald/<bench>-emulator.log`) and stopped
/// once `work` ends, whatever it returned. `work` is given the endpoint and whether the
/// emulator is the bench's own (nothing else loads it).
pub async fn for_bench<T>(
    bench: &str,
    work: impl AsyncFnOnce(&str, bool) -> Result<T>,
) -> Result<T> {
    let endpoint = endpoint();
    let root = crate::project_root();
    let log = root.join(format!(".herald/{bench}-emulator.log"));
    let own = reuse_or_start(&root, &endpoint, &log).await?;
    let result = work(&endpoint, own.is_some()).await;
    if let Some(mut child) = own {
        let _ = child.kill().await;
    }
    result
}

/// Starts the emulator for `endpoint` (which must be on loopback) and waits until it
/// answers. Its output goes to `log`, never to the caller's terminal or pipes, so a
/// left-over emulator cannot hold a CI log open.
pub async fn start(
    root: &Path,
    endpoint: &str,
    log: &Path,
    detach: bool,
) -> Result<tokio::process::Child> {
    let url = reqwest::Url::parse(endpoint).context("HERALD_EMULATOR_URL is not a URL")?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(4566);
    let program = venv_python(root);
    let launcher = root.join("infra/local/emulator.py");
    if !program.exists() {
        bail!(
            "{} is missing: run `make venv` first (it installs the pinned emulator)",
            program.display()
        );
    }
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log_file = std::fs::File::create(log)?;
    let mut command = tokio::process::Command::new(&program);
    command
        .arg(&launcher)
        .args(["-H", &host, "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(!detach);
    if detach {
        // Its own process group: a Ctrl-C meant for the tests does not reach it, and
        // `emulator stop` ends it later.
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    for _ in 0..150 {
        if is_up(endpoint).await {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            bail!("the emulator exited ({status}); see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    bail!(
        "the emulator did not answer at {endpoint} within 15 s; see {}",
        log.display()
    )
}

/// Where the tests' emulator for `endpoint` keeps its pid, lock and log: one set per
/// port, since `make test` runs the fault suites on an emulator of their own.
fn test_file(root: &Path, endpoint: &str, suffix: &str) -> Result<PathBuf> {
    let url = reqwest::Url::parse(endpoint).context("HERALD_EMULATOR_URL is not a URL")?;
    let port = url.port().unwrap_or(4566);
    Ok(root.join(format!(".herald/emulator-tests-{port}.{suffix}")))
}

/// Makes sure an emulator answers at `endpoint`, starting a detached one when none
/// does. Test processes may race here; a file lock lets one start it and the others
/// find it running. The pid is recorded so `emulator stop --started-by-tests` (run by
/// `make test` afterwards) can end it.
pub async fn ensure_for_tests(root: &Path, endpoint: &str) -> Result<()> {
    if is_up(endpoint).await {
        return Ok(());
    }
    std::fs::create_dir_all(root.join(".herald"))?;
    let lock = std::fs::File::create(test_file(root, endpoint, "lock")?)?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock)).await??;
    if !is_up(endpoint).await {
        let child = start(root, endpoint, &test_file(root, endpoint, "log")?, true).await?;
        let pid = child.id().context("emulator has no pid")?;
        std::fs::write(test_file(root, endpoint, "pid")?, pid.to_string())?;
    }
    drop(lock);
    Ok(())
}

/// Stops every emulator the tests started (one per port they used).
pub fn stop_test_emulators(root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(root.join(".herald"))
        .into_iter()
        .flatten()
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("emulator-tests-") && name.ends_with(".pid") {
            stop_test_emulator(&path)?;
        }
    }
    Ok(())
}

fn stop_test_emulator(pid_file: &Path) -> Result<()> {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return Ok(());
    };
    let pid = pid.trim();
    if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
        let alive = || Path::new("/proc").join(pid).exists();
        let _ = std::process::Command::new("kill").arg(pid).status();
        // Wait for it to go, so whatever runs next may take the port.
        for _ in 0..50 {
            if !alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .status();
        }
    }
    std::fs::remove_file(pid_file)?;
    Ok(())
}

/// One email the emulator's SES accepted, as `emulator.py` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SentEmail {
    pub message_id: String,
    pub source: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Every email SES accepted with a recipient at `domain` (tests give each stack its
/// own domain, since SES's record is shared by every stack in the emulator).
pub async fn sent_emails(endpoint: &str, domain: &str) -> Result<Vec<SentEmail>> {
    let mut url = reqwest::Url::parse(endpoint).context("HERALD_EMULATOR_URL is not a URL")?;
    url.set_path("/_herald/ses/sent");
    url.query_pairs_mut().append_pair("domain", domain);
    let response = reqwest::Client::new()
        .get(url.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("asking {url} for sent emails"))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    response
        .json()
        .await
        .with_context(|| format!("reading {url}'s answer"))
}

/// A DynamoDB answer held back after its write applied (`late_answers.py`): the next
/// `count` `operation` requests on `table` whose body contains `contains` answer
/// `seconds` late, as a slow network can make them in AWS.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LateAnswers<'a> {
    pub table: &'a str,
    pub operation: &'a str,
    pub contains: &'a str,
    pub seconds: f64,
    pub count: u32,
}

pub async fn answer_late(endpoint: &str, fault: &LateAnswers<'_>) -> Result<()> {
    let mut url = reqwest::Url::parse(endpoint).context("HERALD_EMULATOR_URL is not a URL")?;
    url.set_path("/_herald/dynamodb/late-answers");
    let response = reqwest::Client::new()
        .post(url.clone())
        .json(fault)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("asking {url} for late answers"))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}
