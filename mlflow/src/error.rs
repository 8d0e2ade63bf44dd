//! Error type of the client, typed from the server's `error_code`.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `error_code` field of an MLflow error answer (`{"error_code": ..., "message": ...}`).
///
/// Known codes get their own variant; anything else is kept verbatim in [`ErrorCode::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `RESOURCE_DOES_NOT_EXIST`: experiment, run, model, version or alias not found.
    ResourceDoesNotExist,
    /// `RESOURCE_ALREADY_EXISTS`: an experiment or registered model of that name exists.
    ResourceAlreadyExists,
    /// `INVALID_PARAMETER_VALUE`: the request was understood but a value is not acceptable.
    InvalidParameterValue,
    /// `INVALID_STATE`: the resource is in a state that forbids the operation (e.g. deleted).
    InvalidState,
    /// `BAD_REQUEST`: malformed request.
    BadRequest,
    /// `PERMISSION_DENIED`: authenticated but not allowed.
    PermissionDenied,
    /// `UNAUTHENTICATED`: missing or wrong credentials.
    Unauthenticated,
    /// `INTERNAL_ERROR`: server-side failure.
    InternalError,
    /// `TEMPORARILY_UNAVAILABLE`: the server asks to come back later.
    TemporarilyUnavailable,
    /// `REQUEST_LIMIT_EXCEEDED`: rate limited.
    RequestLimitExceeded,
    /// `ENDPOINT_NOT_FOUND`: the route does not exist on this server.
    EndpointNotFound,
    /// `FEATURE_DISABLED`: the server has the feature switched off.
    FeatureDisabled,
    /// Any other code, kept as sent by the server.
    Other(String),
}

impl ErrorCode {
    /// Parses the server's `error_code` string.
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "RESOURCE_DOES_NOT_EXIST" | "NOT_FOUND" => ErrorCode::ResourceDoesNotExist,
            "RESOURCE_ALREADY_EXISTS" | "ALREADY_EXISTS" => ErrorCode::ResourceAlreadyExists,
            "INVALID_PARAMETER_VALUE" => ErrorCode::InvalidParameterValue,
            "INVALID_STATE" => ErrorCode::InvalidState,
            "BAD_REQUEST" | "MALFORMED_REQUEST" => ErrorCode::BadRequest,
            "PERMISSION_DENIED" => ErrorCode::PermissionDenied,
            "UNAUTHENTICATED" => ErrorCode::Unauthenticated,
            "INTERNAL_ERROR" => ErrorCode::InternalError,
            "TEMPORARILY_UNAVAILABLE" => ErrorCode::TemporarilyUnavailable,
            "REQUEST_LIMIT_EXCEEDED" => ErrorCode::RequestLimitExceeded,
            "ENDPOINT_NOT_FOUND" => ErrorCode::EndpointNotFound,
            "FEATURE_DISABLED" => ErrorCode::FeatureDisabled,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// The wire form of the code (`RESOURCE_DOES_NOT_EXIST`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::FeatureDisabled => "FEATURE_DISABLED",
            ErrorCode::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong when talking to an MLflow server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a JSON error (`error_code` + `message`).
    #[error("MLflow {code} (HTTP {status}) on {endpoint}: {message}")]
    Api {
        /// Typed `error_code`.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// HTTP status of the answer.
        status: u16,
        /// The endpoint that was called (path relative to the server).
        endpoint: String,
    },
    /// A parameter was already logged on this run with another value; MLflow params are immutable.
    ///
    /// Raised by the client before sending (it keeps a record of the params it logged) and
    /// mapped from the server's `INVALID_PARAMETER_VALUE` "Changing param values is not allowed".
    #[error(
        "param {key:?} of run {run_id} was already logged with value {logged:?}; refusing to change it to {attempted:?} (MLflow params are immutable)"
    )]
    ParamChanged {
        /// The run.
        run_id: String,
        /// The param key.
        key: String,
        /// The value already logged (empty when unknown, i.e. reported by the server only).
        logged: String,
        /// The value that was refused.
        attempted: String,
    },
    /// The client refused a value the server would silently accept, cut or misread
    /// (empty names, non-finite metrics, over-long values, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request did not complete within the configured timeout.
    #[error("MLflow request to {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint that was called.
        endpoint: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Connection refused/reset, DNS failure and other transport-level errors.
    #[error("cannot reach the MLflow server for {endpoint}: {source}")]
    Transport {
        /// The endpoint that was called.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered something that is not an MLflow JSON answer (an HTML page from an
    /// unknown route or a proxy, an error status without an `error_code`, ...).
    #[error(
        "unexpected answer from {endpoint}: HTTP {status}, content-type {content_type:?}: {snippet}"
    )]
    UnexpectedResponse {
        /// The endpoint that was called.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The `Content-Type` header, if any.
        content_type: Option<String>,
        /// The first few hundred characters of the body.
        snippet: String,
    },
    /// A successful answer whose JSON does not have the expected shape.
    #[error("cannot decode the answer of {endpoint}: {source}")]
    Decode {
        /// The endpoint that was called.
        endpoint: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A local file system error (artifact upload or download).
    #[error("{path}: {source}")]
    Io {
        /// The local path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bad configuration (tracking URI, environment variables).
    #[error("configuration error: {0}")]
    Config(String),
    /// A `models:/`, `runs:/` or `mlflow-artifacts:` URI that cannot be parsed or resolved.
    #[error("invalid URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// Why it was refused.
        reason: String,
    },
}

