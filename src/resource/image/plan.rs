//! Plan rules for `ecrmirror_image`: validation, defaults, what replaces and what re-mirrors.
//!
//! Pure functions of the configuration and prior state, unit-tested here.

use std::time::Duration;

use tf_provider::value::Value;

use super::config::Arguments;
use super::state::{
    or_false, ImageState, Private, Timeouts, CREATE_TIMEOUT, DELETE_TIMEOUT, UPDATE_TIMEOUT,
};
pub(crate) use crate::error::Operation;
use crate::error::{Error, Narrowing};

/// Attributes whose change replaces the mirror (another tag is another object).
/// Checks every known argument; unknown values are checked at apply.
pub(crate) fn validate(config: &ImageState) -> Vec<Error> {
    let mut errors = Arguments::parse(config, None).errors;
    if config.timeouts.is_value() {
        for operation in Operation::ALL {
            if let Err(error) = timeout(&config.timeouts, operation) {
                errors.push(error);
            }
        }
    }
    errors
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("a timeout must be longer than zero".into()),
        Err(_) => Err(format!(
            "`{text}` is not a duration; write e.g. `30s`, `20m` or `1h30m`"
        )),
    }
}

/// The limit for `operation`: the `timeouts` block's value or the default.
pub(crate) fn timeout(timeouts: &Value<Timeouts>, operation: Operation) -> Result<Duration, Error> {
    let (value, default) = match (timeouts, operation) {
        (Value::Value(t), Operation::Create) => (&t.create, CREATE_TIMEOUT),
        (Value::Value(t), Operation::Update) => (&t.update, UPDATE_TIMEOUT),
        (Value::Value(t), Operation::Delete) => (&t.delete, DELETE_TIMEOUT),
        (_, Operation::Create) => return Ok(CREATE_TIMEOUT),
        (_, Operation::Update) => return Ok(UPDATE_TIMEOUT),
        (_, Operation::Delete) => return Ok(DELETE_TIMEOUT),
    };
    match value {
        Value::Value(text) => parse_duration(text).map_err(|detail| Error::Invalid {
            attribute: match operation {
                Operation::Create => "timeouts.create",
                Operation::Update => "timeouts.update",
                Operation::Delete => "timeouts.delete",
            },
            detail: format!("`{}`: {detail}", operation.name()),
        }),
        _ => Ok(default),
    }
}

/// Plans a new mirror of `config`, whose arguments are `args`.
pub(crate) fn plan_create(
    proposed: ImageState,
    config: &ImageState,
    args: Arguments,
) -> ImageState {
    ImageState {
        copy_method: args.method.map(|m| m.to_string()),
        tag: args.tag,
        keep_remotely: or_false(&config.keep_remotely),
        track_source: or_false(&config.track_source),
        copy_referrers: args.copy_referrers,
        referrer_digests: match args.copy_referrers {
            Value::Value(false) => Value::Null,
            _ => Value::Unknown,
        },
        registry_id: match &config.registry_id {
            Value::Value(id) => Value::Value(id.clone()),
            _ => Value::Unknown,
        },
        id: Value::Unknown,
        image_uri: Value::Unknown,
        image_digest: Value::Unknown,
        image_uri_digest: Value::Unknown,
        source_digest: Value::Unknown,
        verified_by: match args.verify {
            Value::Null => Value::Null,
            _ => Value::Unknown,
        },
        ..proposed
    }
}

