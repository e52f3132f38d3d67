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
//! its digest twice: by the download's check as it passes ([`download`]), and by the target, which
//! commits nothing whose bytes do not match `?digest=`. No manifest is pushed after a failed
//! blob. Each blob is retried on its own after a transient failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

mod download;
mod referrers;

use super::{Copied, Job, Locks, Transfer};
use crate::credentials::Credentials;
use crate::distribution::{
    backoff, oci_auth, retried, source_error, transient, with_retries, Answer, Distribution,
    ATTEMPTS,
};
use crate::ecr::RegistryLogin;
use crate::error::{Error, Result};
use crate::manifest::{self, Fetched};
use crate::reference::{Platform, SourceRef};
use crate::source::{self, Resolved, Unresolved, Wanted};

/// How many blobs are copied at once.
const CONCURRENT_BLOBS: usize = 6;

/// The registry-to-registry transfer.
pub struct RegistryTransfer {
    distribution: Arc<Distribution>,
    /// Where each blob was last seen in a target registry (the repository that holds it),
    /// to mount it into another repository of that registry instead of uploading it again.
    seen: std::sync::Mutex<std::collections::HashMap<BlobInRegistry, String>>,
    /// One lock per `(host, repository, digest)`: mirrors of one image to several tags run
    /// at once, and each blob is then uploaded once, the other copies finding it there.
    /// (Registries also mishandle the same blob uploaded twice at once: docker-registry
    /// answers 500 and loses the blob.)
    uploading: Locks<BlobInRepository>,
    /// The client for blob downloads ([`download`]), made on first use.
    downloads: std::sync::OnceLock<reqwest::Client>,
}

impl RegistryTransfer {
    /// A transfer through `distribution`'s clients.
    pub fn new(distribution: Arc<Distribution>) -> RegistryTransfer {
        RegistryTransfer {
            distribution,
            seen: Default::default(),
            uploading: Default::default(),
            downloads: Default::default(),
        }
    }

    fn remember(&self, target: &Reference, digest: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(
                BlobInRegistry::of(target, digest),
                target.repository().to_string(),
            );
        }
    }

    /// Another repository of the target registry known to hold `digest`.
    fn mount_source(&self, target: &Reference, digest: &str) -> Option<Reference> {
        let seen = self.seen.lock().ok()?;
        let repository = seen.get(&BlobInRegistry::of(target, digest))?;
        (repository != target.repository()).then(|| {
            Reference::with_digest(
                target.registry().to_string(),
                repository.clone(),
                digest.to_string(),
            )
        })
    }
}

/// The manifests a mirror of `resolved` holds: the manifest, and an index's entries.
fn subjects(resolved: &Resolved) -> Vec<String> {
    let image = resolved.image();
    std::iter::once(image.digest.clone())
        .chain(
            image
                .index()
                .into_iter()
                .flat_map(|index| index.manifests.iter().map(|e| e.digest.clone())),
        )
        .collect()
}

/// Every blob `manifests` name, each once.
fn unique_blobs<'a>(manifests: impl Iterator<Item = &'a Fetched>) -> Vec<&'a OciDescriptor> {
    let mut blobs: Vec<&OciDescriptor> = Vec::new();
    for blob in manifests.flat_map(Fetched::blobs) {
        if !blobs.iter().any(|b| b.digest == blob.digest) {
            blobs.push(blob);
        }
    }
    blobs
}

/// A blob in a target registry, whatever the repository.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BlobInRegistry {
    host: String,
    digest: String,
}

impl BlobInRegistry {
    fn of(target: &Reference, digest: &str) -> BlobInRegistry {
        BlobInRegistry {
            host: target.registry().to_string(),
            digest: digest.to_string(),
        }
    }
}

/// A blob in one repository of a target registry.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BlobInRepository {
    host: String,
    repository: String,
    digest: String,
}

