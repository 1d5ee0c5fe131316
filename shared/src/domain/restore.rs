//! Tested restores: the restore drill that proves on a schedule that the table can be
//! restored (its canaries, what it expects to find, what it found), and the tenant
//! recovery that puts back one tenant's items from a point in time. Plain types; the
//! backup check (`crate::restore`) runs them and `store` keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::TenantId;

/// An item of the live table, as the drill samples it: its key and a digest of its
/// whole content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledItem {
    pub pk: String,
    pub sk: String,
    pub digest: String,
}

/// Written by every run of the backup check. A restore at a point must hold the
/// canaries written before it and none written after; each also carries a sample of
/// the live table as it was when the canary was written, so a later drill can tell
/// which items did not change across its restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub id: String,
    pub written_at: Timestamp,
    pub sample: Vec<SampledItem>,
}

impl Canary {
    pub fn reference(&self) -> CanaryRef {
        CanaryRef {
            id: self.id.clone(),
            written_at: self.written_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRef {
    pub id: String,
    pub written_at: Timestamp,
}

stored_enum! {
    pub enum DrillState {
        /// The scratch table is being restored, or waits to be checked.
        Restoring,
        Succeeded,
        Failed,
    }
}

/// What a drill must find in its scratch table, decided when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Expectations {
    /// Written before the point: each must be in the restore.
    pub canaries_present: Vec<CanaryRef>,
    /// Written after the point: none may be in the restore.
    pub canaries_absent: Vec<CanaryRef>,
    /// Sampled before the point and unchanged after it: each must be in the restore
    /// with this digest.
    pub items: Vec<SampledItem>,
    /// Sampled items that changed (or went) between their sample and the drill's
    /// start: left out, since their state at the point is not known.
    pub items_changed: usize,
}

/// How many of what was expected the check confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    pub expected: usize,
    pub confirmed: usize,
}

/// The scratch table against the live one. A restore carries keys and indexes; TTL is
/// not carried (AWS restores never do), so the drill sets the live table's TTL on the
/// scratch table, as the whole-table runbook must, and reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchemaCheck {
    pub keys: bool,
    pub indexes: bool,
    pub ttl: bool,
    /// Encrypted with the stack's key.
    pub encryption: bool,
    pub deletion_protection_off: bool,
}

impl SchemaCheck {
    pub fn holds(&self) -> bool {
        self.keys && self.indexes && self.ttl && self.encryption && self.deletion_protection_off
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrillChecks {
    pub canaries_present: Tally,
    pub canaries_absent: Tally,
    pub items: Tally,
    pub schema: SchemaCheck,
}

/// Where the drills stand: the one running, if any, and when the last ones started
/// and succeeded (a new drill starts once the last is old enough).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrillSchedule {
    pub running: Option<String>,
    pub last_started_at: Option<Timestamp>,
    pub last_succeeded_at: Option<Timestamp>,
}

/// One restore drill, from its start to its result. Its record in the table is this,
/// and so is its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    pub id: String,
    pub state: DrillState,
    pub started_at: Timestamp,
    /// The point in time the table is restored to.
    pub restore_point: Timestamp,
    /// The restore point's age when the drill started (RPO), in milliseconds.
    pub restore_point_age_ms: u64,
    pub scratch_table: String,
    pub restore_requested_at: Option<Timestamp>,
    /// When a run first found the scratch table ACTIVE (to the schedule's resolution).
    pub usable_at: Option<Timestamp>,
    /// From the drill's start to `usable_at` (RTO), in milliseconds.
    pub restore_duration_ms: Option<u64>,
    pub expectations: Expectations,
    pub checks: Option<DrillChecks>,
    /// Every check that failed, in words.
    pub failures: Vec<String>,
    pub finished_at: Option<Timestamp>,
    pub scratch_deleted: bool,
}

stored_enum! {
    /// What an item of a tenant is, by its key (`keys::tenant_item_kind`).
    #[derive(PartialOrd, Ord)]
    pub enum ItemKind {
        Tenant,
        Batch,
        Chunk,
        BatchQuota,
        Message,
        Idempotency,
        QuotaDay,
        Audit,
        /// One shard of a batch's receipt counts.
        ReceiptCount,
        /// An address on the tenant's suppression list: put back, so a wrongly deleted
        /// opt-out is honoured again.
        Suppression,
        /// A per-second request counter: gone in seconds, never restored.
        RateWindow,
        /// The count of active machine clients: it must match the clients Cognito
        /// holds, which no table restore brings back, so it is never restored.
        ClientCount,
        /// A person of the tenant, with their role and since when their tokens stand.
        User,
        /// How many of the tenant's users are active admins.
        AdminCount,
        /// A webhook endpoint with its sealed signing secret (the sealing key is not in
        /// the table, so a restored endpoint signs as before).
        WebhookEndpoint,
        /// A key of the tenant's this version does not know (a newer item kind).
        Other,
    }
}