/// Whether the last read saw the mirror out of date: the tag in ECR re-pointed outside
/// Terraform, (with `track_source`) the source tag moved upstream, or (with
/// `copy_referrers`) a referrer deleted in ECR or (with `track_source`) a new one upstream.
pub(crate) fn drifted(prior: &ImageState, private: &Private) -> bool {
    let Some(private) = private else {
        return false;
    };
    let moved = |remembered: &Option<String>, now: &Value<String>| match (remembered, now) {
        (Some(remembered), Value::Value(now)) => remembered != now,
        _ => false,
    };
    let referrers_moved = match (&private.referrer_digests, &prior.referrer_digests) {
        (Some(copied), Value::Value(now)) => {
            copied
                .iter()
                .map(|d| Value::Value(d.clone()))
                .collect::<Vec<_>>()
                != *now
        }
        _ => false,
    };
    moved(&private.pushed_digest, &prior.image_digest)
        || (prior.track_source == Value::Value(true)
            && moved(&private.source_digest, &prior.source_digest))
        || (prior.copy_referrers == Value::Value(true) && referrers_moved)
}

/// Plans a change to an existing mirror of `config`, whose arguments are `args`; returns
/// the planned state and the attributes that force replacement. `relocated`: the provider's
/// registry is not the one state records the mirror in (it moved, or the provider's
/// `region` or `profile` is not known yet), so the apply records it anew, wherever it lands.
pub(crate) fn plan_update(
    prior: &ImageState,
    proposed: ImageState,
    config: &ImageState,
    private: &Private,
    args: Arguments,
    relocated: bool,
) -> (ImageState, Vec<&'static str>) {
    let args_verify = args.verify;
    let mut planned = ImageState {
        copy_method: args.method.map(|m| m.to_string()),
        tag: args.tag,
        keep_remotely: or_false(&config.keep_remotely),
        track_source: or_false(&config.track_source),
        copy_referrers: args.copy_referrers,
        referrer_digests: prior.referrer_digests.clone(),
        registry_id: match &config.registry_id {
            // A mirror that moves registry is recorded in the account it lands in.
            Value::Null if relocated => Value::Unknown,
            Value::Null => prior.registry_id.clone(),
            other => other.clone(),
        },
        ..proposed
    };
    // What forces a replacement: another repository, tag, or a registry_id the
    // configuration changes (computed anew for a mirror that moves, it moves: an update).
    let changed = [
        ("repository", planned.repository != prior.repository),
        ("tag", planned.tag != prior.tag),
        (
            "registry_id",
            !config.registry_id.is_null() && planned.registry_id != prior.registry_id,
        ),
    ];
    let replace: Vec<&'static str> = changed
        .into_iter()
        .filter_map(|(attribute, changed)| changed.then_some(attribute))
        .collect();
    let remirror = !replace.is_empty()
        || relocated
        || planned.docker_source != prior.docker_source
        || planned.platform != prior.platform
        || planned.platforms != prior.platforms
        // Turning referrers on copies them (with the image the source names now); turning
        // them off changes nothing the image digests name.
        || (planned.copy_referrers != or_false(&prior.copy_referrers)
            && planned.copy_referrers != Value::Value(false))
        || planned.copy_method != prior.copy_method
        || planned.triggers != prior.triggers
        || drifted(prior, private);
    if !replace.is_empty() || relocated {
        planned.id = Value::Unknown;
        planned.image_uri = Value::Unknown;
    }
    if remirror {
        planned.image_digest = Value::Unknown;
        planned.image_uri_digest = Value::Unknown;
        planned.source_digest = Value::Unknown;
    }
    // What verified the mirror: verified again when it is copied again or `verify` changed
    // (the plan verifies when it can, else the apply).
    planned.verified_by = match &args_verify {
        Value::Null => Value::Null,
        _ if remirror || planned.verify != prior.verify || !prior.verified_by.is_value() => {
            Value::Unknown
        }
        _ => prior.verified_by.clone(),
    };
    planned.referrer_digests = match (&planned.copy_referrers, remirror) {
        (Value::Value(false), _) => Value::Null,
        (_, true) => Value::Unknown,
        (_, false) => planned.referrer_digests,
    };
    (planned, replace)
}

