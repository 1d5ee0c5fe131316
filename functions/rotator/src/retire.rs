//! The deferred half of a rotation: keys marked for retirement by `finishSecret` are
//! deleted at the provider once their grace period is over. Runs on a schedule (the
//! rotator's own), so a key outlives its grace period by at most one period of it.

use std::collections::HashSet;

use serde::Serialize;

use super::versions::{self, Versions};
use super::{Deps, RotationError};

/// What one run did with each marked key.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Retirement {
    /// Deleted at the provider now.
    pub deleted: Vec<String>,
    /// Marked, but the provider no longer had it (a run that died after deleting).
    pub already_gone: Vec<String>,
    /// Still inside their grace period.
    pub waiting: Vec<String>,
    /// Marked, but the current or pending version holds it (a `finishSecret` that
    /// failed after marking): the mark is dropped, the key kept.
    pub kept_in_use: Vec<String>,
}

#[tracing::instrument(skip_all)]
pub async fn retire(deps: &Deps) -> Result<Retirement, RotationError> {
    let versions = Versions::read(deps).await?;
    let mut report = Retirement::default();
    if versions.retirements().is_empty() {
        return Ok(report);
    }
    let current = versions::current_value(deps).await?;
    let account = current.account()?;
    let mut in_use: HashSet<String> = current.key().map(|(sid, _)| sid).into_iter().collect();
    if let Some(pending) = versions.pending_other_than("")
        && let Some(value) = versions::value(deps, &pending).await?
    {
        in_use.extend(value.key().map(|(sid, _)| sid));
    }
    let now = deps.clock.timestamp().epoch_seconds();
    for (sid, after) in versions.retirements() {
        if in_use.contains(sid) {
            versions::unmark(deps, sid).await?;
            report.kept_in_use.push(sid.clone());
        } else if now < *after {
            report.waiting.push(sid.clone());
        } else {
            match deps.keys.delete(&account.as_account(), sid).await? {
                true => report.deleted.push(sid.clone()),
                false => report.already_gone.push(sid.clone()),
            }
            versions::unmark(deps, sid).await?;
        }
    }
    tracing::info!(?report, "retirement run");
    Ok(report)
}
