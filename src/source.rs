//! What a source reference holds, asked with manifest requests only (never a layer): the
//! digest a tag names now (one `HEAD`, which Docker Hub does not count against its pull
//! limit), [`describe`], what `ecrmirror_source` reports, and [`resolve`], the one answer
//! to "which manifest, for which platform" that the platform check, adoption, the registry
//! copy and `track_source` with `copy_referrers` all use. Both name the digest with that
//! `HEAD` and read the bodies it names from the [`crate::cache`], else with one `GET` by
//! digest: a tag that has not moved costs no pull.

use oci_client::Reference;

use crate::cache::Cache;
use crate::credentials::Credentials;
use crate::distribution::{retry_request, Session};
use crate::distribution::{tag_or_digest, Distribution};
use crate::error::{Error, Result};
use crate::manifest::{self, ConfigPlatform, Fetched};
use crate::reference::{Platform, SourceRef};

/// What a source reference resolved to.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// What the reference names now: an index or an image manifest. Its digest is the
    /// mirror's `source_digest`.
    pub named: Fetched,
    /// The platform's image manifest, when a platform was asked of an index.
    pub(crate) platform_image: Option<Fetched>,
    /// A new index of some of the named index's platforms ([`Resolved::subset`]).
    pub subset: Option<Fetched>,
}

impl Resolved {
    /// The manifest a mirror of this resolution is: the new index of a subset of platforms,
    /// the platform's image when one was picked from an index, else what the reference names
    /// (an image, or a whole index).
    pub(crate) fn image(&self) -> &Fetched {
        self.subset
            .as_ref()
            .or(self.platform_image.as_ref())
            .unwrap_or(&self.named)
    }

    /// This resolution with a new index of just `platforms` of the index it names: their
    /// entries in the source's order, and the attestations that name them (buildx's
    /// `vnd.docker.reference.digest`); every other field (media type, annotations) kept.
    /// The new index's digest is its own. Pure: nothing is asked of the registry.
    pub(crate) fn subset(self, source: &SourceRef, platforms: &[Platform]) -> Result<Resolved> {
        let Some(index) = self.named.index() else {
            return Err(Error::Invalid {
                attribute: "platforms",
                detail: format!("{source} is a single image, not a multi-platform index: `platforms` picks images out of an index. Use `platform`, or leave both out to mirror the image."),
            });
        };
        let mut kept = std::collections::BTreeSet::new();
        for platform in platforms {
            let Some(entry) = manifest::find_platform(index, platform) else {
                return Err(Error::PlatformMissing {
                    attribute: "platforms",
                    reference: source.to_string(),
                    wanted: platform.to_string(),
                    held: manifest::platforms(index),
                    hint: "List only platforms the source holds in `platforms`.".into(),
                });
            };
            kept.insert(entry.digest.clone());
        }
        let not_an_image = |cause| Error::NotAnImage {
            reference: source.to_string(),
            cause,
        };
        let body = manifest::index_of(&self.named.body, |digest, refers_to| {
            kept.contains(digest) || refers_to.is_some_and(|d| kept.contains(d))
        })
        .map_err(not_an_image)?;
        let subset =
            Fetched::parse(manifest::digest_of(&body), body.into()).map_err(not_an_image)?;
        Ok(Resolved {
            subset: Some(subset),
            ..self
        })
    }
}

/// Which image of a reference a mirror asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wanted<'a> {
    /// Whatever the reference names; an index is taken whole.
    Named,
    /// The image for this platform; a single image of another platform is refused (its
    /// config, a few hundred bytes, says which platform it is).
    Platform(&'a Platform),
    /// An engine's default: this platform's image of an index, and a single image whatever
    /// its platform (as an engine pulls it).
    Default(&'a Platform),
}

/// Why a reference did not resolve.
#[derive(Debug)]
pub(crate) enum Unresolved {
    /// The source holds no image for the platform; these are the platforms it holds.
    PlatformMissing { held: Vec<String> },
    /// The source could not be asked.
    Failed(Error),
}

impl From<Error> for Unresolved {
    fn from(error: Error) -> Unresolved {
        Unresolved::Failed(error)
    }
}

/// A source registry, asked about one reference.
struct Asking<'a> {
    session: Session<'a>,
    source: &'a SourceRef,
    /// Manifests and configs fetched before, by digest.
    cache: &'a Cache,
}

/// What a source reference names now: its manifest, and the media type the registry
/// gives it.
struct Named {
    fetched: Fetched,
    media_type: Option<String>,
}

