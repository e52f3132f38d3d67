//! The resource's arguments, parsed once into the typed value that validation, plan and
//! apply all read. Each argument is checked by one function here and each default is
//! decided here; a value unknown at plan time stays unknown until apply.

use std::collections::BTreeSet;

use tf_provider::value::Value;

use super::state::{ImageState, Keyless, Verify};
use crate::error::{Error, Result};
use crate::reference::{check_registry_id, check_repository, check_tag, Platform, SourceRef};
pub(crate) use crate::terraform::known;
use crate::terraform::{invalid, parsed};
use crate::transfer::{Capability, CopyMethod};
use crate::verify::{Identity, Policy, PublicKey, Subject, TrustRoot};

/// The arguments as far as they are known, and every problem found in them.
#[derive(Debug)]
pub(crate) struct Arguments {
    pub(crate) source: Value<SourceRef>,
    pub(crate) repository: Value<String>,
    /// The tag with its default: the source's tag, else `latest`.
    pub(crate) tag: Value<String>,
    /// `Null`: no platform asked for.
    pub(crate) platform: Value<Platform>,
    /// `Null`: no subset of platforms asked for.
    pub(crate) platforms: Value<Vec<Platform>>,
    /// The copy method with its default: the provider's `copy_method`.
    pub(crate) method: Value<CopyMethod>,
    /// Unknown or null: the caller's own registry.
    pub(crate) registry_id: Value<String>,
    /// `copy_referrers` with its default, `false`.
    pub(crate) copy_referrers: Value<bool>,
    /// `Null`: no `verify` block.
    pub(crate) verify: Value<Policy>,
    /// Every invalid argument, each on its attribute.
    pub(crate) errors: Vec<Error>,
}

/// A mirror to make: every argument known and valid.
#[derive(Clone, Debug)]
pub(crate) struct Mirror {
    pub(crate) source: SourceRef,
    pub(crate) repository: String,
    pub(crate) tag: String,
    pub(crate) platform: Option<Platform>,
    /// The platforms of a multi-platform source to copy, as a new index of just them.
    pub(crate) platforms: Option<Vec<Platform>>,
    pub(crate) method: CopyMethod,
    /// The target registry's account id; `None`: the caller's own.
    pub(crate) registry_id: Option<String>,
    /// Whether the source's referrers are copied too.
    pub(crate) copy_referrers: bool,
    /// What the source must be signed by.
    pub(crate) verify: Option<Policy>,
}

/// `docker_source` as a reference (also read from state, with `track_source`).
pub(crate) fn source(text: &Value<String>) -> Result<Value<SourceRef>> {
    parsed(text, "docker_source", SourceRef::parse)
}

/// The tag to mirror to: the configured one, else the source's; unknown while the source
/// is. A source pinned by digest alone has no tag to default to.
fn tag(tag: &Value<String>, source: &Value<SourceRef>) -> Result<Value<String>> {
    match (tag, source) {
        (Value::Null, Value::Value(source)) => match source.default_tag() {
            Some(tag) => Ok(Value::Value(tag.to_string())),
            None => Err(Error::Invalid {
                attribute: "tag",
                detail: "`docker_source` is pinned by digest only, so there is no tag to copy: set `tag`.".into(),
            }),
        },
        (Value::Null, _) => Ok(Value::Unknown),
        (tag, _) => parsed(tag, "tag", |tag| check_tag(tag).map(|()| tag.to_string())),
    }
}

/// `platforms` parsed: every element a platform, none twice, none null. An unknown element
/// leaves the whole set unknown (checked at apply).
fn platforms(set: &Value<BTreeSet<Value<String>>>) -> Result<Value<Vec<Platform>>> {
    let set = match set {
        Value::Value(set) => set,
        Value::Null => return Ok(Value::Null),
        Value::Unknown => return Ok(Value::Unknown),
    };
    if set.iter().any(Value::is_null) {
        return Err(Error::Invalid {
            attribute: "platforms",
            detail: "`platforms` holds a null element: every element must name a platform such as `linux/arm64/v8` (a conditional that yields null belongs outside the set, e.g. `compact([...])`).".into(),
        });
    }
    let mut parsed: Vec<Platform> = Vec::new();
    for element in set {
        let Value::Value(text) = element else {
            return Ok(Value::Unknown);
        };
        let platform = Platform::parse(text).map_err(invalid("platforms"))?;
        if let Some(same) = parsed.iter().find(|p| p.same_as(&platform)) {
            return Err(Error::Invalid {
                attribute: "platforms",
                detail: format!("`{same}` and `{platform}` name the same platform: list it once."),
            });
        }
        parsed.push(platform);
    }
    if parsed.is_empty() {
        return Err(Error::Invalid {
            attribute: "platforms",
            detail: "`platforms` cannot be empty: list the platforms to copy, or leave it out to copy every platform.".into(),
        });
    }
    Ok(Value::Value(parsed))
}

