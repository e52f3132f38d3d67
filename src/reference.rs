//! Image references, repository names, tags and platforms: parse, normalise, display.
//!
//! Pure code. `docker_source` follows Docker's reference grammar (distribution's
//! `reference` package: Docker Hub's `docker.io` and `library/` defaults, registry hosts
//! with ports, tag and/or digest) and is held as `oci-spec`'s [`Reference`], the type the
//! distribution client takes. It is matched here with `regex-lite` rather than with
//! `oci-spec`'s parser: that one compiles a Unicode-aware pattern on first use, about 35 ms
//! of CPU in every provider process, and Terraform starts the provider three times per apply.
//! The tests hold both parsers to the same answers. ECR's repository rule, the OCI tag grammar
//! and `os/arch[/variant]` are checked here too.

use std::fmt;
use std::sync::OnceLock;

use oci_spec::distribution::Reference;

/// A parsed `docker_source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    inner: Reference,
}

/// Docker's reference grammar, anchored: `(name)(:tag)?(@digest)?`, the name being an
/// optional `host[:port]/` and `/`-joined lowercase path components.
fn grammar() -> &'static regex_lite::Regex {
    static GRAMMAR: OnceLock<regex_lite::Regex> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        let label = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let host = format!(r"(?:{label}(?:\.{label})*|\[[a-fA-F0-9:]+\])");
        let domain = format!("{host}(?::[0-9]+)?");
        let component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        let pattern =
            format!("^((?:{domain}/)?{component}(?:/{component})*)(?::({tag}))?(?:@({digest}))?$");
        regex_lite::Regex::new(&pattern).expect("the reference grammar compiles")
    })
}

/// The longest name Docker accepts.
const NAME_MAX: usize = 255;

/// Splits a matched name into registry and repository as Docker does: the part before the
/// first `/` is a registry when it has a `.` or `:`, is `localhost`, or has capitals (a path
/// component cannot); otherwise the registry is Docker Hub, whose one-part names live under
/// `library/`.
fn split_name(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => ("docker.io", name),
    };
    let registry = if registry == "index.docker.io" {
        "docker.io"
    } else {
        registry
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    (registry.to_string(), repository)
}

/// Checks a digest's algorithm and length.
fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
    let wanted = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "the digest algorithm `{algorithm}` is not supported: use sha256, sha384 or sha512"
            ))
        }
    };
    if hex.len() != wanted {
        return Err(format!(
            "a {algorithm} digest has {wanted} hexadecimal digits, this one has {}",
            hex.len()
        ));
    }
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "a digest's hexadecimal digits are `0`-`9` and lowercase `a`-`f` (OCI image spec), \
             not `{bad}`: write `{algorithm}:{}`",
            hex.to_ascii_lowercase()
        ));
    }
    Ok(())
}

impl SourceRef {
    /// Parses an image reference as Docker reads it.
    pub fn parse(text: &str) -> Result<SourceRef, String> {
        if text.trim() != text || text.is_empty() {
            return Err("an image reference cannot be empty or contain spaces".into());
        }
        let invalid = |why: String| format!("`{text}` is not a valid image reference: {why}");
        let Some(captures) = grammar().captures(text) else {
            let why = if grammar().is_match(&text.to_ascii_lowercase()) {
                "repository names must be lowercase".to_string()
            } else {
                "expected `[registry[:port]/]name[:tag][@digest]`, e.g. `nginx:1.27` or \
                 `ghcr.io/org/app@sha256:<64 hex digits>`"
                    .to_string()
            };
            return Err(invalid(why));
        };
        let name = &captures[1];
        if name.len() > NAME_MAX {
            return Err(invalid(format!(
                "the name has {} characters, more than Docker's {NAME_MAX}",
                name.len()
            )));
        }
        let (registry, repository) = split_name(name);
        let tag = captures.get(2).map(|m| m.as_str().to_string());
        let digest = captures.get(3).map(|m| m.as_str().to_string());
        let inner = match (tag, digest) {
            (Some(tag), Some(digest)) => {
                check_digest(&digest).map_err(invalid)?;
                Reference::with_tag_and_digest(registry, repository, tag, digest)
            }
            (None, Some(digest)) => {
                check_digest(&digest).map_err(invalid)?;
                Reference::with_digest(registry, repository, digest)
            }
            (tag, None) => {
                Reference::with_tag(registry, repository, tag.unwrap_or("latest".into()))
            }
        };
        Ok(SourceRef { inner })
    }

