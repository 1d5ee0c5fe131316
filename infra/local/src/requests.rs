//! Counts the AWS requests each local function makes, per service and operation, with
//! an SDK interceptor on that function's clients. The benchmark reports requests per
//! delivered message from these counts, so the number is what was sent, not an estimate.
//! It also adds up how long the answers took, which tells the emulator's share of a
//! latency from Herald's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents, SharedInterceptor};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde::Serialize;

/// One kind of request: who made it (a function of the local cloud, or its SQS event
/// source), to which service, which operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RequestKind {
    pub caller: &'static str,
    pub service: String,
    pub operation: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Operations called (a `send()` each).
    pub calls: u64,
    /// HTTP requests transmitted: calls plus the SDK's retries of them.
    pub requests: u64,
    /// From sending each request to its answer, added up over the requests (attempts
    /// that got no answer, such as timeouts, are not in it).
    pub waiting: Duration,
}

/// Counts shared by every interceptor it hands out.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<RequestKind, Tally>>>,
}

impl RequestCounter {
    /// An interceptor counting under `caller`, for every client one function builds.
    pub fn interceptor(&self, caller: &'static str) -> SharedInterceptor {
        SharedInterceptor::new(Counting {
            caller,
            counts: self.counts.clone(),
        })
    }

    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts(self.counts.lock().expect("request counts lock").clone())
    }
}

/// The counts at one moment; `since` gives a phase's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts(pub BTreeMap<RequestKind, Tally>);

impl RequestCounts {
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        let mut phase = BTreeMap::new();
        for (kind, tally) in &self.0 {
            let before = earlier.0.get(kind).copied().unwrap_or_default();
            let delta = Tally {
                calls: tally.calls - before.calls,
                requests: tally.requests - before.requests,
                waiting: tally.waiting.saturating_sub(before.waiting),
            };
            if delta != Tally::default() {
                phase.insert(kind.clone(), delta);
            }
        }
        RequestCounts(phase)
    }

    /// Requests `caller` sent to `service` (the SDK's service name: `DynamoDB`, `SQS`).
    pub fn requests(&self, caller: &str, service: &str) -> u64 {
        self.0
            .iter()
            .filter(|(kind, _)| kind.caller == caller && kind.service == service)
            .map(|(_, tally)| tally.requests)
            .sum()
    }
}

/// When the current attempt was handed to the HTTP client.
#[derive(Debug, Clone)]
struct Transmitted(Instant);

impl Storable for Transmitted {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct Counting {
    caller: &'static str,
    counts: Arc<Mutex<BTreeMap<RequestKind, Tally>>>,
}

impl Counting {
    fn add(&self, cfg: &ConfigBag, count: impl FnOnce(&mut Tally)) {
        // Every generated operation stores its metadata; a request without it would
        // still be a request, so it is counted under a name that says so.
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("unnamed".to_owned(), "unnamed".to_owned()));
        let kind = RequestKind {
            caller: self.caller,
            service,
            operation,
        };
        count(
            self.counts
                .lock()
                .expect("request counts lock")
                .entry(kind)
                .or_default(),
        );
    }
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "herald-local request counter"
    }

    // Not `read_before_execution`: a client's interceptors run that hook before the
    // operation's own configuration (and so its name) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.add(cfg, |tally| tally.calls += 1);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.add(cfg, |tally| tally.requests += 1);
        cfg.interceptor_state()
            .store_put(Transmitted(Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Transmitted(at)) = cfg.load::<Transmitted>().cloned() {
            self.add(cfg, |tally| tally.waiting += at.elapsed());
        }
        Ok(())
    }
}