/// The `verify` block parsed: every key a PEM public key, each `keyless` block an issuer
/// and one of `subject` and `subject_regex`, `trusted_root` a Sigstore trusted root, and at
/// least one key or identity. Anything unknown leaves the whole policy unknown (checked at
/// apply).
pub(crate) fn policy(block: &Value<Verify>) -> Result<Value<Policy>> {
    let block = match block {
        Value::Value(block) => block,
        Value::Null => return Ok(Value::Null),
        Value::Unknown => return Ok(Value::Unknown),
    };
    let mut unknown = false;
    let mut keys = Vec::new();
    match &block.keys {
        Value::Value(list) => {
            for (n, key) in list.iter().enumerate() {
                match key {
                    Value::Value(pem) => {
                        keys.extend(PublicKey::parse_all(pem).map_err(|why| Error::Invalid {
                            attribute: "verify.keys",
                            detail: format!("`keys[{n}]` is {why}"),
                        })?)
                    }
                    Value::Null => {
                        return Err(Error::Invalid {
                            attribute: "verify.keys",
                            detail: format!(
                                "`keys[{n}]` is null: every element must be a PEM public key."
                            ),
                        })
                    }
                    Value::Unknown => unknown = true,
                }
            }
        }
        Value::Unknown => unknown = true,
        Value::Null => {}
    }
    let mut identities = Vec::new();
    match &block.keyless {
        Value::Value(list) => {
            for keyless in list {
                match keyless {
                    Value::Value(keyless) => match identity(keyless)? {
                        Some(identity) => identities.push(identity),
                        None => unknown = true,
                    },
                    _ => unknown = true,
                }
            }
        }
        Value::Unknown => unknown = true,
        Value::Null => {}
    }
    let root = match parsed(&block.trusted_root, "verify.trusted_root", |json| {
        TrustRoot::parse(json).map(std::sync::Arc::new)
    })? {
        Value::Value(root) => Some(root),
        Value::Null => None,
        Value::Unknown => {
            unknown = true;
            None
        }
    };
    if unknown {
        return Ok(Value::Unknown);
    }
    if keys.is_empty() && identities.is_empty() {
        return Err(Error::Invalid {
            attribute: "verify",
            detail: "`verify` names no key and no identity, so no signature could pass: list PEM public keys in `keys`, or add a `keyless` block.".into(),
        });
    }
    Ok(Value::Value(Policy {
        keys,
        identities,
        root,
    }))
}

/// A `keyless` block as an identity; `None` while part of it is unknown.
fn identity(keyless: &Keyless) -> Result<Option<Identity>> {
    let invalid = |attribute, detail: String| Error::Invalid { attribute, detail };
    let issuer = match &keyless.issuer {
        Value::Value(issuer) if !issuer.is_empty() => issuer.clone(),
        Value::Unknown => return Ok(None),
        _ => return Err(invalid("verify.keyless", "`issuer` is required: the OIDC issuer the signing certificate names, e.g. `https://token.actions.githubusercontent.com`.".into())),
    };
    let subject = match (&keyless.subject, &keyless.subject_regex) {
        (Value::Unknown, _) | (_, Value::Unknown) => return Ok(None),
        (Value::Value(subject), Value::Null) if !subject.is_empty() => Subject::Exactly(subject.clone()),
        (Value::Null, Value::Value(regex)) if !regex.is_empty() => Subject::Matching(regex_lite::Regex::new(regex).map_err(|err| {
            invalid("verify.keyless.subject_regex", format!("`{regex}` is not a regular expression: {err}"))
        })?),
        (Value::Value(_), Value::Value(_)) => return Err(invalid("verify.keyless", "set `subject` or `subject_regex`, not both.".into())),
        _ => return Err(invalid("verify.keyless", "set `subject` (the signing identity, exactly) or `subject_regex`: a keyless block without one would accept anyone the issuer vouches for.".into())),
    };
    Ok(Some(Identity { issuer, subject }))
}

/// The value of `result`, or unknown with its error kept in `errors`.
fn keep<T>(errors: &mut Vec<Error>, result: Result<Value<T>>) -> Value<T> {
    result.unwrap_or_else(|err| {
        errors.push(err);
        Value::Unknown
    })
}

