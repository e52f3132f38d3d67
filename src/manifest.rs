//! One manifest model for every side (source registries, ECR, the copy): oci-client's typed
//! manifests, kept with the digest and the exact bytes they were served as, and the one rule
//! that finds a platform's image in an index. Pure, unit-tested.

use bytes::Bytes;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciManifest};
use serde::Deserialize;

use crate::reference::Platform;

/// Media types accepted when asking for a manifest.
pub const ACCEPTED: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest as a registry served it: its digest, its bytes (a copy pushes these, so the
/// digest holds) and what they say.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub digest: String,
    pub body: Bytes,
    pub manifest: OciManifest,
}

impl Fetched {
    /// Reads `body`, served for `digest`.
    pub fn parse(digest: String, body: Bytes) -> Result<Fetched, String> {
        let manifest = serde_json::from_slice(&body)
            .map_err(|err| format!("{digest} is not an image manifest or index: {err}"))?;
        Ok(Fetched {
            digest,
            body,
            manifest,
        })
    }

    /// The media type to push the manifest with: its own, else the OCI type of its shape.
    pub fn media_type(&self) -> &str {
        match &self.manifest {
            OciManifest::Image(image) => image
                .media_type
                .as_deref()
                .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
            OciManifest::ImageIndex(index) => index
                .media_type
                .as_deref()
                .unwrap_or("application/vnd.oci.image.index.v1+json"),
        }
    }

    /// The index, when this is one.
    pub fn index(&self) -> Option<&OciImageIndex> {
        match &self.manifest {
            OciManifest::ImageIndex(index) => Some(index),
            OciManifest::Image(_) => None,
        }
    }

    /// What this manifest holds when it is not a container image: its `artifactType`, else
    /// its config's media type (`application/vnd.cncf.helm.config.v1+json` for a Helm chart);
    /// `None` for a container image and for an index.
    pub fn artifact(&self) -> Option<&str> {
        let OciManifest::Image(image) = &self.manifest else {
            return None;
        };
        let config = image.config.media_type.as_str();
        if IMAGE_CONFIGS.contains(&config) && image.artifact_type.is_none() {
            return None;
        }
        Some(image.artifact_type.as_deref().unwrap_or(config))
    }

    /// The image config's digest, when this is an image manifest.
    pub fn config_digest(&self) -> Option<&str> {
        match &self.manifest {
            OciManifest::Image(image) => Some(&image.config.digest),
            OciManifest::ImageIndex(_) => None,
        }
    }

    /// The blobs an image manifest names: its config, then its layers (none for an index).
    pub fn blobs(&self) -> Vec<&OciDescriptor> {
        match &self.manifest {
            OciManifest::Image(image) => std::iter::once(&image.config)
                .chain(&image.layers)
                .collect(),
            OciManifest::ImageIndex(_) => Vec::new(),
        }
    }
}

/// The platform an index entry is for, as `os/arch[/variant]`.
fn entry_platform(entry: &ImageIndexEntry) -> Option<String> {
    let platform = entry.platform.as_ref()?;
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if let Some(variant) = platform.variant.as_deref().filter(|v| !v.is_empty()) {
        text.push('/');
        text.push_str(variant);
    }
    Some(text)
}

/// The entry of `index` for `platform`: the one rule that says which image of an index a
/// mirror of that platform is.
pub fn find_platform<'a>(
    index: &'a OciImageIndex,
    platform: &Platform,
) -> Option<&'a ImageIndexEntry> {
    index.manifests.iter().find(|entry| {
        entry.platform.as_ref().is_some_and(|p| {
            platform.matches(
                &p.os.to_string(),
                &p.architecture.to_string(),
                p.variant.as_deref(),
            )
        })
    })
}

/// The platforms `index` holds images for, as `os/arch[/variant]`, in its order. Entries
/// that are not images of a platform (build attestations list `unknown/unknown`) are left
/// out.
pub fn platforms(index: &OciImageIndex) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(entry_platform)
        .filter(|p| !p.starts_with("unknown/"))
        .collect()
}

/// Config media types of container images: what a Docker engine pulls and runs.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A name for an artifact of `kind` (an `artifact()`), for messages.
pub fn artifact_name(kind: &str) -> String {
    let known = [
        ("application/vnd.cncf.helm.config", "a Helm chart"),
        ("application/vnd.wasm.", "a WebAssembly module"),
        ("application/vnd.dev.cosign.", "a cosign signature"),
        ("application/vnd.dev.sigstore.", "a Sigstore bundle"),
        ("application/vnd.cyclonedx", "an SBOM"),
        ("application/spdx", "an SBOM"),
        ("application/vnd.in-toto", "an attestation"),
    ];
    known
        .iter()
        .find(|(prefix, _)| kind.starts_with(prefix))
        .map_or_else(
            || "an OCI artifact".to_string(),
            |(_, name)| name.to_string(),
        )
}

