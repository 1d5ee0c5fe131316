//! What the on-call person relies on, held to the template. Every alarm names the
//! runbook section that says what it means, how to look and what to do (`Runbook:
//! docs/runbooks/<file>.md#<alarm>`), and every alarm section in `docs/runbooks/`
//! belongs to an alarm that still exists. The dashboard graphs every function and every
//! queue the template declares: a new one left off it fails here.

use std::collections::{BTreeMap, BTreeSet};

use herald_tests::herald_local::project_root;
use herald_tests::herald_local::template::Template;

fn template() -> Template {
    Template::load(&project_root().join("template.yaml")).unwrap()
}

/// Alarm logical id → the runbook reference its description ends with.
fn alarms() -> BTreeMap<String, String> {
    let template = template();
    template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .map(|(id, alarm)| {
            let description = alarm["Properties"]["AlarmDescription"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no description"));
            let reference = description
                .split_once("Runbook: ")
                .unwrap_or_else(|| panic!("{id} names no runbook: {description}"))
                .1
                .trim()
                .to_owned();
            (id.clone(), reference)
        })
        .collect()
}

/// `docs/runbooks/<file>.md#<anchor>` for every heading in the runbooks that names an
/// alarm (a heading that is one identifier ending in `Alarm`), with the alarm's name.
fn alarm_sections() -> BTreeMap<String, String> {
    let dir = project_root().join("docs/runbooks");
    let mut sections = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(heading) = line
                .strip_prefix('#')
                .map(|h| h.trim_start_matches('#').trim())
            else {
                continue;
            };
            let name = heading.trim_matches('`');
            if name.ends_with("Alarm") && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                let anchor = format!("docs/runbooks/{file}#{}", name.to_lowercase());
                assert!(
                    sections.insert(name.to_owned(), anchor).is_none(),
                    "{name} has two runbook sections"
                );
            }
        }
    }
    sections
}

#[test]
fn every_alarm_names_its_runbook_section_and_every_section_its_alarm() {
    let alarms = alarms();
    let sections = alarm_sections();
    assert!(
        alarms.len() >= 16,
        "the template's alarms were read: {alarms:?}"
    );
    for (alarm, reference) in &alarms {
        assert_eq!(
            sections.get(alarm),
            Some(reference),
            "{alarm} names `{reference}`, which is not its section in docs/runbooks"
        );
    }
    let orphans: BTreeSet<_> = sections
        .keys()
        .filter(|s| !alarms.contains_key(*s))
        .collect();
    assert!(
        orphans.is_empty(),
        "runbook sections without an alarm: {orphans:?}"
    );
}

/// Each section says what the alarm means, how to look, and what to do.
#[test]
fn every_alarm_section_says_what_it_means_how_to_look_and_what_to_do() {
    let dir = project_root().join("docs/runbooks");
    for (alarm, reference) in alarm_sections() {
        let file = reference
            .split_once('#')
            .unwrap()
            .0
            .trim_start_matches("docs/runbooks/");
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let start = text
            .lines()
            .position(|l| l.starts_with('#') && l.trim_matches(['#', ' ', '`']) == alarm)
            .unwrap();
        let section: String = text
            .lines()
            .skip(start + 1)
            .take_while(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for part in ["**Means.**", "**Look.**", "**Do.**"] {
            assert!(section.contains(part), "{alarm}'s section lacks {part}");
        }
    }
}

#[test]
fn the_dashboard_graphs_every_function_and_every_queue() {
    let template = template();
    let (_, dashboard) = template
        .resources_of_type("AWS::CloudWatch::Dashboard")
        .next()
        .expect("a dashboard");
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the body is one !Sub string");
    let parsed: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");
    assert!(parsed["widgets"].as_array().is_some_and(|w| w.len() >= 8));
    let mut missing = Vec::new();
    for (id, _) in template.resources_of_type("AWS::Serverless::Function") {
        if !body.contains(&format!("\"${{{id}}}\"")) {
            missing.push(id.clone());
        }
    }
    for (id, _) in template.resources_of_type("AWS::SQS::Queue") {
        if !body.contains(&format!("\"${{{id}.QueueName}}\"")) {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
