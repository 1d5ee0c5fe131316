//! A CSV of recipients, read as a stream: the header names the address column and the
//! variables, every row is checked with the API's own parsers (`herald::Address`,
//! `herald::template`, `herald::domain::Subject`), and the good rows are cut into parts
//! of at most the API's recipient limit. Nothing holds more than one part in memory,
//! whatever the file's size; the file's SHA-256 is taken on the same pass.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};

use herald::Address;
use herald::domain::{Channel, MAX_SUBJECT_CHARS, MessageText, Subject};
use herald::template::{RenderError, Template};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::failure::{Failure, Result};

/// What every row is checked against.
pub struct Campaign {
    pub channel: Channel,
    pub template: Template,
    pub subject: Option<Template>,
    pub to_column: String,
    pub part_size: usize,
}

impl Campaign {
    /// Checks the template and subject as the API does, before any row is read.
    pub fn new(
        channel: Channel,
        template: &str,
        subject: Option<&str>,
        to_column: String,
        part_size: usize,
    ) -> Result<Self> {
        let mut problems = Vec::new();
        if let Err(text) = MessageText::parse(channel, template) {
            problems.extend(text.iter().map(|p| format!("--template: {p}")));
        }
        let parsed = Template::parse_within(template, channel.max_text_chars())
            .map_err(|e| problems.push(format!("--template: {e}")))
            .ok();
        let subject = match Subject::for_channel(channel, subject) {
            Ok(subject) => subject.and_then(|s| {
                Template::parse(s.as_str())
                    .map_err(|e| problems.push(format!("--subject: {e}")))
                    .ok()
            }),
            Err(text) => {
                problems.extend(text.iter().map(|p| format!("--subject: {p}")));
                None
            }
        };
        match parsed {
            Some(template) if problems.is_empty() => Ok(Self {
                channel,
                template,
                subject,
                to_column,
                part_size,
            }),
            _ => Err(Failure::Usage(problems.join("\n"))),
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.template
            .names()
            .chain(self.subject.iter().flat_map(|s| s.names()))
    }
}

/// A row that is not a valid recipient, with its line in the file (the header is
/// line 1; a quoted field with line breaks makes a row span several lines).
pub struct BadRow {
    pub line: u64,
    pub problems: Vec<String>,
}

/// One part: the recipients of one batch, with the line each came from.
pub struct Part {
    pub number: usize,
    pub recipients: Vec<Value>,
    pub lines: Vec<u64>,
}

/// What a full pass over the file found.
pub struct Survey {
    pub sha256: String,
    pub good: u64,
    pub bad: Vec<BadRow>,
    /// Bad rows past the ones kept in `bad` (only their number is kept).
    pub more_bad: u64,
    pub parts: usize,
}

/// How many bad rows a survey keeps to list; the rest are counted.
const BAD_ROWS_LISTED: usize = 100;

/// Reads `input` once, calling `part` with each full part of good rows (pass a closure
/// that drops them to only survey the file). A part is handed over as soon as it is
/// full, so memory holds at most one.
pub fn read<R: Read>(
    campaign: &Campaign,
    input: R,
    mut part: impl FnMut(Part) -> Result<()>,
) -> Result<Survey> {
    let mut hashing = BufReader::with_capacity(1 << 16, Hashing::new(input));
    skip_bom(&mut hashing)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(hashing);
    let header = reader.headers().map_err(malformed)?.clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(Failure::EmptyFile(
            "the file is empty: it has no header and no rows".into(),
        ));
    }
    let to_index = header
        .iter()
        .position(|name| name == campaign.to_column)
        .ok_or_else(|| {
            Failure::MissingColumn(format!(
                "the header has no {:?} column for the addresses (it has: {}); name it with --to-column",
                campaign.to_column,
                header.iter().collect::<Vec<_>>().join(", ")
            ))
        })?;
    let mut columns = BTreeMap::new();
    let mut missing = Vec::new();
    for name in campaign.names() {
        match header.iter().position(|column| column == name) {
            Some(index) => {
                columns.insert(name.to_owned(), index);
            }
            None if !missing.contains(&name) => missing.push(name),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(Failure::MissingVariable(format!(
            "the template uses {} but the header has no column of that name (it has: {})",
            missing
                .iter()
                .map(|n| format!("{{{{{n}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            header.iter().collect::<Vec<_>>().join(", ")
        )));
    }

    let mut survey = Survey {
        sha256: String::new(),
        good: 0,
        bad: Vec::new(),
        more_bad: 0,
        parts: 0,
    };
    let mut current = Part {
        number: 1,
        recipients: Vec::new(),
        lines: Vec::new(),
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(malformed)? {
        let line = record.position().map_or(0, |p| p.line());
        match check(campaign, &record, to_index, &columns, &seen) {
            Ok((folded, recipient)) => {
                seen.insert(folded);
                current.recipients.push(recipient);
                current.lines.push(line);
                survey.good += 1;
            }
            Err(problems) if survey.bad.len() < BAD_ROWS_LISTED => {
                survey.bad.push(BadRow { line, problems })
            }
            Err(_) => survey.more_bad += 1,
        }
        if current.recipients.len() == campaign.part_size {
            let next = current.number + 1;
            part(std::mem::replace(
                &mut current,
                Part {
                    number: next,
                    recipients: Vec::new(),
                    lines: Vec::new(),
                },
            ))?;
            seen.clear();
            survey.parts += 1;
        }
    }
    if !current.recipients.is_empty() {
        part(current)?;
        survey.parts += 1;
    }
    if survey.good == 0 && survey.bad.is_empty() {
        return Err(Failure::EmptyFile(
            "the file has a header but no rows".into(),
        ));
    }
    // Whatever the reader left unread (nothing, for a well-formed file) is hashed too.
    let mut rest = reader.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| Failure::io("the file", e))?;
    survey.sha256 = rest.into_inner().finish();
    Ok(survey)
}

/// One row as the API's recipient, with its folded address (duplicates are refused
/// within a part, as the API refuses them within a batch).
fn check(
    campaign: &Campaign,
    record: &csv::StringRecord,
    to_index: usize,
    columns: &BTreeMap<String, usize>,
    seen: &HashSet<String>,
) -> std::result::Result<(String, Value), Vec<String>> {
    let mut problems = Vec::new();
    let raw = &record[to_index];
    let address = Address::parse(campaign.channel, raw)
        .map_err(|e| problems.push(format!("{}: {e}", campaign.to_column)))
        .ok();
    let variables: BTreeMap<String, String> = columns
        .iter()
        .map(|(name, &index)| (name.clone(), record[index].to_owned()))
        .collect();
    let max_chars = campaign.channel.max_text_chars();
    if let Err(e) = campaign.template.render_within(&variables, max_chars) {
        problems.push(e.to_string());
    }
    if let Some(subject) = &campaign.subject {
        match subject.render_within(&variables, MAX_SUBJECT_CHARS) {
            Err(RenderError::TooLong { .. }) => problems.push(format!(
                "the subject for this row is more than {MAX_SUBJECT_CHARS} characters"
            )),
            Err(e) => problems.push(e.to_string()),
            Ok(text) => problems.extend(
                Subject::parse(&text)
                    .err()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| format!("the subject for this row: {p}")),
            ),
        }
    }
    let folded = address.as_ref().map(Address::folded);
    if let Some(folded) = &folded
        && seen.contains(folded)
    {
        problems.push(format!(
            "{} {raw:?} appears earlier in the same part; each address may appear once per batch",
            campaign.to_column
        ));
    }
    match (problems.is_empty(), folded) {
        (true, Some(folded)) => Ok((folded, json!({"to": raw, "variables": variables}))),
        _ => Err(problems),
    }
}

fn skip_bom<R: BufRead>(reader: &mut R) -> Result<()> {
    let start = reader.fill_buf().map_err(|e| Failure::io("the file", e))?;
    if start.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(())
}

fn malformed(error: csv::Error) -> Failure {
    let at = error
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    match error.kind() {
        csv::ErrorKind::Io(e) => Failure::Io(format!("the file could not be read: {e}")),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Failure::MalformedCsv(format!(
            "{at}a row has {len} fields where the header has {expected_len} (a comma in a value needs the value in double quotes)"
        )),
        csv::ErrorKind::Utf8 { .. } => Failure::MalformedCsv(format!(
            "{at}the file is not UTF-8 text (save it as CSV UTF-8)"
        )),
        _ => Failure::MalformedCsv(format!("{at}{error}")),
    }
}

/// A reader that takes the SHA-256 of every byte read through it.
struct Hashing<R> {
    inner: R,
    digest: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            digest: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        self.digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSV of `rows` recipients made as it is read, counting the bytes handed out.
    struct Generated {
        rows: usize,
        next: usize,
        pending: Vec<u8>,
        handed_out: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() && self.next <= self.rows {
                self.pending = if self.next == 0 {
                    b"to,name\n".to_vec()
                } else {
                    format!("+1415{:07},n{}\n", 5_500_000 + self.next % 1_000, self.next)
                        .into_bytes()
                };
                self.next += 1;
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            self.handed_out.set(self.handed_out.get() + n as u64);
            Ok(n)
        }
    }

    fn campaign(part_size: usize) -> Campaign {
        Campaign::new(Channel::Sms, "Hi {{name}}", None, "to".into(), part_size).expect("valid")
    }

    #[test]
    fn parts_are_handed_over_while_the_file_is_still_being_read() {
        let handed_out = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Generated {
            rows: 10_000,
            next: 0,
            pending: Vec::new(),
            handed_out: handed_out.clone(),
        };
        let mut read_at_each_part = Vec::new();
        let survey = read(&campaign(500), input, |part| {
            assert_eq!(part.recipients.len(), 500);
            read_at_each_part.push(handed_out.get());
            Ok(())
        })
        .expect("a good file");
        assert_eq!(
            (survey.good, survey.parts, read_at_each_part.len()),
            (10_000, 20, 20)
        );
        let total = handed_out.get();
        // When the first part is handed over, about a twentieth of the file has been
        // read (one part, plus the reader's 64 KiB buffer): not the whole file.
        assert!(
            read_at_each_part[0] < total / 10,
            "{} of {total}",
            read_at_each_part[0]
        );
    }

    #[test]
    fn the_hash_is_the_files_and_a_bom_is_not_an_address() {
        let plain = b"to,name\r\n+14155550100,\"Smith, Ada\"\r\n".to_vec();
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), &plain].concat();
        let mut seen = Vec::new();
        let survey = read(&campaign(10), with_bom.as_slice(), |part| {
            seen.extend(part.recipients);
            Ok(())
        })
        .expect("a good file");
        assert_eq!(
            seen,
            [json!({"to": "+14155550100", "variables": {"name": "Smith, Ada"}})]
        );
        let expected: String = Sha256::digest(&with_bom)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(survey.sha256, expected);
    }
}
