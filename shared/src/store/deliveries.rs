//! An endpoint's attempts log (issue 15): one item per delivery attempt under the
//! endpoint (`TENANT#{t}#WEBHOOK#{id}#ATTEMPTS`, by time), kept 30 days. The log is
//! what the tenant reads (`GET .../attempts`, newest first) and what recover reads
//! back: an event whose last attempt is `failed` is sent again from the body kept
//! with it.

use std::time::Duration;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{AttemptRecord, AttemptResult, EventType};
use crate::ids::TenantId;
use crate::item::{
    Item, corrupt, get_n, get_named, get_s, get_time, is_condition_failure, key_item, n, name, s,
    time, with_key,
};
use crate::keys::{self, Key};

/// How long an attempt is kept.
pub const ATTEMPTS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

impl Store {
    /// Adds `record` to the endpoint's log; a second write of the same attempt (the
    /// queue handing a delivery over twice) keeps the first.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, endpoint_id = endpoint_id))]
    pub async fn record_attempt(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        record: &AttemptRecord,
    ) -> Result<(), StoreError> {
        let key = keys::webhook_attempt(
            tenant,
            endpoint_id,
            record.at,
            &record.event_id,
            record.attempt,
        );
        let mut item = with_key(
            &key,
            [
                ("event_id", s(&record.event_id)),
                ("event_type", name(record.event_type)),
                ("attempt", n(record.attempt)),
                ("at", time(record.at)),
                ("result", name(record.result)),
                ("duration_ms", n(record.duration_ms)),
                ("excerpt", s(&record.excerpt)),
                ("body", s(&record.body)),
                (
                    "expires_at",
                    n(record.at.plus(ATTEMPTS_KEPT).epoch_seconds()),
                ),
            ],
        );
        if let Some(code) = record.status_code {
            item.insert("status_code".into(), n(code));
        }
        self.put_new(item).await?;
        Ok(())
    }

    /// A page of the endpoint's attempts, newest first, from after the position
    /// `after`; and the position to go on from when more follow.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, endpoint_id = endpoint_id))]
    pub async fn attempt_page(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AttemptRecord>, Option<String>), StoreError> {
        let partition = keys::webhook_attempts_partition(tenant, endpoint_id);
        let (items, next) = self
            .page(
                |q| {
                    q.key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", s(&partition))
                },
                after,
                limit,
                "sk",
                |sk| {
                    key_item(&Key {
                        pk: partition.clone(),
                        sk: sk.to_owned(),
                    })
                },
            )
            .await?;
        let records = items.iter().map(parse_attempt).collect::<Result<_, _>>()?;
        Ok((records, next))
    }

    /// The events whose last attempt to the endpoint since `since` failed (the
    /// schedule spent), oldest first, at most `limit`; reads at most `scan` attempts.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, endpoint_id = endpoint_id))]
    pub async fn failed_since(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        since: Timestamp,
        scan: usize,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let partition = keys::webhook_attempts_partition(tenant, endpoint_id);
        let items = self
            .query_all(
                |q| {
                    q.key_condition_expression("pk = :pk AND sk >= :since")
                        .expression_attribute_values(":pk", s(&partition))
                        .expression_attribute_values(":since", s(since.to_string()))
                },
                Some(scan),
            )
            .await?;
        // In time order: the last attempt of each event says how it ended.
        let mut last: std::collections::HashMap<String, AttemptRecord> = Default::default();
        let mut order = Vec::new();
        for item in &items {
            let record = parse_attempt(item)?;
            if !last.contains_key(&record.event_id) {
                order.push(record.event_id.clone());
            }
            last.insert(record.event_id.clone(), record);
        }
        Ok(order
            .into_iter()
            .filter_map(|id| last.remove(&id))
            .filter(|r| r.result == AttemptResult::Failed)
            .take(limit)
            .collect())
    }
}

impl Store {
    /// Records that deliveries to the endpoint fail since `now` (kept if already
    /// failing), or (`now` none) that one succeeded. Outside the endpoint's versioned
    /// changes: an admin's change racing it may keep the value it read, which only
    /// moves the five days' start. A deleted endpoint is left alone.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, endpoint_id = endpoint_id))]
    pub async fn mark_endpoint_failing(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        now: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let request = self
            .update(&keys::webhook_endpoint(tenant, endpoint_id))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)");
        let request = match now {
            Some(now) => request
                .update_expression("SET failing_since = if_not_exists(failing_since, :now)")
                .expression_attribute_values(":now", time(now)),
            None => request.update_expression("REMOVE failing_since"),
        };
        match request.send().await {
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(crate::item::dynamo),
        }
    }
}

fn parse_attempt(item: &Item) -> Result<AttemptRecord, StoreError> {
    let key = Key {
        pk: get_s(item, "pk").unwrap_or_default().to_owned(),
        sk: get_s(item, "sk").unwrap_or_default().to_owned(),
    };
    let corrupt = |reason: &str| corrupt(&key, reason);
    Ok(AttemptRecord {
        event_id: get_s(item, "event_id")
            .ok_or_else(|| corrupt("no event id"))?
            .to_owned(),
        event_type: get_named::<EventType>(item, "event_type")
            .ok_or_else(|| corrupt("unknown event type"))?,
        attempt: get_n(item, "attempt").ok_or_else(|| corrupt("no attempt"))?,
        at: get_time(item, "at").ok_or_else(|| corrupt("no time"))?,
        result: get_named::<AttemptResult>(item, "result")
            .ok_or_else(|| corrupt("unknown result"))?,
        status_code: get_n(item, "status_code"),
        duration_ms: get_n(item, "duration_ms").unwrap_or(0),
        excerpt: get_s(item, "excerpt").unwrap_or_default().to_owned(),
        body: get_s(item, "body").unwrap_or_default().to_owned(),
    })
}
