//! Content digests and their checks: every manifest and blob the provider reads is checked
//! against the digest it was asked by, blobs as their bytes stream past (a mismatch ends the
//! body with an error before its last byte is passed on).

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Response;

/// A content digest, `algorithm:encoded` (`sha256:…`), as registries name manifests and
/// blobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest(String);

impl Digest {
    /// The digest a registry or a manifest names, as it names it.
    pub(crate) fn named(digest: &str) -> Digest {
        Digest(digest.to_string())
    }

    /// Its `algorithm:encoded` text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Its algorithm (`sha256`), when it names one.
    pub(crate) fn algorithm(&self) -> Option<&str> {
        self.0.split_once(':').map(|(algorithm, _)| algorithm)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

/// Checks `body` against `digest`: the digest it has instead when it differs.
pub(super) fn check(body: &[u8], digest: &Digest) -> Result<(), Digest> {
    let mut hasher = Hasher::of(digest);
    hasher.update(body);
    match hasher.finish() {
        Some(found) if found != *digest => Err(found),
        _ => Ok(()),
    }
}

/// `response`'s body, checked against `digest` and `size` as it passes: the chunk that
/// completes `size` bytes is only passed on once the digest matches, so that a client
/// which sends exactly `size` bytes (an upload with that `Content-Length` stops reading
/// there) never sends damaged bytes whole. A body that differs (damaged, longer, shorter)
/// ends with an error instead, after `corrupt` was told why.
pub(super) fn verified(
    response: Response,
    digest: Digest,
    size: u64,
    corrupt: impl FnOnce(String) + Send + 'static,
) -> futures_util::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let mut hasher = Hasher::of(&digest);
    let mut corrupt = Some(corrupt);
    let mut seen: u64 = 0;
    let mut fail = move |cause: String| {
        if let Some(corrupt) = corrupt.take() {
            corrupt(cause.clone());
        }
        std::io::Error::new(std::io::ErrorKind::InvalidData, cause)
    };
    // The body's chunks, then its end (`None`).
    let body = response
        .bytes_stream()
        .map(|chunk| chunk.map(Some).map_err(std::io::Error::other));
    let end = futures_util::stream::once(async { Ok(None) });
    body.chain(end)
        .map(move |chunk| {
            let chunk = chunk?;
            if let Some(chunk) = &chunk {
                seen += chunk.len() as u64;
                hasher.update(chunk);
            }
            if seen > size {
                return Err(fail(format!(
                    "the source sent more than the {size} bytes the manifest gives"
                )));
            }
            if seen == size || chunk.is_none() {
                // Once: the hasher is done after this.
                if let Some(found) = hasher.finish().filter(|found| *found != digest) {
                    return Err(fail(format!(
                        "the source sent bytes whose digest is {found}"
                    )));
                }
                if seen < size {
                    return Err(fail(format!(
                        "the source sent {seen} of the {size} bytes the manifest gives"
                    )));
                }
            }
            Ok(chunk.unwrap_or_default())
        })
        .boxed()
}

/// The hash of a digest's algorithm (`sha256`, `sha512`); others are left to the target,
/// which checks every blob against `?digest=` before it commits it.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Unchecked,
    Done,
}

impl Hasher {
    fn of(digest: &Digest) -> Hasher {
        use sha2::Digest as _;
        match digest.algorithm() {
            Some("sha256") => Hasher::Sha256(sha2::Sha256::new()),
            Some("sha512") => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Unchecked,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Unchecked | Hasher::Done => {}
        }
    }

    /// The digest of what passed, once (`None` when not checked).
    fn finish(&mut self) -> Option<Digest> {
        use sha2::Digest as _;
        match std::mem::replace(self, Hasher::Done) {
            Hasher::Sha256(h) => Some(Digest(format!("sha256:{:x}", h.finalize()))),
            Hasher::Sha512(h) => Some(Digest(format!("sha512:{:x}", h.finalize()))),
            Hasher::Unchecked | Hasher::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_by_their_algorithm() {
        let empty256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let named = Digest::named;
        let mut hasher = Hasher::of(&named(empty256));
        assert_eq!(hasher.finish().as_ref().map(Digest::as_str), Some(empty256));
        assert_eq!(hasher.finish(), None, "once");
        assert!(check(b"", &named(empty256)).is_ok());
        let wrong = check(b"a", &named(empty256)).unwrap_err();
        assert!(wrong.as_str().starts_with("sha256:") && wrong != named(empty256));
        assert!(Hasher::of(&named("sha512:00"))
            .finish()
            .unwrap()
            .as_str()
            .starts_with("sha512:"));
        assert_eq!(Hasher::of(&named("blake3:00")).finish(), None);
        assert!(
            check(b"a", &named("blake3:00")).is_ok(),
            "left to the target"
        );
    }

    /// What `verified` passes on of `chunks` for a blob of `digest` and `size`: the chunks
    /// up to the first error, the error, and what `corrupt` was told.
    async fn passed(
        chunks: &[&'static [u8]],
        digest: &str,
        size: u64,
    ) -> (Vec<u8>, Option<String>, Option<String>) {
        let parts: Vec<std::io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(parts));
        let response = Response::from(http::Response::new(body));
        let told = std::sync::Arc::new(std::sync::Mutex::new(None));
        let noted = told.clone();
        let mut stream = verified(response, Digest::named(digest), size, move |cause| {
            *noted.lock().unwrap() = Some(cause);
        });
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(err) => {
                    let told = told.lock().unwrap().clone();
                    return (bytes, Some(err.to_string()), told);
                }
            }
        }
        let told = told.lock().unwrap().clone();
        (bytes, None, told)
    }

    #[tokio::test]
    async fn a_blob_is_checked_before_its_last_byte_is_passed_on() {
        use sha2::Digest as _;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(b"hello world"));
        let checked = |chunks, size| passed(chunks, &digest, size);
        assert_eq!(
            checked(&[b"hello ", b"world"], 11).await,
            (b"hello world".to_vec(), None, None)
        );
        // Damaged, of the same length: the chunk that completes the size is held back (an
        // upload with `Content-Length: 11` would have sent it and stopped reading).
        let (bytes, err, told) = checked(&[b"hello ", b"w0rld"], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err
            .unwrap()
            .contains("the source sent bytes whose digest is sha256:"));
        assert!(told.unwrap().contains("whose digest is"));
        // Longer than the manifest says, and shorter.
        let (bytes, err, _) = checked(&[b"hello ", b"world!"], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err.unwrap().contains("more than the 11 bytes"));
        let (bytes, err, told) = checked(&[b"hello "], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err.unwrap().contains("whose digest is"));
        assert!(told.is_some());
        // An algorithm the provider does not hash is left to the target, but the size is not.
        let unchecked = |chunks, size| passed(chunks, "blake3:00", size);
        assert_eq!(unchecked(&[b"abc"], 3).await.1, None);
        let short = unchecked(&[b"ab"], 3).await.1.unwrap();
        assert!(short.contains("2 of the 3 bytes"), "{short}");
    }
}
