//! The harness for the restore drill and the tenant recovery (`tests/restores.rs`):
//! drill steps as the schedule runs them, waiting for a point in time to become
//! restorable and for a scratch table to be ACTIVE, and whole-table snapshots to show
//! that a refused request changed nothing.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use herald::Timestamp;
use herald::restore::Start;
use herald::restore::scratch::{TableState, Tables};
use herald_backup_check::{BackupCheckError, ScheduledReport};
use herald_local::CloudOptions;

use crate::{TestCloud, canonical, eventually};

/// Drills as tests run them: started when none ever ran (and then once an hour, so a
/// test's later steps only move its drill on), with a 100 ms margin around the restore
/// point, and every item of the (small) table sampled, so counts are exact.
pub fn quick_drills(options: &mut CloudOptions) {
    for (key, value) in [
        ("HERALD_DRILL_EVERY_SECONDS", "3600"),
        ("HERALD_DRILL_CLOCK_MARGIN_MS", "100"),
        ("HERALD_DRILL_SAMPLE_SIZE", "100"),
        ("HERALD_DRILL_SAMPLE_SEGMENTS", "1"),
    ] {
        options.env_overrides.insert(key.into(), value.into());
    }
}

/// The margin `quick_drills` sets.
pub const MARGIN: Duration = Duration::from_millis(100);

impl TestCloud {
    pub fn live_table(&self) -> &str {
        self.cloud.stack.reference("HeraldTable").expect("table")
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.cloud.clients.dynamodb.clone())
    }

    /// One scheduled run of the backup check (a drill step, then the recoveries).
    pub async fn drill_step(&self, start: Start) -> Result<ScheduledReport, BackupCheckError> {
        let check = &self.cloud.backup_check;
        let deadline = tokio::time::Instant::now() + check.timeout;
        herald_backup_check::scheduled(&check.deps, start, deadline).await
    }

    /// Waits until the live table can be restored to `at` (the emulator's latest
    /// restorable time trails now by a second).
    pub async fn wait_restorable(&self, at: Timestamp) {
        let tables = self.tables();
        eventually(&format!("{at} to be restorable"), || async {
            let window = tables.window(self.live_table()).await.expect("window");
            (window.latest >= at).then_some(())
        })
        .await;
    }

    pub async fn wait_active(&self, table: &str) {
        let tables = self.tables();
        eventually(&format!("{table} to be ACTIVE"), || async {
            let state = tables.state(table).await.expect("state");
            matches!(state, TableState::Active(_)).then_some(())
        })
        .await;
    }

    pub async fn table_exists(&self, table: &str) -> bool {
        !matches!(
            self.tables().state(table).await.expect("state"),
            TableState::Absent
        )
    }

    /// This stack's scratch tables (drills' and recoveries').
    pub async fn scratch_tables(&self) -> Vec<String> {
        let live = self.live_table();
        let prefixes = [
            herald::restore::drill_prefix(live),
            herald::restore::recovery_prefix(live),
        ];
        self.tables().named_like(&prefixes).await.expect("tables")
    }

    /// Every item of `table`, rendered canonically, sorted.
    pub async fn items_of(&self, table: &str) -> Vec<(String, String, String)> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .cloud
                .clients
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let key = |name: &str| item[name].as_s().expect("key").clone();
                items.push((
                    key("pk"),
                    key("sk"),
                    canonical(&AttributeValue::M(item.clone())),
                ));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        items.sort();
        items
    }

    /// Every item of the live table.
    pub async fn snapshot(&self) -> Vec<(String, String, String)> {
        self.items_of(self.live_table()).await
    }
}
