//! Synthetic images: layers the world tars and gzips itself, pushed through the distribution API.
//!
//! Because the layers are gzipped here, a copy through a Docker engine (which compresses
//! layers again on push) yields new layer digests, as it does with Docker Hub images; the image
//! config, and so the config digest, stays the same.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use crate::client::{digest_of, Client, Manifest};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The empty config of an OCI 1.1 artifact (its blob is `{}`).
pub(crate) const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What to build.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Makes the content, and so every digest, differ between specs.
    pub seed: u64,
    pub layers: usize,
    pub layer_size: usize,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// OCI media types instead of Docker's.
    pub oci: bool,
    /// A first layer shared with every spec of the same base: its seed and size.
    pub base: Option<(u64, usize)>,
}

impl Spec {
    fn types(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        if self.oci {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_INDEX)
        } else {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST)
        }
    }

    /// The same image with OCI media types.
    pub fn oci(mut self) -> Spec {
        self.oci = true;
        self
    }

    /// A small linux/amd64 image: two layers of 64 KiB.
    pub fn small(seed: u64) -> Spec {
        Spec {
            seed,
            layers: 2,
            layer_size: 64 * 1024,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            oci: false,
            base: None,
        }
    }

    /// The same image over a base layer of `size` bytes that every spec with base `seed`
    /// shares (a family of images built from one base image).
    pub fn on_base(mut self, seed: u64, size: usize) -> Spec {
        self.base = Some((seed, size));
        self
    }

    /// The same image for another platform.
    pub fn for_platform(mut self, architecture: &str, variant: Option<&str>) -> Spec {
        self.architecture = architecture.into();
        self.variant = variant.map(str::to_string);
        self
    }
}

/// What was pushed for one platform.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub manifest_size: usize,
}

/// Deterministic filler bytes (xorshift), so a spec always builds the same image.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// One layer: a tar holding one file, and its gzip.
fn layer(spec: &Spec, index: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let seed = spec
        .seed
        .wrapping_mul(1000)
        .wrapping_add(index as u64)
        .wrapping_add(spec.architecture.len() as u64 * 7919);
    let path = format!(
        "standin/{}-{}/layer-{index}.bin",
        spec.architecture, spec.seed
    );
    tarred(&path, &filler(seed, spec.layer_size))
}

/// The shared base layer of seed `seed` and `size` bytes.
fn base_layer(seed: u64, size: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    tarred(
        &format!("standin/base-{seed}/base.bin"),
        &filler(seed.wrapping_mul(7_777_777).wrapping_add(13), size),
    )
}

/// A tar holding `content` at `path`, and its gzip.
fn tarred(path: &str, content: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, path, content)?;
    let tar = builder.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar)?;
    Ok((tar, gz.finish()?))
}

/// Pushes one image under `reference` (a tag, or its digest when `None`).
pub async fn push_image(
    client: &Client,
    repository: &str,
    reference: Option<&str>,
    spec: &Spec,
) -> Result<Pushed> {
    let (manifest_type, config_type, layer_type, _) = spec.types();
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    let mut layer_digests = Vec::new();
    let base = spec.base.map(|(seed, size)| base_layer(seed, size));
    let own = (0..spec.layers).map(|index| layer(spec, index));
    for made in base.into_iter().chain(own) {
        let (tar, gz) = made?;
        diff_ids.push(digest_of(&tar));
        let size = gz.len();
        let digest = client.put_blob(repository, gz).await?;
        layers.push(json!({"mediaType": layer_type, "size": size, "digest": digest}));
        layer_digests.push(digest);
    }
    let mut config = json!({
        "architecture": spec.architecture,
        "os": spec.os,
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"standin.seed": spec.seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": (0..diff_ids.len()).map(|i| json!({"created": "2026-01-01T00:00:00Z", "created_by": format!("standin layer {i}")})).collect::<Vec<_>>(),
    });
    if let Some(variant) = &spec.variant {
        config["variant"] = json!(variant);
    }
    let config = serde_json::to_vec(&config)?;
    let config_size = config.len();
    let config_digest = client.put_blob(repository, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": config_size, "digest": config_digest},
        "layers": layers,
    }))?;
    let digest = digest_of(&manifest);
    let manifest_size = manifest.len();
    let manifest_digest = client
        .put_manifest(
            repository,
            reference.unwrap_or(&digest),
            manifest_type,
            manifest,
        )
        .await?;
    Ok(Pushed {
        manifest_digest,
        config_digest,
        layer_digests,
        manifest_size,
    })
}

