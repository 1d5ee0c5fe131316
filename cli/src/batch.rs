//! `herald batch ...`: a CSV sent as batches (surveyed first, then sent part by part
//! with idempotency keys from the file's hash), a batch watched to its end, and the
//! recipients it did not reach exported.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::Api;
use crate::failure::{Failure, Result};
use crate::recipients::{self, Campaign, Part, Survey};

/// The statuses `batch failures` exports: the message did not reach its recipient.
pub const NOT_REACHED: [&str; 4] = ["failed", "undelivered", "unknown", "suppressed"];

/// The Idempotency-Key of one part: the file's content and the part's number, so the
/// same file sent again (after an interruption) replays the parts already accepted.
pub fn part_key(sha256: &str, part: usize) -> String {
    format!("herald-csv-{sha256}-part-{part}")
}

/// Surveys `path`, then (if every row is good, or `skip_bad`) sends each part as one
/// batch; answers the batch ids in part order.
pub async fn send_csv(
    api: &Api,
    campaign: &Campaign,
    path: &Path,
    skip_bad: bool,
) -> Result<Vec<String>> {
    let survey = recipients::read(campaign, open(path)?, |_| Ok(()))?;
    report_bad_rows(&survey, skip_bad)?;
    eprintln!(
        "{}: {} recipients in {} part(s) of at most {}",
        path.display(),
        survey.good,
        survey.parts,
        campaign.part_size
    );
    // Parts are produced by a synchronous reader; each one is sent before the next is
    // read, so memory holds one part whatever the file's size.
    let (parts_tx, mut parts_rx) = tokio::sync::mpsc::channel::<Part>(1);
    let reading = {
        let path = path.to_owned();
        let campaign_copy = Campaign::new(
            campaign.channel,
            campaign.template.source(),
            campaign.subject.as_ref().map(|s| s.source()),
            campaign.to_column.clone(),
            campaign.part_size,
        )?;
        tokio::task::spawn_blocking(move || {
            recipients::read(&campaign_copy, open(&path)?, |part| {
                parts_tx
                    .blocking_send(part)
                    .map_err(|_| Failure::Unavailable("sending stopped".into()))
            })
        })
    };
    let mut ids = Vec::new();
    while let Some(part) = parts_rx.recv().await {
        let mut body = json!({
            "channel": campaign.channel.to_string(),
            "template": campaign.template.source(),
            "recipients": part.recipients,
        });
        if let Some(subject) = &campaign.subject {
            body["subject"] = json!(subject.source());
        }
        let key = part_key(&survey.sha256, part.number);
        let answer = api
            .post("/v1/batches", Some(&key), &body)
            .await
            .map_err(|e| name_lines(e, &part))?;
        let id = answer["batch_id"].as_str().unwrap_or_default().to_owned();
        eprintln!(
            "part {}/{}: batch {id} ({} recipients, lines {}-{})",
            part.number,
            survey.parts,
            part.recipients.len(),
            part.lines.first().unwrap_or(&0),
            part.lines.last().unwrap_or(&0)
        );
        println!("{id}");
        ids.push(id);
    }
    let second = reading
        .await
        .map_err(|e| Failure::Unavailable(format!("the reader stopped: {e}")))??;
    if second.sha256 != survey.sha256 {
        return Err(Failure::Io(format!(
            "{} changed while it was being sent: run the command again to send the rest",
            path.display()
        )));
    }
    Ok(ids)
}

/// Checks every row of `path` (one pass, memory for one part) and says what would be
/// sent; `skip_bad` as for sending.
pub fn dry_run(campaign: &Campaign, path: &Path, skip_bad: bool) -> Result<()> {
    let survey = recipients::read(campaign, open(path)?, |_| Ok(()))?;
    report_bad_rows(&survey, skip_bad)?;
    println!(
        "{}: {} recipients in {} part(s) of at most {}; sha256 {}; nothing sent (--dry-run)",
        path.display(),
        survey.good,
        survey.parts,
        campaign.part_size,
        survey.sha256
    );
    Ok(())
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Failure::io(path.display(), e))
}

fn report_bad_rows(survey: &Survey, skip_bad: bool) -> Result<()> {
    if survey.bad.is_empty() {
        return Ok(());
    }
    let count = survey.bad.len() as u64 + survey.more_bad;
    let mut text = String::new();
    for row in &survey.bad {
        text.push_str(&format!("line {}: {}\n", row.line, row.problems.join("; ")));
    }
    if survey.more_bad > 0 {
        text.push_str(&format!("... and {} more bad rows\n", survey.more_bad));
    }
    if skip_bad {
        eprintln!("{text}skipping {count} bad row(s) (--skip-bad)");
        return Ok(());
    }
    Err(Failure::BadRows(format!(
        "{text}{count} bad row(s): nothing was sent (fix them, or send the rest with --skip-bad)"
    )))
}

