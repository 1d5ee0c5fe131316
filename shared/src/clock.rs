//! Time as a seam and as a type. Leases, expiries and token checks read the clock
//! through `Clock` so tests can move time instead of waiting for it; instants are
//! `Timestamp`s and UTC days are `Day`s, never strings cut to length.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    fn epoch_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }

    fn epoch_millis(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }

    /// Now, to the millisecond, as stored and answered.
    fn timestamp(&self) -> Timestamp {
        Timestamp::from_epoch_millis(self.epoch_millis())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock a fixed offset away from the system clock.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub Duration);

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Fixed width, so stored timestamps sort as text in the order they happened (the
/// sweeper's index compares them as strings).
const STORED: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const DAY: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an RFC 3339 date and time")]
pub struct InvalidTimestamp(String);

/// An instant in UTC to the millisecond. Written as `YYYY-MM-DDTHH:MM:SS.mmmZ` in
/// items and answers; read from any RFC 3339 text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn from_epoch_millis(millis: u64) -> Self {
        let nanos = i128::from(millis) * 1_000_000;
        Self(OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("u64 milliseconds fit"))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidTimestamp> {
        let parsed = OffsetDateTime::parse(raw, &Rfc3339)
            .map_err(|_| InvalidTimestamp(raw.to_owned()))?
            .to_offset(UtcOffset::UTC);
        let truncated = parsed.replace_millisecond(parsed.millisecond());
        truncated
            .map(Self)
            .map_err(|_| InvalidTimestamp(raw.to_owned()))
    }

    pub fn epoch_seconds(self) -> u64 {
        u64::try_from(self.0.unix_timestamp()).unwrap_or(0)
    }

    pub fn epoch_millis(self) -> u64 {
        u64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }

    /// The UTC day this instant falls on.
    pub fn day(self) -> Day {
        Day(self.0.date())
    }

    pub fn plus(self, duration: Duration) -> Self {
        Self(self.0 + duration)
    }

    pub fn minus(self, duration: Duration) -> Self {
        Self(self.0 - duration)
    }

    /// Time from this instant until `later` (zero when `later` is not later).
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::try_from(later.0 - self.0).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(STORED).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a date as YYYY-MM-DD")]
pub struct InvalidDay(String);

/// A UTC calendar day, written `YYYY-MM-DD`: quotas are counted and audit entries kept
/// per day.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

impl Day {
    pub fn parse(raw: &str) -> Result<Self, InvalidDay> {
        Date::parse(raw, DAY)
            .map(Self)
            .map_err(|_| InvalidDay(raw.to_owned()))
    }

    /// Midnight at the start of the next day, when this day's quota resets.
    pub fn next_midnight(self) -> Timestamp {
        let next = self
            .0
            .next_day()
            .expect("Herald does not run in the year 9999");
        Timestamp(next.midnight().assume_utc())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(DAY).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_stored_before() {
        let written = |ms| Timestamp::from_epoch_millis(ms).to_string();
        assert_eq!(written(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(written(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(written(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn timestamps_read_any_rfc3339_and_round_trip() {
        let stored = Timestamp::from_epoch_millis(951_782_400_123);
        assert_eq!(Timestamp::parse(&stored.to_string()), Ok(stored));
        let offset = Timestamp::parse("2000-02-29T01:00:00.123456+01:00").unwrap();
        assert_eq!(offset, stored, "normalised to UTC and milliseconds");
        assert_eq!(
            Timestamp::parse("2000-01-01T00:00:00Z")
                .unwrap()
                .to_string(),
            "2000-01-01T00:00:00.000Z"
        );
        assert!(Timestamp::parse("2000-01-01").is_err());
        assert_eq!(stored.epoch_millis(), 951_782_400_123);
        assert_eq!(stored.epoch_seconds(), 951_782_400);
    }

    #[test]
    fn days_and_their_midnights() {
        let leap = Timestamp::from_epoch_millis(951_782_400_123).day();
        assert_eq!(leap.to_string(), "2000-02-29");
        assert_eq!(leap.next_midnight().to_string(), "2000-03-01T00:00:00.000Z");
        assert_eq!(Day::parse("2000-02-29"), Ok(leap));
        for bad in [
            "2000-02-30",
            "2000-2-29",
            "20000229",
            "2000-02-29T00:00:00Z",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
    }
}
