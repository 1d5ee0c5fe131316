//! A provider's `Retry-After` header, read without trusting its size: the value comes
//! from outside and feeds the sender's deadline arithmetic, where an unbounded duration
//! would overflow (and panic) instead of meaning "not in this invocation".

use std::time::{Duration, SystemTime};

/// The longest wait Herald takes from a provider. A wait longer than an invocation (at
/// most 15 minutes in Lambda) already means "give the claim back and let the chunk come
/// back later", so anything longer means the same and is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Reads a `Retry-After` value in either form RFC 9110 allows: delay-seconds or an
/// HTTP-date (measured from `now`; a date in the past means "now"). Any size is
/// accepted and clamped to `MAX_RETRY_AFTER`; a value that is neither form is ignored.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits too many for a u64 are a very long wait, not an unreadable one.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // Thu, 01 Jan 2026 00:00:00 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    #[test]
    fn seconds_are_read_as_given_below_the_cap() {
        assert_eq!(parse("0", now()), Some(Duration::ZERO));
        assert_eq!(parse(" 2 ", now()), Some(Duration::from_secs(2)));
        assert_eq!(parse("900", now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn any_number_of_seconds_is_clamped_not_an_overflow() {
        for huge in [
            "901",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999999999999",
        ] {
            assert_eq!(parse(huge, now()), Some(MAX_RETRY_AFTER), "{huge}");
        }
    }

    #[test]
    fn an_http_date_is_a_wait_from_now_clamped_and_never_negative() {
        assert_eq!(
            parse("Thu, 01 Jan 2026 00:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse("Wed, 31 Dec 2025 23:59:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn anything_else_is_no_wait_at_all() {
        for junk in ["", "-1", "1.5", "soon", "+3", "Thu, 01 Jan 2026"] {
            assert_eq!(parse(junk, now()), None, "{junk:?}");
        }
    }
}
