//! The one error type engines return. Each variant knows how the host should
//! present it (see `status`, the HTTP mapping, kept here next to the type);
//! the runtime turns it into the wire form. An engine's own error types
//! (e.g. of a client for the service it manages) convert into it with
//! `From`, keeping themselves as the `source`.

/// Any error kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from an engine handler or from the framework around it. New
/// variants may come: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller sent something invalid: HTTP 400 with exactly this text
    /// (for a lease's renew or revoke, after the server's own prefix).
    /// The text names the field and the rule that failed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The path exists but does not support this operation: HTTP 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// No path matches: HTTP 404.
    #[error("unsupported path")]
    UnsupportedPath,
    /// The caller may not do this, beyond what its policy already allowed:
    /// HTTP 403.
    #[error("permission denied")]
    PermissionDenied,
    /// This node cannot persist the result (an HA standby). The host forwards
    /// any request failing with this exact text to the active node, so it is
    /// returned before any side effect outside the server. The framework
    /// returns it itself for operations registered with
    /// [`OperationProperties::forward_performance_standby`].
    ///
    /// [`OperationProperties::forward_performance_standby`]: super::OperationProperties::forward_performance_standby
    #[error("cannot write to readonly storage")]
    ReadOnly,
    /// An error with a chosen HTTP status, e.g. 502 when the upstream service
    /// rejected a call or 504 when it timed out.
    #[error("{message}")]
    Coded {
        /// The HTTP status.
        status: u16,
        /// Shown to the caller as the error.
        message: String,
    },
    /// A service the engine depends on failed or refused: the caller sees
    /// `status` (502, 503, 504) and the source's text; the source stays
    /// attached for logs and callers that downcast it.
    #[error("{source}")]
    Upstream {
        /// The HTTP status.
        status: u16,
        /// The service client's own error.
        #[source]
        source: BoxError,
    },
    /// The host's storage failed. The host's own text is kept verbatim, since
    /// the host recognises some of it (read-only storage on a standby).
    #[error("{0}")]
    Storage(String),
    /// A bug or an unexpected state: HTTP 500.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidRequest`] (400); name the field and the rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// An [`Error::Coded`] with this HTTP status.
    pub fn coded(status: u16, message: impl Into<String>) -> Self {
        Self::Coded {
            status,
            message: message.into(),
        }
    }

    /// An [`Error::Upstream`] with this HTTP status, keeping `source`.
    pub fn upstream(status: u16, source: impl Into<BoxError>) -> Self {
        Self::Upstream {
            status,
            source: source.into(),
        }
    }

    /// The HTTP status the host answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) => 400,
            Self::UnsupportedOperation => 405,
            Self::UnsupportedPath => 404,
            Self::PermissionDenied => 403,
            Self::Coded { status, .. } | Self::Upstream { status, .. } => *status,
            Self::ReadOnly | Self::Storage(_) | Self::Internal(_) => 500,
        }
    }
}

/// What handlers and framework functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Error::invalid("x").status(), 400);
        assert_eq!(Error::UnsupportedOperation.status(), 405);
        assert_eq!(Error::UnsupportedPath.status(), 404);
        assert_eq!(Error::PermissionDenied.status(), 403);
        assert_eq!(Error::coded(502, "bad gateway").status(), 502);
        assert_eq!(Error::Internal("bug".into()).status(), 500);
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let upstream = Error::upstream(504, io);
        assert_eq!(upstream.status(), 504);
        assert_eq!(upstream.to_string(), "slow");
        let source = std::error::Error::source(&upstream).expect("the source is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn read_only_text_is_what_the_host_forwards_on() {
        assert!(Error::ReadOnly
            .to_string()
            .contains("cannot write to readonly storage"));
        let passed_through = Error::Storage("put failed: cannot write to readonly storage".into());
        assert!(passed_through
            .to_string()
            .contains("cannot write to readonly storage"));
    }
}
