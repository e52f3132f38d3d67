//! `ecrmirror_image`: its state, private state and schema.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::{Value, ValueSet};

use crate::schema::{attribute, attributes, string};

/// Default limit for a create (a whole pull and push).
pub(crate) const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Default limit for an update that re-mirrors.
pub(crate) const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Default limit for a delete.
pub(crate) const DELETE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The resource's state, as Terraform stores it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageState {
    pub id: Value<String>,
    pub docker_source: Value<String>,
    pub repository: Value<String>,
    pub tag: Value<String>,
    pub platform: Value<String>,
    pub platforms: ValueSet<Value<String>>,
    pub registry_id: Value<String>,
    pub keep_remotely: Value<bool>,
    pub track_source: Value<bool>,
    pub copy_method: Value<String>,
    pub copy_referrers: Value<bool>,
    pub triggers: Value<BTreeMap<String, Value<String>>>,
    #[serde(with = "crate::terraform::optional_block")]
    pub timeouts: Value<Timeouts>,
    #[serde(with = "crate::terraform::optional_block")]
    pub verify: Value<Verify>,
    pub image_uri: Value<String>,
    pub image_digest: Value<String>,
    pub image_uri_digest: Value<String>,
    pub source_digest: Value<String>,
    /// Null without `copy_referrers`.
    pub referrer_digests: Value<Vec<Value<String>>>,
    /// What verified the source; null without `verify`.
    pub verified_by: Value<String>,
}

/// The `verify` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verify {
    pub keys: Value<Vec<Value<String>>>,
    pub keyless: Value<Vec<Value<Keyless>>>,
    pub trusted_root: Value<String>,
}

/// A `keyless` block of `verify`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Keyless {
    pub issuer: Value<String>,
    pub subject: Value<String>,
    pub subject_regex: Value<String>,
}

/// The `timeouts` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    pub create: Value<String>,
    pub update: Value<String>,
    pub delete: Value<String>,
}

/// What the provider remembers beside the state: what it mirrored, so that a read can tell
/// a tag re-pointed in ECR, or a source tag moved upstream, apart from the mirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PrivateData {
    /// The manifest digest ECR served for the tag right after the mirror was made.
    pub(crate) pushed_digest: Option<String>,
    /// The source digest the mirror was made from.
    pub(crate) source_digest: Option<String>,
    /// The referrers the mirror copied (or found in ECR), with `copy_referrers`.
    pub(crate) referrer_digests: Option<Vec<String>>,
    /// Whether `pushed_digest` is a multi-platform index (an import records what ECR holds,
    /// which is all it can know); `None` in private state written before it was recorded.
    pub(crate) pushed_index: Option<bool>,
}

/// Private state as tf-provider hands it over (empty before the first apply).
pub(crate) type Private = Option<PrivateData>;

impl ImageState {
    /// The referrers state records (`referrer_digests`), known ones only.
    pub(crate) fn recorded_referrers(&self) -> Vec<String> {
        self.referrer_digests
            .as_ref_option()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_ref_option().cloned())
            .collect()
    }

    /// The ECR tag the mirror targets, once its repository and tag are known (the registry
    /// named by `registry_id`; empty for the caller's own while it is not known).
    pub(crate) fn tag_key(&self) -> Option<super::owners::TagKey> {
        let (Value::Value(repository), Value::Value(tag)) = (&self.repository, &self.tag) else {
            return None;
        };
        let registry_id = self.registry_id.as_ref_option().map(String::as_str);
        Some(super::owners::TagKey::new(registry_id, repository, tag))
    }
}

/// A boolean argument with its default, `false`.
pub(crate) fn or_false(value: &Value<bool>) -> Value<bool> {
    match value {
        Value::Null => Value::Value(false),
        other => *other,
    }
}

impl ImageState {
    /// The state with the defaults of attributes added after it was written (a state from
    /// an older provider has them null).
    pub(crate) fn with_defaults(self) -> ImageState {
        ImageState {
            keep_remotely: or_false(&self.keep_remotely),
            track_source: or_false(&self.track_source),
            copy_referrers: or_false(&self.copy_referrers),
            // Mirrors made before copy_method existed were made through Docker. An import
            // (no `docker_source` yet) was made by no method this provider knows: inventing
            // one would have `-generate-config-out` write it, and a Docker method would
            // replace an index in ECR with one platform's image.
            copy_method: match (self.copy_method, &self.docker_source) {
                (Value::Null, Value::Value(_)) => {
                    Value::Value(crate::transfer::CopyMethod::default().to_string())
                }
                (other, _) => other,
            },
            ..self
        }
    }
}

