//! Tested restores (issue 13): the restore drill that proves, on a schedule, that the
//! table can be restored to a point in time (`drill`), and the operator's recovery of
//! one tenant's items from a point in time (`recovery`). Both restore the live table
//! into a scratch table (`scratch`), work on it in steps that survive the end of a
//! Lambda invocation, and delete it. The backup-check function runs both; the local
//! cloud runs the same code (`herald-local backup-check`, `herald-local
//! recover-tenant`).

pub mod config;
pub(crate) mod digest;
pub mod drill;
pub mod recovery;
pub mod scratch;

pub use config::BackupCheckConfig;
pub use drill::{DrillError, Drills, Start, StepReport};
pub use recovery::{Recoveries, RecoveryError, RecoveryRequest};
pub use scratch::{ScratchError, Tables, Window};

/// The names of a live table's drill scratch tables begin with this.
pub fn drill_prefix(live: &str) -> String {
    format!("{live}-drill-")
}

/// The names of a live table's recovery scratch tables begin with this.
pub fn recovery_prefix(live: &str) -> String {
    format!("{live}-recover-")
}
