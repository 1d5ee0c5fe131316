//! The restore drill's items, all platform-level (`keys::Platform`): canaries, the
//! drill schedule (which drill runs, when the last started and succeeded) and one
//! record per drill; and the reads a drill makes of any table: a sample of the live
//! table's items, an item's digest, whether a canary is there. A drill's record and a
//! canary's sample are kept as JSON text: only the backup check reads them, and they
//! are lists no query looks into.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use rand::Rng;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{Canary, CanaryRef, Drill, DrillSchedule, DrillState, SampledItem};
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_s, get_time, key_item, n, name, s, time, with_key,
};
use crate::keys::{self, Key, Platform};
use crate::restore::digest::digest;

/// Canaries are kept a week: a drill only looks at the few written around its point.
const CANARY_TTL_SECS: u64 = 7 * 24 * 3600;
/// Drill records are kept 90 days, for the history of restore times.
const DRILL_TTL_SECS: u64 = 90 * 24 * 3600;

impl Store {
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The same handle on another table of the account (a scratch table).
    pub fn on_table(&self, table: impl Into<String>) -> Store {
        Store::new(self.client.clone(), table)
    }

    /// Up to `size` items, each with its digest, from the first page of a parallel
    /// scan's segments (the table split `segments` ways), starting at a random one and
    /// going on to the next while the sample is short (a small table leaves most
    /// segments empty). A platform-level read across tenants: only the backup check
    /// calls it, and it keeps keys and digests, never the content.
    #[tracing::instrument(skip_all, fields(size, segments))]
    pub async fn sample_items(
        &self,
        size: i32,
        segments: i32,
    ) -> Result<Vec<SampledItem>, StoreError> {
        let segments = segments.max(1);
        let first = rand::rng().random_range(0..segments);
        let mut sample = Vec::new();
        for offset in 0..segments {
            let wanted = size - sample.len() as i32;
            if wanted <= 0 {
                break;
            }
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .segment((first + offset) % segments)
                .total_segments(segments)
                .limit(wanted)
                .send()
                .await
                .map_err(dynamo)?;
            sample.extend(out.items.unwrap_or_default().iter().filter_map(|item| {
                Some(SampledItem {
                    pk: get_s(item, "pk")?.to_owned(),
                    sk: get_s(item, "sk")?.to_owned(),
                    digest: digest(item),
                })
            }));
        }
        Ok(sample)
    }

    /// The digest of the item at `pk`/`sk` now, or `None` when there is none.
    pub async fn item_digest(&self, pk: &str, sk: &str) -> Result<Option<String>, StoreError> {
        let key = Key {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
        };
        Ok(self.get(&key, true).await?.as_ref().map(digest))
    }

    #[tracing::instrument(skip_all, fields(canary = %canary.id))]
    pub async fn put_canary(&self, platform: Platform, canary: &Canary) -> Result<(), StoreError> {
        let sample = serde_json::to_string(&canary.sample).map_err(dynamo)?;
        let item = with_key(
            &keys::canary(platform, canary.written_at, &canary.id),
            [
                ("canary_id", s(&canary.id)),
                ("written_at", time(canary.written_at)),
                ("sample", s(sample)),
                (
                    "expires_at",
                    n(canary.written_at.epoch_seconds() + CANARY_TTL_SECS),
                ),
            ],
        );
        self.put_new(item).await?;
        Ok(())
    }

