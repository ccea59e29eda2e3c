//! Between wire messages and framework types.
//!
//! Encoding rules the host enforces: `Response.data` and
//! `Secret.internal_data` must be valid JSON (never ""), and a present
//! `LeaseOptions` must carry `issue_time`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::framework::{Error, Response, Secret};
use crate::proto::pb;

/// `ProtoError.err_type` values.
mod err_type {
    pub(super) const UNKNOWN: u32 = 0;
    pub(super) const CODED: u32 = 3;
    pub(super) const UNSUPPORTED_OPERATION: u32 = 5;
    pub(super) const UNSUPPORTED_PATH: u32 = 6;
    pub(super) const INVALID_REQUEST: u32 = 7;
    pub(super) const PERMISSION_DENIED: u32 = 8;
}

/// Parses a JSON object sent as text; absent or `null` bodies are empty.
pub(super) fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, Error> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::invalid(format!("{what} must be a JSON object"))),
        Err(e) => Err(Error::invalid(format!("{what} is not valid JSON: {e}"))),
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn ns_duration(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Go's zero time (year 1) and anything before 1970 mean "unset".
fn system_time(ts: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

pub(super) fn secret_from_wire(s: &pb::Secret) -> Result<Secret, Error> {
    let lease = s.lease_options.unwrap_or_default();
    Ok(Secret {
        internal: json_object(&s.internal_data, "secret internal data")?,
        ttl: ns_duration(lease.ttl),
        max_ttl: ns_duration(lease.max_ttl),
        renewable: lease.renewable,
        increment: ns_duration(lease.increment),
        issue_time: lease.issue_time.as_ref().and_then(system_time),
        lease_id: s.lease_id.clone(),
    })
}

pub(super) fn secret_to_wire(s: &Secret) -> pb::Secret {
    pb::Secret {
        lease_options: Some(pb::LeaseOptions {
            ttl: duration_ns(s.ttl),
            renewable: s.renewable,
            increment: duration_ns(s.increment),
            // The host replaces it with its own on issue; it must be present.
            issue_time: Some(timestamp(s.issue_time.unwrap_or_else(SystemTime::now))),
            max_ttl: duration_ns(s.max_ttl),
        }),
        internal_data: json_text(&s.internal),
        lease_id: s.lease_id.clone(),
    }
}

/// A JSON object's text, written from the map in place (no copy of a
/// large listing's tree on its way out).
fn json_text(object: &Map<String, Value>) -> String {
    // A map of JSON values with string keys always serializes.
    serde_json::to_string(object).unwrap_or_else(|_| "{}".to_string())
}

pub(super) fn response_to_wire(r: &Response) -> pb::Response {
    pb::Response {
        data: json_text(&r.data),
        secret: r.secret.as_ref().map(secret_to_wire),
        warnings: r.warnings.clone(),
        ..Default::default()
    }
}

/// The wire form of an error: a `ProtoError`, plus for invalid requests a
/// response whose only data is `error`, which the host shows verbatim as a
/// 400 (instead of wrapping it in "1 error occurred").
///
/// Except for a lease's renew or revoke: the host's lease manager quotes
/// the whole response with Go's `%#v` ("failed to renew entry: resp:
/// &logical.Response{...Data:map[...]{"error":...}...}"), so there an
/// invalid request travels alone, as a coded 400, and reads "failed to renew
/// entry: resp: (*logical.Response)(nil) err: <message>".
pub(super) fn error_to_wire(e: &Error, operation: &str) -> (Option<pb::Response>, pb::ProtoError) {
    let msg = e.to_string();
    let for_lease = matches!(operation, "renew" | "revoke");
    let (kind, code) = match e {
        Error::InvalidRequest(_) if for_lease => (err_type::CODED, 400),
        Error::InvalidRequest(_) => (err_type::INVALID_REQUEST, 0),
        Error::UnsupportedOperation => (err_type::UNSUPPORTED_OPERATION, 0),
        Error::UnsupportedPath => (err_type::UNSUPPORTED_PATH, 0),
        Error::PermissionDenied => (err_type::PERMISSION_DENIED, 0),
        Error::Coded { status, .. } | Error::Upstream { status, .. } => {
            (err_type::CODED, i64::from(*status))
        }
        Error::ReadOnly | Error::Storage(_) | Error::Internal(_) => (err_type::UNKNOWN, 0),
    };
    let response = (kind == err_type::INVALID_REQUEST).then(|| {
        let mut data = Map::new();
        data.insert("error".into(), Value::String(msg.clone()));
        pb::Response {
            data: Value::Object(data).to_string(),
            ..Default::default()
        }
    });
    (
        response,
        pb::ProtoError {
            err_type: kind,
            err_msg: msg,
            err_code: code,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert!(json_object("", "body").unwrap().is_empty());
        assert!(json_object("null", "body").unwrap().is_empty());
        assert_eq!(json_object(r#"{"a":1}"#, "body").unwrap()["a"], 1);
        assert_eq!(json_object("[1]", "body").unwrap_err().status(), 400);
        assert_eq!(json_object("{", "body").unwrap_err().status(), 400);
    }

    #[test]
    fn error_mapping() {
        let invalid = Error::invalid("field \"ttl\": bad");
        let (resp, err) = error_to_wire(&invalid, "update");
        assert_eq!(err.err_type, 7);
        let data: Value = serde_json::from_str(&resp.unwrap().data).unwrap();
        assert_eq!(data["error"], "field \"ttl\": bad");
        for lease_operation in ["renew", "revoke"] {
            let (resp, err) = error_to_wire(&invalid, lease_operation);
            assert!(resp.is_none(), "{lease_operation}");
            assert_eq!((err.err_type, err.err_code), (3, 400), "{lease_operation}");
            assert_eq!(err.err_msg, invalid.to_string());
        }
        for (e, t, c) in [
            (Error::UnsupportedOperation, 5, 0),
            (Error::UnsupportedPath, 6, 0),
            (Error::PermissionDenied, 8, 0),
            (Error::coded(504, "timeout"), 3, 504),
            (Error::ReadOnly, 0, 0),
            (Error::Internal("x".into()), 0, 0),
        ] {
            let (resp, err) = error_to_wire(&e, "read");
            assert!(resp.is_none());
            assert_eq!((err.err_type, err.err_code), (t, c), "{e}");
            assert_eq!(err.err_msg, e.to_string());
        }
    }

    #[test]
    fn responses_always_carry_valid_json() {
        let wire = response_to_wire(&Response::default());
        assert_eq!(wire.data, "{}");
        let s = Secret::new("t", Map::new(), Duration::from_secs(60), Duration::ZERO);
        let wire = response_to_wire(&Response {
            secret: Some(s),
            ..Response::default()
        });
        let secret = wire.secret.unwrap();
        let lease = secret.lease_options.unwrap();
        assert!(lease.issue_time.is_some());
        assert_eq!(lease.ttl, 60_000_000_000);
        assert!(lease.renewable);
        let internal: Value = serde_json::from_str(&secret.internal_data).unwrap();
        assert_eq!(internal["secret_type"], "t");
    }

    #[test]
    fn secrets_round_trip_and_go_zero_time_is_unset() {
        let mut s = Secret::new(
            "t",
            Map::new(),
            Duration::from_secs(5),
            Duration::from_secs(50),
        );
        s.issue_time = Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let back = secret_from_wire(&secret_to_wire(&s)).unwrap();
        assert_eq!(back, s);
        let mut wire = secret_to_wire(&s);
        wire.lease_options.as_mut().unwrap().issue_time = Some(prost_types::Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        });
        assert_eq!(secret_from_wire(&wire).unwrap().issue_time, None);
    }
}
