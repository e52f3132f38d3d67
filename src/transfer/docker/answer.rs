//! What the Docker engine's reports say. The engine passes a registry's refusal on as text
//! in its progress stream (no status, no error code), so this method, alone in the
//! provider, tells failures apart by their words: one table, [`WORDS`], read by the pull,
//! the push and the retry rule alike.

/// What a report of the engine says, in the words of [`WORDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Said {
    /// The source has no image for the platform asked.
    NoPlatform,
    /// A registry throttled the request.
    Throttled,
    /// The repository does not exist.
    NameUnknown,
    /// The image (or the repository) does not exist.
    NotFound,
    /// The registry refused the credentials, or their absence.
    Denied,
    /// A registry failed on its side, or the connection broke: another try may succeed.
    Failed,
    /// A pull met a digest reference the engine holds for another image (a leftover of an
    /// earlier pull).
    CannotOverwrite,
}

/// The words (lowercase) each meaning is said with.
const WORDS: &[(Said, &str)] = &[
    (Said::NoPlatform, "no matching manifest"),
    (Said::Throttled, "toomanyrequests"),
    (Said::Throttled, "rate limit"),
    (Said::Throttled, "code: 429"),
    (Said::Throttled, "429 too many requests"),
    (Said::NameUnknown, "name unknown"),
    (Said::NameUnknown, "does not exist in the registry"),
    (Said::NotFound, "manifest unknown"),
    (Said::NotFound, "not found"),
    (Said::NotFound, "does not exist"),
    (Said::Denied, "unauthorized"),
    (Said::Denied, "not authorized"),
    (Said::Denied, "authentication required"),
    (Said::Denied, "no basic auth credentials"),
    (Said::Denied, "denied"),
    (Said::Failed, "500 internal server error"),
    (Said::Failed, "502 bad gateway"),
    (Said::Failed, "503 service unavailable"),
    (Said::Failed, "504 gateway timeout"),
    (Said::Failed, "connection reset"),
    (Said::Failed, "unexpected eof"),
    // A layer or config whose bytes do not match its digest: damaged on the way, perhaps.
    (Said::Failed, "verification failed"),
    // The engine shutting down (restarted) while it answered.
    (Said::Failed, "connection is closing"),
    (Said::CannotOverwrite, "cannot overwrite digest"),
];

/// Whether the engine's report `cause` says `meaning`.
pub(super) fn says(cause: &str, meaning: Said) -> bool {
    let text = cause.to_ascii_lowercase();
    WORDS
        .iter()
        .any(|(said, words)| *said == meaning && text.contains(words))
}

/// Whether the engine's report `cause` says a registry throttled the request or failed on
/// its side: another try may succeed.
pub(super) fn transient(cause: &str) -> bool {
    says(cause, Said::Throttled) || says(cause, Said::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_failures_are_tried_again_refusals_are_not() {
        for cause in [
            "Docker stream error: toomanyrequests: injected fault",
            "received unexpected HTTP status: 503 Service Unavailable",
            "Get \"http://r/v2/\": read: connection reset by peer",
            "filesystem layer verification failed for digest sha256:00",
            "error creating lease: grpc: the client connection is closing",
        ] {
            assert!(transient(cause), "{cause}");
        }
        for cause in [
            "unauthorized: authentication required",
            "manifest unknown",
            "tag invalid: the image tag 'v1' already exists",
        ] {
            assert!(!transient(cause), "{cause}");
        }
    }

    #[test]
    fn each_refusal_is_told_by_its_words() {
        assert!(says(
            "no matching manifest for linux/s390x",
            Said::NoPlatform
        ));
        assert!(says("name unknown: repository x", Said::NameUnknown));
        assert!(says("Error: manifest unknown", Said::NotFound));
        assert!(says("denied: requested access", Said::Denied));
        assert!(!says("denied: requested access", Said::NotFound));
        assert!(says(
            "Cannot overwrite digest sha256:00",
            Said::CannotOverwrite
        ));
    }
}