    /// Canaries written from `from` to `until`, oldest first, or the newest `limit` of
    /// them when `newest` is set.
    #[tracing::instrument(skip_all, fields(%from, %until))]
    pub async fn canaries(
        &self,
        platform: Platform,
        from: Timestamp,
        until: Timestamp,
        newest: Option<i32>,
    ) -> Result<Vec<Canary>, StoreError> {
        if until < from {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :until")
            .expression_attribute_values(":pk", s(keys::canary_partition(platform)))
            .expression_attribute_values(":from", s(keys::canaries_from(platform, from)))
            .expression_attribute_values(":until", s(keys::canaries_until(platform, until)))
            .scan_index_forward(newest.is_none())
            .set_limit(newest)
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        let mut canaries = out
            .items
            .unwrap_or_default()
            .iter()
            .map(parse_canary)
            .collect::<Result<Vec<_>, _>>()?;
        canaries.sort_by_key(|c| c.written_at);
        Ok(canaries)
    }

    /// Whether this table holds the canary (a scratch table, when a drill checks it).
    pub async fn has_canary(
        &self,
        platform: Platform,
        canary: &CanaryRef,
    ) -> Result<bool, StoreError> {
        let key = keys::canary(platform, canary.written_at, &canary.id);
        Ok(self.get(&key, true).await?.is_some())
    }

    #[tracing::instrument(skip_all)]
    pub async fn drill_schedule(&self, platform: Platform) -> Result<DrillSchedule, StoreError> {
        let item = self.get(&keys::drill_state(platform), true).await?;
        Ok(item
            .map(|item| DrillSchedule {
                running: get_s(&item, "running").map(str::to_owned),
                last_started_at: get_time(&item, "last_started_at"),
                last_succeeded_at: get_time(&item, "last_succeeded_at"),
            })
            .unwrap_or_default())
    }

    /// Records the drill and marks it running; `false` when another drill runs (and
    /// nothing is written).
    #[tracing::instrument(skip_all, fields(drill = %drill.id))]
    pub async fn start_drill(&self, platform: Platform, drill: &Drill) -> Result<bool, StoreError> {
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::drill_state(platform))))
            .update_expression("SET running = :id, last_started_at = :at")
            .condition_expression("attribute_not_exists(running)")
            .expression_attribute_values(":id", s(&drill.id))
            .expression_attribute_values(":at", time(drill.started_at))
            .build()
            .map_err(dynamo)?;
        let record = self.drill_put(platform, drill, "attribute_not_exists(pk)")?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(claim).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) {
                    Ok(false)
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// Saves a running drill's progress; `false` when it is no longer running (another
    /// run finished it).
    #[tracing::instrument(skip_all, fields(drill = %drill.id))]
    pub async fn save_drill(&self, platform: Platform, drill: &Drill) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(drill_item(platform, drill)?))
            .condition_expression("#state = :restoring")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":restoring", name(DrillState::Restoring))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Records a finished drill and frees the schedule for the next one; `false` when
    /// another run finished it first. A drill that never ran (recovery was off) is
    /// recorded without touching the schedule's running drill.
    #[tracing::instrument(skip_all, fields(drill = %drill.id, state = %drill.state))]
    pub async fn finish_drill(
        &self,
        platform: Platform,
        drill: &Drill,
        was_running: bool,
    ) -> Result<bool, StoreError> {
        if !was_running {
            return self.put_new(drill_item(platform, drill)?).await;
        }
        let mut release = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::drill_state(platform))))
            .condition_expression("running = :id")
            .expression_attribute_values(":id", s(&drill.id));
        release = if drill.state == DrillState::Succeeded {
            release
                .update_expression("REMOVE running SET last_succeeded_at = :at")
                .expression_attribute_values(
                    ":at",
                    time(drill.finished_at.unwrap_or(drill.started_at)),
                )
        } else {
            release.update_expression("REMOVE running")
        };
        let record = self.drill_put(platform, drill, "#state = :restoring")?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(release.build().map_err(dynamo)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) || cancelled.condition_failed(1) {
                    Ok(false)
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    pub async fn get_drill(
        &self,
        platform: Platform,
        id: &str,
    ) -> Result<Option<Drill>, StoreError> {
        let key = keys::drill(platform, id);
        let Some(item) = self.get(&key, true).await? else {
            return Ok(None);
        };
        let text = get_s(&item, "drill").ok_or_else(|| corrupt(&key, "no drill"))?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| corrupt(&key, e.to_string()))
    }

    /// The drill's record as one write of a transaction, on `condition`.
    fn drill_put(
        &self,
        platform: Platform,
        drill: &Drill,
        condition: &str,
    ) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(drill_item(platform, drill)?))
            .condition_expression(condition);
        if condition.contains("#state") {
            put = put
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":restoring", name(DrillState::Restoring));
        }
        put.build().map_err(dynamo)
    }
}

fn drill_item(platform: Platform, drill: &Drill) -> Result<Item, StoreError> {
    let record = serde_json::to_string(drill).map_err(dynamo)?;
    Ok(with_key(
        &keys::drill(platform, &drill.id),
        [
            ("state", name(drill.state)),
            ("drill", s(record)),
            (
                "expires_at",
                n(drill.started_at.epoch_seconds() + DRILL_TTL_SECS),
            ),
        ],
    ))
}

fn parse_canary(item: &Item) -> Result<Canary, StoreError> {
    let key = Key {
        pk: get_s(item, "pk").unwrap_or_default().to_owned(),
        sk: get_s(item, "sk").unwrap_or_default().to_owned(),
    };
    Ok(Canary {
        id: get_s(item, "canary_id")
            .ok_or_else(|| corrupt(&key, "no canary id"))?
            .to_owned(),
        written_at: get_time(item, "written_at").ok_or_else(|| corrupt(&key, "no time"))?,
        sample: serde_json::from_str(get_s(item, "sample").unwrap_or("[]"))
            .map_err(|e| corrupt(&key, e.to_string()))?,
    })
}
