//! The sandbox's webhooks, as Twilio sends them: a status callback for each status a
//! message it took reaches (`sent`, then `delivered`, or `undelivered` for the magic
//! number and the numbers a fault names), to the message's `StatusCallback` URL, and
//! inbound texts to the receiver's inbound URL; each signed with the account's auth
//! token (`X-Twilio-Signature`). Faults copy, reorder, delay and drop callbacks, and
//! the sandbox counts what it sent and what was answered.

use std::sync::Arc;
use std::time::Duration;

use herald::webhook::twilio;
use rand::seq::SliceRandom;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{Faults, Sandbox};

/// Twilio's magic number that is always accepted and never delivered (a number that
/// cannot receive texts).
pub const UNDELIVERED_NUMBER: &str = "+15005550009";
/// The carrier error it ends with: a landline or unreachable carrier.
pub const UNDELIVERED_CODE: &str = "30006";
/// Callbacks in flight at once, as a provider spreads its calls over its own workers.
const IN_FLIGHT: usize = 16;
/// A callback not answered 2xx is tried this often before it counts as failed.
const ATTEMPTS: u32 = 5;

/// What the sandbox's webhooks did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CallbackLog {
    /// Status callback requests answered 2xx (each copy counts).
    pub delivered: usize,
    /// Requests the drop fault swallowed.
    pub dropped: usize,
    /// Requests never answered 2xx after every attempt.
    pub failed: usize,
    /// Messages given an `undelivered` final status.
    pub undelivered_messages: usize,
}

pub(super) struct Callbacks {
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("an HTTP client"),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }
}

/// One message's callbacks, as the faults shape them.
pub(super) fn schedule(
    sandbox: &Arc<Sandbox>,
    faults: &Faults,
    sid: &str,
    to: &str,
    from: &str,
    url: &str,
) {
    let undelivered = to == UNDELIVERED_NUMBER || faults.undelivered_to.iter().any(|n| n == to);
    if undelivered {
        sandbox.log(|log| log.undelivered_messages += 1);
    }
    let mut statuses = vec![("sent", None)];
    statuses.push(match undelivered {
        true => ("undelivered", Some(UNDELIVERED_CODE)),
        false => ("delivered", None),
    });
    let copies = faults.callback_copies.max(1);
    let mut requests: Vec<(usize, &str, Option<&str>)> = Vec::new();
    for (order, (status, code)) in statuses.into_iter().enumerate() {
        for _ in 0..copies {
            requests.push((order, status, code));
        }
    }
    if faults.callback_reorder {
        requests.shuffle(&mut rand::rng());
    }
    for (position, (order, status, code)) in requests.into_iter().enumerate() {
        if rand::random::<f64>() < faults.callback_drop_rate {
            sandbox.log(|log| log.dropped += 1);
            continue;
        }
        // In order, each a little after the one before; reordered, at random within
        // the delay, so copies and statuses overtake each other.
        let delay = match faults.callback_reorder {
            true => {
                faults.callback_delay_ms + rand::random_range(0..=faults.callback_delay_ms.max(1))
            }
            false => faults.callback_delay_ms + (order * 10 + position) as u64,
        };
        let mut form = vec![
            ("AccountSid".to_owned(), sandbox.account_sid.clone()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
            ("From".to_owned(), from.to_owned()),
            ("MessageSid".to_owned(), sid.to_owned()),
            ("MessageStatus".to_owned(), status.to_owned()),
            ("SmsSid".to_owned(), sid.to_owned()),
            ("SmsStatus".to_owned(), status.to_owned()),
            ("To".to_owned(), to.to_owned()),
        ];
        if let Some(code) = code {
            form.push(("ErrorCode".to_owned(), code.to_owned()));
        }
        let sandbox = sandbox.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let delivered = post_signed(&sandbox, &url, &form)
                .await
                .is_ok_and(|s| s < 300);
            sandbox.log(|log| match delivered {
                true => log.delivered += 1,
                false => log.failed += 1,
            });
        });
    }
}

/// Posts `form` to `url` signed as Twilio does, retrying what is not answered 2xx (a
/// gateway still starting, a receiver briefly unavailable); the last status, or the
/// transport error.
pub(super) async fn post_signed(
    sandbox: &Sandbox,
    url: &str,
    form: &[(String, String)],
) -> Result<u16, String> {
    let _permit = sandbox
        .callbacks
        .in_flight
        .acquire()
        .await
        .map_err(|e| e.to_string())?;
    let signature = twilio::signature(&sandbox.auth_token, url, form);
    let mut last = Err("not sent".to_owned());
    for attempt in 0..ATTEMPTS {
        let answer = sandbox
            .callbacks
            .http
            .post(url)
            .header(twilio::SIGNATURE_HEADER, &signature)
            .form(form)
            .send()
            .await;
        last = answer
            .map(|a| a.status().as_u16())
            .map_err(|e| e.to_string());
        match &last {
            Ok(status) if *status < 500 => return last,
            _ => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
        }
    }
    last
}
