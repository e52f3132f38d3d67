//! `copy_method = "registry"`: copy straight from the source registry to ECR over the
//! distribution API, with no Docker engine. Manifests are copied byte for byte, so digests
//! are preserved (`image_digest` equals `source_digest`, signatures stay valid). Without a
//! platform the whole index is copied; with one, that platform's manifest.
//!
//! The platforms' manifests are fetched at once and every blob they name is copied once, a
//! few at a time; then the platforms' manifests are pushed, and the tag's last. Blobs the
//! target has are skipped (`HEAD`); blobs this process saw in another repository of the same
//! registry are mounted from there; the others stream from source to target, each in one
//! request (`POST`, then `PUT ?digest=` with the blob as its body, which ECR handles; its
//! answers to chunked `PATCH`es break spec-following clients). Each blob is checked against
//! its digest twice: by oci-client's verifying stream as it passes, and by the target, which
//! commits nothing whose bytes do not match `?digest=`. No manifest is pushed after a failed
//! blob. Each blob is retried on its own after a transient failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::{Reference, RegistryOperation};
use serde::Deserialize;

use super::{Copied, Job, Locks, Transfer};
use crate::error::{Error, Result};
use crate::manifest::{self, Selected};
use crate::registry::{oci_auth, source_error, Registry};

/// How many blobs are copied at once.
const CONCURRENT_BLOBS: usize = 6;
/// How often a blob is tried before the copy fails.
const ATTEMPTS: u32 = 3;

/// The registry-to-registry transfer.
pub struct RegistryTransfer {
    registry: Arc<Registry>,
    /// Where each blob was last seen in a target registry: `(host, digest)` → repository,
    /// to mount it into another repository of that registry instead of uploading it again.
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    /// One lock per `(host, repository, digest)`: mirrors of one image to several tags run
    /// at once, and each blob is then uploaded once, the other copies finding it there.
    /// (Registries also mishandle the same blob uploaded twice at once: docker-registry
    /// answers 500 and loses the blob.)
    /// Keyed by `(host, repository, digest)`.
    uploading: Locks<(String, String, String)>,
}

impl RegistryTransfer {
    /// A transfer through `registry`'s distribution clients.
    pub fn new(registry: Arc<Registry>) -> RegistryTransfer {
        RegistryTransfer {
            registry,
            seen: Default::default(),
            uploading: Default::default(),
        }
    }

    fn remember(&self, target: &Reference, digest: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(
                (target.registry().to_string(), digest.to_string()),
                target.repository().to_string(),
            );
        }
    }

    /// Another repository of the target registry known to hold `digest`.
    fn mount_source(&self, target: &Reference, digest: &str) -> Option<Reference> {
        let seen = self.seen.lock().ok()?;
        let repository = seen.get(&(target.registry().to_string(), digest.to_string()))?;
        (repository != target.repository()).then(|| {
            Reference::with_digest(
                target.registry().to_string(),
                repository.clone(),
                digest.to_string(),
            )
        })
    }
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Document {
    fn parse(body: &[u8]) -> std::result::Result<Document, String> {
        serde_json::from_slice(body).map_err(|err| format!("the manifest is not JSON: {err}"))
    }

    /// The media type to push the manifest with.
    fn content_type(&self) -> &str {
        match (&self.media_type, &self.manifests) {
            (Some(media_type), _) => media_type,
            (None, Some(_)) => "application/vnd.oci.image.index.v1+json",
            (None, None) => "application/vnd.oci.image.manifest.v1+json",
        }
    }
}

/// One side of the copy: where, with which client.
struct Side<'a> {
    client: &'a oci_client::Client,
    reference: Reference,
}

/// A manifest to copy: its bytes, and the reference to push it under.
struct Manifest {
    body: bytes::Bytes,
    push_as: Reference,
}

/// The error for a failed request to the target: a refusal of the credentials is told
/// apart, as it needs another fix than a network failure.
fn target_error(target: &Reference, err: OciDistributionError) -> Error {
    if let Some(network) = crate::registry::oci_network_error("ECR's registry", None, &err) {
        return network;
    }
    let status = match &err {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(err) => err.status().map(|s| s.as_u16()),
        _ => None,
    };
    if matches!(status, Some(401 | 403)) {
        return Error::TargetDenied {
            registry: target.registry().to_string(),
            cause: format!(
                "The registry answered {} to the push credentials: {err}",
                status.unwrap_or_default()
            ),
        };
    }
    Error::Push {
        target: target.to_string(),
        cause: err.to_string(),
    }
}

