//! `herald-phonenumbers` (part of `make bench-cpu`, issue 18): what validating phone
//! numbers costs a function's process, in time and memory. The API validates every
//! recipient with libphonenumber (`herald::PhoneNumber::parse`); its metadata loads at
//! the first use, and each of its patterns is compiled at the first number that needs
//! it and kept (vendor/README.md). A batch to many countries compiles many patterns,
//! and the compiled patterns, not the metadata, are most of the memory: the figures
//! here are the ones the cold-start figures (`herald-coldstart`) cannot show.
//!
//! Numbers: each region's example mobile number from the metadata (so every region's
//! patterns), then the same list again (what the cache keeps), then a few common
//! countries over and over.
//! Memory is this process's resident set (`/proc/self/status`), which holds nothing
//! else.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use herald::PhoneNumber;
use herald_local::cpu::Resident;
use phonenumber::metadata::DATABASE;
use serde_json::json;

/// Common destinations, for the warm figure.
const COMMON: [&str; 6] = [
    "+14155550100",
    "+447911123456",
    "+33612345678",
    "+4915123456789",
    "+5511987654321",
    "+919876543210",
];
const WARM_ROUNDS: usize = 200;

fn main() -> Result<()> {
    let start = Resident::of("self")?;
    let clock = Instant::now();
    let regions = DATABASE.iter().count();
    let load = clock.elapsed();
    let loaded = Resident::of("self")?;

    let examples: Vec<String> = DATABASE
        .iter()
        .filter_map(|region| {
            let mobile = region.descriptors().mobile()?.example()?;
            Some(format!("+{}{mobile}", region.country_code()))
        })
        .collect();
    let (first, valid) = validate(&examples);
    let first_memory = Resident::of("self")?;
    let (second, _) = validate(&examples);
    let second_memory = Resident::of("self")?;
    let common: Vec<String> = (0..WARM_ROUNDS)
        .flat_map(|_| COMMON.map(str::to_owned))
        .collect();
    let (warm, common_valid) = validate(&common);
    ensure!(common_valid == common.len(), "a common number is not valid");

    let per_number = |time: Duration, count: usize| time.as_secs_f64() * 1000.0 / count as f64;
    println!("Phone-number validation in one process (herald::PhoneNumber::parse)");
    println!(
        "  {:<44} {:>9} {:>12} {:>10} {:>10}",
        "", "ms", "ms/number", "anon KiB", "peak KiB"
    );
    println!(
        "  {:<44} {:>9.1} {:>12} {:>10} {:>10}",
        "nothing loaded", 0.0, "", start.anon, start.peak
    );
    let metadata = format!("metadata loaded ({regions} regions)");
    println!(
        "  {metadata:<44} {:>9.1} {:>12} {:>10} {:>10}",
        ms(load),
        "",
        loaded.anon,
        loaded.peak
    );
    for (label, time, count, memory) in [
        (
            "every region's example, first pass",
            first,
            examples.len(),
            first_memory,
        ),
        (
            "every region's example, second pass",
            second,
            examples.len(),
            second_memory,
        ),
    ] {
        println!(
            "  {label:<44} {:>9.1} {:>12.4} {:>10} {:>10}",
            ms(time),
            per_number(time, count),
            memory.anon,
            memory.peak
        );
    }
    let warm_label = format!("{} common numbers, {WARM_ROUNDS} rounds", COMMON.len());
    println!(
        "  {warm_label:<44} {:>9.1} {:>12.4}",
        ms(warm),
        per_number(warm, common.len())
    );
    println!("  ({valid} of {} example numbers valid)", examples.len());
    println!(
        "{}",
        json!({"phone_numbers": {
            "regions": regions,
            "metadata_load_ms": ms(load),
            "examples": examples.len(),
            "first_pass_ms_per_number": per_number(first, examples.len()),
            "second_pass_ms_per_number": per_number(second, examples.len()),
            "warm_ms_per_number": per_number(warm, common.len()),
            "anon_kib_after_first_pass": first_memory.anon,
            "peak_kib": second_memory.peak,
        }})
    );
    Ok(())
}

/// How long `numbers` took to validate, and how many were valid.
fn validate(numbers: &[String]) -> (Duration, usize) {
    let clock = Instant::now();
    let valid = numbers
        .iter()
        .filter(|raw| PhoneNumber::parse(raw).is_ok())
        .count();
    (clock.elapsed(), valid)
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}
