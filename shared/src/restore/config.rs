//! The backup check's configuration (the drill's cadence, its limits and its sample),
//! read once at cold start like every function's (`crate::config`).

use std::time::Duration;

use crate::config::{ConfigError, Settings};

#[derive(Debug, Clone)]
pub struct BackupCheckConfig {
    pub table: String,
    /// The stack's KMS key: every scratch table is encrypted with it.
    pub kms_key_arn: String,
    /// How often a drill starts (the last one's start to the next one's).
    pub drill_every: Duration,
    /// A drill not finished this long after its start has failed.
    pub drill_timeout: Duration,
    /// Live items sampled with each canary, to compare with their restored copies.
    pub sample_size: i32,
    /// The sample is one random part of a parallel scan split this many ways.
    pub sample_segments: i32,
    /// Canaries closer to the restore point than this are neither expected present
    /// nor absent: the time a write took effect is known only to about this.
    pub clock_margin: Duration,
    /// Canaries before the point a drill checks (the newest ones).
    pub canaries_checked: i32,
}

impl BackupCheckConfig {
    pub fn load(settings: &impl Settings) -> Result<Self, ConfigError> {
        let config = Self {
            table: settings.required("HERALD_TABLE")?,
            kms_key_arn: settings.required("HERALD_KMS_KEY_ARN")?,
            drill_every: Duration::from_secs(
                settings.number("HERALD_DRILL_EVERY_SECONDS", 86_400)?,
            ),
            drill_timeout: Duration::from_secs(
                settings.number("HERALD_DRILL_TIMEOUT_SECONDS", 14_400)?,
            ),
            sample_size: settings.number("HERALD_DRILL_SAMPLE_SIZE", 25)?,
            sample_segments: settings.number("HERALD_DRILL_SAMPLE_SEGMENTS", 16)?,
            clock_margin: Duration::from_millis(
                settings.number("HERALD_DRILL_CLOCK_MARGIN_MS", 2_000)?,
            ),
            canaries_checked: settings.number("HERALD_DRILL_CANARIES", 3)?,
        };
        let positive = [
            (
                "HERALD_DRILL_TIMEOUT_SECONDS",
                config.drill_timeout.as_secs() as i64,
            ),
            (
                "HERALD_DRILL_SAMPLE_SEGMENTS",
                i64::from(config.sample_segments),
            ),
            ("HERALD_DRILL_CANARIES", i64::from(config.canaries_checked)),
        ];
        for (key, value) in positive {
            if value < 1 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        // DynamoDB reads at most 100 items in one Scan page the drill samples from.
        if !(0..=100).contains(&config.sample_size) {
            return Err(ConfigError::Invalid {
                key: "HERALD_DRILL_SAMPLE_SIZE",
                reason: "must be from 0 to 100".into(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_drill_runs_daily_unless_told_and_refuses_values_that_would_stall_it() {
        let mut settings: HashMap<String, String> = [
            ("HERALD_TABLE", "t"),
            ("HERALD_KMS_KEY_ARN", "arn:aws:kms:eu-west-1:1:key/k"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = BackupCheckConfig::load(&settings).unwrap();
        assert_eq!(config.drill_every, Duration::from_secs(86_400));
        assert_eq!(config.sample_size, 25);
        for (key, bad) in [
            ("HERALD_DRILL_TIMEOUT_SECONDS", "0"),
            ("HERALD_DRILL_SAMPLE_SEGMENTS", "0"),
            ("HERALD_DRILL_SAMPLE_SIZE", "101"),
            ("HERALD_DRILL_CANARIES", "0"),
            ("HERALD_DRILL_EVERY_SECONDS", "soon"),
        ] {
            let mut bad_settings = settings.clone();
            bad_settings.insert(key.into(), bad.into());
            let err = BackupCheckConfig::load(&bad_settings).unwrap_err();
            assert!(err.to_string().contains(key), "{key}={bad}: {err}");
        }
        settings.remove("HERALD_KMS_KEY_ARN");
        assert_eq!(
            BackupCheckConfig::load(&settings).unwrap_err(),
            ConfigError::Missing("HERALD_KMS_KEY_ARN")
        );
    }
}
