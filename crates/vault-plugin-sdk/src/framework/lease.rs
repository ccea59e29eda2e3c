//! Secrets with leases: what a handler returns, what comes back at renew and
//! revoke time, and the TTL arithmetic the host applies.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::error::{Error, Result};
use super::field::format_duration;

/// The key in a secret's internal data that names its type, so renew and
/// revoke can be dispatched (the Go framework's convention, kept for parity).
pub const SECRET_TYPE_KEY: &str = "secret_type";

/// A leased secret, as returned by a handler and as the host hands it back
/// on renew/revoke.
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    /// Data the engine needs to renew or revoke; stored in the lease, so
    /// never the credential itself.
    pub internal: Map<String, Value>,
    /// How long the lease lives (0 = the mount's default); the server caps
    /// it at the max TTLs.
    pub ttl: Duration,
    /// Upper bound from the engine (0 = the mount's max).
    pub max_ttl: Duration,
    /// Whether the caller may extend the lease (renew reaches
    /// [`SecretType::renew`](super::SecretType::renew)).
    pub renewable: bool,
    /// Requested by the user on renew.
    pub increment: Duration,
    /// When the lease was first issued (set by the host on renew).
    pub issue_time: Option<SystemTime>,
    /// The server's id for the lease (empty until the server made one).
    pub lease_id: String,
}

impl Secret {
    /// A renewable secret of `secret_type`.
    pub fn new(
        secret_type: &str,
        mut internal: Map<String, Value>,
        ttl: Duration,
        max_ttl: Duration,
    ) -> Self {
        internal.insert(SECRET_TYPE_KEY.into(), Value::String(secret_type.into()));
        Self {
            internal,
            ttl,
            max_ttl,
            renewable: true,
            increment: Duration::ZERO,
            issue_time: None,
            lease_id: String::new(),
        }
    }

    /// The type given to [`Secret::new`], read back from the internal data.
    pub fn secret_type(&self) -> Option<&str> {
        self.internal.get(SECRET_TYPE_KEY).and_then(Value::as_str)
    }

    /// A string from the internal data, or a clear error if the lease is
    /// missing it (e.g. written by an incompatible version).
    pub fn internal_str(&self, key: &str) -> Result<&str> {
        self.internal
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Internal(format!("lease internal data has no {key:?}")))
    }
}

/// The inputs of a TTL decision, mirroring the host's own calculation so the
/// engine can give an upstream credential the same expiry the lease will
/// have.
#[derive(Debug, Clone, Copy)]
pub struct TtlRequest {
    /// Renew increment asked for by the user (0 = none).
    pub increment: Duration,
    /// The engine's TTL (e.g. the role's `ttl`; 0 = mount default).
    pub backend_ttl: Duration,
    /// The engine's max TTL (e.g. the role's `max_ttl`; 0 = mount max).
    pub backend_max_ttl: Duration,
    /// The mount's default lease TTL ([`SystemView::default_lease_ttl`]).
    ///
    /// [`SystemView::default_lease_ttl`]: super::SystemView::default_lease_ttl
    pub mount_default_ttl: Duration,
    /// The mount's max lease TTL ([`SystemView::max_lease_ttl`]).
    ///
    /// [`SystemView::max_lease_ttl`]: super::SystemView::max_lease_ttl
    pub mount_max_ttl: Duration,
    /// When the lease was issued; the max TTL counts from here.
    pub issue_time: SystemTime,
    /// The time of the decision (a parameter, so tests can pin it).
    pub now: SystemTime,
}

/// The granted TTL and any warning about capping it.
#[derive(Debug, Clone, PartialEq)]
pub struct TtlGrant {
    /// The TTL to put on the secret, whole seconds.
    pub ttl: Duration,
    /// Set when the TTL was cut to fit the max TTL: worth passing on as a
    /// response warning, as the server does.
    pub warning: Option<String>,
}