/// Where an argument that must be set is null: the error, with how to fill it after an
/// import for `docker_source`.
fn required<T>(value: &Value<T>, attribute: &'static str) -> Option<Error> {
    let after_import = match attribute {
        "docker_source" => " After `terraform import` (or a configuration generated for an import block), set it to the image the mirror was made from.",
        _ => "",
    };
    value.is_null().then(|| Error::Invalid {
        attribute,
        detail: format!("`{attribute}` is required and cannot be null.{after_import}"),
    })
}

impl Arguments {
    /// Parses the arguments of `config` (a configuration, or a planned state);
    /// `default_method` is the provider's `copy_method` (`None` while the provider is not
    /// configured yet, as in validation: then a method left out is unknown).
    pub(crate) fn parse(
        config: &ImageState,
        default_method: impl Into<Option<CopyMethod>>,
    ) -> Arguments {
        let mut errors = Vec::new();
        let source = keep(&mut errors, source(&config.docker_source));
        let repository = keep(
            &mut errors,
            parsed(&config.repository, "repository", |name| {
                check_repository(name).map(|()| name.to_string())
            }),
        );
        let tag = keep(&mut errors, tag(&config.tag, &source));
        let platform = keep(
            &mut errors,
            parsed(&config.platform, "platform", Platform::parse),
        );
        let platforms = keep(&mut errors, platforms(&config.platforms));
        if config.platform.is_value() && config.platforms.is_value() {
            errors.push(Error::Invalid {
                attribute: "platforms",
                detail: "`platform` and `platforms` cannot both be set: `platform` mirrors one image, `platforms` an index of several.".into(),
            });
        }
        let method = match keep(
            &mut errors,
            parsed(&config.copy_method, "copy_method", str::parse),
        ) {
            Value::Null => default_method.into().map_or(Value::Unknown, Value::Value),
            other => other,
        };
        let copy_referrers = match config.copy_referrers {
            Value::Null => Value::Value(false),
            other => other,
        };
        if let Value::Value(method) = method {
            let asked = [
                (Capability::Referrers, copy_referrers == Value::Value(true)),
                (Capability::Platforms, config.platforms.is_value()),
            ];
            for (capability, asked) in asked {
                if let (true, Some(detail)) = (asked, method.lacks(capability)) {
                    errors.push(Error::Invalid {
                        attribute: capability.attribute(),
                        detail: detail.into(),
                    });
                }
            }
        }
        let registry_id = keep(
            &mut errors,
            parsed(&config.registry_id, "registry_id", |id| {
                check_registry_id(id).map(|()| id.to_string())
            }),
        );
        let verify = keep(&mut errors, policy(&config.verify));
        let nulls = [
            required(&config.docker_source, "docker_source"),
            required(&config.repository, "repository"),
        ];
        errors.splice(0..0, nulls.into_iter().flatten());
        Arguments {
            source,
            repository,
            tag,
            platform,
            platforms,
            method,
            registry_id,
            copy_referrers,
            verify,
            errors,
        }
    }

