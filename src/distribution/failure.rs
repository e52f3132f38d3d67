//! Why a registry request failed, told from what came back: no answer (a network failure
//! the provider explains), an answer (its error codes, else its status, and the wait its
//! `Retry-After` asks for), plain HTTP refused, damaged bytes, an unusable answer. A
//! [`RequestFailure`] says whether another try may succeed, and becomes the provider's
//! [`Error`] in the terms of the side it failed on.

use std::time::Duration;

use oci_client::secrets::RegistryAuth;
use reqwest::{Method, Response};

use super::digest::Digest;
use super::headers::retry_after;
use super::http::PlainHttp;
use super::session::{read, Role, Session};
use super::Answer;
use crate::error::{chain, without_queries, Error};

/// How much of an error answer's body a diagnostic quotes.
const QUOTED: usize = 300;

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

    /// The failure of `method url`, which got no answer (or a redirect refused), on the
    /// side `role` names.
    pub(super) fn unanswered(
        role: Role,
        method: &Method,
        url: &str,
        err: reqwest::Error,
    ) -> RequestFailure {
        let (service, attribute) = role.service();
        let network = crate::network::network_error(service, url, attribute, &err)
            .or_else(|| {
                err.is_timeout()
                    .then(|| crate::network::timed_out(service, url, attribute))
            })
            .map(Box::new);
        let retry = !err.is_redirect() && !err.is_builder();
        let mut source = std::error::Error::source(&err);
        let mut plain = false;
        while let Some(inner) = source {
            plain |= inner.is::<PlainHttp>();
            source = inner.source();
        }
        let cause = without_queries(&chain(&err.without_url()));
        let kind = if plain {
            Kind::PlainHttp
        } else {
            Kind::Unanswered { network, retry }
        };
        RequestFailure::new(kind, format!("{method} {}: {cause}", without_queries(url)))
    }

    /// The failure for `response` to `method`, which is not a success.
    pub(super) async fn refused(method: &Method, response: Response) -> RequestFailure {
        let status = response.status();
        let wait = retry_after(response.headers());
        let url = without_queries(response.url().as_str());
        let body = read(response, 64 << 10).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let envelope = serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body).ok();
        let answer = envelope
            .as_ref()
            .map(Answer::of_envelope)
            .filter(|answer| *answer != Answer::Other)
            .unwrap_or_else(|| Answer::of_status(status.as_u16()));
        let said = match &envelope {
            Some(envelope) => envelope
                .errors
                .iter()
                .map(|e| {
                    let code = serde_json::to_value(&e.code).unwrap_or_default();
                    format!("{}: {}", code.as_str().unwrap_or("?"), e.message)
                })
                .collect::<Vec<_>>()
                .join("; "),
            None => text.trim().chars().take(QUOTED).collect(),
        };
        let mut cause = format!("The registry answered {status} to {method} {url}");
        if !said.is_empty() {
            cause.push_str(&format!(" ({})", without_queries(&said)));
        }
        RequestFailure {
            kind: Kind::Answered(answer),
            cause,
            wait,
        }
    }

    /// Whether another try may succeed: no answer, throttling, a server error, damaged bytes.
    pub(crate) fn transient(&self) -> bool {
        match &self.kind {
            Kind::Unanswered { retry, .. } => *retry,
            Kind::PlainHttp => false,
            Kind::Answered(answer) => matches!(answer, Answer::Throttled | Answer::ServerError),
            Kind::Corrupt { .. } => true,
            Kind::Unusable | Kind::Misdirected => false,
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

    /// The provider's error for this failure of a request about `reference` in `session`.
    pub(crate) fn error(self, session: &Session<'_>, reference: &str) -> Error {
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
                    host: session.reference.registry().to_string(),
                    cause,
                }
            }
            Kind::Answered(answer) => answer,
            Kind::Unanswered { .. } | Kind::Unusable => Answer::Other,
        };
        match (session.role, answer) {
            (Role::Source, Answer::Throttled) => Error::RateLimited { reference, cause },
            (Role::Source, Answer::NotFound) => Error::SourceNotFound { reference, cause },
            (Role::Source, Answer::Denied(_)) => Error::SourceDenied {
                reference,
                cause,
                with_credentials: !matches!(session.auth, RegistryAuth::Anonymous),
            },
            (Role::Source, _) => Error::Source { reference, cause },
            // The summary says the push credentials were refused; the cause, how.
            (Role::Target, Answer::Denied(_)) => Error::TargetDenied {
                host: session.reference.registry().to_string(),
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
