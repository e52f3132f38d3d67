//! `copy_method = "registry"`: copy straight from the source registry to ECR over the
//! distribution API, with no Docker engine. Manifests are copied byte for byte, so digests
//! are preserved (`image_digest` equals `source_digest`, signatures stay valid). Without a
//! platform the whole index is copied; with one, that platform's manifest.
//!
//! Blobs the target has are skipped (`HEAD`); blobs this process saw in another repository of
//! the same registry are mounted from there; the others stream from source to target a few
//! at a time, each verified against its digest as it streams (oci-client's verifying stream;
//! a mismatch fails the copy and no manifest is pushed), each retried on its own after a
//! transient failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::{Reference, RegistryOperation};
use serde::Deserialize;

use super::{Copied, Job, Transfer};
use crate::error::{Error, Result};
use crate::manifest::{self, Selected};
use crate::registry::{oci_auth, Registry};

/// How many blobs are copied at once.
const CONCURRENT_BLOBS: usize = 4;
/// How often a blob is tried before the copy fails.
const ATTEMPTS: u32 = 3;

/// The registry-to-registry transfer.
pub struct RegistryTransfer {
    registry: Arc<Registry>,
    /// Where each blob was last seen in a target registry: `(host, digest)` → repository,
    /// to mount it into another repository of that registry instead of uploading it again.
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

impl RegistryTransfer {
    /// A transfer through `registry`'s distribution clients.
    pub fn new(registry: Arc<Registry>) -> RegistryTransfer {
        RegistryTransfer {
            registry,
            seen: Default::default(),
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

impl RegistryTransfer {
    async fn copy_now(&self, job: &Job<'_>) -> Result<Copied> {
        let source_name = job.source.to_string();
        let source_failure =
            |err: OciDistributionError| Error::from_source(source_name.clone(), err.to_string());
        let target_failure = |err: OciDistributionError| Error::Push {
            target: job.target.to_string(),
            cause: err.to_string(),
        };
        let source = Side {
            client: self.registry.client_for(job.source.registry()),
            reference: job.source.as_oci().clone(),
        };
        let target_reference = Reference::with_tag(
            job.target.host.clone(),
            job.target.repository.clone(),
            job.target.tag.clone(),
        );
        let target = Side {
            client: self.registry.client_for(&job.target.host),
            reference: target_reference,
        };
        let source_auth = oci_auth(job.source_credentials.as_ref());
        target
            .client
            .auth(
                &target.reference,
                &oci_auth(Some(&job.target_credentials)),
                RegistryOperation::Push,
            )
            .await
            .map_err(target_failure)?;

        let (body, source_digest) = source
            .client
            .pull_manifest_raw(&source.reference, &source_auth, &manifest::ACCEPTED)
            .await
            .map_err(source_failure)?;
        let document = Document::parse(&body).map_err(|cause| Error::Source {
            reference: source_name.clone(),
            cause,
        })?;

        let pushed = match (&document.manifests, job.platform) {
            (Some(_), Some(platform)) => {
                let Selected::Manifest(child) = manifest::select(&body, platform) else {
                    return Err(Error::PlatformMismatch {
                        reference: source_name,
                        wanted: platform.to_string(),
                        got: "an index without that platform".into(),
                    });
                };
                let (child_body, child_digest) = self.fetch(&source, &child, &source_auth).await?;
                self.copy_image(&source, &target, &child_body).await?;
                self.push_manifest(&target, &target.reference, &child_body)
                    .await?;
                child_digest
            }
            (Some(children), None) => {
                for child in children {
                    let (child_body, _) = self.fetch(&source, &child.digest, &source_auth).await?;
                    self.copy_image(&source, &target, &child_body).await?;
                    let by_digest = target.reference.clone_with_digest(child.digest.clone());
                    self.push_manifest(&target, &by_digest, &child_body).await?;
                }
                self.push_manifest(&target, &target.reference, &body)
                    .await?;
                source_digest.clone()
            }
            (None, _) => {
                self.copy_image(&source, &target, &body).await?;
                self.push_manifest(&target, &target.reference, &body)
                    .await?;
                source_digest.clone()
            }
        };
        Ok(Copied {
            source_digest: Some(source_digest),
            pushed_digest: Some(pushed),
        })
    }

    /// One manifest of the source, by digest: its bytes and digest.
    async fn fetch(
        &self,
        source: &Side<'_>,
        digest: &str,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<(bytes::Bytes, String)> {
        let reference = source.reference.clone_with_digest(digest.to_string());
        source
            .client
            .pull_manifest_raw(&reference, auth, &manifest::ACCEPTED)
            .await
            .map_err(|err| Error::from_source(reference.to_string(), err.to_string()))
    }

    /// Copies the config and layers an image manifest names.
    async fn copy_image(&self, source: &Side<'_>, target: &Side<'_>, body: &[u8]) -> Result<()> {
        let document = Document::parse(body).map_err(|cause| Error::Source {
            reference: source.reference.to_string(),
            cause,
        })?;
        let blobs: Vec<Descriptor> = document.config.into_iter().chain(document.layers).collect();
        stream::iter(blobs)
            .map(|blob| self.copy_blob_with_retries(source, target, blob))
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
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
        let target_failure = |err: OciDistributionError| Error::Push {
            target: target.reference.to_string(),
            cause: err.to_string(),
        };
        let exists = |client: &oci_client::Client| {
            let reference = target.reference.clone();
            let digest = blob.digest.clone();
            let client = client.clone();
            async move { client.blob_exists(&reference, &digest).await }
        };
        if exists(target.client).await.map_err(target_failure)? {
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
            if mounted && exists(target.client).await.map_err(target_failure)? {
                self.remember(&target.reference, &blob.digest);
                return Ok(());
            }
        }
        let pulled = source
            .client
            .pull_blob_stream(&source.reference, blob.digest.as_str())
            .await
            .map_err(|err| Error::from_source(source.reference.to_string(), err.to_string()))?;
        let verified = regrouped(pulled.stream);
        target
            .client
            .push_blob_stream(&target.reference, verified, &blob.digest, blob.size)
            .await
            .map_err(target_failure)?;
        self.remember(&target.reference, &blob.digest);
        Ok(())
    }

    async fn push_manifest(
        &self,
        target: &Side<'_>,
        reference: &Reference,
        body: &[u8],
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
            .push_manifest_raw(reference, bytes::Bytes::copy_from_slice(body), content_type)
            .await
            .map_err(|err| Error::Push {
                target: reference.to_string(),
                cause: err.to_string(),
            })?;
        Ok(())
    }
}

/// Bytes per upload request. The distribution client sends one request per stream item,
/// and a network read is a few KiB: without regrouping, a 1 GiB layer would take tens of
/// thousands of requests. A few MiB keeps memory flat and requests few.
const UPLOAD_CHUNK: usize = 4 << 20;

/// The bytes of `inner` regrouped into chunks of [`UPLOAD_CHUNK`]. `inner` is oci-client's
/// verifying stream: it hashes the blob as it arrives and ends in an error when the bytes do
/// not match the digest. That error is passed on before the last chunk, so the upload is
/// never completed and a corrupted blob is never committed.
fn regrouped(
    inner: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    let state = (inner, bytes::BytesMut::new(), false);
    stream::unfold(state, |(mut inner, mut buffer, done)| async move {
        if done {
            return None;
        }
        loop {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    buffer.extend_from_slice(&chunk);
                    if buffer.len() >= UPLOAD_CHUNK {
                        let full = buffer.split().freeze();
                        return Some((Ok(full), (inner, buffer, false)));
                    }
                }
                Some(Err(err)) => {
                    return Some((
                        Err(OciDistributionError::IoError(err)),
                        (inner, buffer, true),
                    ))
                }
                None if buffer.is_empty() => return None,
                None => {
                    let rest = buffer.split().freeze();
                    return Some((Ok(rest), (inner, buffer, true)));
                }
            }
        }
    })
}

/// Whether another try may succeed: throttling, server errors, broken connections.
fn transient(err: &Error) -> bool {
    let text = match err {
        Error::Push { cause, .. }
        | Error::Source { cause, .. }
        | Error::RateLimited { cause, .. } => cause.to_ascii_lowercase(),
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

    async fn collect(
        chunks: Vec<std::io::Result<bytes::Bytes>>,
    ) -> Vec<oci_client::errors::Result<bytes::Bytes>> {
        regrouped(stream::iter(chunks).boxed()).collect().await
    }

    #[tokio::test]
    async fn small_reads_are_regrouped_into_one_upload() {
        let items = collect(vec![
            Ok(bytes::Bytes::from_static(b"hello ")),
            Ok(bytes::Bytes::from_static(b"world")),
        ])
        .await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap().as_ref(), b"hello world");
    }

    #[tokio::test]
    async fn a_verification_failure_ends_the_upload_before_its_last_chunk() {
        // oci-client's verifying stream ends in an error when the digest does not match.
        let items = collect(vec![
            Ok(bytes::Bytes::from_static(b"hello ")),
            Err(std::io::Error::other("digest mismatch")),
        ])
        .await;
        assert_eq!(items.len(), 1, "the buffered bytes are never sent");
        assert!(items[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("digest mismatch")));
    }

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
