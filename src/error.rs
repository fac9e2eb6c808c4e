//! The one error type of the core. The gRPC layer maps each variant to a
//! `tonic::Status` code in a single place (`grpc::status`), so the core never
//! depends on tonic.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something that can never succeed as sent.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// A named thing does not exist.
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },

    /// The system is not in a state to answer yet (for example no trained model).
    #[error("{reason}")]
    FailedPrecondition { reason: String },

    /// A spec or data file could not be used for training.
    #[error("{path}: {reason}")]
    BadInput { path: String, reason: String },

    /// A model could not be fitted on the data it was given.
    #[error("training failed: {reason}")]
    Training { reason: String },

    /// The sled store failed underneath us.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),

    /// The store refuses writes for now (a disk short of space, a write
    /// that did not finish in time); they may succeed later.
    #[error("storage unavailable: {reason}")]
    Unavailable { reason: String },

    /// A stored value could not be decoded: the data directory is damaged or from another version.
    #[error("corrupt stored value under {key}: {reason}")]
    Corrupt { key: String, reason: String },

    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// A Rapport server answered a call with an error (the command line's
    /// `--server` path): its gRPC status code, by number and name, and message.
    #[error("the server answered {code_name}: {message}")]
    Remote {
        code: i32,
        code_name: String,
        message: String,
    },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Names an invalid field inside `outer` (`at` becomes `events[3].at`), so a
    /// validator can name fields relative to its value and the caller can say
    /// where that value is only when something is wrong.
    #[must_use]
    pub fn within(self, outer: impl std::fmt::Display) -> Self {
        match self {
            Error::InvalidArgument { field, reason } => Error::InvalidArgument {
                field: format!("{outer}.{field}"),
                reason,
            },
            other => other,
        }
    }

    /// The same failure for another caller (a group commit answers many):
    /// `Storage` keeps its sled error, others keep their message.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        match self {
            Error::Storage(e) => Error::Storage(e.clone()),
            Error::Corrupt { key, reason } => Error::Corrupt {
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::Unavailable { reason } => Error::Unavailable {
                reason: reason.clone(),
            },
            other => Error::Io(std::io::Error::other(other.to_string())),
        }
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }

    pub fn precondition(reason: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason: reason.into(),
        }
    }

    pub fn training(reason: impl Into<String>) -> Self {
        Error::Training {
            reason: reason.into(),
        }
    }
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(inner) => inner,
            sled::transaction::TransactionError::Storage(s) => Error::Storage(s),
        }
    }
}
