//! The client side of the OCI distribution API: the HTTP clients for every registry the
//! provider talks to directly (sources and ECR's registry), the credentials they take, the
//! classification of their answers, and the one retry loop. The requests themselves are
//! [`session`]'s. Loopback registries are spoken to over plain HTTP, as a Docker engine does.

use std::sync::OnceLock;
use std::time::Duration;

use oci_client::errors::{OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use crate::credentials::Credentials;

pub mod session;

pub use session::{Access, Failure, Role, Session};

/// How long a registry may stay silent: before it answers, and between two reads of an
/// answer's body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `registry` (`host[:port]`) is on this machine, where Docker uses plain HTTP.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Source credentials as the distribution client takes them. Identity tokens (an OAuth
/// refresh token in the Docker config file) are not exchanged here; such sources are asked
/// anonymously.
pub fn oci_auth(credentials: Option<&Credentials>) -> RegistryAuth {
    match credentials {
        Some(Credentials::Basic {
            username, password, ..
        }) => RegistryAuth::Basic(username.clone(), password.expose().to_string()),
        _ => RegistryAuth::Anonymous,
    }
}

/// What `reference` names in its repository: its digest, else its tag (`latest` when it has
/// neither).
pub fn tag_or_digest(reference: &Reference) -> &str {
    reference.digest().or(reference.tag()).unwrap_or("latest")
}

/// What a registry answered to a failed request, told from its error codes and HTTP status,
/// never from message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `429` or `TOOMANYREQUESTS`.
    Throttled,
    /// `404`, or a `*_UNKNOWN` code.
    NotFound,
    /// `401`/`403`, `UNAUTHORIZED` or `DENIED`; the status when one is known.
    Denied(Option<u16>),
    /// `DIGEST_INVALID`: the bytes sent do not match the digest given.
    DigestInvalid,
    /// `TAG_INVALID`: the registry refuses the tag (ECR: an existing immutable tag).
    TagInvalid,
    /// A `5xx` status.
    ServerError,
    /// Anything else (or no answer at all).
    Other,
}

impl Answer {
    fn of_status(status: u16) -> Answer {
        match status {
            429 => Answer::Throttled,
            404 => Answer::NotFound,
            401 | 403 => Answer::Denied(Some(status)),
            500..=599 => Answer::ServerError,
            _ => Answer::Other,
        }
    }

    fn of_code(code: &OciErrorCode) -> Answer {
        match code {
            OciErrorCode::Toomanyrequests => Answer::Throttled,
            OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::BlobUnknown
            | OciErrorCode::NotFound => Answer::NotFound,
            OciErrorCode::Unauthorized | OciErrorCode::Denied => Answer::Denied(None),
            OciErrorCode::DigestInvalid => Answer::DigestInvalid,
            OciErrorCode::TagInvalid => Answer::TagInvalid,
            _ => Answer::Other,
        }
    }

    fn of_envelope(envelope: &OciEnvelope) -> Answer {
        envelope
            .errors
            .iter()
            .map(|e| Answer::of_code(&e.code))
            .find(|answer| *answer != Answer::Other)
            .unwrap_or(Answer::Other)
    }
}

/// How often a registry request that failed transiently is tried in all.
pub const ATTEMPTS: u32 = 3;

/// How long to wait before try `attempt + 1` of a request when the registry did not say:
/// exponential (below 1 s, then below 2 s, …) with full jitter, so that requests failed by
/// one blip do not all come back at once.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500 * 2u64.pow(attempt.min(6)));
    ceiling.mul_f64(fastrand::f64())
}

tokio::task_local! {
    /// Where the operation this task runs for notes its retries (see [`Retries`]).
    static RETRIES: Retries;
}