impl<'a> Asking<'a> {
    fn new(
        distribution: &'a Distribution,
        source: &'a SourceRef,
        credentials: Option<&Credentials>,
    ) -> Result<Asking<'a>> {
        Ok(Asking {
            session: distribution.source(source.as_oci().clone(), credentials)?,
            source,
            cache: crate::cache::shared(),
        })
    }

    async fn manifest(&self, reference: &Reference) -> Result<Fetched> {
        fetch(&self.session, reference).await
    }

    /// What the reference names now: its digest and media type from one `HEAD` (which
    /// Docker Hub does not count as a pull), its body from the cache, else from one `GET`
    /// by that digest (so that body and digest match even when the tag moves meanwhile).
    /// A registry whose `HEAD` names no digest is asked with a `GET` of the reference.
    async fn named(&self) -> Result<Named> {
        let reference = self.source.as_oci();
        let named = tag_or_digest(reference);
        let head = retry_request("a manifest's digest", || self.session.manifest_head(named))
            .await
            .map_err(|failure| failure.error(&self.session, &self.source.to_string()))?
            .ok_or_else(|| Error::SourceNotFound {
                reference: self.source.to_string(),
                cause: format!(
                    "The registry has no manifest {named} in {}",
                    reference.repository()
                ),
            })?;
        let fetched = match &head.digest {
            Some(digest) => self.by_digest(digest.as_str()).await?,
            None => {
                tracing::debug!(source = %self.source, "the registry's HEAD names no Docker-Content-Digest: asking with a GET");
                let fetched = self.manifest(reference).await?;
                self.cache.put(&fetched.digest, &fetched.body);
                fetched
            }
        };
        Ok(Named {
            fetched,
            media_type: head.media_type,
        })
    }

    /// The manifest `digest` names in the source's repository: from the cache, else one
    /// `GET` (checked against the digest), kept in the cache.
    async fn by_digest(&self, digest: &str) -> Result<Fetched> {
        let _one = self.cache.fetching(digest).await;
        if let Some(fetched) = self
            .cache
            .get(digest)
            .and_then(|body| Fetched::parse(digest.to_string(), body).ok())
        {
            return Ok(fetched);
        }
        let reference = self.source.as_oci().clone_with_digest(digest.to_string());
        let fetched = self.manifest(&reference).await?;
        self.cache.put(&fetched.digest, &fetched.body);
        Ok(fetched)
    }

    /// The platform of the image `image` names, from its config blob (from the cache, else
    /// one `GET`, kept in the cache).
    async fn platform_of(&self, image: &Fetched) -> Result<ConfigPlatform> {
        let digest = image.config_digest().unwrap_or_default();
        let _one = self.cache.fetching(digest).await;
        let body = match self.cache.get(digest) {
            Some(body) => body,
            None => {
                let body = retry_request("an image config", || self.session.small_blob(digest))
                    .await
                    .map_err(|failure| failure.error(&self.session, &self.source.to_string()))?;
                self.cache.put(digest, &body);
                body
            }
        };
        ConfigPlatform::parse(&body).map_err(|cause| Error::NotAnImage {
            reference: self.source.to_string(),
            cause,
        })
    }
}

/// The manifest `reference` names, asked in `session` (its tag or digest; the repository is
/// the session's).
pub(crate) async fn fetch(session: &Session<'_>, reference: &Reference) -> Result<Fetched> {
    let named = tag_or_digest(reference);
    let document = retry_request("a manifest", || session.manifest(named))
        .await
        .map_err(|failure| failure.error(session, &reference.to_string()))?;
    Fetched::parse(document.digest.into(), document.body).map_err(|cause| Error::NotAnImage {
        reference: reference.to_string(),
        cause,
    })
}

/// What `source` holds of what is `wanted`. A platform the source lacks is
/// [`Unresolved::PlatformMissing`], whether the source is an index without it or (for
/// [`Wanted::Platform`]) a single image of another platform. One `HEAD` names the digest;
/// each manifest (what it names, a platform's image) comes from the cache, else from one
/// `GET` by digest: resolving a tag that has not moved since costs no pull.
pub(crate) async fn resolve(
    distribution: &Distribution,
    source: &SourceRef,
    wanted: Wanted<'_>,
    credentials: Option<&Credentials>,
) -> std::result::Result<Resolved, Unresolved> {
    let asking = Asking::new(distribution, source, credentials).map_err(Unresolved::Failed)?;
    let named = asking.named().await?.fetched;
    let whole = |named| Resolved {
        named,
        platform_image: None,
        subset: None,
    };
    match (wanted, named.index()) {
        (Wanted::Named, _) | (Wanted::Default(_), None) => Ok(whole(named)),
        (Wanted::Platform(platform) | Wanted::Default(platform), Some(index)) => {
            let Some(entry) = manifest::find_platform(index, platform) else {
                return Err(Unresolved::PlatformMissing {
                    held: manifest::platforms(index),
                });
            };
            let image = asking.by_digest(&entry.digest).await?;
            Ok(Resolved {
                named,
                platform_image: Some(image),
                subset: None,
            })
        }
        (Wanted::Platform(platform), None) => {
            let held = asking.platform_of(&named).await?;
            if held.is(platform) {
                Ok(whole(named))
            } else {
                Err(Unresolved::PlatformMissing {
                    held: vec![held.to_string()],
                })
            }
        }
    }
}

