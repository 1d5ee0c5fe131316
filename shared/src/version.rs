//! Which build is running where. The commit and the build time are baked in when the
//! functions are compiled for Lambda (`make sam-build` sets `HERALD_COMMIT` and
//! `HERALD_BUILT_AT`); any other build says `unknown` rather than guess. The
//! environment is the stack's own (`HERALD_ENV`, from the template's `Environment`),
//! read with each function's configuration.

/// The commit the running code was built from.
pub const COMMIT: &str = or_unknown(option_env!("HERALD_COMMIT"));
/// When it was built (RFC 3339, UTC).
pub const BUILT_AT: &str = or_unknown(option_env!("HERALD_BUILT_AT"));

const fn or_unknown(value: Option<&'static str>) -> &'static str {
    match value {
        Some(value) => value,
        None => "unknown",
    }
}
