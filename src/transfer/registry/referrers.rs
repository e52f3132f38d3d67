//! `copy_referrers`: the supply chain copied with the image. Every referrer (signature,
//! attestation, SBOM) of every manifest a mirror holds is found at the source with the OCI
//! 1.1 referrers API (or the referrers tag schema, `sha256-<hex>`, when the registry lacks
//! the API: [`Session::referrers`]) and with cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`),
//! then referrers of those, to [`MAX_DEPTH`]. Each is copied byte for byte, so every digest
//! and signature still verifies: its blobs as image blobs are (skipped, mounted or streamed
//! and verified), then its manifest, by digest (ECR lists one with a `subject` in its own
//! referrers API) or under its cosign tag. What ECR holds already is not copied again.

use std::collections::BTreeSet;

use futures_util::{stream, StreamExt, TryStreamExt};
use oci_client::manifest::OciImageIndex;
use oci_client::Reference;

use super::{unique_blobs, RegistryTransfer, Shared, CONCURRENT_BLOBS};
use crate::distribution::retry_request;
use crate::distribution::{tag_or_digest, Session};
use crate::error::{Error, Result};
use crate::manifest::Fetched;
use crate::reference::digest_tag;
use crate::transfer::BlobSharing;

/// How deep referrers of referrers are followed (a signature on an attestation on an image
/// is depth 2).
pub(super) const MAX_DEPTH: usize = 3;

/// cosign's tag suffixes: signatures, attestations, SBOMs.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// The sorted digests of `found`.
fn digests(found: &[Found]) -> Vec<String> {
    let mut digests: Vec<String> = found.iter().map(|f| f.digest.clone()).collect();
    digests.sort();
    digests.dedup();
    digests
}

/// A referrer found at the source.
struct Found {
    digest: String,
    /// cosign's tag that names it, when it was found by one (it keeps that tag in ECR).
    tag: Option<String>,
    depth: usize,
}

impl Found {
    /// Where the referrer goes in `target`: under its cosign tag, else by digest.
    fn at(&self, target: &Session<'_>) -> Reference {
        match &self.tag {
            Some(tag) => Reference::with_tag(
                target.reference.registry().to_string(),
                target.reference.repository().to_string(),
                tag.clone(),
            ),
            None => target.reference.clone_with_digest(self.digest.clone()),
        }
    }
}

impl RegistryTransfer {
    /// The referrers of `subjects` (digests of manifests ECR holds now) and of their
    /// referrers, copied from `source` to `target` unless ECR holds them; returns every
    /// referrer's digest, sorted.
    pub(super) async fn copy_referrers_of(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        blobs: &BlobSharing,
        subjects: Vec<String>,
    ) -> Result<Vec<String>> {
        let found = self.find_referrers(source, subjects).await?;
        let checks: Vec<_> = found
            .iter()
            .map(|referrer| self.missing_at(source, target, referrer))
            .collect();
        let missing: Vec<(&Found, Fetched)> = stream::iter(checks)
            .buffered(CONCURRENT_BLOBS)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        // Every blob once, then the manifests, subjects before their referrers.
        let shared = Shared { blobs, copy: None };
        self.copy_blobs(
            source,
            target,
            unique_blobs(missing.iter().map(|(_, f)| f)),
            shared,
        )
        .await?;
        for (referrer, fetched) in &missing {
            self.push_manifest(target, &referrer.at(target), fetched)
                .await?;
            tracing::debug!(referrer = %referrer.digest, depth = referrer.depth, "referrer copied");
        }
        Ok(digests(&found))
    }

