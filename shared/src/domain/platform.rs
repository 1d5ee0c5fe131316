//! What the platform holds for itself, under no tenant: the leases of jobs that must
//! run one at a time (the send DLQ's redrive).

use crate::clock::Timestamp;

/// Who holds a job's lease, and until when. A holder that dies keeps it until `until`;
/// then the next one takes it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    /// Who runs the job: `scheduled redriver (...)`, `operator <subject> (...)`, with
    /// the run's own id so only that run releases it.
    pub holder: String,
    pub taken_at: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseTake {
    Taken,
    /// Someone else holds it and it has not run out.
    Held(JobLease),
}