/// One side of the copy: where, with which client.
struct Side<'a> {
    client: &'a oci_client::Client,
    reference: Reference,
    /// The credentials requests to this side carry.
    auth: RegistryAuth,
    /// The bearer token blob downloads from this side carry, once asked for (`Some(None)`:
    /// the registry gives none).
    pull_token: tokio::sync::Mutex<Option<Option<String>>>,
}

impl Side<'_> {
    /// Meets the source registry's challenge for pulling (the referrers API's requests
    /// carry the token it gives).
    async fn authorise_pull(&self) -> Result<()> {
        self.client
            .auth(&self.reference, &self.auth, RegistryOperation::Pull)
            .await
            .map(|_| ())
            .map_err(|err| source_error(self.reference.to_string(), &err, &self.auth))
    }
}

/// A manifest to copy, and the reference to push it under.
struct Manifest {
    fetched: Fetched,
    push_as: Reference,
}

/// The error for a failed request to the target: a refusal of the credentials is told
/// apart, as it needs another fix than a network failure.
fn target_error(target: &Reference, err: OciDistributionError) -> Error {
    if let Some(network) = crate::distribution::oci_network_error("ECR's registry", None, &err) {
        return network;
    }
    match Answer::of(&err) {
        Answer::Denied(status) => Error::TargetDenied {
            host: target.registry().to_string(),
            cause: format!(
                "The registry answered {} to the push credentials: {err}",
                status.unwrap_or(401)
            ),
        },
        Answer::TagInvalid => Error::TagRefused {
            target: target.to_string(),
            cause: err.to_string(),
        },
        _ => Error::Push {
            target: target.to_string(),
            cause: err.to_string(),
        },
    }
}

impl RegistryTransfer {
    async fn copy_now(&self, job: &Job<'_>) -> Result<Copied> {
        let (source, target) = self.sides(job);
        let resolved = match job.resolved {
            Some(resolved) => resolved.clone(),
            None => self
                .resolve(job.source, job.platform, job.source_credentials.as_ref())
                .await?
                .ok_or_else(|| Error::Source {
                    reference: job.source.to_string(),
                    cause: "The source could not be resolved.".into(),
                })?,
        };
        // The target's challenges (pushing, and the HEADs that look for blobs) are met while
        // the index's platform manifests are fetched: each is a round trip to a registry.
        // (Resolving gave the source's client its credentials, for the blobs.)
        let (authorised, images) = tokio::join!(
            self.authorise(&target),
            self.platform_images(&source, &target, &resolved),
        );
        authorised?;
        let images = images?;
        let tagged = resolved.image();
        // Every blob once, then the platforms' manifests, then the tag's: a registry takes a
        // manifest only when what it names is there.
        let manifests = images.iter().map(|m| &m.fetched).chain([tagged]);
        self.copy_blobs(&source, &target, unique_blobs(manifests))
            .await?;
        self.push_manifests(&target, &images).await?;
        self.push_manifest(&target, &target.reference, tagged)
            .await?;
        Ok(Copied {
            source_digest: Some(resolved.named.digest.clone()),
            pushed_digest: Some(tagged.digest.clone()),
        })
    }

    /// Copies the referrers of every manifest of `resolved` (the mirror ECR now holds: the
    /// manifest, and an index's platforms) and their referrers, unless ECR holds them;
    /// returns every referrer's digest, sorted. See [`referrers`].
    pub async fn copy_referrers(&self, job: &Job<'_>, resolved: &Resolved) -> Result<Vec<String>> {
        let (source, target) = self.sides(job);
        let (authorised, allowed) = tokio::join!(self.authorise(&target), source.authorise_pull());
        authorised?;
        allowed?;
        self.copy_referrers_of(&source, &target, subjects(resolved))
            .await
    }