    /// The mirror to make, when every argument is known and valid; else the first problem.
    pub(crate) fn mirror(self) -> Result<Mirror> {
        if let Some(error) = self.errors.into_iter().next() {
            return Err(error);
        }
        Ok(Mirror {
            source: known(&self.source, "docker_source")?.clone(),
            repository: known(&self.repository, "repository")?.clone(),
            tag: known(&self.tag, "tag")?.clone(),
            platform: match self.platform {
                Value::Null => None,
                platform => Some(known(&platform, "platform")?.clone()),
            },
            platforms: match self.platforms {
                Value::Null => None,
                platforms => Some(known(&platforms, "platforms")?.clone()),
            },
            method: *known(&self.method, "copy_method")?,
            // Computed when left out: unknown in a plan until ECR names the account.
            registry_id: self.registry_id.as_option(),
            copy_referrers: *known(&self.copy_referrers, "copy_referrers")?,
            verify: match self.verify {
                Value::Null => None,
                verify => Some(known(&verify, "verify")?.clone()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::fixtures::{config, v};
    use super::*;

    fn attributes(errors: &[Error]) -> Vec<&'static str> {
        errors.iter().filter_map(Error::attribute).collect()
    }

    #[test]
    fn defaults_are_decided_once() {
        let args = Arguments::parse(&config("nginx"), CopyMethod::Registry);
        assert_eq!(args.tag, v("latest"));
        assert_eq!(args.method, Value::Value(CopyMethod::Registry));
        let mirror = Arguments::parse(&config("nginx:1.27"), CopyMethod::Docker)
            .mirror()
            .unwrap();
        assert_eq!(mirror.tag, "1.27");
        assert_eq!(mirror.method, CopyMethod::Docker);
        assert_eq!(mirror.platform, None);
        assert_eq!(mirror.registry_id, None);
    }

    #[test]
    fn every_bad_argument_is_named() {
        let mut bad = config("Nginx");
        bad.repository = v("Bad_Repo");
        bad.tag = v(".x");
        bad.platform = v("linux");
        bad.copy_method = v("skopeo");
        bad.registry_id = v("12");
        let args = Arguments::parse(&bad, CopyMethod::Docker);
        assert_eq!(
            attributes(&args.errors),
            vec![
                "docker_source",
                "repository",
                "tag",
                "platform",
                "copy_method",
                "registry_id"
            ]
        );
        assert_eq!(
            args.mirror().unwrap_err().attribute(),
            Some("docker_source")
        );
    }

    fn set(items: &[&str]) -> Value<BTreeSet<Value<String>>> {
        Value::Value(items.iter().map(|i| v(i)).collect())
    }

    #[test]
    fn platforms_are_checked_against_platform_and_the_method() {
        let mut cfg = config("nginx");
        cfg.platforms = set(&["linux/amd64", "linux/arm64/v8"]);
        let args = Arguments::parse(&cfg, CopyMethod::Registry);
        assert!(args.errors.is_empty(), "{:?}", args.errors);
        assert_eq!(args.mirror().unwrap().platforms.unwrap().len(), 2);
        // Validation does not know the provider's method yet; a plan with Docker does.
        assert!(Arguments::parse(&cfg, None).errors.is_empty());
        assert_eq!(
            attributes(&Arguments::parse(&cfg, CopyMethod::Docker).errors),
            vec!["platforms"]
        );
        cfg.platform = v("linux/amd64");
        assert_eq!(
            attributes(&Arguments::parse(&cfg, CopyMethod::Registry).errors),
            vec!["platforms"]
        );
        let mut with_null = config("nginx");
        with_null.platforms = Value::Value([v("linux/amd64"), Value::Null].into_iter().collect());
        assert_eq!(
            attributes(&Arguments::parse(&with_null, None).errors),
            vec!["platforms"],
            "a null element fails validation"
        );
        let mut with_unknown = config("nginx");
        with_unknown.platforms =
            Value::Value([v("linux/amd64"), Value::Unknown].into_iter().collect());
        let args = Arguments::parse(&with_unknown, None);
        assert!(args.errors.is_empty() && args.platforms.is_unknown());
        for bad in [&["linux"][..], &[], &["linux/arm64", "linux/arm64/v8"]] {
            let mut cfg = config("nginx");
            cfg.platforms = set(bad);
            assert_eq!(
                attributes(&Arguments::parse(&cfg, CopyMethod::Registry).errors),
                vec!["platforms"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn copy_referrers_needs_the_registry_method() {
        let mut cfg = config("nginx");
        cfg.copy_referrers = Value::Value(true);
        assert!(Arguments::parse(&cfg, CopyMethod::Registry)
            .errors
            .is_empty());
        assert!(Arguments::parse(&cfg, None).errors.is_empty());
        assert_eq!(
            attributes(&Arguments::parse(&cfg, CopyMethod::Docker).errors),
            vec!["copy_referrers"]
        );
        let mirror = Arguments::parse(&config("nginx"), CopyMethod::Docker)
            .mirror()
            .unwrap();
        assert!(!mirror.copy_referrers);
    }

    #[test]
    fn a_digest_only_source_needs_a_tag() {
        let cfg = config(&format!("nginx@sha256:{}", "a".repeat(64)));
        let args = Arguments::parse(&cfg, CopyMethod::Docker);
        assert_eq!(attributes(&args.errors), vec!["tag"]);
    }

    #[test]
    fn unknowns_pass_validation_and_fail_apply_by_name() {
        let mut cfg = config("nginx");
        cfg.docker_source = Value::Unknown;
        let args = Arguments::parse(&cfg, CopyMethod::Docker);
        assert!(args.errors.is_empty());
        assert!(args.tag.is_unknown());
        assert_eq!(
            args.mirror().unwrap_err().attribute(),
            Some("docker_source")
        );
        cfg.docker_source = Value::Null;
        let args = Arguments::parse(&cfg, CopyMethod::Docker);
        assert_eq!(attributes(&args.errors), vec!["docker_source"]);
    }
}