/// The warning for a plan that mirrors fewer platforms (the Docker method's one, a
/// `platform`, or a `platforms` set it did not have) into the same tag while ECR's tag holds
/// the multi-platform index the mirror recorded, or an import found: without it, an
/// imported registry copy followed by a `docker_source` and the default method would
/// quietly lose every other platform.
pub(crate) fn index_replaced(
    prior: &ImageState,
    planned: &ImageState,
    private: &Private,
    replace: &[&str],
) -> Option<Error> {
    let private = private.as_ref()?;
    let (Value::Value(held), Some(true)) = (&prior.image_digest, private.pushed_index) else {
        return None;
    };
    if !replace.is_empty()
        || !planned.image_digest.is_unknown()
        || private.pushed_digest.as_ref() != Some(held)
    {
        return None;
    }
    let by = match planned.copy_method.as_ref_option().map(String::as_str) {
        Some("docker") => Narrowing::Docker {
            platform: planned.platform.is_value(),
        },
        Some(_) if planned.platform.is_value() => Narrowing::Platform,
        Some(_) if planned.platforms.is_value() && planned.platforms != prior.platforms => {
            Narrowing::Platforms
        }
        _ => return None,
    };
    let (Value::Value(repository), Value::Value(tag)) = (&planned.repository, &planned.tag) else {
        return None;
    };
    Some(Error::IndexReplaced {
        target: format!("{repository}:{tag}"),
        index: held.clone(),
        by,
    })
}

#[cfg(test)]
mod tests {
    use super::super::state::fixtures::{config, v};
    use super::super::state::PrivateData;
    use super::*;
    use crate::transfer::CopyMethod;

    fn applied(source: &str) -> ImageState {
        ImageState {
            tag: v("1.0"),
            registry_id: v("123456789012"),
            keep_remotely: Value::Value(false),
            track_source: Value::Value(false),
            copy_referrers: Value::Value(false),
            copy_method: v("docker"),
            id: v("host/mirror/app:1.0"),
            image_uri: v("host/mirror/app:1.0"),
            image_digest: v("sha256:aaa"),
            image_uri_digest: v("host/mirror/app@sha256:aaa"),
            source_digest: v("sha256:src"),
            ..config(source)
        }
    }

    /// `plan_update` after a mirror that pushed `sha256:aaa`, with the Docker method.
    fn update(
        prior: &ImageState,
        proposed: ImageState,
        config: &ImageState,
    ) -> (ImageState, Vec<&'static str>) {
        plan_update(
            prior,
            proposed,
            config,
            &pushed("sha256:aaa"),
            Arguments::parse(config, CopyMethod::Docker),
            false,
        )
    }

    fn pushed(digest: &str) -> Private {
        Some(PrivateData {
            pushed_digest: Some(digest.to_string()),
            source_digest: Some("sha256:src".to_string()),
            referrer_digests: None,
            pushed_index: None,
        })
    }

    #[test]
    fn one_platform_over_an_index_ecr_holds_is_a_warning_on_what_asks_for_it() {
        // An import of a registry copy of an index: no docker_source, no copy_method.
        let imported = ImageState {
            docker_source: Value::Null,
            copy_method: Value::Null,
            ..applied("app:1.0")
        };
        let index = Some(PrivateData {
            pushed_index: Some(true),
            ..pushed("sha256:aaa").unwrap()
        });
        let warned = |cfg: &ImageState, method: CopyMethod, private: &Private| {
            let args = Arguments::parse(cfg, method);
            let (planned, replace) = plan_update(&imported, cfg.clone(), cfg, private, args, false);
            index_replaced(&imported, &planned, private, &replace).and_then(|e| e.attribute())
        };
        let cfg = config("app:1.0");
        assert_eq!(
            warned(&cfg, CopyMethod::Docker, &index),
            Some("copy_method")
        );
        assert_eq!(warned(&cfg, CopyMethod::Registry, &index), None);
        let one = ImageState {
            platform: v("linux/arm64"),
            ..cfg.clone()
        };
        assert_eq!(warned(&one, CopyMethod::Registry, &index), Some("platform"));
        // The Docker method with `platform` is the Docker method's case.
        assert_eq!(
            warned(&one, CopyMethod::Docker, &index),
            Some("copy_method")
        );
        // A subset of platforms is a new, smaller index.
        let some = ImageState {
            platforms: Value::Value(std::iter::once(v("linux/amd64")).collect()),
            ..cfg.clone()
        };
        assert_eq!(
            warned(&some, CopyMethod::Registry, &index),
            Some("platforms")
        );
        // ECR holds an image, or nobody recorded what it holds: no warning.
        assert_eq!(
            warned(&cfg, CopyMethod::Docker, &pushed("sha256:aaa")),
            None
        );
        // The tag was re-pointed since (another digest than the one recorded): unknown.
        let moved = Some(PrivateData {
            pushed_index: Some(true),
            ..pushed("sha256:bbb").unwrap()
        });
        assert_eq!(warned(&cfg, CopyMethod::Docker, &moved), None);
        // Another tag is another object: the index stays where it is.
        let elsewhere = ImageState {
            tag: v("2.0"),
            ..cfg
        };
        assert_eq!(warned(&elsewhere, CopyMethod::Docker, &index), None);
    }

