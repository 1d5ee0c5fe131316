//! One function's own CPU, apart from everything else the local cloud runs in the same
//! process (`herald-cpu`, issue 18). A `FunctionThread` is one OS thread with a
//! current-thread Tokio runtime, as a Lambda instance runs its handler: the function's
//! SDK clients, built on it, make and poll their connections there, and its logs go
//! through the function's own subscriber (JSON at `info`, as the template deploys it).
//! `invoke` runs a job there and reads the thread's CPU time around it, so the
//! sandbox, the emulator's clients and the bench itself, on other threads, are not in
//! the figure.
//!
//! Under callgrind, `--toggle-collect=*herald_local::cpu::measured*` counts the
//! instructions of measured jobs only, and only on this thread: a figure the machine's
//! load does not move.
//!
//! `Resident` reads a process's memory, for the benches that report it beside CPU
//! (`herald-coldstart`, `herald-phonenumbers`).

use std::fs::File;
use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::oneshot;

/// The symbol callgrind is told to count inside (`--toggle-collect`).
pub const MEASURED_SYMBOL: &str = "*herald_local::cpu::measured*";

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

pub struct FunctionThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FunctionThread {
    /// A thread named `name` whose logs are written to `/dev/null` at `info`: the
    /// formatting costs what it costs in Lambda; where the lines go is Lambda's cost.
    pub fn start(name: &str) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let null: &'static File = Box::leak(Box::new(
            File::options()
                .write(true)
                .open("/dev/null")
                .context("opening /dev/null for the function's logs")?,
        ));
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _logs = tracing::subscriber::set_default(
                    herald::telemetry::function_subscriber("info", move || null),
                );
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime");
                while let Ok(job) = queue.recv() {
                    job(&runtime);
                }
            })
            .context("starting the function's thread")?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `job` on the thread without counting it (building the function's
    /// dependencies).
    pub async fn setup<T, F, Fut>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        Ok(self.run(job, false).await?.0)
    }

    /// Runs `job` on the thread and answers its output with the thread's CPU time
    /// (user and system) while it ran. Only `counted` jobs are counted by callgrind
    /// (a warm-up invocation is not).
    pub async fn invoke<T, F, Fut>(&self, job: F, counted: bool) -> Result<(T, Duration)>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        self.run(job, counted).await
    }

    async fn run<T, F, Fut>(&self, job: F, count: bool) -> Result<(T, Duration)>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |runtime| {
            let mut output = None;
            let mut job = Some(job);
            let mut work = || {
                if let Some(job) = job.take() {
                    output = Some(runtime.block_on(job()));
                }
            };
            let before = thread_cpu();
            if count {
                measured(&mut work);
            } else {
                work();
            }
            let used = thread_cpu().saturating_sub(before);
            let _ = answer.send((output.expect("the job ran"), used));
        });
        self.jobs
            .as_ref()
            .expect("the thread runs until dropped")
            .send(job)
            .map_err(|_| anyhow!("the function's thread has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow!("the function's thread stopped during a job (a panic?)"))
    }
}

impl Drop for FunctionThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where measured jobs run: callgrind counts inside this function only. The one
/// function of its shape: an identical twin would be merged with it by the compiler,
/// and callgrind would count the twin's calls too.
#[inline(never)]
fn measured(work: &mut dyn FnMut()) {
    work();
    std::hint::black_box(());
}

/// This thread's CPU time so far: the first field of `/proc/thread-self/schedstat`
/// (nanoseconds on a CPU, user and system), which Linux keeps at the scheduler's
/// resolution rather than the tick's.
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// A process's resident memory in KiB, from `/proc/<process>/status`: its peak
/// (`VmHWM`), and now, anonymous memory (heap, stacks) and file pages (the code and
/// data it mapped from files and touched).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resident {
    pub peak: u64,
    pub anon: u64,
    pub file: u64,
}

impl Resident {
    /// `process`: a process id, or `self`.
    pub fn of(process: &str) -> Result<Self> {
        let path = format!("/proc/{process}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = |key: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| anyhow!("no {key} in {path}"))
        };
        Ok(Self {
            peak: kib("VmHWM:")?,
            anon: kib("RssAnon:")?,
            file: kib("RssFile:")?,
        })
    }
}
