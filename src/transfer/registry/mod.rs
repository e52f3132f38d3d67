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
//! its digest twice: by the download's check as it passes ([`Session::blob`]), and by the target, which
//! commits nothing whose bytes do not match `?digest=`. No manifest is pushed after a failed
//! blob. Each blob is retried on its own after a transient failure, when the registry asked
//! (`Retry-After`) or after a jittered backoff. Every request is the provider's own
//! ([`Session`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::manifest::OciDescriptor;
use oci_client::Reference;

mod referrers;
mod sharing;

use sharing::{Origin, Sharing};

use super::{BlobSharing, Copied, Job, Transfer};
use crate::credentials::Credentials;
use crate::distribution::session::{Mount, Upload};
use crate::distribution::{
    retry_request, tag_or_digest, Access, Answer, Distribution, RequestFailure, Role, Session,
};
use crate::ecr::RegistryLogin;
use crate::error::{Error, Result};
use crate::locks::Locks;
use crate::manifest::Fetched;
use crate::reference::{Platform, SourceRef};
use crate::source::{self, Resolved, Unresolved, Wanted};

/// How many blobs are copied at once.
const CONCURRENT_BLOBS: usize = 6;

/// The registry-to-registry transfer.
pub(crate) struct RegistryTransfer {
    distribution: Arc<Distribution>,
    /// The blobs this process's copies put into the repositories of target registries, to
    /// mount into another repository instead of uploading them again (`sharing.rs`).
    sharing: Sharing,
    /// One lock per `(host, repository, digest)` of a blob or a platform's manifest: mirrors
    /// of one image to several tags run at once, and each blob and platform manifest is then
    /// pushed once, the other copies finding it there. (Registries also mishandle the same
    /// content pushed twice at once: docker-registry answers 500 and loses a blob, and
    /// rewrites a manifest's link while an index that names it is checked, refusing the
    /// index with `MANIFEST_BLOB_UNKNOWN`.)
    uploading: Locks<InRepository>,
}

impl RegistryTransfer {
    /// A transfer through `distribution`'s clients.
    pub(crate) fn new(distribution: Arc<Distribution>) -> RegistryTransfer {
        RegistryTransfer {
            distribution,
            sharing: Sharing::default(),
            uploading: Default::default(),
        }
    }
}

/// How a copy's blobs are shared with the other repositories of the target registry: what
/// the registry allows, and the copy's part (`None`: it neither claims nor waits).
#[derive(Clone, Copy)]
struct Shared<'c> {
    blobs: &'c BlobSharing,
    copy: Option<&'c sharing::Copy<'c>>,
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

/// A blob or a manifest in one repository of a target registry.
#[derive(Debug, PartialEq, Eq, Hash)]
struct InRepository {
    host: String,
    repository: String,
    digest: String,
}

/// A manifest to copy, and the reference to push it under.
struct Manifest {
    fetched: Fetched,
    push_as: Reference,
}