impl ItemKind {
    /// Whether a recovery puts this kind back.
    pub fn restorable(self) -> bool {
        !matches!(self, ItemKind::RateWindow | ItemKind::ClientCount)
    }
}

stored_enum! {
    pub enum RecoveryState {
        /// The table is being restored to the point into the scratch table.
        Restoring,
        /// The scratch table's items of the tenant are being put back, a page at a time.
        Copying,
        Succeeded,
        Failed,
    }
}

impl RecoveryState {
    pub fn finished(self) -> bool {
        matches!(self, RecoveryState::Succeeded | RecoveryState::Failed)
    }
}

/// What a recovery found of one kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KindCounts {
    /// In the restore, not in the live table: put back (or, in a dry run, would be).
    pub missing: usize,
    /// In the restore and in the live table: left as it is now.
    pub present: usize,
    /// Not restored: a kind that is never restored, or expired (its TTL has passed).
    pub skipped: usize,
}

/// Where a recovery's scan of the scratch table goes on from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub pk: String,
    pub sk: String,
}

/// One recovery of one tenant's items from a point in time: a job stored in the
/// table, advanced by as many invocations as it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryJob {
    pub id: String,
    pub tenant: TenantId,
    pub restore_point: Timestamp,
    pub dry_run: bool,
    pub scratch_table: String,
    pub requested_by: String,
    pub created_at: Timestamp,
    pub state: RecoveryState,
    pub cursor: Option<Cursor>,
    pub items: BTreeMap<ItemKind, KindCounts>,
    /// Items written back to the live table (0 in a dry run).
    pub restored: usize,
    pub failure: Option<String>,
    pub finished_at: Option<Timestamp>,
    pub scratch_deleted: bool,
}

impl RecoveryJob {
    /// Items missing from the live table, over every kind.
    pub fn missing(&self) -> usize {
        self.items.values().map(|c| c.missing).sum()
    }

    /// `batch 1, message 3`: the missing items by kind, for the audit log.
    pub fn missing_by_kind(&self) -> String {
        let parts: Vec<String> = self
            .items
            .iter()
            .filter(|(_, c)| c.missing > 0)
            .map(|(kind, c)| format!("{kind} {}", c.missing))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_one_name_everywhere() {
        for kind in <ItemKind as strum::VariantArray>::VARIANTS {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.to_string());
            assert_eq!(kind.to_string().parse::<ItemKind>().unwrap(), *kind);
        }
        assert!(!ItemKind::RateWindow.restorable());
        assert!(ItemKind::Message.restorable());
    }

    #[test]
    fn a_job_counts_what_is_missing_by_kind() {
        let mut job = RecoveryJob {
            id: "j".into(),
            tenant: TenantId::parse("acme").unwrap(),
            restore_point: Timestamp::from_epoch_millis(0),
            dry_run: true,
            scratch_table: "t".into(),
            requested_by: "ops".into(),
            created_at: Timestamp::from_epoch_millis(0),
            state: RecoveryState::Copying,
            cursor: None,
            items: BTreeMap::new(),
            restored: 0,
            failure: None,
            finished_at: None,
            scratch_deleted: false,
        };
        assert_eq!(job.missing_by_kind(), "none");
        job.items.insert(
            ItemKind::Message,
            KindCounts {
                missing: 3,
                present: 1,
                skipped: 0,
            },
        );
        job.items.insert(
            ItemKind::Batch,
            KindCounts {
                missing: 1,
                present: 0,
                skipped: 0,
            },
        );
        job.items.insert(
            ItemKind::Audit,
            KindCounts {
                missing: 0,
                present: 4,
                skipped: 0,
            },
        );
        assert_eq!(job.missing(), 4);
        assert_eq!(job.missing_by_kind(), "batch 1, message 3");
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["items"]["message"]["missing"], 3);
    }
}
