//! Platform-level leases: one item per job that must not run twice at once (the send
//! DLQ's redrive). Taking one is a conditional put that succeeds only when nobody holds
//! it or its holder's lease has run out; releasing it deletes it only if this holder
//! still holds it. Reached only through `herald::lease`.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::{JobLease, LeaseTake};
use crate::item::{Item, corrupt, dynamo, get_s, get_time, key_item, n, s, time, with_key};
use crate::keys::{self, SCHEMA_VERSION};

/// A lease item nobody released (its holder died) is deleted by the table's TTL this
/// long after it ran out; until then the next holder simply takes it over.
const LEASE_TTL_SECS: u64 = 24 * 3600;

impl Store {
    /// Takes the lease `name` for `lease` (its holder, until when), unless someone else
    /// holds one that has not run out at `now`.
    #[tracing::instrument(skip_all, fields(lease = name, holder = %lease.holder))]
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        lease: &JobLease,
        now: Timestamp,
    ) -> Result<LeaseTake, StoreError> {
        let key = keys::platform_lease(name);
        let item = with_key(
            &key,
            [
                ("holder", s(&lease.holder)),
                ("taken_at", time(lease.taken_at)),
                ("lease_until", time(lease.until)),
                (
                    "expires_at",
                    n(lease.until.epoch_seconds() + LEASE_TTL_SECS),
                ),
                ("schema_version", n(SCHEMA_VERSION)),
            ],
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Timestamps are fixed width, so they compare as text in time order.
            .condition_expression("attribute_not_exists(pk) OR lease_until < :now")
            .expression_attribute_values(":now", time(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeaseTake::Taken),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let PutItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                let held = match failure.item {
                    Some(old) => old,
                    // Released between the condition and now: say it was busy; the
                    // caller's retry finds it free.
                    None => match self.get(&key, true).await? {
                        Some(current) => current,
                        None => return Ok(LeaseTake::Held(lease_gone(now))),
                    },
                };
                parse_lease(&key, &held).map(LeaseTake::Held)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Releases the lease `name` if `holder` still holds it; whether it did. A lease
    /// taken over after it ran out is the new holder's, and stays.
    #[tracing::instrument(skip_all, fields(lease = name, %holder))]
    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let key = keys::platform_lease(name);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Who holds the lease `name`, if anyone has written it (it may have run out).
    #[tracing::instrument(skip_all, fields(lease = name))]
    pub(crate) async fn lease_holder(&self, name: &str) -> Result<Option<JobLease>, StoreError> {
        let key = keys::platform_lease(name);
        let item = self.get(&key, true).await?;
        item.map(|item| parse_lease(&key, &item)).transpose()
    }
}

/// A lease that was released while we looked: held by nobody, free from now.
fn lease_gone(now: Timestamp) -> JobLease {
    JobLease {
        holder: "nobody (just released)".to_owned(),
        taken_at: now,
        until: now,
    }
}

fn parse_lease(key: &keys::Key, item: &Item) -> Result<JobLease, StoreError> {
    Ok(JobLease {
        holder: get_s(item, "holder")
            .ok_or_else(|| corrupt(key, "no holder"))?
            .to_owned(),
        taken_at: get_time(item, "taken_at").ok_or_else(|| corrupt(key, "no time taken"))?,
        until: get_time(item, "lease_until").ok_or_else(|| corrupt(key, "no expiry"))?,
    })
}