impl RegistryTransfer {
    async fn copy_now(&self, job: &Job<'_>) -> Result<Copied> {
        let source_name = job.source.to_string();
        let source = Side {
            client: self.registry.client_for(job.source.registry()),
            reference: job.source.as_oci().clone(),
        };
        let target = Side {
            client: self.registry.client_for(&job.target.host),
            reference: Reference::with_tag(
                job.target.host.clone(),
                job.target.repository.clone(),
                job.target.tag.clone(),
            ),
        };
        let source_auth = oci_auth(job.source_credentials.as_ref());
        let target_auth = oci_auth(Some(&job.target_credentials));

        // The target's challenges (for pushing, and for the HEADs that look for blobs) and the
        // source's manifest, at once: each is a round trip to a registry.
        let (pushing, uploading, looking, pulled) = tokio::join!(
            target
                .client
                .auth(&target.reference, &target_auth, RegistryOperation::Push),
            self.registry.upload_client_for(&job.target.host).auth(
                &target.reference,
                &target_auth,
                RegistryOperation::Push
            ),
            target
                .client
                .auth(&target.reference, &target_auth, RegistryOperation::Pull),
            source
                .client
                .pull_manifest_raw(&source.reference, &source_auth, &manifest::ACCEPTED),
        );
        pushing
            .and(uploading)
            .and(looking)
            .map_err(|err| target_error(&target.reference, err))?;
        let (body, source_digest) =
            pulled.map_err(|err| source_error(source_name.clone(), &err))?;
        let document = Document::parse(&body).map_err(|cause| Error::Source {
            reference: source_name.clone(),
            cause,
        })?;

        // The image manifests whose blobs are copied, and the manifest pushed under the tag.
        let (images, tagged, pushed) = match (&document.manifests, job.platform) {
            (Some(_), Some(platform)) => {
                let Selected::Manifest(child) = manifest::select(&body, platform) else {
                    return Err(Error::PlatformMismatch {
                        reference: source_name,
                        wanted: platform.to_string(),
                        got: "an index without that platform".into(),
                    });
                };
                let child_body = self.fetch(&source, &child, &source_auth).await?;
                (Vec::new(), child_body, child)
            }
            (Some(children), None) => {
                let digests: Vec<String> = children.iter().map(|c| c.digest.clone()).collect();
                let images = stream::iter(digests)
                    .map(|digest| {
                        let (source, target, auth) = (&source, &target, &source_auth);
                        async move {
                            let body = self.fetch(source, &digest, auth).await?;
                            Ok::<_, Error>(Manifest {
                                body,
                                push_as: target.reference.clone_with_digest(digest),
                            })
                        }
                    })
                    .buffered(CONCURRENT_BLOBS)
                    .try_collect::<Vec<_>>()
                    .await?;
                (images, body, source_digest.clone())
            }
            (None, _) => (Vec::new(), body, source_digest.clone()),
        };

        // Every blob once, then the platforms' manifests, then the tag's: a registry takes a
        // manifest only when what it names is there.
        let mut blobs = Vec::new();
        for manifest in images.iter().map(|m| &m.body).chain([&tagged]) {
            let document = Document::parse(manifest).map_err(|cause| Error::Source {
                reference: source_name.clone(),
                cause,
            })?;
            for blob in document.config.into_iter().chain(document.layers) {
                if !blobs.iter().any(|b: &Descriptor| b.digest == blob.digest) {
                    blobs.push(blob);
                }
            }
        }
        stream::iter(blobs)
            .map(|blob| self.copy_blob_with_retries(&source, &target, blob))
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        stream::iter(images)
            .map(|image| {
                let target = &target;
                async move {
                    self.push_manifest(target, &image.push_as, &image.body)
                        .await
                }
            })
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        self.push_manifest(&target, &target.reference, &tagged)
            .await?;
        Ok(Copied {
            source_digest: Some(source_digest),
            pushed_digest: Some(pushed),
        })
    }