/// A refused part names the CSV lines of the recipients the API named.
fn name_lines(failure: Failure, part: &Part) -> Failure {
    let Failure::Refused(text) = failure else {
        return failure;
    };
    let mut out = format!("part {} was refused: ", part.number);
    for line in text.lines() {
        let index = line
            .trim_start()
            .strip_prefix("/recipients/")
            .and_then(|rest| rest.split(['/', ':']).next())
            .and_then(|i| i.parse::<usize>().ok());
        match index.and_then(|i| part.lines.get(i)) {
            Some(at) => out.push_str(&format!("{line} (line {at})\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    Failure::Refused(out.trim_end().to_owned())
}

/// Polls the batch until it is finished, with a progress bar on a terminal or one
/// JSON line per poll with `json`.
pub async fn watch(api: &Api, id: &str, json_lines: bool, every: Duration) -> Result<Value> {
    let bar = (!json_lines && std::io::stdout().is_terminal()).then(|| {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {per_sec} left {eta} {msg}",
            )
            .expect("a valid template"),
        );
        bar
    });
    let started = Instant::now();
    let mut first_done: Option<u64> = None;
    loop {
        let batch = api.get(&format!("/v1/batches/{id}")).await?;
        let total = batch["total"].as_u64().unwrap_or(0);
        let pending = batch["counts"]["pending"].as_u64().unwrap_or(0);
        let done = total.saturating_sub(pending);
        let baseline = *first_done.get_or_insert(done);
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            (done - baseline) as f64 / elapsed
        } else {
            0.0
        };
        let finished = matches!(batch["status"].as_str(), Some("completed" | "cancelled"));
        let counts = counts_text(&batch["counts"]);
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(counts);
        } else if json_lines {
            let eta = (rate > 0.0).then(|| (pending as f64 / rate).ceil() as u64);
            println!(
                "{}",
                json!({"id": id, "status": batch["status"], "total": total, "done": done,
                       "counts": batch["counts"], "rate_per_sec": (rate * 10.0).round() / 10.0,
                       "seconds_left": eta})
            );
        } else {
            println!(
                "{id} {} {done}/{total} {counts}",
                batch["status"].as_str().unwrap_or("")
            );
        }
        let _ = std::io::stdout().flush();
        if finished {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(batch);
        }
        tokio::time::sleep(every).await;
    }
}

/// The counts that are not zero, as `sent=3 failed=1`.
pub fn counts_text(counts: &Value) -> String {
    counts
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(name, n)| format!("{name}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails when a finished batch left recipients unreached, naming how many.
pub fn require_reached(batch: &Value) -> Result<()> {
    let unreached: u64 = NOT_REACHED
        .iter()
        .map(|s| batch["counts"][s].as_u64().unwrap_or(0))
        .sum();
    match unreached {
        0 => Ok(()),
        n => Err(Failure::FinishedWithFailures(format!(
            "batch {} finished; {n} recipient(s) not reached (list them with `herald batch failures {}`)",
            batch["id"].as_str().unwrap_or(""),
            batch["id"].as_str().unwrap_or("")
        ))),
    }
}

/// Every recipient the batch did not reach, as CSV: `to,status,code,reason,message_id`.
pub async fn failures(api: &Api, id: &str, out: &mut dyn std::io::Write) -> Result<u64> {
    let mut writer = csv::Writer::from_writer(out);
    let io = |e: csv::Error| Failure::Io(format!("writing the CSV: {e}"));
    writer
        .write_record(["to", "status", "code", "reason", "message_id"])
        .map_err(io)?;
    let mut count = 0;
    for status in NOT_REACHED {
        let first = format!("/v1/batches/{id}/messages?status={status}&limit=100");
        api.each_page(&first, "messages", |message| {
            count += 1;
            let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
            writer
                .write_record([
                    field(&message["to"]),
                    field(&message["status"]),
                    field(&message["error"]["code"]),
                    field(&message["error"]["reason"]),
                    field(&message["id"]),
                ])
                .map_err(io)
        })
        .await?;
    }
    writer
        .flush()
        .map_err(|e| Failure::io("writing the CSV", e))?;
    Ok(count)
}
