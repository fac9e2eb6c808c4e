//! The one mapping from core errors to gRPC status codes, each chosen on purpose.

use tonic::{Code, Status};

use crate::error::Error;

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::InvalidArgument { .. } | Error::BadInput { .. } => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            // Nothing the caller sent is wrong; the service needs a model or data first.
            Error::FailedPrecondition { .. } | Error::Training { .. } => Code::FailedPrecondition,
            // sled failing under us (disk full, I/O): worth a retry elsewhere or later.
            Error::Storage(_) | Error::Unavailable { .. } => Code::Unavailable,
            Error::Corrupt { .. } => Code::DataLoss,
            Error::Io(_) => Code::Internal,
            // Relayed as the other server said it.
            Error::Remote { code, .. } => Code::from(*code),
        };
        let message = match e {
            Error::Remote { message, .. } => message,
            other => other.to_string(),
        };
        Status::new(code, message)
    }
}

/// The core's form of a status a Rapport server answered with.
pub fn remote(status: Status) -> Error {
    Error::Remote {
        code: status.code() as i32,
        code_name: format!("{:?}", status.code()),
        message: status.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let s: Status = Error::not_found("relationship", "c-9").into();
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "relationship \"c-9\" not found");
        let s: Status =
            Error::invalid("events[2].purchase.amount", "must be finite, got NaN").into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("events[2].purchase.amount"));
        let s: Status = Error::precondition("no model").into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let relayed = remote(Status::not_found("relationship \"x\" not found"));
        assert_eq!(
            relayed.to_string(),
            "the server answered NotFound: relationship \"x\" not found"
        );
        let s: Status = relayed.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "relationship \"x\" not found")
        );
    }
}