impl RegistryTransfer {
    async fn copy_now(&self, job: &Job<'_>) -> Result<Copied> {
        let (source, target) = self.sides(job)?;
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
            meet_challenge(&target),
            self.platform_images(&source, &target, &resolved),
        );
        authorised?;
        let images = images?;
        let tagged = resolved.image();
        // Every blob once, then the platforms' manifests, then the tag's: a registry takes a
        // manifest only when what it names is there.
        let manifests = images.iter().map(|m| &m.fetched).chain([tagged]);
        let copy = self.sharing.begin();
        let shared = Shared {
            blobs: &job.target.blobs,
            copy: Some(&copy),
        };
        self.copy_blobs(&source, &target, unique_blobs(manifests), shared)
            .await?;
        self.push_manifests(&target, &images).await?;
        self.push_manifest(&target, &target.reference, tagged)
            .await?;
        copy.referenced();
        Ok(Copied {
            source_digest: Some(resolved.named.digest.clone()),
            pushed_digest: Some(tagged.digest.clone()),
        })
    }

    /// The source and the target of `job`.
    fn sides<'a>(&'a self, job: &Job<'_>) -> Result<(Session<'a>, Session<'a>)> {
        let source = self
            .distribution
            .source(job.source.as_oci().clone(), job.source_credentials.as_ref())?;
        let target = self.distribution.session(
            Reference::with_tag(
                job.target.host.clone(),
                job.target.repository.clone(),
                job.target.tag.clone(),
            ),
            Some(job.target_credentials.clone()),
            Access::Push,
            Role::Target,
        )?;
        Ok((source, target))
    }

    // Each stream below runs futures made beforehand: a closure over borrowed items inside
    // the stream's type makes the future fail `Send`'s higher-ranked check.

    /// Copies `blobs`, a few at a time.
    async fn copy_blobs(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        blobs: Vec<&OciDescriptor>,
        shared: Shared<'_>,
    ) -> Result<()> {
        let copies: Vec<_> = blobs
            .into_iter()
            .map(|blob| self.copy_blob(source, target, blob, shared))
            .collect();
        stream::iter(copies)
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Pushes the platforms' manifests of an index, a few at a time.
    async fn push_manifests(&self, target: &Session<'_>, images: &[Manifest]) -> Result<()> {
        let pushes: Vec<_> = images
            .iter()
            .map(|image| self.push_platform_manifest(target, image))
            .collect();
        stream::iter(pushes)
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// When the copy is a whole index, its platforms' manifests, each to push by digest.
    async fn platform_images(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
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
    async fn fetch(&self, source: &Session<'_>, digest: &str) -> Result<Fetched> {
        source::fetch(
            source,
            &source.reference.clone_with_digest(digest.to_string()),
        )
        .await
    }

    /// Copies `blob` unless the target holds it, tried again while it fails transiently.
    async fn copy_blob(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        blob: &OciDescriptor,
        shared: Shared<'_>,
    ) -> Result<()> {
        let what = format!("a blob ({})", blob.digest);
        crate::retry::retrying(
            &what,
            || self.copy_blob_once(source, target, blob, shared),
            BlobCopyFailure::wait_before_next,
        )
        .await
        .map_err(|failed| failed.error)
    }

    /// Copies `blob` unless the target holds it: mounted from another repository of the
    /// registry where `shared` finds one (after waiting for another copy that puts it
    /// there), else streamed from the source; a declined mount's upload session takes it.
    async fn copy_blob_once(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        blob: &OciDescriptor,
        shared: Shared<'_>,
    ) -> std::result::Result<(), BlobCopyFailure> {
        let (host, repository) = (target.reference.registry(), target.reference.repository());
        // Decided (and waited for) before the blob's lock is taken: a wait holds no lock.
        let origin = sharing::Copy::origin(
            shared.copy,
            &self.sharing,
            host,
            repository,
            shared.blobs,
            &blob.digest,
        )
        .await;
        let lock = self.pushing(target, &blob.digest);
        let _one_at_a_time = lock.lock().await;
        let at_target =
            |failure| BlobCopyFailure::of(failure, target, &target.reference.to_string());
        if target.has_blob(&blob.digest).await.map_err(at_target)? {
            self.sharing
                .found(host, repository, shared.blobs, &blob.digest);
            return Ok(());
        }
        let upload = match origin {
            Origin::Mount(from) => match target.mount(&blob.digest, &from).await {
                Ok(Mount::Mounted) => {
                    tracing::debug!(digest = %blob.digest, %from, "blob mounted");
                    return Ok(());
                }
                Ok(Mount::Declined(upload)) => Some(upload),
                // Uploading says what is wrong, or succeeds.
                Err(failure) => {
                    tracing::debug!(digest = %blob.digest, "mount failed: {failure}");
                    None
                }
            },
            Origin::Upload => None,
        };
        self.stream_blob(source, target, blob, upload).await
    }

    /// Streams `blob` from the source into the target, in one upload request.
    async fn stream_blob(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        blob: &OciDescriptor,
        upload: Option<Upload>,
    ) -> std::result::Result<(), BlobCopyFailure> {
        // The size goes in the upload's headers before any byte is read: the manifest gives
        // it (OCI and Docker manifests always do).
        let size = u64::try_from(blob.size).map_err(|_| BlobCopyFailure {
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
        let source_failure = Arc::new(std::sync::Mutex::new(None::<BlobCopyFailure>));
        let (send, receive) = tokio::sync::oneshot::channel();
        let reference = source.reference.to_string();
        let pull = async {
            let corrupt = {
                let (failure, reference, digest) = (
                    source_failure.clone(),
                    reference.clone(),
                    blob.digest.clone(),
                );
                move |cause| note(&failure, BlobCopyFailure::corrupt(reference, digest, cause))
            };
            let pulled = source
                .blob(&blob.digest, size, corrupt)
                .await
                .map_err(|failure| BlobCopyFailure::of(failure, source, &reference));
            let _ = send.send(body_of(pulled, &source_failure));
        };
        let body = stream::once(receive).map(received).flatten();
        let push = target.upload(upload, &blob.digest, size, reqwest::Body::wrap_stream(body));
        let ((), pushed) = tokio::join!(pull, push);
        if let Err(failure) = pushed {
            let noted = source_failure.lock().ok().and_then(|mut f| f.take());
            return Err(match noted {
                Some(noted) => noted,
                None if failure.answer() == Answer::DigestInvalid => BlobCopyFailure::corrupt(
                    reference,
                    blob.digest.clone(),
                    "ECR computed another digest for the bytes it received.".into(),
                ),
                None => BlobCopyFailure::of(failure, target, &target.reference.to_string()),
            });
        }
        Ok(())
    }

    /// The lock of `digest` (a blob or a manifest) in `target`'s repository.
    fn pushing(&self, target: &Session<'_>, digest: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.uploading.of(InRepository {
            host: target.reference.registry().to_string(),
            repository: target.reference.repository().to_string(),
            digest: digest.to_string(),
        })
    }

    /// Pushes a platform's manifest of an index by its digest, unless the target holds it:
    /// one mirror at a time per manifest, so that mirrors of one index to several tags push
    /// it once.
    async fn push_platform_manifest(&self, target: &Session<'_>, image: &Manifest) -> Result<()> {
        let digest = &image.fetched.digest;
        let lock = self.pushing(target, digest);
        let _one_at_a_time = lock.lock().await;
        match target.manifest_digest(digest).await {
            Ok(Some(held)) if held.as_str() == digest => return Ok(()),
            Ok(_) => {}
            // Pushing it says what is wrong, or succeeds.
            Err(failure) => tracing::debug!(%digest, "{failure}"),
        }
        self.push_manifest(target, &image.push_as, &image.fetched)
            .await
    }

    async fn push_manifest(
        &self,
        target: &Session<'_>,
        reference: &Reference,
        manifest: &Fetched,
    ) -> Result<()> {
        let name = tag_or_digest(reference);
        retry_request("a manifest push", || {
            target.push_manifest(name, &manifest.body, manifest.media_type())
        })
        .await
        .map_err(|failure| failure.error(target, &reference.to_string()))
    }
}

/// Meets `side`'s challenge, before the requests of a copy.
async fn meet_challenge(side: &Session<'_>) -> Result<()> {
    retry_request("the registry's challenge", || side.meet_challenge())
        .await
        .map_err(|failure| failure.error(side, &side.reference.to_string()))
}

/// An upload body, as it passes from the source's request to the target's. (A struct: a
/// bare boxed stream in the channel's type makes the copy's future fail `Send`'s
/// higher-ranked check.)
struct Body(BoxStream<'static, std::io::Result<bytes::Bytes>>);

/// The upload body for a blob the source answered `pulled` for (see [`Session::blob`]):
/// its checked bytes, or, when the request failed, that failure noted in `failure` and a
/// body that ends with an error.
fn body_of(
    pulled: std::result::Result<BoxStream<'static, std::io::Result<bytes::Bytes>>, BlobCopyFailure>,
    failure: &Arc<std::sync::Mutex<Option<BlobCopyFailure>>>,
) -> Body {
    Body(match pulled {
        Ok(body) => body,
        Err(failed) => {
            let cause = failed.error.to_string();
            note(failure, failed);
            stream::iter([Err(std::io::Error::other(cause))]).boxed()
        }
    })
}

/// The body the download sent over, or none when it was dropped.
fn received(
    body: std::result::Result<Body, tokio::sync::oneshot::error::RecvError>,
) -> BoxStream<'static, std::io::Result<bytes::Bytes>> {
    body.map_or_else(|_| stream::empty().boxed(), |body| body.0)
}

/// Keeps `failed` as the source's failure, unless one is kept already.
fn note(failure: &std::sync::Mutex<Option<BlobCopyFailure>>, failed: BlobCopyFailure) {
    if let Ok(mut failure) = failure.lock() {
        failure.get_or_insert(failed);
    }
}

/// A blob copy that failed, whether another try may succeed, and when (a registry's
/// `Retry-After`).
struct BlobCopyFailure {
    error: Error,
    retry: bool,
    wait: Option<Duration>,
}

impl std::fmt::Display for BlobCopyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl BlobCopyFailure {
    /// The wait before try `tries + 1`, when there is to be one.
    fn wait_before_next(&self, tries: u32) -> Option<Duration> {
        crate::retry::wait_before_next(self.retry, self.wait, tries)
    }

    /// Bytes of blob `digest` of `reference` that do not match it: damaged in transit,
    /// perhaps, so another try (it costs one blob) may succeed.
    fn corrupt(reference: String, digest: String, cause: String) -> BlobCopyFailure {
        BlobCopyFailure {
            error: Error::Corrupt {
                reference,
                digest,
                cause,
            },
            retry: true,
            wait: None,
        }
    }

    /// A request about `reference` in `session` that failed with `failure`.
    fn of(failure: RequestFailure, session: &Session<'_>, reference: &str) -> BlobCopyFailure {
        BlobCopyFailure {
            retry: failure.transient(),
            wait: failure.wait,
            error: failure.error(session, reference),
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

    /// Copies the referrers of every manifest of `resolved` (the mirror ECR now holds: the
    /// manifest, and an index's platforms) and their referrers, unless ECR holds them;
    /// returns every referrer's digest, sorted (see `transfer/registry/referrers.rs`).
    async fn copy_referrers(&self, job: &Job<'_>, resolved: &Resolved) -> Result<Vec<String>> {
        let (source, target) = self.sides(job)?;
        let (authorised, allowed) = tokio::join!(meet_challenge(&target), meet_challenge(&source));
        authorised?;
        allowed?;
        self.copy_referrers_of(&source, &target, &job.target.blobs, subjects(resolved))
            .await
    }

    /// The digests of the referrers the source holds now for the manifests of `resolved`
    /// (and of their referrers), sorted; nothing is copied.
    async fn source_referrers(
        &self,
        source: &SourceRef,
        resolved: &Resolved,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<String>> {
        let side = self
            .distribution
            .source(source.as_oci().clone(), credentials)?;
        meet_challenge(&side).await?;
        self.referrers_of(&side, subjects(resolved)).await
    }
}
