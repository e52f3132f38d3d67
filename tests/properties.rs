//! Property tests for the pure parsers and classifiers that take what users and registries
//! send: image references, platforms, import IDs, ECR hosts, manifests and indexes, image
//! configs, ECR error codes, Docker config files, `Retry-After` and `WWW-Authenticate`
//! headers, and the functions that keep credentials out of diagnostics.
//! Every parser must answer any input without a panic, and what it accepts must read back as
//! the same value after display (parse → display → parse).
//!
//! `make test` runs each property for proptest's default 256 cases; `make fuzz` runs them
//! with many more (`PROPTEST_CASES`).

use bytes::Bytes;
use std::time::{Duration, SystemTime};

use base64::Engine;
use ecrmirror::credentials::{
    in_docker_config, normalize_address, AuthBlock, Credentials, SourceAuth,
};
use ecrmirror::distribution::headers::{challenge, retry_after, Challenge, LONGEST_WAIT};
use ecrmirror::error::{without_queries, AwsRefusal};
use ecrmirror::manifest::{self, ConfigPlatform, Fetched};
use ecrmirror::network::origin;
use ecrmirror::reference::{EcrHost, ImportId, Platform, SourceRef};
use ecrmirror::secret::Secret;
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

/// Strings made of the characters references, IDs and platforms are written with, so the
/// parsers' inner paths are reached far more often than with any `String`.
fn reference_like() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./:@_+-]{0,90}"
}

/// Any text at all, up to a few hundred characters.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), reference_like()]
}

/// A reference written from its parts, with the parts it was written from.
#[derive(Debug, Clone)]
struct Written {
    text: String,
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A reference's parts, any of which may be left out but the path.
fn reference_parts() -> impl Strategy<Value = (Option<String>, String, Option<String>)> {
    (
        proptest::option::of("[a-z][a-z0-9]{0,8}\\.[a-z]{2,3}(:[0-9]{2,5})?"),
        "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
    )
}

/// `[registry/]path[:tag][@digest]`, as a user writes it.
fn write(registry: Option<&str>, path: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    let mut text = registry.map_or_else(|| path.to_string(), |r| format!("{r}/{path}"));
    if let Some(tag) = tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = digest {
        text.push('@');
        text.push_str(digest);
    }
    text
}

fn written_reference() -> impl Strategy<Value = Written> {
    (
        reference_parts(),
        proptest::option::of("sha256:[0-9a-f]{64}"),
    )
        .prop_map(|((registry, path, tag), digest)| Written {
            text: write(
                registry.as_deref(),
                &path,
                tag.as_deref(),
                digest.as_deref(),
            ),
            registry,
            path,
            tag,
            digest,
        })
}

/// The parts of a parsed reference that any consumer reads.
fn parts(reference: &SourceRef) -> (String, String, Option<String>, Option<String>) {
    (
        reference.host().to_string(),
        reference.repository().to_string(),
        reference.tag().map(str::to_string),
        reference.digest().map(str::to_string),
    )
}

/// A registry host as `docker login` names one.
fn registry_host() -> impl Strategy<Value = String> {
    "[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,5})?"
}

/// What a Docker config file's `auths` entry holds, written as `docker login` or a user does.
#[derive(Debug, Clone)]
enum Entry {
    /// `auth`: base64 of `user:password`.
    Auth(String, String),
    /// `username` and `password` fields.
    Fields(String, String),
    /// `identitytoken`.
    Token(String),
}

fn entry() -> impl Strategy<Value = Entry> {
    // Passwords hold any printable character, `:` and `"` included.
    let user = "[a-z][a-z0-9_.-]{0,10}";
    let password = "[ -~]{1,24}";
    prop_oneof![
        (user, password).prop_map(|(u, p)| Entry::Auth(u, p)),
        (user, password).prop_map(|(u, p)| Entry::Fields(u, p)),
        "[A-Za-z0-9._-]{8,40}".prop_map(Entry::Token),
    ]
}

/// A Docker config file with one `auths` entry under `key`.
fn docker_config(key: &str, entry: &Entry) -> Vec<u8> {
    let value = match entry {
        Entry::Auth(user, password) => serde_json::json!({
            "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
        }),
        Entry::Fields(user, password) => {
            serde_json::json!({ "username": user, "password": password })
        }
        Entry::Token(token) => serde_json::json!({ "identitytoken": token }),
    };
    serde_json::to_vec(&serde_json::json!({ "auths": { key: value } })).unwrap()
}

/// Whether `given` are the credentials `entry` holds, for `host`.
fn holds(given: &Credentials, entry: &Entry, host: &str) -> bool {
    match (given, entry) {
        (
            Credentials::Basic {
                server,
                username,
                password,
            },
            Entry::Auth(user, pass) | Entry::Fields(user, pass),
        ) => server == host && username == user && password.expose() == pass,
        (Credentials::IdentityToken { server, token }, Entry::Token(t)) => {
            server == host && token.expose() == t
        }
        _ => false,
    }
}

/// A header map with `name` set to each of `values` that is a valid header value.
fn headers(name: reqwest::header::HeaderName, values: &[String]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(name.clone(), value);
        }
    }
    map
}

