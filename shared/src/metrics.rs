//! Metrics as CloudWatch Embedded Metric Format lines: written beside the logs, turned
//! into metrics by CloudWatch Logs, with no API call on the hot path. Tenant and batch
//! ids travel as properties (searchable in Logs Insights), not dimensions, so the
//! metric count does not grow with the number of tenants.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "Herald";
/// EMF takes at most 100 values per metric in one line.
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The metrics of one unit of work (a request, a chunk, a redrive run).
#[derive(Debug, Clone)]
pub struct Record {
    function: &'static str,
    metrics: Vec<(&'static str, Unit, Vec<f64>)>,
    properties: Map<String, Value>,
}

impl Record {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn count(mut self, name: &'static str, value: usize) -> Self {
        self.metrics.push((name, Unit::Count, vec![value as f64]));
        self
    }

    /// Every sample of a distribution (provider latencies); CloudWatch keeps the
    /// percentiles. Past 100 samples the rest are dropped: a line may carry no more.
    pub fn samples(mut self, name: &'static str, unit: Unit, mut values: Vec<f64>) -> Self {
        values.truncate(MAX_VALUES);
        if !values.is_empty() {
            self.metrics.push((name, unit, values));
        }
        self
    }

    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    /// The EMF document, stamped `timestamp_ms`.
    pub fn to_emf(&self, timestamp_ms: u64) -> Value {
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut line = self.properties.clone();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        line.insert("Function".into(), self.function.into());
        for (name, _, values) in &self.metrics {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            line.insert((*name).to_owned(), value);
        }
        Value::Object(line)
    }
}

/// Where metric lines go: standard output in Lambda (CloudWatch Logs reads it), a
/// memory buffer in tests that count what was emitted.
#[derive(Clone)]
pub struct Metrics {
    clock: crate::clock::SharedClock,
    memory: Option<Arc<Mutex<Vec<Value>>>>,
}

impl Metrics {
    pub fn stdout(clock: crate::clock::SharedClock) -> Self {
        Self {
            clock,
            memory: None,
        }
    }

    /// Keeps every line, for tests; nothing is printed.
    pub fn in_memory(clock: crate::clock::SharedClock) -> Self {
        Self {
            clock,
            memory: Some(Arc::default()),
        }
    }

    pub fn emit(&self, record: Record) {
        let line = record.to_emf(self.clock.epoch_millis());
        match &self.memory {
            Some(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).push(line),
            // One write per line: EMF needs each document on a line of its own.
            None => println!("{line}"),
        }
    }

    /// The sum of `name` over every kept line of `function`.
    ///
    /// # Panics
    /// On metrics that print: there is nothing kept to add up, and a 0 would pass a
    /// test that expects none.
    pub fn total(&self, function: &str, name: &str) -> f64 {
        self.memory
            .as_ref()
            .expect("total() adds up kept lines; these metrics are printed")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|line| line["Function"] == function)
            .map(|line| match &line[name] {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
                _ => 0.0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_an_emf_document_with_its_values_at_the_top() {
        let record = Record::new("sender")
            .count("Sent", 98)
            .count("Unknown", 2)
            .samples("ProviderLatency", Unit::Milliseconds, vec![12.0, 30.5])
            .samples("Nothing", Unit::Milliseconds, vec![])
            .property("tenant_id", "acme");
        let line = record.to_emf(1_700_000_000_000);
        assert_eq!(
            line,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Herald",
                        "Dimensions": [["Function"]],
                        "Metrics": [
                            { "Name": "Sent", "Unit": "Count" },
                            { "Name": "Unknown", "Unit": "Count" },
                            { "Name": "ProviderLatency", "Unit": "Milliseconds" },
                        ],
                    }],
                },
                "Function": "sender",
                "Sent": 98.0,
                "Unknown": 2.0,
                "ProviderLatency": [12.0, 30.5],
                "tenant_id": "acme",
            })
        );
    }

    #[test]
    fn no_more_than_a_hundred_samples_per_line() {
        let line = Record::new("sender")
            .samples("ProviderLatency", Unit::Milliseconds, vec![1.0; 250])
            .to_emf(0);
        assert_eq!(line["ProviderLatency"].as_array().unwrap().len(), 100);
    }

    #[test]
    fn kept_lines_add_up_per_function() {
        let metrics = Metrics::in_memory(crate::clock::system());
        metrics.emit(Record::new("sender").count("Sent", 3));
        metrics.emit(Record::new("sender").count("Sent", 4));
        metrics.emit(Record::new("api").count("Sent", 100));
        assert_eq!(metrics.total("sender", "Sent"), 7.0);
    }
}