/// Pushes a Helm chart as `helm push` does (an OCI manifest whose config is Helm's, with
/// the chart's tarball as its one layer) under `tag`, the chart's version; `seed` makes its
/// content.
pub async fn push_helm_chart(
    client: &Client,
    repository: &str,
    tag: &str,
    seed: u64,
) -> Result<Pushed> {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    // The chart's tarball (its Chart.yaml; `seed` in a comment makes the content).
    let chart = format!("apiVersion: v2\nname: {name}\nversion: {tag}\n# standin {seed}\n");
    let (_, content) = tarred(&format!("{name}/Chart.yaml"), chart.as_bytes())?;
    let layer_size = content.len();
    let layer_digest = client.put_blob(repository, content).await?;
    let config = serde_json::to_vec(&json!({"apiVersion": "v2", "name": name, "version": tag}))?;
    let config_size = config.len();
    let config_digest = client.put_blob(repository, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "size": config_size, "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "size": layer_size, "digest": layer_digest}],
        "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": tag},
    }))?;
    let manifest_size = manifest.len();
    let manifest_digest = client
        .put_manifest(repository, tag, OCI_MANIFEST, manifest)
        .await?;
    Ok(Pushed {
        manifest_digest,
        config_digest,
        layer_digests: vec![layer_digest],
        manifest_size,
    })
}

/// Pushes one image per spec and a manifest list over them under `tag`; returns the list's
/// digest and each platform's image.
pub async fn push_index(
    client: &Client,
    repository: &str,
    tag: &str,
    specs: &[Spec],
) -> Result<(String, Vec<Pushed>)> {
    push_annotated_index(client, repository, tag, specs, None).await
}

/// [`push_index`], with `annotations` on the index when given.
pub async fn push_annotated_index(
    client: &Client,
    repository: &str,
    tag: &str,
    specs: &[Spec],
    annotations: Option<serde_json::Value>,
) -> Result<(String, Vec<Pushed>)> {
    let mut entries = Vec::new();
    let mut pushed = Vec::new();
    for spec in specs {
        let image = push_image(client, repository, None, spec).await?;
        let size = image.manifest_size;
        let mut platform = json!({"os": spec.os, "architecture": spec.architecture});
        if let Some(variant) = &spec.variant {
            platform["variant"] = json!(variant);
        }
        entries.push(json!({
            "mediaType": spec.types().0,
            "size": size,
            "digest": image.manifest_digest,
            "platform": platform,
        }));
        pushed.push(image);
    }
    let index_type = specs.first().map_or(DOCKER_LIST, |s| s.types().3);
    let mut list = json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": entries,
    });
    if let Some(annotations) = annotations {
        list["annotations"] = annotations;
    }
    let list = serde_json::to_vec(&list)?;
    let digest = client
        .put_manifest(repository, tag, index_type, list)
        .await?;
    Ok((digest, pushed))
}

/// A kind of supply-chain artifact, as cosign and its peers make them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// A cosign signature: a simple-signing payload layer whose annotation
    /// `dev.cosignproject.cosign/signature` holds the signature.
    Signature,
    /// An in-toto attestation (SLSA provenance) in a DSSE envelope.
    Attestation,
    /// An SPDX SBOM.
    Sbom,
}

impl Artifact {
    /// The suffix of cosign's tag for it: `sha256-<hex>.<suffix>`.
    pub fn cosign_suffix(self) -> &'static str {
        match self {
            Artifact::Signature => "sig",
            Artifact::Attestation => "att",
            Artifact::Sbom => "sbom",
        }
    }

    /// Its `artifactType` when it is pushed with a `subject`.
    pub fn artifact_type(self) -> &'static str {
        match self {
            Artifact::Signature => "application/vnd.dev.cosign.artifact.sig.v1+json",
            Artifact::Attestation => "application/vnd.dsse.envelope.v1+json",
            Artifact::Sbom => "application/spdx+json",
        }
    }

    /// The layer's media type, payload and annotations, about `subject`.
    fn layer(self, repository: &str, subject: &str, seed: u64) -> (&'static str, Vec<u8>, Value) {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let signature = b64(&filler(seed, 64));
        match self {
            Artifact::Signature => (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                serde_json::to_vec(&json!({
                    "critical": {
                        "identity": {"docker-reference": repository},
                        "image": {"docker-manifest-digest": subject},
                        "type": "cosign container image signature",
                    },
                    "optional": {"seed": seed},
                }))
                .unwrap_or_default(),
                json!({"dev.cosignproject.cosign/signature": signature}),
            ),
            Artifact::Attestation => {
                let statement = json!({
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": repository, "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
                    "predicateType": "https://slsa.dev/provenance/v1",
                    "predicate": {"buildDefinition": {"buildType": "https://standin.invalid/build", "externalParameters": {"seed": seed}}},
                });
                let envelope = json!({
                    "payloadType": "application/vnd.in-toto+json",
                    "payload": b64(statement.to_string().as_bytes()),
                    "signatures": [{"keyid": "", "sig": signature}],
                });
                (
                    "application/vnd.dsse.envelope.v1+json",
                    envelope.to_string().into_bytes(),
                    json!({"predicateType": "https://slsa.dev/provenance/v1"}),
                )
            }
            Artifact::Sbom => (
                "text/spdx+json",
                serde_json::to_vec(&json!({
                    "spdxVersion": "SPDX-2.3",
                    "dataLicense": "CC0-1.0",
                    "SPDXID": "SPDXRef-DOCUMENT",
                    "name": format!("{repository}@{subject}"),
                    "documentNamespace": format!("https://standin.invalid/spdx/{seed}"),
                    "packages": [],
                }))
                .unwrap_or_default(),
                json!({}),
            ),
        }
    }
}

