//! The binary's one error type: a kind (which sets the exit status and the
//! JSON error code) and one line a user can act on.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What kind of failure a call ends with (its exit status and output tell).
pub enum Kind {
    /// The request is not allowed (policy, ownership, privilege).
    Refused,
    /// The request is allowed but cannot be met now (pool full, lock held).
    Unavailable,
    /// Something failed while doing an allowed request.
    Failed,
    /// -check found the wiring incomplete.
    Broken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a call failed: its kind, and a message that names the step, the object and the errno.
pub struct Failure {
    /// What kind of failure.
    pub kind: Kind,
    /// What failed, for the caller.
    pub message: String,
}

impl Failure {
    /// A request that is not allowed.
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Refused,
            message: message.into(),
        }
    }

    /// An allowed request that cannot be met now.
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Unavailable,
            message: message.into(),
        }
    }

    /// `-check` found the wiring incomplete.
    pub fn broken(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Broken,
            message: message.into(),
        }
    }

    /// Something failed while doing an allowed request.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Failed,
            message: message.into(),
        }
    }

    /// The stable code used in `-json` error objects.
    pub fn code(&self) -> &'static str {
        match self.kind {
            Kind::Refused => "refused",
            Kind::Unavailable => "unavailable",
            Kind::Failed => "failed",
            Kind::Broken => "broken",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<netplumb::Error> for Failure {
    fn from(e: netplumb::Error) -> Failure {
        let hint = match e.errno() {
            Some(libc::EEXIST) => {
                "; a device of that name already exists, on the host or in the container (try another -vethNamePrefix)"
            }
            Some(libc::EPERM) | Some(libc::EACCES) => "; permission denied by the kernel",
            _ => "",
        };
        let kind = match e {
            netplumb::Error::NotABridge { .. } | netplumb::Error::InvalidName(_) => Kind::Refused,
            _ => Kind::Failed,
        };
        Failure {
            kind,
            message: format!("{e}{hint}"),
        }
    }
}