/// The schema version. Changes so far are additive (`track_source` came later): Terraform
/// reads an older state with the new attribute null, and the plan sets its default.
/// tf-provider 0.2.2 cannot run an upgrade function (its `RawValue` is not exported), so
/// the version stays 0 until it can.
pub(crate) const SCHEMA_VERSION: i64 = 0;

/// The resource schema.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};
    let timeouts = Block {
        version: 1,
        attributes: attributes(vec![
            ("create", string(Optional, "Limit for creating the mirror (a whole pull and push), e.g. `30m`. Default `20m`.")),
            ("update", string(Optional, "Limit for an update that mirrors again. Default `20m`.")),
            ("delete", string(Optional, "Limit for removing the tag from ECR. Default `5m`.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("Limits for whole operations, as durations such as `\"30m\"` or `\"1h30m\"`. An operation past its limit fails with a diagnostic naming the limit."),
        deprecated: false,
    };
    let keyless = Block {
        version: 1,
        attributes: attributes(vec![
            ("issuer", string(Required, "The OIDC issuer the signing certificate names, exactly, e.g. `https://token.actions.githubusercontent.com` (GitHub Actions) or `https://accounts.google.com`.")),
            ("subject", string(Optional, "The identity the signing certificate names (its email or URI subject alternative name), exactly, e.g. `https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.4.0`. Set this or `subject_regex`.")),
            ("subject_regex", string(Optional, "A regular expression the certificate's identity must match (anchor it with `^` and `$` to match it whole), e.g. `^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/tags/v`. Set this or `subject`.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("A keyless (Sigstore) identity whose signature passes: the signing certificate chains to a Fulcio CA of the trusted root, names this issuer and subject, and was valid when the signature was made, as a Rekor entry signed by a log key of the trusted root proves. Repeatable: a signature matching any one passes."),
        deprecated: false,
    };
    let verify = Block {
        version: 1,
        attributes: attributes(vec![
            ("keys", attribute(AttributeType::List(Box::new(AttributeType::String)), Optional, "PEM public keys (`-----BEGIN PUBLIC KEY-----`, as `cosign.pub`, e.g. `[file(\"cosign.pub\")]`): ECDSA P-256 (cosign's default) or P-384, Ed25519, RSA. A cosign signature by any one of them passes.")),
            ("trusted_root", string(Optional, "A Sigstore trusted root (JSON, e.g. `file(\"trusted_root.json\")`): the Fulcio CAs keyless certificates must chain to and the Rekor log keys that prove when a signature was made. Nothing is fetched when it is set (air-gapped and private Sigstore instances): `cosign trusted-root create` writes one, and Sigstore's TUF repository publishes its own as the target `trusted_root.json`. Without it, keyless signatures are checked against Sigstore's public-good instance, whose trusted root the provider fetches as cosign does: from Sigstore's TUF repository (`https://tuf-repo-cdn.sigstore.dev`), starting from the root it embeds, every step signed and unexpired, kept in the provider's cache directory until its timestamp expires. `ECRMIRROR_SIGSTORE_TUF_URL` with `ECRMIRROR_SIGSTORE_TUF_ROOT` (a file holding that repository's first `root.json`) names another TUF repository (a private Sigstore instance's).")),
        ]),
        blocks: [("keyless".to_string(), NestedBlock::List(keyless))].into_iter().collect(),
        description: Description::markdown("Copy the source only when its publisher signed it with cosign: by one of `keys`, or keyless by one of the `keyless` identities. What is verified is the manifest the source's tag names (`source_digest`; an index covers its platforms, which it pins by digest); a signature counts only when its payload names exactly that digest. Signatures are found where cosign puts them: the source's `sha256-<hex>.sig` tag and Sigstore bundles among its OCI referrers. The plan verifies, and an unsigned or wrongly signed source is a plan error on `verify` that names the digest and why; nothing is pulled. The apply copies the digest the plan verified, by digest, never by reading the tag again. With `track_source`, a tag that moved to an unverified image is a plan error and the mirror stays as it is. Changing the block verifies the mirrored digest again, without copying."),
        deprecated: false,
    };
    Schema {
        version: SCHEMA_VERSION,
        block: Block {
            version: SCHEMA_VERSION,
            attributes: attributes(vec![
                ("docker_source", string(Required, "Image to mirror, as Docker reads it: `nginx`, `nginx:1.27`, `ghcr.io/org/app:v1`, `nginx@sha256:…`, `nginx:1.27@sha256:…`. Changing it mirrors again to the same tag (an in-place update) while the tag stays; without `tag`, a source with another tag (`nginx:1.27` → `nginx:1.28`) names another ECR tag, so the mirror is replaced: the old tag is deleted first, then the new one made.")),
                ("repository", string(Required, "Name of the ECR repository to mirror into; may contain `/`. It must exist, unless a repository creation template applied for `CREATE_ON_PUSH` covers the name: ECR then creates it on the first push, with the template's settings, and the plan says so. Changing it replaces the mirror.")),
                ("tag", string(OptionalComputed, "Tag in ECR. Default: the source's tag, `latest` when it has none. Required when `docker_source` is pinned by digest only. Changing it replaces the mirror.")),
                ("platform", string(Optional, "Platform to mirror, as `os/arch[/variant]`, e.g. `linux/arm64/v8`: that platform's image out of a multi-platform source. A source without it (an index that lacks it, or a single image of another platform) is refused before anything is copied, with the platforms it holds. Default: with `copy_method = \"docker\"` the Docker engine's own platform; with `\"registry\"` the whole index.")),
                ("platforms", attribute(AttributeType::Set(Box::new(AttributeType::String)), Optional, "Platforms to copy out of a multi-platform source, as `os/arch[/variant]`, e.g. `[\"linux/amd64\", \"linux/arm64/v8\"]`: each platform's manifest is copied with its digest, and ECR's tag gets a new index holding only them (the source index's media type, annotations and the attestations of those platforms kept). `image_digest` is then that new index's digest, not upstream's (unless every platform is kept: the index is then the source's, byte for byte): pin `image_uri_digest`, and compare `source_digest` with upstream. Needs `copy_method = \"registry\"`; conflicts with `platform`. A platform the source lacks is refused before anything is copied, with the platforms it holds. Changing it mirrors again in place.")),
                ("registry_id", string(OptionalComputed, "AWS account id of the target registry. Default: the caller's own. Changing it replaces the mirror.")),
                ("keep_remotely", attribute(AttributeType::Bool, OptionalComputed, "When `true`, destroying the resource leaves the image in ECR instead of deleting the tag. Default `false`.")),
                ("track_source", attribute(AttributeType::Bool, OptionalComputed, "When `true`, every plan asks the source registry (one `HEAD` request, which Docker Hub does not count against its pull limit) whether the source tag now names another image, and plans a re-mirror when it does. An unreachable source is a warning, not an error. With `copy_referrers`, each plan also looks for new referrers upstream: a second `HEAD` of the tag, whose manifests come from the provider's cache by digest (a manifest `GET` only for a digest this machine has not read before, as in `ecrmirror_source`); then, for each manifest the mirror holds (an index and each of its platforms' manifests) and each referrer found, to a depth of 3, one referrers API request (not a manifest request) and three `HEAD`s of cosign's tags; a source without the referrers API adds a `HEAD` of the referrers tag schema's tag, and a manifest `GET` (a pull on Docker Hub) only where that tag exists. A two-platform index with one signature costs 19 requests a plan and no pull. Default `false`: plans never contact the source registry.")),
                ("copy_method", string(OptionalComputed, "`\"docker\"`: pull and push through the Docker Engine API. `\"registry\"`: copy straight from the source registry to ECR, no Docker engine needed; without `platform` the whole multi-platform index is copied (or, with `platforms`, a new index of those platforms); digests are preserved, so without `platform`/`platforms` `image_digest` equals `source_digest` and signatures stay valid (with `platform`, `image_digest` is that platform's manifest digest; with `platforms`, the new index's). Default: the provider's `copy_method`, else `\"docker\"`. Changing it mirrors again in place.")),
                ("copy_referrers", attribute(AttributeType::Bool, OptionalComputed, "When `true` (with `copy_method = \"registry\"`), every OCI referrer of every manifest copied (signatures, attestations, SBOMs) is copied too, byte for byte, so each still verifies against the mirror: found with the source's referrers API (or its referrers tag schema) and cosign's `sha256-<hex>.sig`/`.att`/`.sbom` tags, and referrers of referrers to a depth of 3. ECR lists those with a `subject` in its referrers API; cosign's tags are kept. A referrer deleted in ECR is restored at the next apply; with `track_source`, a new upstream referrer (a new signature) plans an update that copies just it. Default `false`.")),
                ("triggers", attribute(AttributeType::Map(Box::new(AttributeType::String)), Optional, "Arbitrary values; any change mirrors the image again.")),
                ("id", string(Computed, "`<registry host>/<repository>:<tag>`.")),
                ("image_uri", string(Computed, "`<registry host>/<repository>:<tag>`: the mirror by tag.")),
                ("image_digest", string(Computed, "`sha256:…` digest of the manifest ECR serves for the tag.")),
                ("image_uri_digest", string(Computed, "`<registry host>/<repository>@<image_digest>`: the pinned reference to use in task definitions.")),
                ("referrer_digests", attribute(AttributeType::List(Box::new(AttributeType::String)), Computed, "With `copy_referrers`, the sorted digests of the referrers the mirror holds in ECR (copied, or found there); null without it.")),
                ("source_digest", string(Computed, "Digest of the source manifest that was mirrored (the index digest for a multi-platform source). With `verify`, the digest verified, known at plan.")),
                ("verified_by", string(Computed, "With `verify`: what verified the source, `key SHA256:<hex>` (the SHA-256 of the public key's DER encoding: `openssl pkey -pubin -in cosign.pub -outform DER | sha256sum`) or `keyless <issuer> <subject>`. Null without `verify`.")),
            ]),
            blocks: [
                ("timeouts".to_string(), NestedBlock::Optional(timeouts)),
                ("verify".to_string(), NestedBlock::Optional(verify)),
            ]
            .into_iter()
            .collect(),
            description: Description::markdown("Mirrors one container image into an ECR repository and keeps it there: the pushed digest is in state, drift in ECR is detected, and destroy removes the tag."),
            deprecated: false,
        },
    }
}

/// Values for the resource's unit tests.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// A known string.
    pub fn v(text: &str) -> Value<String> {
        Value::Value(text.to_string())
    }

    /// A configuration of `source` into `mirror/app`, everything else left out.
    pub fn config(source: &str) -> ImageState {
        ImageState {
            docker_source: v(source),
            repository: v("mirror/app"),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_and_block_is_documented() {
        let schema = schema();
        crate::schema::assert_documented(&schema);
        // The check itself catches what tf-provider's defaults would leave.
        let mut bare = schema.block.clone();
        bare.attributes.insert("x".into(), Default::default());
        assert_eq!(crate::schema::undocumented(&bare), vec!["x".to_string()]);
    }

    #[test]
    fn a_state_written_before_track_source_still_loads() {
        let older = serde_json::json!({
            "id": "host/app:1", "docker_source": "nginx:1", "repository": "app", "tag": "1",
            "platform": null, "registry_id": "123456789012", "keep_remotely": false,
            "triggers": null, "timeouts": [], "image_uri": "host/app:1",
            "image_digest": "sha256:a", "image_uri_digest": "host/app@sha256:a",
            "source_digest": "sha256:s"
        });
        let state: ImageState = serde_json::from_value(older).unwrap();
        assert!(state.track_source.is_null());
        assert_eq!(state.image_digest, Value::Value("sha256:a".to_string()));
    }

    #[test]
    fn an_import_gets_no_copy_method_it_was_not_made_with() {
        let imported = ImageState {
            repository: Value::Value("app".into()),
            ..Default::default()
        };
        assert!(imported.with_defaults().copy_method.is_null());
        let older = ImageState {
            docker_source: Value::Value("nginx:1".into()),
            ..Default::default()
        };
        assert_eq!(
            older.with_defaults().copy_method,
            Value::Value("docker".to_string())
        );
    }

    #[test]
    fn state_survives_a_round_trip_with_an_empty_timeouts_block() {
        let state = ImageState {
            docker_source: Value::Value("nginx".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["timeouts"], serde_json::json!([]));
        let back: ImageState = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }
}