    #[test]
    fn a_mirror_that_moves_registry_is_updated_into_the_account_it_lands_in() {
        let prior = applied("app:1.0");
        let cfg = config("app:1.0");
        let args = || Arguments::parse(&cfg, CopyMethod::Docker);
        let moved = |cfg: &ImageState| {
            plan_update(
                &prior,
                cfg.clone(),
                cfg,
                &pushed("sha256:aaa"),
                args(),
                true,
            )
        };
        // registry_id computed: planned anew, an update, not a replacement.
        let (planned, replace) = moved(&cfg);
        assert!(replace.is_empty(), "{replace:?}");
        assert!(planned.registry_id.is_unknown());
        assert!(planned.id.is_unknown() && planned.image_digest.is_unknown());
        // registry_id configured to another account: replaced, as before.
        let other = ImageState {
            registry_id: v("210987654321"),
            ..cfg.clone()
        };
        let (planned, replace) = moved(&other);
        assert_eq!(replace, vec!["registry_id"]);
        assert_eq!(planned.registry_id, v("210987654321"));
        // Not moved, registry_id computed: kept.
        let (planned, replace) = update(&prior, cfg.clone(), &cfg);
        assert!(replace.is_empty());
        assert_eq!(planned.registry_id, v("123456789012"));
    }

    #[test]
    fn tag_defaults_to_the_source_tag_or_latest() {
        let tag = |cfg: ImageState| {
            plan_create(
                cfg.clone(),
                &cfg,
                Arguments::parse(&cfg, CopyMethod::Docker),
            )
            .tag
        };
        assert_eq!(tag(config("nginx:1.27")), v("1.27"));
        assert_eq!(tag(config("nginx")), v("latest"));
        let mut unknown = config("nginx");
        unknown.docker_source = Value::Unknown;
        assert_eq!(tag(unknown), Value::Unknown);
    }

    #[test]
    fn create_plans_computed_values_unknown_and_defaults_known() {
        let cfg = config("app:1.0");
        let planned = plan_create(
            cfg.clone(),
            &cfg,
            Arguments::parse(&cfg, CopyMethod::Docker),
        );
        assert_eq!(planned.tag, v("1.0"));
        assert_eq!(planned.keep_remotely, Value::Value(false));
        assert!(planned.image_digest.is_unknown());
        assert!(planned.registry_id.is_unknown());
    }

    #[test]
    fn unchanged_configuration_plans_no_change() {
        let prior = applied("app:1.0");
        let (planned, replace) = update(&prior, prior.clone(), &config("app:1.0"));
        assert!(replace.is_empty());
        assert_eq!(planned, prior);
    }