    /// One manifest of the source, by digest.
    async fn fetch(
        &self,
        source: &Side<'_>,
        digest: &str,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<bytes::Bytes> {
        let reference = source.reference.clone_with_digest(digest.to_string());
        let (body, _) = source
            .client
            .pull_manifest_raw(&reference, auth, &manifest::ACCEPTED)
            .await
            .map_err(|err| source_error(reference.to_string(), &err))?;
        Ok(body)
    }

    async fn copy_blob_with_retries(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blob: Descriptor,
    ) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.copy_blob(source, target, &blob).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt < ATTEMPTS && transient(&err) => {
                    tracing::debug!(digest = %blob.digest, attempt, "retrying a blob: {err}");
                    tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn copy_blob(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blob: &Descriptor,
    ) -> Result<()> {
        let target_failure = |err: OciDistributionError| target_error(&target.reference, err);
        let lock = self.uploading.of((
            target.reference.registry().to_string(),
            target.reference.repository().to_string(),
            blob.digest.clone(),
        ));
        let _one_at_a_time = lock.lock().await;
        let exists = || target.client.blob_exists(&target.reference, &blob.digest);
        if exists().await.map_err(target_failure)? {
            self.remember(&target.reference, &blob.digest);
            return Ok(());
        }
        if let Some(from) = self.mount_source(&target.reference, &blob.digest) {
            // A registry that cannot mount answers with an upload session instead; the
            // blob is then uploaded below.
            let mounted = target
                .client
                .mount_blob(&target.reference, &from, &blob.digest)
                .await
                .is_ok();
            if mounted && exists().await.map_err(target_failure)? {
                self.remember(&target.reference, &blob.digest);
                return Ok(());
            }
        }
        // The size goes in the upload's headers before any byte is read: the manifest gives
        // it (OCI and Docker manifests always do).
        let size = blob.size.ok_or_else(|| Error::Source {
            reference: source.reference.to_string(),
            cause: format!("the manifest gives no size for {}", blob.digest),
        })?;
        // The source's blob and the target's upload session are asked for at once; the
        // upload's body waits for the source's bytes. What went wrong on the source's side
        // (no blob, or bytes that do not match the digest) is kept here: the upload itself
        // only sees its body end badly, or the target refuse the digest.
        let source_failure = Arc::new(std::sync::Mutex::new(None::<Error>));
        let (send, receive) = tokio::sync::oneshot::channel();
        let pull = async {
            let _ = send.send(
                source
                    .client
                    .pull_blob_stream(&source.reference, blob.digest.as_str())
                    .await,
            );
        };
        let body = {
            let failure = source_failure.clone();
            let (reference, digest) = (source.reference.to_string(), blob.digest.clone());
            stream::once(receive)
                .map(move |pulled| body_of(pulled, &failure, &reference, &digest))
                .flatten()
        };
        let push = self
            .registry
            .upload_client_for(target.reference.registry())
            .push_blob_stream(&target.reference, body, &blob.digest, Some(size));
        let ((), pushed) = tokio::join!(pull, push);
        if let Err(err) = pushed {
            let failure = source_failure.lock().ok().and_then(|mut f| f.take());
            return Err(match failure {
                Some(failure) => failure,
                None if err.to_string().contains("DIGEST_INVALID") => Error::Corrupt {
                    reference: source.reference.to_string(),
                    digest: blob.digest.clone(),
                    cause: "ECR computed another digest for the bytes it received.".into(),
                },
                None => target_failure(err),
            });
        }
        self.remember(&target.reference, &blob.digest);
        Ok(())
    }

    async fn push_manifest(
        &self,
        target: &Side<'_>,
        reference: &Reference,
        body: &bytes::Bytes,
    ) -> Result<()> {
        let document = Document::parse(body).map_err(|cause| Error::Push {
            target: reference.to_string(),
            cause,
        })?;
        let content_type = document.content_type().parse().map_err(|_| Error::Push {
            target: reference.to_string(),
            cause: "the manifest's media type is not a valid header".into(),
        })?;
        target
            .client
            .push_manifest_raw(reference, body.clone(), content_type)
            .await
            .map_err(|err| target_error(reference, err))?;
        Ok(())
    }
}

/// The upload body for a blob the source answered `pulled` for: its bytes, through
/// oci-client's verifying stream. A failed request or a digest mismatch is noted in
/// `failure` and ends the body with an error.
fn body_of(
    pulled: std::result::Result<
        oci_client::errors::Result<oci_client::client::SizedStream>,
        tokio::sync::oneshot::error::RecvError,
    >,
    failure: &Arc<std::sync::Mutex<Option<Error>>>,
    reference: &str,
    digest: &str,
) -> futures_util::stream::BoxStream<'static, oci_client::errors::Result<bytes::Bytes>> {
    let pulled = match pulled {
        Ok(Ok(pulled)) => pulled,
        Ok(Err(err)) => {
            note(failure, source_error(reference.to_string(), &err));
            return stream::iter([Err(err)]).boxed();
        }
        Err(_) => return stream::empty().boxed(),
    };
    let (failure, reference, digest) = (failure.clone(), reference.to_string(), digest.to_string());
    pulled
        .stream
        .map_err(move |err| {
            let mismatch = err
                .get_ref()
                .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
            if mismatch {
                let corrupt = Error::Corrupt {
                    reference: reference.clone(),
                    digest: digest.clone(),
                    cause: err.to_string(),
                };
                note(&failure, corrupt);
            }
            OciDistributionError::IoError(err)
        })
        .boxed()
}

/// Keeps `error` as the source's failure, unless one is kept already.
fn note(failure: &std::sync::Mutex<Option<Error>>, error: Error) {
    if let Ok(mut failure) = failure.lock() {
        failure.get_or_insert(error);
    }
}

/// Whether another try may succeed: throttling, server errors, broken connections.
fn transient(err: &Error) -> bool {
    let text = match err {
        // Damaged in transit, perhaps, or throttled: another try costs one blob.
        Error::Corrupt { .. } | Error::RateLimited { .. } => return true,
        Error::Push { cause, .. } | Error::Source { cause, .. } => cause.to_ascii_lowercase(),
        _ => return false,
    };
    [
        "code: 429",
        "code: 5",
        "toomanyrequests",
        "connection",
        "timed out",
        "error sending request",
        "invalid digest. expected",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[async_trait]
impl Transfer for RegistryTransfer {
    async fn copy(&self, job: &Job<'_>) -> Result<Copied> {
        self.copy_now(job).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_the_manifest_or_its_shape() {
        let docker = Document::parse(br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:a"},"layers":[]}"#).unwrap();
        assert_eq!(
            docker.content_type(),
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        let index = Document::parse(br#"{"manifests":[]}"#).unwrap();
        assert_eq!(
            index.content_type(),
            "application/vnd.oci.image.index.v1+json"
        );
    }
}
