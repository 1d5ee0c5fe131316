//! Scratch tables: the live table restored to a point in time under another name, for a
//! drill to check or a tenant recovery to copy from, then deleted. DynamoDB's control
//! plane (restorable window, restore, describe, TTL, tags, delete, list) behind domain
//! answers, the way `store` keeps the data plane.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::DateTime;
use aws_sdk_dynamodb::types::{
    BillingMode, PointInTimeRecoveryStatus, SseSpecification, SseType, TableDescription,
    TableStatus, Tag, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::clock::Timestamp;
use crate::domain::SchemaCheck;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("point-in-time recovery is off for table {0}")]
    RecoveryOff(String),
    #[error("{at} is outside the restorable window of table {table}: {earliest} to {latest}")]
    OutsideWindow {
        table: String,
        at: Timestamp,
        earliest: Timestamp,
        latest: Timestamp,
    },
    #[error("a table named {0} already exists")]
    Exists(String),
    #[error("DynamoDB request failed: {0}")]
    Aws(String),
}

fn aws<E, R>(error: SdkError<E, R>) -> ScratchError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    ScratchError::Aws(aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string())
}

/// The times a table can be restored to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

impl Window {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.earliest <= at && at <= self.latest
    }
}

/// What a table is now.
#[derive(Debug, Clone)]
pub enum TableState {
    Absent,
    Creating,
    Active(Box<TableDescription>),
    Deleting,
    /// UPDATING, ARCHIVED...: not what a scratch table should be.
    Other(String),
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Still being restored: DynamoDB deletes no table before it is ACTIVE.
    NotYet,
    Absent,
}

#[derive(Clone)]
pub struct Tables {
    client: Client,
}

fn timestamp(value: &DateTime) -> Timestamp {
    Timestamp::from_epoch_millis(u64::try_from(value.to_millis().unwrap_or(0)).unwrap_or(0))
}

fn date_time(value: Timestamp) -> DateTime {
    DateTime::from_millis(i64::try_from(value.epoch_millis()).unwrap_or(i64::MAX))
}

impl Tables {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    #[tracing::instrument(skip_all, fields(%table))]
    pub async fn window(&self, table: &str) -> Result<Window, ScratchError> {
        let described = self
            .client
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await
            .map_err(aws)?
            .continuous_backups_description
            .and_then(|d| d.point_in_time_recovery_description);
        let Some(recovery) = described.filter(|r| {
            r.point_in_time_recovery_status == Some(PointInTimeRecoveryStatus::Enabled)
        }) else {
            return Err(ScratchError::RecoveryOff(table.to_owned()));
        };
        match (
            recovery.earliest_restorable_date_time,
            recovery.latest_restorable_date_time,
        ) {
            (Some(earliest), Some(latest)) => Ok(Window {
                earliest: timestamp(&earliest),
                latest: timestamp(&latest),
            }),
            _ => Err(ScratchError::RecoveryOff(table.to_owned())),
        }
    }

