//! Time as the engine stores and shows it: unix seconds in storage, RFC 3339
//! in read-outs, and LiteLLM's RFC 3339 timestamps read back.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(super) fn unix_now() -> u64 {
    unix(SystemTime::now())
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An RFC 3339 timestamp, as LiteLLM writes them
/// (`2026-11-30T18:03:44.316000+00:00`, or with `Z`).
pub(super) fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// An RFC 3339 timestamp as unix seconds.
pub(super) fn parse_time(s: &str) -> Option<u64> {
    u64::try_from(parse(s)?.unix_timestamp()).ok()
}

/// Unix seconds as RFC 3339 (UTC), for read-outs; empty if out of range.
pub(super) fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