/// The retries of one operation (a mirror under its `timeouts` limit), so that a timeout can
/// say what the operation was waiting for when it ran out.
#[derive(Clone, Default)]
pub struct Retries(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Retries {
    /// Runs `work` with its retries (of this task) noted here.
    pub async fn watch<F: std::future::Future>(&self, work: F) -> F::Output {
        RETRIES.scope(self.clone(), work).await
    }

    /// The last retry noted: what was tried again, after which failure and how long after.
    pub fn last(&self) -> Option<String> {
        self.0.lock().map(|last| last.clone()).unwrap_or_default()
    }

    /// Notes a retry with the operation this task runs for, if any.
    fn note(retry: String) {
        let _ = RETRIES.try_with(|retries| {
            if let Ok(mut last) = retries.0.lock() {
                *last = Some(retry);
            }
        });
    }
}

/// `step` (made anew by each call), tried again after the wait `again` gives for its error
/// and the number of tries so far, until `again` gives none. Every retry loop of the
/// provider is this one; the debug log names `what`, and the operation's [`Retries`] the
/// last retry.
pub async fn with_retries<T, E, F, Fut>(
    what: &str,
    mut step: F,
    again: impl Fn(&E, u32) -> Option<Duration>,
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(err) => match again(&err, attempt) {
                Some(wait) => {
                    tracing::debug!(attempt, ?wait, "retrying {what}: {err}");
                    Retries::note(format!(
                        "Its last retry: {what}, try {}, {} after: {err}",
                        attempt + 1,
                        crate::error::display_duration(Duration::from_millis(
                            wait.as_millis().try_into().unwrap_or(u64::MAX)
                        ))
                    ));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(err),
            },
            done => return done,
        }
    }
}

/// HTTP clients for registries.
pub struct Distribution {
    // Built on first use: loading the system's trusted roots takes tens of milliseconds,
    // and most plans never talk to a registry.
    http: OnceLock<reqwest::Client>,
    requests: OnceLock<reqwest::Client>,
    uploads: OnceLock<reqwest::Client>,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution::new()
    }
}

impl Distribution {
    /// Clients with the system's trusted roots, made when first needed.
    pub fn new() -> Distribution {
        crate::install_crypto_provider();
        Distribution {
            http: OnceLock::new(),
            requests: OnceLock::new(),
            uploads: OnceLock::new(),
        }
    }

    /// A plain HTTP client, for requests outside the distribution protocol's flows.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!(
                    "terraform-provider-ecrmirror/",
                    env!("CARGO_PKG_VERSION")
                ))
                .build()
                .unwrap_or_default()
        })
    }

    /// A session with the repository of `reference`, for `access`, carrying `auth`. Its blob
    /// uploads go through a client without a read timeout: reqwest counts the time a body
    /// takes to send against it, and a large layer on a slow link takes minutes (the
    /// resource's `timeouts` still bound the whole mirror).
    pub fn session(
        &self,
        reference: Reference,
        auth: RegistryAuth,
        access: Access,
        role: Role,
    ) -> Session<'_> {
        let requests = self
            .requests
            .get_or_init(|| session::client(Some(READ_TIMEOUT)));
        let uploads = self.uploads.get_or_init(|| session::client(None));
        Session::new(requests, uploads, reference, auth, access, role)
    }

    /// A session for pulling from the source `reference` names, with `credentials`.
    pub fn source(&self, reference: Reference, credentials: Option<&Credentials>) -> Session<'_> {
        self.session(reference, oci_auth(credentials), Access::Pull, Role::Source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry's JSON error answer with `code`.
    fn envelope(code: OciErrorCode) -> OciEnvelope {
        OciEnvelope {
            errors: vec![oci_client::errors::OciError {
                code,
                message: "whatever the registry says".into(),
                detail: serde_json::Value::Null,
            }],
        }
    }

    #[test]
    fn answers_are_told_by_code_or_status() {
        assert_eq!(Answer::of_status(429), Answer::Throttled);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Toomanyrequests)),
            Answer::Throttled
        );
        assert_eq!(Answer::of_status(404), Answer::NotFound);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::ManifestUnknown)),
            Answer::NotFound
        );
        assert_eq!(Answer::of_status(403), Answer::Denied(Some(403)));
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Denied)),
            Answer::Denied(None)
        );
        assert_eq!(Answer::of_status(503), Answer::ServerError);
        assert_eq!(Answer::of_status(400), Answer::Other);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::DigestInvalid)),
            Answer::DigestInvalid
        );
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::TagInvalid)),
            Answer::TagInvalid
        );
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Unsupported)),
            Answer::Other
        );
    }

    #[test]
    fn loopback_registries_are_told_apart() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("127.example.com"));
    }
}
