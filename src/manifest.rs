//! Image manifests as registries serve them: which image config a manifest (or an index,
//! for one platform) names. Pure, unit-tested.

use serde::Deserialize;

use crate::reference::Platform;

/// Media types accepted when asking for a manifest.
pub const ACCEPTED: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// What a manifest leads to for one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selected {
    /// An image manifest: its config digest.
    Config(String),
    /// An index: the digest of the platform's image manifest, to be fetched next.
    Manifest(String),
    /// An index without that platform, or something that is not an image.
    Missing,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct Entry {
    digest: String,
    #[serde(default)]
    platform: Option<EntryPlatform>,
}

#[derive(Deserialize)]
struct EntryPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Follows `body` (a manifest or an index) towards the image config for `platform`.
pub fn select(body: &[u8], platform: &Platform) -> Selected {
    let Ok(document) = serde_json::from_slice::<Document>(body) else {
        return Selected::Missing;
    };
    if let Some(config) = document.config {
        return Selected::Config(config.digest);
    }
    document
        .manifests
        .unwrap_or_default()
        .into_iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
        .map_or(Selected::Missing, |entry| Selected::Manifest(entry.digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn an_image_manifest_names_its_config() {
        let body = br#"{"schemaVersion":2,"config":{"digest":"sha256:c","size":1},"layers":[]}"#;
        assert_eq!(
            select(body, &platform("linux/amd64")),
            Selected::Config("sha256:c".into())
        );
    }

    #[test]
    fn an_index_leads_to_the_platform_manifest() {
        let body = br#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        assert_eq!(
            select(body, &platform("linux/arm64/v8")),
            Selected::Manifest("sha256:b".into())
        );
        assert_eq!(
            select(body, &platform("linux/amd64")),
            Selected::Manifest("sha256:a".into())
        );
        assert_eq!(select(body, &platform("linux/s390x")), Selected::Missing);
        assert_eq!(
            select(b"not json", &platform("linux/amd64")),
            Selected::Missing
        );
    }
}
