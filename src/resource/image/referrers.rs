//! The referrers of a mirror with `copy_referrers` (signatures, attestations, SBOMs): copied
//! after the image, read back at refresh, and removed with the mirror (destroy, or
//! `copy_referrers` turned off). The copy itself is the registry method's
//! ([`crate::transfer::registry::RegistryTransfer::copy_referrers`]); what stays in ECR and
//! what leaves with the mirror is decided here.

use tf_provider::value::Value;

use super::config::{known, Arguments};
use super::state::ImageState;
use crate::clients::Clients;
use crate::error::Result;
use crate::manifest::Fetched;
use crate::reference::digest_tag;
use crate::source::Resolved;
use crate::transfer::{CopyMethod, Job};

/// Copies the referrers of `resolved` (the mirror ECR now holds) that ECR lacks, by
/// `method` (one with [`crate::transfer::Capability::Referrers`]); returns every referrer's
/// digest, sorted.
pub(crate) async fn copy(
    clients: &Clients,
    method: CopyMethod,
    job: &Job<'_>,
    resolved: &Resolved,
) -> Result<Vec<String>> {
    clients.transfer(method).copy_referrers(job, resolved).await
}

/// The referrers the mirror holds now: those it copied that ECR still holds (one
/// `BatchGetImage`), and with `track_source` the new ones the source lists (a new signature
/// upstream). A difference from what was copied plans an update that copies what is
/// missing.
pub(crate) async fn now(clients: &Clients, state: &ImageState) -> Result<Vec<String>> {
    let copied = state.recorded_referrers();
    let repository = known(&state.repository, "repository")?;
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    let held = clients
        .ecr
        .held_manifests(registry_id, repository, &copied)
        .await?;
    let mut now: Vec<String> = copied
        .iter()
        .filter(|d| held.contains(*d))
        .cloned()
        .collect();
    if state.track_source == Value::Value(true) && !clients.pending.registry_auth {
        let mirror = Arguments::parse(state, clients.default_method).mirror()?;
        let credentials = clients.source_auth.for_host(mirror.source.host());
        let transfer = clients.transfer(mirror.method);
        let resolved = transfer
            .resolve(
                &mirror.source,
                mirror.platform.as_ref(),
                credentials.as_ref(),
            )
            .await?;
        if let Some(mut resolved) = resolved {
            if let Some(platforms) = &mirror.platforms {
                resolved = resolved.subset(&mirror.source, platforms)?;
            }
            // Only the new ones: one copied then deleted in ECR stays missing.
            let upstream = transfer
                .source_referrers(&mirror.source, &resolved, credentials.as_ref())
                .await?;
            now.extend(upstream.into_iter().filter(|d| !copied.contains(d)));
        }
    }
    now.sort();
    now.dedup();
    Ok(now)
}

/// The platform manifests of the index ECR's tag holds for the mirror `state` (none for an
/// image, or without `copy_referrers`, whose referrer tags are all this is asked for).
pub(crate) async fn platform_manifests(
    clients: &Clients,
    state: &ImageState,
) -> Result<Vec<String>> {
    let (Value::Value(true), Value::Value(repository), Value::Value(tag)) =
        (&state.copy_referrers, &state.repository, &state.tag)
    else {
        return Ok(Vec::new());
    };
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    let held = clients
        .ecr
        .tagged_manifest(registry_id, repository, tag)
        .await?;
    Ok(held
        .iter()
        .filter_map(Fetched::index)
        .flat_map(|index| index.manifests.iter().map(|entry| entry.digest.clone()))
        .collect())
}

/// The tag suffixes referrers of a subject `sha256:<hex>` are kept under, after
/// `sha256-<hex>`: the referrers tag schema's (none), cosign's signatures, attestations and
/// SBOMs.
const REFERRER_TAG_SUFFIXES: [&str; 4] = ["", ".sig", ".att", ".sbom"];

/// Whether `tag` names referrers rather than an image: `sha256-<64 hex>` with one of
/// [`REFERRER_TAG_SUFFIXES`].
fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && REFERRER_TAG_SUFFIXES.contains(&suffix)
}

/// The referrer tags of `subjects` among `listed` (tag, digest) pairs.
fn referrer_tags_of<'a>(
    subjects: impl IntoIterator<Item = &'a str>,
    listed: &[(String, String)],
) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = subjects
        .into_iter()
        .flat_map(|subject| {
            let stem = digest_tag(subject);
            REFERRER_TAG_SUFFIXES.map(|suffix| format!("{stem}{suffix}"))
        })
        .collect();
    listed
        .iter()
        .map(|(tag, _)| tag)
        .filter(|tag| names.contains(*tag))
        .cloned()
        .collect()
}

/// Removes the referrer tags (cosign's `.sig`, `.att`, `.sbom`, the referrers tag
/// schema's) of what the mirror `state` held: its image, `platforms` (the manifests of the
/// index it held) and its referrers, unless another image tag in the repository still names
/// its image (another mirror of it, whose referrers they are too). Referrers ECR lists by
/// their `subject` go with the image as ECR handles them.
pub(crate) async fn remove_tags(
    clients: &Clients,
    state: &ImageState,
    platforms: Vec<String>,
) -> Result<()> {
    let (Value::Value(true), Value::Value(repository), Value::Value(tag), Value::Value(digest)) = (
        &state.copy_referrers,
        &state.repository,
        &state.tag,
        &state.image_digest,
    ) else {
        return Ok(());
    };
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    let listed = clients.ecr.tags(registry_id, repository).await?;
    let shared = listed
        .iter()
        .any(|(other, held)| other != tag && held == digest && !is_referrer_tag(other));
    if shared {
        tracing::info!(
            repository,
            tag,
            "another tag holds the image; its referrer tags stay"
        );
        return Ok(());
    }
    let referrers = state.recorded_referrers();
    let subjects = std::iter::once(digest.as_str())
        .chain(platforms.iter().map(String::as_str))
        .chain(referrers.iter().map(String::as_str));
    let doomed = referrer_tags_of(subjects, &listed);
    tracing::info!(
        repository,
        tag,
        removed = doomed.len(),
        "referrer tags removed"
    );
    clients
        .ecr
        .untag_all(registry_id, repository, &doomed)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_tags_are_told_from_image_tags() {
        let hex = "a".repeat(64);
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_referrer_tag(&tag), "{tag}");
        }
        for tag in [
            "1.0".to_string(),
            "sha256-abc.sig".into(),
            format!("sha256-{hex}.sigs"),
            format!("sha256-{}.sig", "g".repeat(64)),
            format!("v{hex}"),
        ] {
            assert!(!is_referrer_tag(&tag), "{tag}");
        }
    }

    #[test]
    fn only_the_subjects_referrer_tags_are_chosen() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let listed: Vec<(String, String)> = [
            "1.0".to_string(),
            format!("sha256-{a}.sig"),
            format!("sha256-{a}"),
            format!("sha256-{b}.sig"),
        ]
        .into_iter()
        .map(|tag| (tag, "sha256:x".to_string()))
        .collect();
        let subject = format!("sha256:{a}");
        assert_eq!(
            referrer_tags_of([subject.as_str()], &listed),
            vec![format!("sha256-{a}.sig"), format!("sha256-{a}")]
        );
    }
}