    /// The digests of the referrers the source holds now for the manifests of `resolved`
    /// (and of their referrers), sorted; nothing is copied.
    pub async fn source_referrers(
        &self,
        source: &SourceRef,
        resolved: &Resolved,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<String>> {
        let side = self.source_side(source, credentials);
        side.authorise_pull().await?;
        self.referrers_of(&side, subjects(resolved)).await
    }

    /// The source registry's side of a copy of `source`.
    fn source_side<'a>(
        &'a self,
        source: &SourceRef,
        credentials: Option<&Credentials>,
    ) -> Side<'a> {
        Side {
            client: self.distribution.client_for(source.host()),
            reference: source.as_oci().clone(),
            auth: oci_auth(credentials),
            pull_token: Default::default(),
        }
    }

    /// The source and the target of `job`, each with its client.
    fn sides<'a>(&'a self, job: &Job<'_>) -> (Side<'a>, Side<'a>) {
        let source = self.source_side(job.source, job.source_credentials.as_ref());
        let target = Side {
            client: self.distribution.client_for(&job.target.host),
            reference: Reference::with_tag(
                job.target.host.clone(),
                job.target.repository.clone(),
                job.target.tag.clone(),
            ),
            auth: oci_auth(Some(&job.target_credentials)),
            pull_token: Default::default(),
        };
        (source, target)
    }

    // Each stream below runs futures made beforehand: a closure over borrowed items inside
    // the stream's type makes the future fail `Send`'s higher-ranked check.

    /// Copies `blobs`, a few at a time.
    async fn copy_blobs(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blobs: Vec<&OciDescriptor>,
    ) -> Result<()> {
        let copies: Vec<_> = blobs
            .into_iter()
            .map(|blob| self.copy_blob_with_retries(source, target, blob))
            .collect();
        stream::iter(copies)
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Pushes the platforms' manifests of an index, a few at a time.
    async fn push_manifests(&self, target: &Side<'_>, images: &[Manifest]) -> Result<()> {
        let pushes: Vec<_> = images
            .iter()
            .map(|image| self.push_manifest(target, &image.push_as, &image.fetched))
            .collect();
        stream::iter(pushes)
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Meets the target's challenges for pushing (both clients) and for looking up blobs.
    async fn authorise(&self, target: &Side<'_>) -> Result<()> {
        let auth = &target.auth;
        let uploads = self
            .distribution
            .upload_client_for(target.reference.registry());
        let (pushing, uploading, looking) = tokio::join!(
            target
                .client
                .auth(&target.reference, auth, RegistryOperation::Push),
            uploads.auth(&target.reference, auth, RegistryOperation::Push),
            target
                .client
                .auth(&target.reference, auth, RegistryOperation::Pull),
        );
        pushing
            .and(uploading)
            .and(looking)
            .map(|_| ())
            .map_err(|err| target_error(&target.reference, err))
    }

    /// When the copy is a whole index, its platforms' manifests, each to push by digest.
    async fn platform_images(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<Manifest>> {
        let Some(index) = resolved.image().index() else {
            return Ok(Vec::new());
        };
        let fetches: Vec<_> = index
            .manifests
            .iter()
            .map(|entry| async move {
                let fetched = self.fetch(source, &entry.digest).await?;
                Ok::<_, Error>(Manifest {
                    fetched,
                    push_as: target.reference.clone_with_digest(entry.digest.clone()),
                })
            })
            .collect();
        stream::iter(fetches)
            .buffered(CONCURRENT_BLOBS)
            .try_collect()
            .await
    }

    /// One manifest of the source, by digest.
    async fn fetch(&self, source: &Side<'_>, digest: &str) -> Result<Fetched> {
        let reference = source.reference.clone_with_digest(digest.to_string());
        let (body, digest) = retried("a manifest", || {
            source
                .client
                .pull_manifest_raw(&reference, &source.auth, &manifest::ACCEPTED)
        })
        .await
        .map_err(|err| source_error(reference.to_string(), &err, &source.auth))?;
        Fetched::parse(digest, body).map_err(|cause| Error::NotAnImage {
            reference: reference.to_string(),
            cause,
        })
    }

    async fn copy_blob_with_retries(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blob: &OciDescriptor,
    ) -> Result<()> {
        let what = format!("a blob ({})", blob.digest);
        with_retries(
            &what,
            || self.copy_blob(source, target, blob),
            |failed: &Failed, attempt| {
                (failed.retry && attempt < ATTEMPTS)
                    .then(|| failed.wait.unwrap_or_else(|| backoff(attempt)))
            },
        )
        .await
        .map_err(|failed| failed.error)
    }

    async fn copy_blob(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blob: &OciDescriptor,
    ) -> std::result::Result<(), Failed> {
        let lock = self.uploading.of(BlobInRepository {
            host: target.reference.registry().to_string(),
            repository: target.reference.repository().to_string(),
            digest: blob.digest.clone(),
        });
        let _one_at_a_time = lock.lock().await;
        if self.present_or_mounted(target, &blob.digest).await? {
            self.remember(&target.reference, &blob.digest);
            return Ok(());
        }
        self.stream_blob(source, target, blob).await?;
        self.remember(&target.reference, &blob.digest);
        Ok(())
    }

    /// Whether the target holds `digest` already, or now that it was mounted from another
    /// repository of the registry this process saw it in.
    async fn present_or_mounted(
        &self,
        target: &Side<'_>,
        digest: &str,
    ) -> std::result::Result<bool, Failed> {
        let target_failure = |err: OciDistributionError| Failed::at_target(&target.reference, err);
        let exists = || target.client.blob_exists(&target.reference, digest);
        if exists().await.map_err(target_failure)? {
            return Ok(true);
        }
        let Some(from) = self.mount_source(&target.reference, digest) else {
            return Ok(false);
        };
        // A registry that cannot mount answers with an upload session instead; the blob is
        // then uploaded.
        let mounted = target
            .client
            .mount_blob(&target.reference, &from, digest)
            .await
            .is_ok();
        Ok(mounted && exists().await.map_err(target_failure)?)
    }

    /// Streams `blob` from the source into the target, in one upload request.
    async fn stream_blob(
        &self,
        source: &Side<'_>,
        target: &Side<'_>,
        blob: &OciDescriptor,
    ) -> std::result::Result<(), Failed> {
        let target_failure = |err: OciDistributionError| Failed::at_target(&target.reference, err);
        // The size goes in the upload's headers before any byte is read: the manifest gives
        // it (OCI and Docker manifests always do).
        let size = u64::try_from(blob.size).map_err(|_| Failed {
            error: Error::NotAnImage {
                reference: source.reference.to_string(),
                cause: format!("the manifest gives a negative size for {}", blob.digest),
            },
            retry: false,
            wait: None,
        })?;
        // The source's blob and the target's upload session are asked for at once; the
        // upload's body waits for the source's bytes. What went wrong on the source's side
        // (no blob, or bytes that do not match the digest) is kept here: the upload itself
        // only sees its body end badly, or the target refuse the digest.
        let source_failure = Arc::new(std::sync::Mutex::new(None::<Failed>));
        let (send, receive) = tokio::sync::oneshot::channel();
        let downloads = self.downloads.get_or_init(download::client);
        let pull = async {
            let pulled = download::pull(downloads, source, &blob.digest, &source_failure).await;
            let _ = send.send(body_of(pulled, &source_failure));
        };
        let body = stream::once(receive).map(received).flatten();
        let push = self
            .distribution
            .upload_client_for(target.reference.registry())
            .push_blob_stream(&target.reference, body, &blob.digest, Some(size));
        let ((), pushed) = tokio::join!(pull, push);
        if let Err(err) = pushed {
            let failure = source_failure.lock().ok().and_then(|mut f| f.take());
            return Err(match failure {
                Some(failure) => failure,
                None if Answer::of(&err) == Answer::DigestInvalid => Failed {
                    // Damaged in transit, perhaps: another try costs one blob.
                    error: Error::Corrupt {
                        reference: source.reference.to_string(),
                        digest: blob.digest.clone(),
                        cause: "ECR computed another digest for the bytes it received.".into(),
                    },
                    retry: true,
                    wait: None,
                },
                None => target_failure(err),
            });
        }
        Ok(())
    }

    async fn push_manifest(
        &self,
        target: &Side<'_>,
        reference: &Reference,
        manifest: &Fetched,
    ) -> Result<()> {
        let content_type: http::HeaderValue =
            manifest.media_type().parse().map_err(|_| Error::Push {
                target: reference.to_string(),
                cause: "the manifest's media type is not a valid header".into(),
            })?;
        retried("a manifest push", || {
            target
                .client
                .push_manifest_raw(reference, manifest.body.clone(), content_type.clone())
        })
        .await
        .map_err(|err| target_error(reference, err))?;
        Ok(())
    }
}

/// An upload body, as it passes from the source's request to the target's. (A struct: a
/// bare boxed stream in the channel's type makes the copy's future fail `Send`'s
/// higher-ranked check.)
struct Body(BoxStream<'static, oci_client::errors::Result<bytes::Bytes>>);

/// The upload body for a blob the source answered `pulled` for (see [`download::pull`]):
/// its checked bytes, or, when the request failed, that failure noted in `failure` and a
/// body that ends with an error.
fn body_of(
    pulled: std::result::Result<BoxStream<'static, std::io::Result<bytes::Bytes>>, Failed>,
    failure: &Arc<std::sync::Mutex<Option<Failed>>>,
) -> Body {
    Body(match pulled {
        Ok(body) => body.map_err(OciDistributionError::IoError).boxed(),
        Err(failed) => {
            let cause = failed.error.to_string();
            note(failure, failed);
            stream::iter([Err(OciDistributionError::GenericError(Some(cause)))]).boxed()
        }
    })
}

/// The body the download sent over, or none when it was dropped.
fn received(
    body: std::result::Result<Body, tokio::sync::oneshot::error::RecvError>,
) -> BoxStream<'static, oci_client::errors::Result<bytes::Bytes>> {
    body.map_or_else(|_| stream::empty().boxed(), |body| body.0)
}

/// Keeps `failed` as the source's failure, unless one is kept already.
fn note(failure: &std::sync::Mutex<Option<Failed>>, failed: Failed) {
    if let Ok(mut failure) = failure.lock() {
        failure.get_or_insert(failed);
    }
}

/// A blob copy that failed, whether another try may succeed, and when (a registry's
/// `Retry-After`).
struct Failed {
    error: Error,
    retry: bool,
    wait: Option<Duration>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl Failed {
    /// A request to the target that failed with `err`.
    fn at_target(target: &Reference, err: OciDistributionError) -> Failed {
        Failed {
            retry: transient(&err),
            error: target_error(target, err),
            wait: None,
        }
    }
}

/// What to do about a platform the source lacks, for this method.
const PLATFORM_HINT: &str = "Set `platform` to one the source holds, or leave it unset to copy every platform of the index.";

#[async_trait]
impl Transfer for RegistryTransfer {
    /// What the copy pushes: what the reference names, or the platform's image of it.
    async fn resolve(
        &self,
        source: &SourceRef,
        platform: Option<&Platform>,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Resolved>> {
        let wanted = platform.map_or(Wanted::Named, Wanted::Platform);
        match source::resolve(&self.distribution, source, wanted, credentials).await {
            Ok(resolved) => Ok(Some(resolved)),
            Err(Unresolved::PlatformMissing { held }) => Err(Error::PlatformMissing {
                attribute: "platform",
                reference: source.to_string(),
                wanted: platform.map(ToString::to_string).unwrap_or_default(),
                held,
                hint: PLATFORM_HINT.into(),
            }),
            Err(Unresolved::Failed(err)) => Err(err),
        }
    }

    /// The copy preserves digests: ECR's tag holds it when it names the same manifest.
    fn holds(&self, held: &Fetched, resolved: &Resolved) -> bool {
        held.digest == resolved.image().digest
    }

    /// The copy's first request to ECR tells a refusal of the credentials apart
    /// ([`Error::TargetDenied`]); nothing to check before.
    async fn preflight(&self, _login: &RegistryLogin) -> Result<()> {
        Ok(())
    }

    async fn copy(&self, job: &Job<'_>) -> Result<Copied> {
        self.copy_now(job).await
    }
}
