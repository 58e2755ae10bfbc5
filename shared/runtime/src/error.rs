//! One mapping from domain errors to transports. Each module's error enum says which [`ErrorCode`]
//! each of its variants is; the code decides the `tonic::Code` and the HTTP status.

use tonic::Status;

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or breaks a limit; the message says which field.
    InvalidArgument,
    /// The thing asked for does not exist (or the caller may not know it does).
    NotFound,
    /// Creating something that exists.
    AlreadyExists,
    /// The system is not in a state that allows the call (for example a model not pulled).
    FailedPrecondition,
    /// No valid credentials.
    Unauthenticated,
    /// Valid credentials without the right.
    PermissionDenied,
    /// A limit was hit; retry later.
    ResourceExhausted,
    /// A dependency is down; retry later.
    Unavailable,
    /// A deadline passed.
    DeadlineExceeded,
    /// Not supported (yet).
    Unimplemented,
    /// A bug or an unexpected state; details stay in the log.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::AlreadyExists => tonic::Code::AlreadyExists,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Self::Unimplemented => tonic::Code::Unimplemented,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The code of a gRPC status code (codes with no domain meaning map to `Internal`).
    pub fn from_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Self::InvalidArgument,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::AlreadyExists | tonic::Code::Aborted => Self::AlreadyExists,
            tonic::Code::FailedPrecondition => Self::FailedPrecondition,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
            tonic::Code::PermissionDenied => Self::PermissionDenied,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::Unavailable => Self::Unavailable,
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Self::DeadlineExceeded,
            tonic::Code::Unimplemented => Self::Unimplemented,
            _ => Self::Internal,
        }
    }

    /// A stable, lowercase name for the code (`unauthenticated`), as problem+json `code`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Unimplemented => "unimplemented",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status for REST responses.
    pub fn http(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::InvalidArgument => S::BAD_REQUEST,
            Self::NotFound => S::NOT_FOUND,
            Self::AlreadyExists => S::CONFLICT,
            Self::FailedPrecondition => S::PRECONDITION_FAILED,
            Self::Unauthenticated => S::UNAUTHORIZED,
            Self::PermissionDenied => S::FORBIDDEN,
            Self::ResourceExhausted => S::TOO_MANY_REQUESTS,
            Self::Unavailable => S::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded => S::GATEWAY_TIMEOUT,
            Self::Unimplemented => S::NOT_IMPLEMENTED,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Implemented by every module's error enum.
pub trait ServiceError: std::error::Error {
    /// The kind of failure.
    fn code(&self) -> ErrorCode;
}

/// The whole cause chain of an error, for one log line. A cause whose text the message already
/// carries (errors that print their source themselves) is not repeated.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The innermost cause of an error: the part a person can act on ("Connection refused").
pub fn root_cause(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Turns a domain error into a status: the error is logged once here with its cause chain;
/// internal errors reach the client without details.
pub fn to_status<E: ServiceError>(err: E) -> Status {
    let code = err.code();
    let detail = chain(&err);
    if code == ErrorCode::Internal {
        tracing::error!(error = %detail, "request failed");
        Status::new(code.grpc(), "internal error; the service log has the details")
    } else {
        tracing::info!(error = %detail, code = ?code.grpc(), "request refused");
        Status::new(code.grpc(), err.to_string())
    }
}

/// The canonical gRPC name of a code (`NOT_FOUND`): problem `code`s and metric labels.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Sample {
        #[error("bad field `x`")]
        Bad,
        #[error("database exploded at row 7")]
        Boom,
    }

    impl ServiceError for Sample {
        fn code(&self) -> ErrorCode {
            match self {
                Sample::Bad => ErrorCode::InvalidArgument,
                Sample::Boom => ErrorCode::Internal,
            }
        }
    }

    #[test]
    fn internal_errors_are_opaque_and_others_speak() {
        let bad = to_status(Sample::Bad);
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert_eq!(bad.message(), "bad field `x`");
        let boom = to_status(Sample::Boom);
        assert_eq!(boom.code(), tonic::Code::Internal);
        assert!(!boom.message().contains("row 7"));
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&err), "outer: disk on fire");
    }

    #[test]
    fn codes_map_to_the_usual_http_statuses() {
        assert_eq!(ErrorCode::NotFound.http(), http::StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::ResourceExhausted.http(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::Unavailable.grpc(), tonic::Code::Unavailable);
    }
}