    /// Starts restoring `source` as it was `at` into `target`, encrypted with `kms_key`
    /// and billed on demand. The table is ACTIVE some time later (`state`).
    #[tracing::instrument(skip_all, fields(%source, %target, %at))]
    pub async fn restore(
        &self,
        source: &str,
        target: &str,
        at: Timestamp,
        kms_key: &str,
    ) -> Result<(), ScratchError> {
        let encryption = SseSpecification::builder()
            .enabled(true)
            .sse_type(SseType::Kms)
            .kms_master_key_id(kms_key)
            .build();
        let restored = self
            .client
            .restore_table_to_point_in_time()
            .source_table_name(source)
            .target_table_name(target)
            .restore_date_time(date_time(at))
            .billing_mode_override(BillingMode::PayPerRequest)
            .sse_specification_override(encryption)
            .send()
            .await;
        match restored {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(e) if e.is_table_already_exists_exception() => {
                    ScratchError::Exists(target.to_owned())
                }
                Some(e) if e.is_invalid_restore_time_exception() => {
                    let window = self.window(source).await?;
                    ScratchError::OutsideWindow {
                        table: source.to_owned(),
                        at,
                        earliest: window.earliest,
                        latest: window.latest,
                    }
                }
                Some(e) if e.is_point_in_time_recovery_unavailable_exception() => {
                    ScratchError::RecoveryOff(source.to_owned())
                }
                _ => aws(e),
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(%table))]
    pub async fn state(&self, table: &str) -> Result<TableState, ScratchError> {
        let described = match self.client.describe_table().table_name(table).send().await {
            Ok(out) => out.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(TableState::Absent);
            }
            Err(e) => return Err(aws(e)),
        };
        let Some(description) = described else {
            return Ok(TableState::Absent);
        };
        Ok(match description.table_status.clone() {
            Some(TableStatus::Creating) => TableState::Creating,
            Some(TableStatus::Active) => TableState::Active(Box::new(description)),
            Some(TableStatus::Deleting) => TableState::Deleting,
            other => TableState::Other(format!("{other:?}")),
        })
    }

    /// What a scratch table needs before it is checked, none of which a restore carries:
    /// its tags, the live table's TTL, and deletion protection off (so the drill can
    /// delete it whatever the account's defaults).
    #[tracing::instrument(skip_all, fields(scratch = scratch.table_name()))]
    pub async fn prepare(
        &self,
        live: &str,
        scratch: &TableDescription,
        tags: &[(&str, &str)],
    ) -> Result<(), ScratchError> {
        let name = scratch.table_name().unwrap_or_default();
        if let Some(arn) = scratch.table_arn() {
            let tags: Vec<Tag> = tags
                .iter()
                .filter_map(|(k, v)| Tag::builder().key(*k).value(*v).build().ok())
                .collect();
            self.client
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(aws)?;
        }
        if let Some(attribute) = self.ttl_attribute(live).await?
            && self.ttl_attribute(name).await? != Some(attribute.clone())
        {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()
                .map_err(|e| ScratchError::Aws(e.to_string()))?;
            self.client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(aws)?;
        }
        if scratch.deletion_protection_enabled == Some(true) {
            self.client
                .update_table()
                .table_name(name)
                .deletion_protection_enabled(false)
                .send()
                .await
                .map_err(aws)?;
        }
        Ok(())
    }

    /// The attribute a table's TTL reads, when TTL is on (or being turned on).
    async fn ttl_attribute(&self, table: &str) -> Result<Option<String>, ScratchError> {
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(aws)?
            .time_to_live_description;
        Ok(ttl.and_then(|t| {
            matches!(
                t.time_to_live_status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
            .then_some(t.attribute_name)
            .flatten()
        }))
    }

    async fn describe(&self, table: &str) -> Result<TableDescription, ScratchError> {
        self.client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(aws)?
            .table
            .ok_or_else(|| ScratchError::Aws(format!("table {table} not described")))
    }

    /// The scratch table (described after `prepare`) against the live one.
    pub async fn check_schema(
        &self,
        live: &str,
        scratch: &str,
        kms_key: &str,
    ) -> Result<SchemaCheck, ScratchError> {
        let (live_table, scratch_table) =
            (self.describe(live).await?, self.describe(scratch).await?);
        let live_ttl = self.ttl_attribute(live).await?;
        Ok(SchemaCheck {
            keys: keys(&live_table) == keys(&scratch_table),
            indexes: indexes(&live_table) == indexes(&scratch_table),
            ttl: live_ttl.is_some() && self.ttl_attribute(scratch).await? == live_ttl,
            encryption: scratch_table
                .sse_description()
                .and_then(|d| d.kms_master_key_arn())
                == Some(kms_key),
            deletion_protection_off: scratch_table.deletion_protection_enabled != Some(true),
        })
    }

    #[tracing::instrument(skip_all, fields(%table))]
    pub async fn delete(&self, table: &str) -> Result<Deletion, ScratchError> {
        match self.client.delete_table().table_name(table).send().await {
            Ok(_) => Ok(Deletion::Deleted),
            Err(e) => match e.as_service_error() {
                Some(e) if e.is_resource_not_found_exception() => Ok(Deletion::Absent),
                Some(e) if e.is_resource_in_use_exception() => Ok(Deletion::NotYet),
                _ => Err(aws(e)),
            },
        }
    }

    /// Every table whose name starts with one of `prefixes`.
    pub async fn named_like(&self, prefixes: &[String]) -> Result<Vec<String>, ScratchError> {
        let mut names = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .client
                .list_tables()
                .set_exclusive_start_table_name(start.take())
                .send()
                .await
                .map_err(aws)?;
            names.extend(
                page.table_names()
                    .iter()
                    .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
                    .cloned(),
            );
            match page.last_evaluated_table_name {
                Some(last) => start = Some(last),
                None => return Ok(names),
            }
        }
    }
}

fn keys(table: &TableDescription) -> Vec<(String, String)> {
    table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
        .collect()
}

fn indexes(table: &TableDescription) -> Vec<String> {
    let mut described: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let keys: Vec<String> = index
                .key_schema()
                .iter()
                .map(|k| format!("{}:{}", k.attribute_name, k.key_type.as_str()))
                .collect();
            let projection = index
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            format!(
                "{} [{}] {projection}",
                index.index_name().unwrap_or_default(),
                keys.join(" ")
            )
        })
        .collect();
    described.sort();
    described
}