/// TTL = increment, else the engine's TTL, else the mount default; capped so
/// the lease never outlives `issue_time + min(engine max, mount max)`.
pub fn calculate_ttl(r: &TtlRequest) -> Result<TtlGrant> {
    let mut max = r.mount_max_ttl;
    if !r.backend_max_ttl.is_zero() && (max.is_zero() || r.backend_max_ttl < max) {
        max = r.backend_max_ttl;
    }
    let wanted = if !r.increment.is_zero() {
        r.increment
    } else if !r.backend_ttl.is_zero() {
        r.backend_ttl
    } else {
        r.mount_default_ttl
    };
    let deadline = r.issue_time + max;
    let remaining = deadline.duration_since(r.now).unwrap_or(Duration::ZERO);
    // Whole seconds: lease TTLs are in seconds.
    let remaining = Duration::from_secs(remaining.as_secs());
    if remaining.is_zero() {
        return Err(Error::invalid("past the max TTL, cannot renew"));
    }
    if wanted > remaining {
        return Ok(TtlGrant {
            ttl: remaining,
            warning: Some(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                format_duration(wanted),
                format_duration(remaining)
            )),
        });
    }
    Ok(TtlGrant {
        ttl: wanted,
        warning: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn req() -> TtlRequest {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        TtlRequest {
            increment: Duration::ZERO,
            backend_ttl: Duration::ZERO,
            backend_max_ttl: Duration::ZERO,
            mount_default_ttl: 2 * H,
            mount_max_ttl: 24 * H,
            issue_time: now,
            now,
        }
    }

    #[test]
    fn mount_default_when_nothing_else() {
        assert_eq!(calculate_ttl(&req()).unwrap().ttl, 2 * H);
    }

    #[test]
    fn backend_ttl_beats_mount_default() {
        let r = TtlRequest {
            backend_ttl: H,
            ..req()
        };
        assert_eq!(
            calculate_ttl(&r).unwrap(),
            TtlGrant {
                ttl: H,
                warning: None
            }
        );
    }

    #[test]
    fn increment_beats_backend_ttl() {
        let r = TtlRequest {
            backend_ttl: H,
            increment: 3 * H,
            ..req()
        };
        assert_eq!(calculate_ttl(&r).unwrap().ttl, 3 * H);
    }

    #[test]
    fn capped_by_backend_max_with_warning() {
        let r = TtlRequest {
            backend_ttl: 5 * H,
            backend_max_ttl: 3 * H,
            ..req()
        };
        let g = calculate_ttl(&r).unwrap();
        assert_eq!(g.ttl, 3 * H);
        assert_eq!(
            g.warning.unwrap(),
            "TTL of \"5h0m0s\" exceeded the effective max_ttl of \"3h0m0s\"; \
             TTL value is capped accordingly"
        );
    }

    #[test]
    fn backend_max_cannot_exceed_mount_max() {
        let r = TtlRequest {
            backend_ttl: 48 * H,
            backend_max_ttl: 100 * H,
            ..req()
        };
        assert_eq!(calculate_ttl(&r).unwrap().ttl, 24 * H);
    }

    #[test]
    fn max_counts_from_issue_time_on_renew() {
        let base = req();
        let r = TtlRequest {
            backend_ttl: H,
            backend_max_ttl: 3 * H,
            now: base.issue_time + Duration::from_secs(2 * 3600 + 1800),
            ..base
        };
        assert_eq!(calculate_ttl(&r).unwrap().ttl, Duration::from_secs(1800));
    }

    #[test]
    fn past_max_cannot_renew() {
        let base = req();
        let r = TtlRequest {
            backend_max_ttl: H,
            now: base.issue_time + 2 * H,
            ..base
        };
        let err = calculate_ttl(&r).unwrap_err();
        assert!(err.to_string().contains("past the max TTL"));
    }

    #[test]
    fn secret_carries_its_type() {
        let s = Secret::new("litellm_key", Map::new(), H, 2 * H);
        assert_eq!(s.secret_type(), Some("litellm_key"));
        assert!(s.renewable);
        assert!(s.internal_str("alias").is_err());
    }
}