    /// The registry's host (and port), `docker.io` for Docker Hub.
    pub fn host(&self) -> &str {
        self.inner.registry()
    }

    /// Repository path within the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, when the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The tag mirrored by default: the source's tag, `latest` when it has none, and none at
    /// all when the source is pinned by digest only.
    pub fn default_tag(&self) -> Option<&str> {
        match (self.tag(), self.digest()) {
            (Some(tag), _) => Some(tag),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        }
    }

    /// This reference pinned to `digest` (its tag, if any, kept): what a copy of a verified
    /// digest reads, whatever the tag names by then.
    pub(crate) fn pinned(&self, digest: &str) -> SourceRef {
        let (registry, repository) = (self.host().to_string(), self.repository().to_string());
        let inner = match self.tag() {
            Some(tag) => Reference::with_tag_and_digest(
                registry,
                repository,
                tag.to_string(),
                digest.to_string(),
            ),
            None => Reference::with_digest(registry, repository, digest.to_string()),
        };
        SourceRef { inner }
    }

    /// The reference as the distribution client takes it.
    pub(crate) fn as_oci(&self) -> &Reference {
        &self.inner
    }

    /// `registry/repository`, the name a Docker engine stores the image under.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host(), self.repository())
    }

    /// What to pull: by digest when pinned, else by tag (`latest` by default).
    pub fn pull_reference(&self) -> String {
        match (self.digest(), self.tag()) {
            (Some(digest), _) => format!("{}@{digest}", self.name()),
            (None, tag) => format!("{}:{}", self.name(), tag.unwrap_or("latest")),
        }
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.whole())
    }
}

/// The error for an empty value where `what` is expected (an empty value shown in backticks
/// reads as nothing at all).
fn empty(what: &str) -> String {
    format!("The value is empty; write {what}.")
}

/// Checks an ECR repository name: 2 to 256 characters, `/`-joined parts of lowercase letters
/// and digits separated by single `.`, `_` or `-` (ECR's documented pattern).
pub(crate) fn check_repository(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(empty("an ECR repository name: 2 to 256 characters"));
    }
    if name.len() < 2 || name.len() > 256 {
        return Err(format!(
            "`{name}` must be 2 to 256 characters long (ECR's limit)"
        ));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(format!(
                "`{name}` is not a valid ECR repository name: each `/`-separated part must be \
                 lowercase letters and digits, separated by single `.`, `_` or `-`"
            ));
        }
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    component.split(['.', '_', '-']).all(|piece| {
        !piece.is_empty()
            && piece
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The tag a digest goes by in a registry that cannot name it otherwise: `sha256-<hex>`, the
/// referrers tag schema's tag and the stem of cosign's (`sha256-<hex>.sig`, `.att`, `.sbom`).
pub(crate) fn digest_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Checks a tag against the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err(empty("a tag: up to 128 letters, digits, `_`, `.` and `-`"));
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag: up to 128 letters, digits, `_`, `.` and `-`, not \
             starting with `.` or `-`"
        ))
    }
}

