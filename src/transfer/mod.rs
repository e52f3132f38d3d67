//! The seam between the resource and the ways an image can be copied.
//!
//! A [`Transfer`] owns everything that differs between copy methods: what it asks of the
//! source before copying (and the platform hint it gives when the source lacks one), when
//! what ECR already holds counts as its copy (adoption), its pre-flight checks, and the copy.
//! `docker` pulls and pushes through a Docker engine; `registry` copies registry to registry
//! over the distribution API. A third method is one more directory here, one more
//! [`CopyMethod`] (with what it can do, [`CopyMethod::lacks`]) and its transfer in
//! `clients.rs`; nothing in `resource/` changes but the schema's prose.

pub mod docker;
pub(crate) mod registry;

use async_trait::async_trait;

use crate::credentials::Credentials;
use crate::ecr::{Mounting, RegistryLogin};
use crate::error::Result;
use crate::manifest::Fetched;
use crate::reference::{Platform, SourceRef};
use crate::source::Resolved;

/// Where a mirror goes: `<host>/<repository>:<tag>`.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub repository: String,
    pub tag: String,
    /// What the registry shares between repositories.
    pub blobs: BlobSharing,
}

/// Whether a blob another repository of the target registry holds can be mounted into the
/// target's instead of uploaded: ECR mounts when the registry's `BLOB_MOUNTING` setting is
/// enabled and both repositories are encrypted alike.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobSharing {
    pub mounting: Mounting,
    /// The target repository's encryption (see [`crate::ecr::Repository::encryption`]).
    pub encryption: String,
}

impl Target {
    /// `<host>/<repository>`.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name(), self.tag)
    }
}

/// One copy to make.
#[derive(Debug)]
pub struct Job<'a> {
    pub source: &'a SourceRef,
    pub platform: Option<&'a Platform>,
    /// What [`Transfer::resolve`] found, when it could tell.
    pub resolved: Option<&'a Resolved>,
    pub source_credentials: Option<Credentials>,
    pub target: Target,
    pub target_credentials: Credentials,
}

/// What a copy reports.
#[derive(Clone, Debug, Default)]
pub struct Copied {
    /// The digest the source reference resolved to (an index digest for multi-platform
    /// sources), when the method learnt it.
    pub source_digest: Option<String>,
    /// The manifest digest the method saw pushed, when it reports one.
    pub pushed_digest: Option<String>,
}

/// How an image is copied: the `copy_method` argument, parsed where it enters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum CopyMethod {
    /// Pull and push through a Docker engine. The default: mirrors made before
    /// `copy_method` existed were made this way.
    #[default]
    Docker,
    /// Registry to registry over the distribution API, digests preserved.
    Registry,
}

impl CopyMethod {
    /// Every method, in the order the docs list them.
    pub(crate) const ALL: [CopyMethod; 2] = [CopyMethod::Docker, CopyMethod::Registry];

    /// The method's `copy_method` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CopyMethod::Docker => "docker",
            CopyMethod::Registry => "registry",
        }
    }
}

/// What a mirror may ask of its copy method beyond one image; not every method can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    /// Copy the image's referrers byte for byte (`copy_referrers`).
    Referrers,
    /// Copy several platforms of an index as an index (`platforms`).
    Platforms,
}

impl Capability {
    /// The argument that asks for it.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Capability::Referrers => "copy_referrers",
            Capability::Platforms => "platforms",
        }
    }
}

impl CopyMethod {
    /// Why this method cannot do `capability`, with what to do instead (a diagnostic's
    /// detail); `None` when it can.
    pub(crate) fn lacks(self, capability: Capability) -> Option<&'static str> {
        match (self, capability) {
            (CopyMethod::Registry, _) => None,
            (CopyMethod::Docker, Capability::Referrers) => Some("`copy_referrers` needs `copy_method = \"registry\"`: a Docker engine pushes a new manifest, which the source's signatures and attestations do not refer to. Set `copy_method = \"registry\"` (in the resource, or the provider's default) to copy the image byte for byte with its referrers."),
            (CopyMethod::Docker, Capability::Platforms) => Some("`platforms` needs `copy_method = \"registry\"`: a Docker engine pulls one platform at a time and cannot push an index. Set `copy_method = \"registry\"` (in the resource, or the provider's default), or mirror each platform with its own `platform`."),
        }
    }
}

impl std::str::FromStr for CopyMethod {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<CopyMethod, String> {
        CopyMethod::ALL
            .into_iter()
            .find(|method| method.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a copy method: use \"docker\" (through a Docker engine) or \"registry\" (registry to registry, no engine)."
                )
            })
    }
}

impl std::fmt::Display for CopyMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A way to copy an image into ECR.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// What the source holds for a copy of `platform` by this method, asked before anything
    /// is transferred. A platform the source lacks is an error on `platform` that lists the
    /// platforms it holds; `None` when the method copies without knowing (it then checks
    /// what it copied itself).
    async fn resolve(
        &self,
        source: &SourceRef,
        platform: Option<&Platform>,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Resolved>>;

    /// Whether `held`, the manifest ECR's tag serves, is what this method would push for
    /// `resolved`: then the mirror adopts it and transfers nothing.
    fn holds(&self, held: &Fetched, resolved: &Resolved) -> bool;

    /// Checks made before a transfer starts, with ECR's push credentials.
    async fn preflight(&self, login: &RegistryLogin) -> Result<()>;

    /// At plan, for a plan that copies `source` by this method: why this method cannot
    /// copy it at all (the plan's warning, on the argument to change), asked of the source without
    /// spending its pull quota where the method can; `None` when it can, and when the
    /// source cannot be asked now (the apply's [`Transfer::resolve`] asks again).
    async fn refuses(
        &self,
        source: &SourceRef,
        credentials: Option<&Credentials>,
    ) -> Option<crate::error::Error> {
        let _ = (source, credentials);
        None
    }

    /// Copies `job.source` to `job.target`.
    async fn copy(&self, job: &Job<'_>) -> Result<Copied>;

    /// Copies the referrers of every manifest of `resolved` (the mirror ECR now holds) and
    /// their referrers, unless ECR holds them; returns every referrer's digest, sorted. Only
    /// a method that has [`Capability::Referrers`] is asked.
    async fn copy_referrers(&self, job: &Job<'_>, resolved: &Resolved) -> Result<Vec<String>> {
        let _ = (job, resolved);
        Err(lacks_referrers())
    }

    /// The digests of the referrers the source holds now for the manifests of `resolved`
    /// (and of their referrers), sorted; nothing is copied. Only a method that has
    /// [`Capability::Referrers`] is asked.
    async fn source_referrers(
        &self,
        source: &SourceRef,
        resolved: &Resolved,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<String>> {
        let _ = (source, resolved, credentials);
        Err(lacks_referrers())
    }
}

/// What a method without [`Capability::Referrers`] answers when asked for them (a plan
/// refuses that configuration before, so this is a bug if it is ever seen).
fn lacks_referrers() -> crate::error::Error {
    crate::error::Error::Invalid {
        attribute: Capability::Referrers.attribute(),
        detail: "This copy method does not copy referrers. This is a bug in the provider; please report it.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_methods_parse_and_display_alike() {
        for method in CopyMethod::ALL {
            assert_eq!(method.as_str().parse::<CopyMethod>(), Ok(method));
        }
        assert_eq!(CopyMethod::default(), CopyMethod::Docker);
        assert!("Docker".parse::<CopyMethod>().is_err());
    }
}
