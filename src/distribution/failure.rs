//! Why a registry request failed, told from what came back: no answer (a network failure
//! the provider explains), an answer (its error codes, else its status, and the wait its
//! `Retry-After` asks for), plain HTTP refused, damaged bytes, an unusable answer. A
//! [`RequestFailure`] says whether another try may succeed, and becomes the provider's
//! [`Error`] in the terms of the side it failed on.

use std::time::Duration;

use super::digest::Digest;
use super::{Answer, Role};
use crate::error::Error;

/// The side of a copy a request failed on, as its error names it.
pub(crate) trait Side {
    /// Which side: the source or ECR's registry.
    fn role(&self) -> Role;
    /// The registry's host.
    fn host(&self) -> &str;
    /// Whether the requests carried credentials.
    fn with_credentials(&self) -> bool;
}

/// What a request failed on.
#[derive(Debug)]
pub(crate) enum Kind {
    /// No answer: the network error the provider explains, when it is one.
    Unanswered {
        network: Option<Box<Error>>,
        retry: bool,
    },
    /// The registry answered with this status.
    Answered(Answer),
    /// The registry would have the provider speak plain HTTP to another machine.
    PlainHttp,
    /// The bytes do not match the digest they were asked by.
    Corrupt { digest: Digest },
    /// An answer the provider cannot use (too large, not what the protocol says).
    Unusable,
    /// ECR's registry would have its credentials go to another host.
    Misdirected,
    /// The registry's token service refused the identity token the session has (the
    /// Docker config file's: a login that expired, was revoked, or that it does not take).
    LoginRefused,
}

/// A registry request that failed: what happened, whether another try may succeed, and
/// when.
#[derive(Debug)]
pub(crate) struct RequestFailure {
    pub(crate) kind: Kind,
    /// What failed, for the diagnostic: the request and the answer, no query strings.
    pub(crate) cause: String,
    /// The wait the registry asked for (`Retry-After`).
    pub(crate) wait: Option<Duration>,
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cause)
    }
}

impl RequestFailure {
    /// A failure of `kind` for which the registry asked no wait.
    pub(super) fn new(kind: Kind, cause: String) -> RequestFailure {
        RequestFailure {
            kind,
            cause,
            wait: None,
        }
    }

    /// Whether another try may succeed: no answer, throttling, a server error, damaged bytes.
    pub(crate) fn transient(&self) -> bool {
        match &self.kind {
            Kind::Unanswered { retry, .. } => *retry,
            Kind::PlainHttp => false,
            Kind::Answered(answer) => matches!(answer, Answer::Throttled | Answer::ServerError),
            Kind::Corrupt { .. } => true,
            Kind::Unusable | Kind::Misdirected | Kind::LoginRefused => false,
        }
    }

    /// What the registry answered (`Other` when it did not).
    pub(crate) fn answer(&self) -> Answer {
        match self.kind {
            Kind::Answered(answer) => answer,
            _ => Answer::Other,
        }
    }

    /// The wait before try `tries + 1`, when there is to be one.
    pub(crate) fn wait_before_next(&self, tries: u32) -> Option<Duration> {
        crate::retry::wait_before_next(self.transient(), self.wait, tries)
    }

    /// Bytes of `digest` whose digest is `found`.
    pub(crate) fn corrupt(digest: &Digest, found: &Digest) -> RequestFailure {
        RequestFailure::new(
            Kind::Corrupt {
                digest: digest.clone(),
            },
            format!("the registry sent bytes whose digest is {found}"),
        )
    }

    /// The provider's error for this failure of a request about `reference` on `side`.
    pub(crate) fn error(self, side: &impl Side, reference: &str) -> Error {
        let reference = reference.to_string();
        let cause = self.cause;
        let answer = match self.kind {
            Kind::Unanswered {
                network: Some(network),
                ..
            } => return *network,
            Kind::Corrupt { digest } => {
                return Error::Corrupt {
                    reference,
                    digest: digest.to_string(),
                    cause,
                }
            }
            Kind::PlainHttp => return Error::PlainHttp { reference, cause },
            Kind::Misdirected => {
                return Error::Misdirected {
                    host: side.host().to_string(),
                    cause,
                }
            }
            Kind::LoginRefused => {
                return Error::LoginRefused {
                    host: side.host().to_string(),
                    cause,
                }
            }
            Kind::Answered(answer) => answer,
            Kind::Unanswered { .. } | Kind::Unusable => Answer::Other,
        };
        match (side.role(), answer) {
            (Role::Source, Answer::Throttled) => Error::RateLimited { reference, cause },
            (Role::Source, Answer::NotFound) => Error::SourceNotFound { reference, cause },
            (Role::Source, Answer::Denied(_)) => Error::SourceDenied {
                reference,
                cause,
                with_credentials: side.with_credentials(),
            },
            (Role::Source, _) => Error::Source { reference, cause },
            // The summary says the push credentials were refused; the cause, how.
            (Role::Target, Answer::Denied(_)) => Error::TargetDenied {
                host: side.host().to_string(),
                cause,
            },
            (Role::Target, Answer::TagInvalid) => Error::TagRefused {
                target: reference,
                cause,
            },
            (Role::Target, _) => Error::Push {
                target: reference,
                cause,
            },
        }
    }
}

/// The registry request `step` makes, tried again while it fails transiently (up to
/// [`crate::retry::TRIES`] in all), after the wait the registry asked for, else a backoff.
pub(crate) async fn retry_request<T, F, Fut>(what: &str, step: F) -> Result<T, RequestFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RequestFailure>>,
{
    crate::retry::retrying(what, step, RequestFailure::wait_before_next).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::TRIES;

    #[test]
    fn failures_say_whether_to_try_again_and_when() {
        let answered = |answer, wait| RequestFailure {
            kind: Kind::Answered(answer),
            cause: String::new(),
            wait,
        };
        let asked = Duration::from_secs(7);
        assert_eq!(
            answered(Answer::Throttled, Some(asked)).wait_before_next(1),
            Some(asked)
        );
        assert!(
            answered(Answer::ServerError, None)
                .wait_before_next(1)
                .unwrap()
                < Duration::from_secs(1)
        );
        assert_eq!(
            answered(Answer::ServerError, None).wait_before_next(TRIES),
            None
        );
        assert_eq!(answered(Answer::NotFound, None).wait_before_next(1), None);
        assert_eq!(
            answered(Answer::Denied(Some(401)), None).wait_before_next(1),
            None
        );
        assert_eq!(
            RequestFailure::new(Kind::Unusable, "x".into()).wait_before_next(1),
            None
        );
    }
}