/// A platform, `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        if text.is_empty() {
            return Err(empty(
                "a platform: `os/arch` or `os/arch/variant`, e.g. `linux/amd64`",
            ));
        }
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(format!(
                "`{text}` is not a platform: write `os/arch` or `os/arch/variant` in lowercase, \
                 e.g. `linux/amd64` or `linux/arm64/v8`"
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// The platform a Docker engine on this machine pulls by default: `linux/<this CPU>`.
    pub(crate) fn engine_default() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether `other` names the same platform (`linux/arm64` and `linux/arm64/v8` do).
    pub fn same_as(&self, other: &Platform) -> bool {
        self.matches(&other.os, &other.architecture, other.variant.as_deref())
            && other.matches(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// Whether an image of `os`/`architecture`/`variant` is this platform. An image without a
    /// variant matches the architecture's default (`arm64` is `v8`).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        match (self.variant.as_deref(), variant.filter(|v| !v.is_empty())) {
            (None, _) => true,
            (Some(wanted), Some(got)) => wanted == got,
            (Some(wanted), None) => architecture == "arm64" && wanted == "v8",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A `terraform import` ID: `REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportId {
    pub host: Option<String>,
    pub repository: String,
    pub tag: String,
}

impl ImportId {
    /// Parses an import ID. A first path part with a `.` or `:`, or `localhost`, is a
    /// registry host, as in image references.
    pub fn parse(id: &str) -> Result<ImportId, String> {
        let id = id.trim();
        if id.contains('@') {
            return Err(format!(
                "`{id}` names a digest; import a tag: `REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`."
            ));
        }
        let slash = id.rfind('/').map_or(0, |i| i + 1);
        let Some(colon) = id[slash..].rfind(':').map(|i| i + slash) else {
            return Err(format!(
                "`{id}` has no tag: write `REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`."
            ));
        };
        let (name, tag) = (&id[..colon], &id[colon + 1..]);
        let (host, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        check_repository(repository)?;
        check_tag(tag)?;
        Ok(ImportId {
            host,
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// An ECR registry host, `<account>.dkr.ecr.<region>.<AWS domain>`, in its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrHost<'a> {
    pub registry_id: &'a str,
    pub region: &'a str,
}

impl<'a> EcrHost<'a> {
    /// The parts of `host` when it is an Amazon ECR registry host.
    pub fn parse(host: &'a str) -> Option<EcrHost<'a>> {
        let (registry_id, rest) = host.split_once('.')?;
        let rest = rest.strip_prefix("dkr.ecr.")?;
        let (region, domain) = rest.split_once('.')?;
        let aws = ["amazonaws.com", "amazonaws.com.cn", "on.aws"];
        let valid_region = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (check_registry_id(registry_id).is_ok() && valid_region && aws.contains(&domain)).then_some(
            EcrHost {
                registry_id,
                region,
            },
        )
    }
}

/// Checks an AWS account id: twelve digits.
pub(crate) fn check_registry_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("`{id}` is not an AWS account id (twelve digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_said_to_be_empty() {
        for err in [
            check_repository("").unwrap_err(),
            check_tag("").unwrap_err(),
            Platform::parse("").unwrap_err(),
        ] {
            assert!(err.starts_with("The value is empty; write "), "{err}");
            assert!(!err.contains("``"), "{err}");
        }
    }

    #[test]
    fn docker_hub_defaults() {
        let r = SourceRef::parse("nginx").unwrap();
        assert_eq!(r.host(), "docker.io");
        assert_eq!(r.repository(), "library/nginx");
        assert_eq!(r.default_tag(), Some("latest"));
        assert_eq!(r.pull_reference(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn registry_with_port_tag_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = SourceRef::parse(&format!("127.0.0.1:5000/team/app:1.2@{digest}")).unwrap();
        assert_eq!(r.host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert_eq!(
            r.pull_reference(),
            format!("127.0.0.1:5000/team/app@{digest}")
        );
    }

    #[test]
    fn digest_only_has_no_default_tag() {
        let r = SourceRef::parse(&format!("ghcr.io/org/app@sha256:{}", "b".repeat(64))).unwrap();
        assert_eq!(r.default_tag(), None);
    }

    /// The grammar here and oci-spec's parser agree on every reference both read (oci-spec
    /// stays the reference implementation; it is only too slow to start for the provider).
    #[test]
    fn agrees_with_oci_spec() {
        let sha = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let long = "a".repeat(300);
        let cases = [
            "busybox".to_string(),
            "busybox:1.36".into(),
            "library/busybox".into(),
            "docker.io/busybox".into(),
            "index.docker.io/busybox:latest".into(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            "test:5000/repo:tag".into(),
            "localhost/app".into(),
            "localhost:5000/team/app:v1.2_3-x".into(),
            "ghcr.io/org/sub/app".into(),
            "a.b-c/d__e/f.g-h".into(),
            "my-registry.example.com:443/x/y:z".into(),
            "bitnami/redis:7.2".into(),
            format!("busybox@{sha}"),
            format!("ghcr.io/org/app:1@{sha}"),
            format!("127.0.0.1:5000/app@{sha}"),
            format!("app@sha512:{}", "ab".repeat(64)),
            "app@sha256:abc".into(),
            format!("app@md5:{}", "a".repeat(32)),
            "app/UPPER".into(),
            "app:".into(),
            "app:.tag".into(),
            "-app".into(),
            "app-".into(),
            "a//b".into(),
            "host:port/app".into(),
            "app:tag:tag".into(),
            format!("app:{}", "t".repeat(129)),
            long,
            "docker.io/app:é".into(),
        ];
        for case in &cases {
            let ours = SourceRef::parse(case).map(|r| r.inner);
            let theirs: Result<Reference, _> = case.parse();
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{case}"),
                (Err(_), Err(_)) => {}
                // A deliberate difference: a tag is ASCII (oci-spec lets Unicode letters in).
                (Err(_), Ok(_)) if case.contains('é') => {}
                _ => panic!("{case}: ours {ours:?}, oci-spec {theirs:?}"),
            }
        }
    }

    #[test]
    fn ipv6_registries_and_lowercase_hints() {
        // As Docker reads it (oci-spec would make it `docker.io/UPPER/case`, which no
        // registry accepts).
        assert_eq!(SourceRef::parse("UPPER/case").unwrap().host(), "UPPER");
        let r = SourceRef::parse("[::1]:5000/app:1").unwrap();
        assert_eq!(r.host(), "[::1]:5000");
        assert_eq!(r.repository(), "app");
        let err = SourceRef::parse("ghcr.io/Org/App:1").unwrap_err();
        assert!(err.contains("lowercase"), "{err}");
        let err = SourceRef::parse(&format!("app@sha256:{}", "a".repeat(63))).unwrap_err();
        assert!(err.contains("64 hexadecimal digits"), "{err}");
        let upper = format!("EB2F{}", "a".repeat(60));
        let err = SourceRef::parse(&format!("app:1@sha256:{upper}")).unwrap_err();
        assert!(err.contains("lowercase `a`-`f`"), "{err}");
        assert!(
            err.contains(&format!("sha256:eb2f{}", "a".repeat(60))),
            "{err}"
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in ["", "Nginx", "nginx:", "nginx@sha256:abc", " nginx", "a b"] {
            assert!(SourceRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn repository_names() {
        for good in ["php_wordpress", "team/app", "a.b-c/d_e", "ab"] {
            assert!(check_repository(good).is_ok(), "{good} refused");
        }
        for bad in [
            "A",
            "a",
            "Team/app",
            "team//app",
            "-app",
            "app-",
            "a..b",
            "/app",
            "a__b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tags() {
        assert!(check_tag("base").is_ok());
        assert!(check_tag("_v1.2-rc").is_ok());
        assert!(check_tag(".hidden").is_err());
        assert!(check_tag("").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        assert!(check_tag("a:b").is_err());
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "arm64", None));
        assert!(!p.matches("linux", "amd64", None));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("Linux/amd64").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
    }

    #[test]
    fn import_ids() {
        assert_eq!(
            ImportId::parse("team/app:1.0").unwrap(),
            ImportId {
                host: None,
                repository: "team/app".into(),
                tag: "1.0".into()
            }
        );
        let full =
            ImportId::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:base").unwrap();
        assert_eq!(
            full.host.as_deref(),
            Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        );
        assert_eq!(full.repository, "app");
        let local = ImportId::parse("127.0.0.1:5000/team/app:v2").unwrap();
        assert_eq!(local.host.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(local.repository, "team/app");
        for bad in [
            "app",
            "",
            "App:1",
            "app:",
            "app@sha256:abc",
            "127.0.0.1:5000/app",
        ] {
            assert!(ImportId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            EcrHost::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(EcrHost {
                registry_id: "123456789012",
                region: "eu-west-1"
            })
        );
        assert_eq!(
            EcrHost::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").map(|h| h.region),
            Some("cn-north-1")
        );
        assert_eq!(
            EcrHost::parse("123456789012.dkr.ecr.not-aws.example.com"),
            None
        );
        assert_eq!(EcrHost::parse("127.0.0.1:5000"), None);
    }

    #[test]
    fn registry_ids() {
        assert!(check_registry_id("123456789012").is_ok());
        assert!(check_registry_id("12345").is_err());
    }
}