    #[test]
    fn new_source_is_an_in_place_remirror() {
        let prior = applied("app:1.0");
        let mut cfg = config("other:1.0");
        cfg.tag = v("1.0");
        let proposed = ImageState {
            docker_source: v("other:1.0"),
            ..prior.clone()
        };
        let (planned, replace) = update(&prior, proposed, &cfg);
        assert!(replace.is_empty());
        assert!(planned.image_digest.is_unknown());
        assert_eq!(planned.image_uri, prior.image_uri);
    }

    #[test]
    fn tag_repository_and_registry_changes_replace() {
        let prior = applied("app:1.0");
        let (_, replace) = update(&prior, prior.clone(), &config("app:2.0"));
        assert_eq!(replace, vec!["tag"]);
        let mut moved = config("app:1.0");
        moved.repository = v("elsewhere");
        moved.registry_id = v("210987654321");
        let proposed = ImageState {
            repository: v("elsewhere"),
            ..prior.clone()
        };
        let (planned, replace) = update(&prior, proposed, &moved);
        assert_eq!(replace, vec!["repository", "registry_id"]);
        assert!(planned.id.is_unknown());
    }

    #[test]
    fn a_tag_repointed_in_ecr_plans_a_remirror() {
        let mut prior = applied("app:1.0");
        prior.image_digest = v("sha256:other");
        let (planned, replace) = update(&prior, prior.clone(), &config("app:1.0"));
        assert!(replace.is_empty());
        assert!(planned.image_digest.is_unknown());
    }

    #[test]
    fn a_moved_source_plans_a_remirror_only_when_tracked() {
        let mut prior = applied("app:1.0");
        prior.source_digest = v("sha256:moved");
        let (planned, _) = update(&prior, prior.clone(), &config("app:1.0"));
        assert_eq!(planned.image_digest, prior.image_digest, "untracked");
        let mut cfg = config("app:1.0");
        cfg.track_source = Value::Value(true);
        prior.track_source = Value::Value(true);
        let (planned, replace) = update(&prior, prior.clone(), &cfg);
        assert!(replace.is_empty());
        assert!(planned.image_digest.is_unknown());
        assert!(planned.source_digest.is_unknown());
    }

    #[test]
    fn an_import_plans_an_in_place_update_that_sets_docker_source() {
        let mut prior = applied("app:1.0");
        prior.docker_source = Value::Null;
        let proposed = ImageState {
            docker_source: v("app:1.0"),
            ..prior.clone()
        };
        let cfg = config("app:1.0");
        let (planned, replace) = plan_update(
            &prior,
            proposed,
            &cfg,
            &None,
            Arguments::parse(&cfg, CopyMethod::Docker),
            false,
        );
        assert!(replace.is_empty());
        assert_eq!(planned.docker_source, v("app:1.0"));
        assert!(planned.image_digest.is_unknown());
    }

    #[test]
    fn referrers_deleted_in_ecr_or_new_upstream_plan_a_remirror() {
        let mut prior = applied("app:1.0");
        prior.copy_referrers = Value::Value(true);
        prior.copy_method = v("registry");
        prior.referrer_digests = Value::Value(vec![v("sha256:r1")]);
        let mut cfg = config("app:1.0");
        cfg.copy_referrers = Value::Value(true);
        let copied = |digests: &[&str]| {
            Some(PrivateData {
                pushed_digest: Some("sha256:aaa".into()),
                source_digest: Some("sha256:src".into()),
                referrer_digests: Some(digests.iter().map(|d| d.to_string()).collect()),
                pushed_index: None,
            })
        };
        let plan = |cfg: &ImageState, private: &Private| {
            let args = Arguments::parse(cfg, CopyMethod::Registry);
            plan_update(&prior, prior.clone(), cfg, private, args, false).0
        };
        assert_eq!(plan(&cfg, &copied(&["sha256:r1"])), prior);
        let remirror = plan(&cfg, &copied(&["sha256:r1", "sha256:r2"]));
        assert!(remirror.image_digest.is_unknown());
        assert!(remirror.referrer_digests.is_unknown());
        // Turned off: nothing to copy, nothing recorded, and the image stays as it is.
        cfg.copy_referrers = Value::Value(false);
        let off = plan(&cfg, &copied(&["sha256:r1"]));
        assert!(off.referrer_digests.is_null());
        assert_eq!(off.image_digest, prior.image_digest);
        assert_eq!(off.image_uri_digest, prior.image_uri_digest);
        assert_eq!(off.source_digest, prior.source_digest);
    }