/// What a source reference names now, as `ecrmirror_source` reports it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Described {
    /// The digest of what the reference names: an index or an image manifest.
    pub(crate) digest: String,
    /// Its media type, as the registry gives it (else as its body says).
    pub(crate) media_type: String,
    /// The platforms it holds images for, as `os/arch[/variant]`.
    pub(crate) platforms: Vec<String>,
    /// The digest of the image manifest for the platform asked, when one was.
    pub(crate) platform_digest: Option<String>,
}

/// What `source` names now, and the image manifest for `platform` when one is asked. One
/// `HEAD` names the digest and media type; the body it names (an index, or an image
/// manifest and its config, which names its platform) comes from the cache, else from one
/// `GET` by digest each, kept for next time. A platform's image in an index is named by its
/// entry: its manifest is not asked for. A platform the source lacks is
/// [`Unresolved::PlatformMissing`].
pub(crate) async fn describe(
    distribution: &Distribution,
    source: &SourceRef,
    platform: Option<&Platform>,
    credentials: Option<&Credentials>,
) -> std::result::Result<Described, Unresolved> {
    let asking = Asking::new(distribution, source, credentials)?;
    let Named {
        fetched: named,
        media_type,
    } = asking.named().await?;
    let (platforms, platform_digest) = match named.index() {
        Some(index) => {
            let entry = match platform {
                None => None,
                Some(platform) => {
                    Some(manifest::find_platform(index, platform).ok_or_else(|| {
                        Unresolved::PlatformMissing {
                            held: manifest::platforms(index),
                        }
                    })?)
                }
            };
            (
                manifest::platforms(index),
                entry.map(|entry| entry.digest.clone()),
            )
        }
        None => {
            let held = asking.platform_of(&named).await?;
            let platform_digest = match platform {
                None => None,
                Some(platform) if held.is(platform) => Some(named.digest.clone()),
                Some(_) => {
                    return Err(Unresolved::PlatformMissing {
                        held: vec![held.to_string()],
                    })
                }
            };
            (vec![held.to_string()], platform_digest)
        }
    };
    let media_type = media_type
        .filter(|given| manifest::ACCEPTED.contains(&given.as_str()))
        .unwrap_or_else(|| named.media_type().to_string());
    Ok(Described {
        digest: named.digest,
        media_type,
        platforms,
        platform_digest,
    })
}

/// The digest `source` names now (one `HEAD` request).
pub(crate) async fn digest(
    distribution: &Distribution,
    source: &SourceRef,
    credentials: Option<&Credentials>,
) -> Result<String> {
    let session = distribution.source(source.as_oci().clone(), credentials)?;
    let reference = source.as_oci();
    let named = tag_or_digest(reference);
    let found = retry_request("a digest", || session.manifest_digest(named))
        .await
        .map_err(|failure| failure.error(&session, &source.to_string()))?;
    found
        .map(String::from)
        .ok_or_else(|| Error::SourceNotFound {
            reference: source.to_string(),
            cause: format!(
                "The registry has no manifest {named} in {}",
                reference.repository()
            ),
        })
}

/// Every tag of the repository `source` names, in the registry's order: its tag list,
/// followed page by page (`Link`) to the end. No manifest is asked for.
pub(crate) async fn tags(
    distribution: &Distribution,
    source: &SourceRef,
    credentials: Option<&Credentials>,
) -> Result<Vec<String>> {
    let session = distribution.source(source.as_oci().clone(), credentials)?;
    let mut tags = Vec::new();
    let mut next: Option<String> = None;
    let mut read = std::collections::HashSet::new();
    loop {
        let page = next.as_deref();
        let (found, following) =
            retry_request("a page of the tag list", || session.tags_page(page))
                .await
                .map_err(|failure| failure.error(&session, &source.name()))?;
        tags.extend(found);
        read.insert(next.clone().unwrap_or_default());
        match following {
            None => return Ok(tags),
            // A registry whose pages lead back to one already read, or on and on, would
            // never end the list.
            Some(following) if read.contains(&following) || read.len() >= MAX_TAG_PAGES => {
                return Err(Error::Source {
                    reference: source.name(),
                    cause: format!(
                        "The registry's tag list does not end: after {} pages, its Link names {} next.",
                        read.len(),
                        if read.contains(&following) {
                            "a page already read"
                        } else {
                            "yet another page"
                        }
                    ),
                })
            }
            Some(following) => next = Some(following),
        }
    }
}

/// The most pages of a tag list read: a million tags at Docker Hub's 100 a page.
const MAX_TAG_PAGES: usize = 10_000;