    /// The referrers of `subjects` and of their referrers at `source`, to [`MAX_DEPTH`],
    /// each once, subjects before their referrers. The subjects of one depth are asked at
    /// once, a few at a time.
    async fn find_referrers(
        &self,
        source: &Session<'_>,
        subjects: Vec<String>,
    ) -> Result<Vec<Found>> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        let mut level = subjects;
        for depth in 1..=MAX_DEPTH {
            if level.is_empty() {
                break;
            }
            let asks: Vec<_> = level
                .iter()
                .map(|subject| self.referrers_at_source(source, subject, depth))
                .collect();
            let answers: Vec<Vec<Found>> = stream::iter(asks)
                .buffered(CONCURRENT_BLOBS)
                .try_collect()
                .await?;
            level = Vec::new();
            for referrer in answers.into_iter().flatten() {
                if seen.insert(referrer.digest.clone()) {
                    level.push(referrer.digest.clone());
                    found.push(referrer);
                }
            }
        }
        Ok(found)
    }

    /// The digests of the referrers of `subjects` at `source` (nothing copied), sorted.
    pub(super) async fn referrers_of(
        &self,
        source: &Session<'_>,
        subjects: Vec<String>,
    ) -> Result<Vec<String>> {
        Ok(digests(&self.find_referrers(source, subjects).await?))
    }

    /// The referrers the source lists for `subject`: its referrers API (or tag schema) and
    /// cosign's tags.
    async fn referrers_at_source(
        &self,
        source: &Session<'_>,
        subject: &str,
        depth: usize,
    ) -> Result<Vec<Found>> {
        let reference = source.reference.clone_with_digest(subject.to_string());
        let cosign_tags = COSIGN_SUFFIXES.map(|suffix| format!("{}.{suffix}", digest_tag(subject)));
        let (listed, tagged) = tokio::join!(
            retry_request("the referrers", || source.referrers(subject)),
            futures_util::future::join_all(
                cosign_tags
                    .iter()
                    .map(|tag| self.cosign_tagged(source, tag))
            ),
        );
        let listed = listed.map_err(|failure| failure.error(source, &reference.to_string()))?;
        let listed = match listed {
            Some(body) => {
                serde_json::from_slice::<OciImageIndex>(&body)
                    .map_err(|err| Error::Source {
                        reference: reference.to_string(),
                        cause: format!("The registry lists the referrers of {subject} in something that is not an image index: {err}"),
                    })?
                    .manifests
            }
            None => Vec::new(),
        };
        let mut found: Vec<Found> = listed
            .into_iter()
            .map(|entry| Found {
                digest: entry.digest,
                tag: None,
                depth,
            })
            .collect();
        for (tag, digest) in cosign_tags.into_iter().zip(tagged) {
            if let Some(digest) = digest? {
                found.push(Found {
                    digest,
                    tag: Some(tag),
                    depth,
                });
            }
        }
        Ok(found)
    }

    /// The digest cosign's `tag` names at `source`, if it exists.
    async fn cosign_tagged(&self, source: &Session<'_>, tag: &str) -> Result<Option<String>> {
        let tagged = Reference::with_tag(
            source.reference.registry().to_string(),
            source.reference.repository().to_string(),
            tag.to_string(),
        );
        retry_request("a cosign tag", || source.manifest_digest(tag))
            .await
            .map(|digest| digest.map(String::from))
            .map_err(|failure| failure.error(source, &tagged.to_string()))
    }

    /// `found` with its manifest, when the target lacks it.
    async fn missing_at<'f>(
        &self,
        source: &Session<'_>,
        target: &Session<'_>,
        found: &'f Found,
    ) -> Result<Option<(&'f Found, Fetched)>> {
        if self.held(target, found).await {
            return Ok(None);
        }
        Ok(Some((found, self.fetch(source, &found.digest).await?)))
    }

    /// Whether the target holds `found` already (under its cosign tag, when it has one).
    async fn held(&self, target: &Session<'_>, found: &Found) -> bool {
        let reference = found.at(target);
        match target.manifest_digest(tag_or_digest(&reference)).await {
            Ok(held) => held.as_ref().map(|d| d.as_str()) == Some(found.digest.as_str()),
            Err(failure) => {
                tracing::debug!(%reference, "{failure}");
                false
            }
        }
    }
}