    #[test]
    fn keep_remotely_changes_nothing_in_ecr() {
        let prior = applied("app:1.0");
        let mut cfg = config("app:1.0");
        cfg.keep_remotely = Value::Value(true);
        let proposed = ImageState {
            keep_remotely: Value::Value(true),
            ..prior.clone()
        };
        let (planned, replace) = update(&prior, proposed, &cfg);
        assert!(replace.is_empty());
        assert_eq!(planned.image_digest, prior.image_digest);
        assert_eq!(planned.keep_remotely, Value::Value(true));
    }

    /// Arguments that change how the mirror is watched, kept or timed, not what it holds:
    /// each plans the same digests and URIs, so nothing pinned to them is replaced.
    #[test]
    fn track_source_and_timeouts_change_nothing_in_ecr() {
        let prior = applied("app:1.0");
        let tracked = ImageState {
            track_source: Value::Value(true),
            ..config("app:1.0")
        };
        let timed = ImageState {
            timeouts: Value::Value(Timeouts {
                create: v("45m"),
                delete: v("1m"),
                ..Default::default()
            }),
            ..config("app:1.0")
        };
        for cfg in [tracked, timed] {
            let proposed = ImageState {
                track_source: cfg.track_source,
                timeouts: cfg.timeouts.clone(),
                ..prior.clone()
            };
            let (planned, replace) = update(&prior, proposed, &cfg);
            assert!(replace.is_empty(), "{replace:?}");
            assert_eq!(planned.image_digest, prior.image_digest);
            assert_eq!(planned.image_uri_digest, prior.image_uri_digest);
            assert_eq!(planned.source_digest, prior.source_digest);
            assert_eq!(planned.id, prior.id);
        }
    }

    #[test]
    fn validation_reports_the_arguments_and_the_timeouts() {
        let mut bad = config("Nginx");
        bad.timeouts = Value::Value(Timeouts {
            create: v("soon"),
            ..Default::default()
        });
        let attributes: Vec<_> = validate(&bad)
            .iter()
            .filter_map(|e| e.attribute())
            .collect();
        assert_eq!(attributes, vec!["docker_source", "timeouts.create"]);
    }

    #[test]
    fn digest_only_source_needs_a_tag() {
        let cfg = config(&format!("nginx@sha256:{}", "a".repeat(64)));
        let errors = validate(&cfg);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].attribute(), Some("tag"));
    }

    #[test]
    fn null_required_arguments_and_unknowns() {
        let mut cfg = config("nginx");
        cfg.docker_source = Value::Null;
        assert_eq!(validate(&cfg)[0].attribute(), Some("docker_source"));
        cfg.docker_source = Value::Unknown;
        cfg.repository = Value::Unknown;
        assert!(validate(&cfg).is_empty());
    }

    #[test]
    fn timeouts_default_and_parse() {
        assert_eq!(
            timeout(&Value::Null, Operation::Delete).unwrap(),
            DELETE_TIMEOUT
        );
        let block = Value::Value(Timeouts {
            create: v("90s"),
            update: v("soon"),
            delete: Value::Null,
        });
        assert_eq!(
            timeout(&block, Operation::Create).unwrap(),
            Duration::from_secs(90)
        );
        assert!(timeout(&block, Operation::Update).is_err());
        assert_eq!(timeout(&block, Operation::Delete).unwrap(), DELETE_TIMEOUT);
    }
}