/// How a referrer names its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// cosign's tag scheme: no `subject`; the manifest is tagged `sha256-<hex>.<suffix>`.
    CosignTag,
    /// OCI 1.1: a `subject` descriptor, pushed by digest (found with the referrers API).
    Subject,
}

/// A referrer pushed by [`push_referrer`].
#[derive(Clone, Debug)]
pub struct Referrer {
    pub manifest_digest: String,
    /// Its blobs: the config, then the payload layers.
    pub blob_digests: Vec<String>,
    /// cosign's tag, for [`Scheme::CosignTag`].
    pub tag: Option<String>,
}

/// Pushes an `artifact` about the manifest `subject_digest` of `repository` (whose media
/// type and size are read from the registry), named by `scheme`; `seed` makes its
/// signature and so its digest.
pub async fn push_referrer(
    client: &Client,
    repository: &str,
    subject_digest: &str,
    artifact: Artifact,
    scheme: Scheme,
    seed: u64,
) -> Result<Referrer> {
    let subject = client.require_manifest(repository, subject_digest).await?;
    let (layer_type, payload, annotations) = artifact.layer(repository, subject_digest, seed);
    let payload_size = payload.len();
    let payload_digest = digest_of(&payload);
    client.put_blob(repository, payload).await?;
    let mut layer =
        json!({"mediaType": layer_type, "size": payload_size, "digest": payload_digest});
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        layer["annotations"] = annotations;
    }
    let naming = match scheme {
        Scheme::CosignTag => Naming::Tag(cosign_tag(subject_digest, artifact.cosign_suffix())),
        Scheme::Subject => Naming::Subject {
            subject: &subject,
            artifact_type: artifact.artifact_type(),
            annotations: json!({"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}),
        },
    };
    put_artifact_manifest(client, repository, vec![layer], naming).await
}

/// cosign's tag for an artifact of `suffix` (`sig`, `att`, `sbom`) about `subject_digest`:
/// `sha256-<hex>.<suffix>`.
pub(crate) fn cosign_tag(subject_digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", subject_digest.replace(':', "-"))
}

/// How [`put_artifact_manifest`] names the manifest it pushes.
pub(crate) enum Naming<'a> {
    /// cosign's tag scheme: cosign's image config, no `subject`, pushed under this tag.
    Tag(String),
    /// OCI 1.1: the empty config, an `artifactType`, a `subject` descriptor of `subject` and
    /// these manifest `annotations`; pushed by digest.
    Subject {
        subject: &'a Manifest,
        artifact_type: &'a str,
        annotations: Value,
    },
}

/// Pushes the config and the OCI manifest of an artifact whose `layers` (descriptors, their
/// blobs already pushed) are given, named by `naming`.
pub(crate) async fn put_artifact_manifest(
    client: &Client,
    repository: &str,
    layers: Vec<Value>,
    naming: Naming<'_>,
) -> Result<Referrer> {
    let layer_digests: Vec<String> = layers
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect();
    let (config_type, config) = match naming {
        // cosign's own config: an OCI image config whose layers are the payloads.
        Naming::Tag(_) => (
            OCI_CONFIG,
            serde_json::to_vec(&json!({
                "architecture": "", "os": "", "config": {},
                "created": "0001-01-01T00:00:00Z",
                "rootfs": {"type": "layers", "diff_ids": layer_digests},
            }))?,
        ),
        Naming::Subject { .. } => (OCI_EMPTY, b"{}".to_vec()),
    };
    let config_size = config.len();
    let config_digest = client.put_blob(repository, config).await?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "size": config_size, "digest": config_digest},
        "layers": layers,
    });
    let tag = match naming {
        Naming::Tag(tag) => Some(tag),
        Naming::Subject {
            subject,
            artifact_type,
            annotations,
        } => {
            manifest["artifactType"] = json!(artifact_type);
            manifest["subject"] = json!({
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            });
            manifest["annotations"] = annotations;
            None
        }
    };
    let manifest = serde_json::to_vec(&manifest)?;
    let digest = digest_of(&manifest);
    let manifest_digest = client
        .put_manifest(
            repository,
            tag.as_deref().unwrap_or(&digest),
            OCI_MANIFEST,
            manifest,
        )
        .await?;
    let mut blob_digests = vec![config_digest];
    blob_digests.extend(layer_digests);
    Ok(Referrer {
        manifest_digest,
        blob_digests,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_deterministic_and_differ_by_seed() {
        let a = layer(&Spec::small(1), 0).unwrap();
        let b = layer(&Spec::small(1), 0).unwrap();
        let c = layer(&Spec::small(2), 0).unwrap();
        assert_eq!(digest_of(&a.1), digest_of(&b.1));
        assert_ne!(digest_of(&a.0), digest_of(&c.0));
    }
}