impl Error {
    /// True when repeating the same request may succeed: connection errors, timeouts,
    /// HTTP 429 and 5xx answers. Other 4xx answers and client-side errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Transport { source, .. } => !source.is_builder() && !source.is_decode(),
            Error::Api { status, .. } => retryable_status(*status),
            Error::UnexpectedResponse { status, .. } => retryable_status(*status),
            _ => false,
        }
    }

    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for `RESOURCE_DOES_NOT_EXIST`.
    pub fn is_not_found(&self) -> bool {
        matches!(self.code(), Some(ErrorCode::ResourceDoesNotExist))
    }

    /// True for `RESOURCE_ALREADY_EXISTS`.
    pub fn is_already_exists(&self) -> bool {
        matches!(self.code(), Some(ErrorCode::ResourceAlreadyExists))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_uri(uri: &str, reason: impl Into<String>) -> Error {
        Error::InvalidUri {
            uri: uri.to_string(),
            reason: reason.into(),
        }
    }
}

/// HTTP statuses worth retrying: 429 (rate limited) and every 5xx.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in [
            "RESOURCE_DOES_NOT_EXIST",
            "RESOURCE_ALREADY_EXISTS",
            "INVALID_PARAMETER_VALUE",
            "INTERNAL_ERROR",
        ] {
            assert_eq!(ErrorCode::parse(s).as_str(), s);
        }
        assert_eq!(
            ErrorCode::parse("SOMETHING_NEW"),
            ErrorCode::Other("SOMETHING_NEW".into())
        );
    }

    #[test]
    fn retryable_by_status() {
        let api = |status, code| Error::Api {
            code,
            message: String::new(),
            status,
            endpoint: String::new(),
        };
        assert!(api(500, ErrorCode::InternalError).is_retryable());
        assert!(api(503, ErrorCode::TemporarilyUnavailable).is_retryable());
        assert!(api(429, ErrorCode::RequestLimitExceeded).is_retryable());
        assert!(!api(400, ErrorCode::InvalidParameterValue).is_retryable());
        assert!(!api(404, ErrorCode::ResourceDoesNotExist).is_retryable());
        assert!(!Error::InvalidInput("x".into()).is_retryable());
        let t = Error::Timeout {
            endpoint: String::new(),
            timeout: Duration::from_secs(1),
        };
        assert!(t.is_retryable());
    }
}