/// `text` as an HTTP quoted string.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #[test]
    fn any_reference_text_is_answered_and_accepted_ones_read_back(text in any_text()) {
        if let Ok(reference) = SourceRef::parse(&text) {
            let again = SourceRef::parse(&reference.to_string())
                .map_err(|err| TestCaseError::fail(format!("{reference} does not parse again: {err}")))?;
            prop_assert_eq!(parts(&again), parts(&reference));
            prop_assert_eq!(again.to_string(), reference.to_string());
            // What the engine is asked to pull names the same image.
            let pulled = SourceRef::parse(&reference.pull_reference())
                .map_err(|err| TestCaseError::fail(format!("pull reference of {reference}: {err}")))?;
            prop_assert_eq!(pulled.host(), reference.host());
            prop_assert_eq!(pulled.repository(), reference.repository());
        }
    }

    #[test]
    fn a_reference_written_from_parts_has_those_parts(w in written_reference()) {
        let reference = SourceRef::parse(&w.text)
            .map_err(|err| TestCaseError::fail(format!("{} refused: {err}", w.text)))?;
        let host = w.registry.clone().unwrap_or_else(|| "docker.io".into());
        prop_assert_eq!(reference.host(), host.as_str());
        let repository = if w.registry.is_none() && !w.path.contains('/') {
            format!("library/{}", w.path)
        } else {
            w.path.clone()
        };
        prop_assert_eq!(reference.repository(), repository.as_str());
        prop_assert_eq!(reference.digest(), w.digest.as_deref());
        // The tag mirrored by default: the tag written, `latest` without one, none when
        // pinned by digest only.
        let default_tag = match (&w.tag, &w.digest) {
            (Some(tag), _) => Some(tag.as_str()),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        };
        prop_assert_eq!(reference.default_tag(), default_tag);
    }

    #[test]
    fn an_uppercase_digest_is_refused(
        (registry, path, tag) in reference_parts(),
        (before, after) in ("[0-9a-f]{0,63}", "[0-9a-f]{0,63}"),
        upper in "[A-F]",
    ) {
        // 64 hex digits, one of them an uppercase letter.
        let hex: String = format!("{before}{upper}{after}").chars().take(64).collect();
        let hex = format!("{hex:0>64}");
        let digest = format!("sha256:{hex}");
        let text = write(registry.as_deref(), &path, tag.as_deref(), Some(&digest));
        prop_assert!(SourceRef::parse(&text).is_err(), "{} was accepted", text);
    }

    #[test]
    fn any_platform_text_is_answered_and_accepted_ones_read_back(text in any_text()) {
        if let Ok(platform) = Platform::parse(&text) {
            prop_assert_eq!(platform.to_string(), text.clone());
            prop_assert_eq!(Platform::parse(&platform.to_string()), Ok(platform.clone()));
            prop_assert!(platform.same_as(&platform));
        }
    }

    #[test]
    fn a_platform_written_from_parts_has_those_parts(
        os in "[a-z0-9_]{1,8}",
        architecture in "[a-z0-9_]{1,8}",
        variant in proptest::option::of("[a-z0-9_]{1,4}"),
    ) {
        let text = match &variant {
            Some(v) => format!("{os}/{architecture}/{v}"),
            None => format!("{os}/{architecture}"),
        };
        let platform = Platform::parse(&text)
            .map_err(|err| TestCaseError::fail(format!("{text} refused: {err}")))?;
        prop_assert_eq!(&platform.os, &os);
        prop_assert_eq!(&platform.architecture, &architecture);
        prop_assert_eq!(&platform.variant, &variant);
        // An image of that platform matches it, one of another architecture never does.
        prop_assert!(platform.matches(&os, &architecture, variant.as_deref()));
        let other = format!("{architecture}x");
        prop_assert!(!platform.matches(&os, &other, variant.as_deref()));
    }

    #[test]
    fn any_import_id_is_answered_and_accepted_ones_read_back(text in any_text()) {
        if let Ok(id) = ImportId::parse(&text) {
            let written = match &id.host {
                Some(host) => format!("{host}/{}:{}", id.repository, id.tag),
                None => format!("{}:{}", id.repository, id.tag),
            };
            prop_assert_eq!(ImportId::parse(&written), Ok(id.clone()));
        }
    }

    #[test]
    fn an_ecr_host_reads_as_its_account_and_region(
        account in "[0-9]{12}",
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        domain in prop_oneof![Just("amazonaws.com"), Just("amazonaws.com.cn"), Just("on.aws")],
        noise in any_text(),
    ) {
        let host = format!("{account}.dkr.ecr.{region}.{domain}");
        let parsed = EcrHost::parse(&host);
        prop_assert_eq!(parsed, Some(EcrHost { registry_id: &account, region: &region }));
        // Anything else is answered too, and a host that is not ECR's never names an account.
        let _ = EcrHost::parse(&noise);
        let foreign = format!("{account}.dkr.ecr.{region}.example.com");
        prop_assert_eq!(EcrHost::parse(&foreign), None);
    }

    #[test]
    fn any_manifest_body_is_answered(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        "[\\[\\]{}\":,0-9a-z ]{0,200}".prop_map(String::into_bytes),
    ]) {
        if let Ok(fetched) = Fetched::parse("sha256:x".into(), Bytes::from(body.clone())) {
            let _ = fetched.media_type();
            let _ = fetched.config_digest();
            let _ = fetched.blobs();
            if let Some(index) = fetched.index() {
                let _ = manifest::platforms(index);
            }
        }
        let _ = ConfigPlatform::parse(&body);
        let _ = manifest::index_of(&body, |_, _| true);
    }

    #[test]
    fn an_index_finds_every_platform_it_lists_and_keeps_what_is_kept(
        entries in proptest::collection::vec(
            ("[a-z]{1,6}", "[a-z0-9]{1,6}", proptest::option::of("v[0-9]")),
            1..8,
        ),
        kept in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(variant) = variant {
                    platform["variant"] = variant.clone().into();
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{i:064x}"),
                    "size": 1,
                    "platform": platform,
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })).map_err(|err| TestCaseError::fail(err.to_string()))?;
        let fetched = Fetched::parse(manifest::digest_of(&body), Bytes::from(body.clone()))
            .map_err(TestCaseError::fail)?;
        let index = fetched.index().ok_or_else(|| TestCaseError::fail("not an index"))?;
        for listed in manifest::platforms(index) {
            let platform = Platform::parse(&listed)
                .map_err(|err| TestCaseError::fail(format!("listed {listed}: {err}")))?;
            let found = manifest::find_platform(index, &platform)
                .ok_or_else(|| TestCaseError::fail(format!("{listed} listed but not found")))?;
            let p = found.platform.as_ref().ok_or_else(|| TestCaseError::fail("no platform"))?;
            prop_assert!(platform.matches(&p.os.to_string(), &p.architecture.to_string(), p.variant.as_deref()));
        }
        let keep = |digest: &str| {
            let i = usize::from_str_radix(digest.trim_start_matches("sha256:"), 16).unwrap_or(usize::MAX);
            kept.get(i).copied().unwrap_or(false)
        };
        let subset = manifest::index_of(&body, |digest, _| keep(digest))
            .map_err(TestCaseError::fail)?;
        let subset = Fetched::parse(manifest::digest_of(&subset), Bytes::from(subset))
            .map_err(TestCaseError::fail)?;
        let left: Vec<String> = subset
            .index()
            .map(|i| i.manifests.iter().map(|m| m.digest.clone()).collect())
            .unwrap_or_default();
        let expected: Vec<String> = (0..entries.len())
            .map(|i| format!("sha256:{i:064x}"))
            .filter(|d| keep(d))
            .collect();
        prop_assert_eq!(left, expected);
        prop_assert_eq!(subset.media_type(), fetched.media_type());
    }

    #[test]
    fn ecr_error_codes_are_classified_by_the_whole_code(
        known in prop_oneof![
            Just(("ExpiredTokenException", true)),
            Just(("UnrecognizedClientException", true)),
            Just(("InvalidSignatureException", true)),
            Just(("AccessDeniedException", false)),
        ],
        prefix in "[A-Za-z]{0,6}",
        suffix in "[A-Za-z]{1,6}",
    ) {
        let (code, credentials) = known;
        let refusal = AwsRefusal::of_code(code);
        if credentials {
            prop_assert!(matches!(refusal, AwsRefusal::Credentials), "{}", code);
        } else {
            prop_assert!(matches!(refusal, AwsRefusal::Access), "{}", code);
        }
        // A code that only contains a known one is another error: no credential advice.
        let other = format!("{prefix}{code}{suffix}");
        prop_assert!(matches!(AwsRefusal::of_code(&other), AwsRefusal::Other), "{}", other);
    }

    #[test]
    fn no_query_string_or_url_credential_reaches_a_diagnostic(
        before in "[a-zA-Z ,:]{0,20}",
        scheme in prop_oneof![Just("http"), Just("https")],
        user in "[a-z]{1,8}",
        secret in "[A-Za-z0-9]{12,24}",
        host in "[a-z]{1,10}\\.[a-z]{2,3}(:[0-9]{2,5})?",
        path in "(/[a-z0-9]{1,8}){0,3}",
        after in "[a-zA-Z ,]{0,20}",
    ) {
        let url = format!("{scheme}://{user}:{secret}@{host}{path}?X-Amz-Signature={secret}&_state={secret}");
        prop_assert_eq!(origin(&url), format!("{scheme}://{host}"));
        let text = format!("{before} {url} {after}");
        let shown = without_queries(&text);
        prop_assert!(!shown.contains(&format!("Signature={secret}")), "{}", shown);
        prop_assert!(!shown.contains("_state="), "{}", shown);
        prop_assert_eq!(without_queries(&shown), shown.clone());
    }

    #[test]
    fn any_text_is_answered_by_the_diagnostic_filters(text in any_text()) {
        let shown = without_queries(&text);
        prop_assert!(shown.len() <= text.len());
        let _ = origin(&text);
        let _ = normalize_address(&text);
    }

    #[test]
    fn a_registry_auth_block_serves_only_its_own_registry(
        address in prop_oneof![
            "[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,5})?",
            Just("docker.io".to_string()),
            Just("https://index.docker.io/v1/".to_string()),
        ],
        asked in prop_oneof![
            "[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,5})?",
            Just("registry-1.docker.io".to_string()),
            Just("docker.io".to_string()),
        ],
    ) {
        let auth = SourceAuth::new(vec![AuthBlock {
            address: address.clone(),
            username: "me".into(),
            password: Secret::new("block-password"),
        }]);
        let given = match auth.for_host(&asked) {
            Some(Credentials::Basic { password, server, .. }) => {
                (password.expose() == "block-password").then_some(server)
            }
            _ => None,
        };
        let same = normalize_address(&address) == normalize_address(&asked);
        prop_assert_eq!(given.is_some(), same, "block for {} asked for {}", address, asked);
        if let Some(server) = given {
            prop_assert_eq!(server, normalize_address(&asked));
        }
    }

    #[test]
    fn any_docker_config_is_answered(
        config in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            // JSON-like text; no upper case, so no `credsStore` or `credHelpers` to run.
            "[\\[\\]{}\":,a-z0-9 ]{0,200}".prop_map(String::into_bytes),
            ("[a-z]{0,12}", "[a-z0-9:/.{}\"]{0,30}").prop_map(|(key, auth)| {
                serde_json::to_vec(&serde_json::json!({ "auths": { key: { "auth": auth } } }))
                    .unwrap()
            }),
        ],
        host in registry_host(),
    ) {
        if let Ok(Some(given)) = in_docker_config(&config, &host) {
            let server = match &given {
                Credentials::Basic { server, .. } | Credentials::IdentityToken { server, .. } => server,
            };
            prop_assert_eq!(server, &host);
        }
    }

    #[test]
    fn a_docker_config_entry_serves_its_registry_only(
        registry in registry_host(),
        form in 0..4usize,
        entry in entry(),
        other in registry_host(),
    ) {
        // The forms the Docker CLI and users write a registry's key in.
        let key = match form {
            0 => registry.clone(),
            1 => format!("https://{registry}"),
            2 => format!("https://{registry}/v1/"),
            _ => format!("http://{registry}"),
        };
        let config = docker_config(&key, &entry);
        let given = in_docker_config(&config, &registry);
        prop_assert!(
            matches!(&given, Ok(Some(c)) if holds(c, &entry, &registry)),
            "{} under {:?}: {:?}", registry, key, given
        );
        if other != registry {
            prop_assert!(matches!(in_docker_config(&config, &other), Ok(None)));
        }
        let hub = in_docker_config(&config, "docker.io");
        prop_assert!(matches!(hub, Ok(None)));
    }

    #[test]
    fn docker_hub_entries_serve_docker_hub_only(
        key in prop_oneof![
            Just("https://index.docker.io/v1/"),
            Just("index.docker.io"),
            Just("docker.io"),
            Just("registry-1.docker.io"),
        ],
        entry in entry(),
        other in registry_host(),
    ) {
        let config = docker_config(key, &entry);
        let given = in_docker_config(&config, "docker.io");
        prop_assert!(matches!(&given, Ok(Some(c)) if holds(c, &entry, "docker.io")), "{:?}", given);
        prop_assert!(matches!(in_docker_config(&config, &other), Ok(None)));
    }

    #[test]
    fn any_retry_after_is_answered_and_capped(values in proptest::collection::vec(any_text(), 0..3)) {
        if let Some(wait) = retry_after(&headers(RETRY_AFTER, &values)) {
            prop_assert!(wait <= LONGEST_WAIT);
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates(seconds in 0u64..100_000, date in any::<bool>()) {
        let value = if date {
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
        } else {
            seconds.to_string()
        };
        let wait = retry_after(&headers(RETRY_AFTER, &[value])).expect("a wait");
        let asked = Duration::from_secs(seconds).min(LONGEST_WAIT);
        // A date has whole seconds, and time passes between writing and reading it.
        let slack = if date { Duration::from_secs(2) } else { Duration::ZERO };
        prop_assert!(wait <= asked && wait + slack >= asked, "{:?} for {:?}", wait, asked);
    }

    #[test]
    fn any_www_authenticate_is_answered(values in proptest::collection::vec(any_text(), 0..3)) {
        if let Challenge::Bearer { .. } = challenge(&headers(WWW_AUTHENTICATE, &values)) {
            prop_assert!(values.iter().any(|v| v.to_ascii_lowercase().contains("bearer")));
        }
    }

    #[test]
    fn a_bearer_challenge_reads_back_its_realm_and_service(
        scheme in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")],
        realm in "https://[a-z]{1,10}\\.[a-z]{2,3}(/[a-z0-9]{1,8}){0,2}",
        service in proptest::option::of("[ -~]{0,30}"),
        scope in proptest::option::of("repository:[a-z/]{1,12}:pull"),
        basic in 0..3usize,
    ) {
        let mut params = vec![format!("realm={}", quoted(&realm))];
        if let Some(service) = &service {
            params.push(format!("service={}", quoted(service)));
        }
        if let Some(scope) = &scope {
            params.push(format!("scope={}", quoted(scope)));
        }
        let bearer = format!("{scheme} {}", params.join(","));
        // A basic challenge beside it: none, in the same header, or in a header of its own.
        let values = match basic {
            0 => vec![bearer],
            1 => vec![format!("Basic realm=\"registry\", {bearer}")],
            _ => vec!["Basic realm=\"registry\"".to_string(), bearer],
        };
        prop_assert_eq!(
            challenge(&headers(WWW_AUTHENTICATE, &values)),
            Challenge::Bearer { realm, service }
        );
        // Without a realm there is nothing to ask a token of; a basic challenge alone is met
        // with the credentials.
        let realmless = format!("{scheme} service=\"registry\"");
        prop_assert_eq!(challenge(&headers(WWW_AUTHENTICATE, &[realmless])), Challenge::Unmet);
        let basic_only = "Basic realm=\"registry\"".to_string();
        prop_assert_eq!(challenge(&headers(WWW_AUTHENTICATE, &[basic_only])), Challenge::Basic);
    }
}