/// The annotation with which an attestation entry of an index (buildx's provenance and
/// SBOMs) names the platform manifest it is about.
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// `index` (an index's bytes) with only the entries `keep(digest, refers_to)` keeps, where
/// `refers_to` is the manifest an attestation entry is about; every other field as it was.
/// When every entry is kept, `index` itself, byte for byte (so its digest stays upstream's).
pub fn index_of(
    index: &[u8],
    keep: impl Fn(&str, Option<&str>) -> bool,
) -> Result<Vec<u8>, String> {
    let mut document: serde_json::Value =
        serde_json::from_slice(index).map_err(|err| format!("the index is not JSON: {err}"))?;
    let Some(entries) = document
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err("the index has no `manifests`".into());
    };
    let before = entries.len();
    entries.retain(|entry| {
        let digest = entry["digest"].as_str().unwrap_or_default();
        keep(digest, entry["annotations"][REFERENCE_DIGEST].as_str())
    });
    if entries.len() == before {
        return Ok(index.to_vec());
    }
    serde_json::to_vec(&document).map_err(|err| err.to_string())
}

/// The `sha256:…` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The platform fields of an image config blob.
#[derive(Debug, Deserialize)]
pub struct ConfigPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl ConfigPlatform {
    /// Reads the platform of an image config blob.
    pub fn parse(body: &[u8]) -> Result<ConfigPlatform, String> {
        serde_json::from_slice(body).map_err(|err| format!("the image config is not JSON: {err}"))
    }

    /// Whether the image is `platform`.
    pub fn is(&self, platform: &Platform) -> bool {
        platform.matches(&self.os, &self.architecture, self.variant.as_deref())
    }
}

impl std::fmt::Display for ConfigPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn fetched(body: &str) -> Fetched {
        Fetched::parse("sha256:d".into(), Bytes::from(body.to_string())).unwrap()
    }

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
        {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
        {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}"#;

    #[test]
    fn an_image_manifest_names_its_config_and_blobs() {
        let image = fetched(
            r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":1},
                "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l","size":2}]}"#,
        );
        assert_eq!(image.config_digest(), Some("sha256:c"));
        let blobs: Vec<_> = image.blobs().iter().map(|b| b.digest.as_str()).collect();
        assert_eq!(blobs, ["sha256:c", "sha256:l"]);
        assert_eq!(
            image.media_type(),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert!(image.index().is_none());
    }

    #[test]
    fn an_index_leads_to_the_platform_manifest_and_lists_its_platforms() {
        let index = fetched(INDEX);
        let index = index.index().unwrap();
        let found = |p: &str| find_platform(index, &platform(p)).map(|e| e.digest.as_str());
        assert_eq!(found("linux/arm64/v8"), Some("sha256:b"));
        assert_eq!(found("linux/arm64"), Some("sha256:b"));
        assert_eq!(found("linux/amd64"), Some("sha256:a"));
        assert_eq!(found("linux/s390x"), None);
        assert_eq!(platforms(index), ["linux/amd64", "linux/arm64/v8"]);
    }

    #[test]
    fn a_subset_index_keeps_its_fields_and_the_attestations_of_what_it_keeps() {
        let attested = INDEX.replace(
            r#""platform":{"os":"unknown","architecture":"unknown"}}"#,
            r#""platform":{"os":"unknown","architecture":"unknown"},"annotations":{"vnd.docker.reference.digest":"sha256:b"}}"#,
        );
        let kept = index_of(attested.as_bytes(), |digest, refers_to| {
            digest == "sha256:b" || refers_to == Some("sha256:b")
        })
        .unwrap();
        let kept = fetched(std::str::from_utf8(&kept).unwrap());
        let digests: Vec<_> = kept
            .index()
            .unwrap()
            .manifests
            .iter()
            .map(|e| e.digest.as_str())
            .collect();
        assert_eq!(digests, ["sha256:b", "sha256:c"]);
        assert_eq!(
            kept.media_type(),
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        assert!(index_of(b"{}", |_, _| true).is_err());
        // Every entry kept: the index itself, whatever its whitespace or key order.
        let pretty = attested.replace(",", ",\n  ");
        assert_eq!(
            index_of(pretty.as_bytes(), |_, _| true).unwrap(),
            pretty.as_bytes()
        );
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn media_types_come_from_the_manifest_or_its_shape() {
        assert_eq!(
            fetched(INDEX).media_type(),
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        assert_eq!(
            fetched(r#"{"schemaVersion":2,"manifests":[]}"#).media_type(),
            "application/vnd.oci.image.index.v1+json"
        );
        assert!(Fetched::parse("sha256:x".into(), Bytes::from_static(b"not json")).is_err());
    }

    #[test]
    fn a_config_says_its_platform() {
        let config = ConfigPlatform::parse(
            br#"{"os":"linux","architecture":"arm64","variant":"v8","rootfs":{}}"#,
        )
        .unwrap();
        assert!(config.is(&platform("linux/arm64/v8")));
        assert!(!config.is(&platform("linux/amd64")));
        assert_eq!(config.to_string(), "linux/arm64/v8");
    }
}
