//! Sigstore's public-good trusted root, fetched the way cosign fetches it: from Sigstore's
//! TUF repository (`https://tuf-repo-cdn.sigstore.dev`), starting from the root metadata
//! this provider embeds (`public-good-root.json`, version 12 as Sigstore published it), and
//! kept on disk. Only what Sigstore's repository uses is implemented: top-level roles,
//! consistent snapshots, ECDSA and Ed25519 keys. Each step follows the TUF specification's
//! client workflow: every new root version signed by a threshold of the previous root's keys
//! and of its own, the final root unexpired; then timestamp, snapshot and targets, each
//! signed by a threshold of its role's keys, unexpired, of the version (and, where given,
//! length and hash) the role above names; then the target `trusted_root.json`, of the length
//! and SHA-256 the targets metadata names.
//!
//! Signatures are checked by rustls-webpki over `ring`, the canonical form signed is OLPC
//! canonical JSON (`olpc-cjson`): nothing cryptographic is written here.
//!
//! The repository and its first root can be another's (a private Sigstore deployment's TUF
//! mirror, or the tests' stand-in): `ECRMIRROR_SIGSTORE_TUF_URL` and
//! `ECRMIRROR_SIGSTORE_TUF_ROOT` (a file holding its first `root.json`), both or neither.
//! Kept in `<cache directory>/sigstore-tuf/<sha256 of the URL and first root>/`: the trusted
//! root with the time its metadata expires, used without a request until then. Each update
//! walks the roots from the first again (a few small requests, once a day at most).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys::{hex, spki_verifies};

/// Sigstore's public-good TUF repository.
pub(crate) const PUBLIC_GOOD: &str = "https://tuf-repo-cdn.sigstore.dev";
/// The variables that name another repository and its first root.
pub(crate) const URL_VARIABLE: &str = "ECRMIRROR_SIGSTORE_TUF_URL";
pub(crate) const ROOT_VARIABLE: &str = "ECRMIRROR_SIGSTORE_TUF_ROOT";
/// The root metadata of the public-good repository this provider starts from.
const EMBEDDED_ROOT: &[u8] = include_bytes!("public-good-root.json");
/// The most root versions one update walks through.
const MAX_ROTATIONS: u64 = 256;
/// The largest metadata or target read.
const MAX_DOCUMENT: usize = 8 << 20;

/// A repository to update from.
#[derive(Clone, Debug)]
pub(crate) struct Repository {
    pub(crate) url: String,
    pub(crate) first_root: Vec<u8>,
}

impl Repository {
    /// The public-good repository, or the one the environment names.
    pub(crate) fn from_environment() -> Result<Repository, String> {
        match (std::env::var(URL_VARIABLE), std::env::var_os(ROOT_VARIABLE)) {
            (Err(_), None) => Ok(Repository {
                url: PUBLIC_GOOD.to_string(),
                first_root: EMBEDDED_ROOT.to_vec(),
            }),
            (Ok(url), Some(path)) => Ok(Repository {
                url: url.trim_end_matches('/').to_string(),
                first_root: std::fs::read(&path).map_err(|err| {
                    format!("{ROOT_VARIABLE} names {}, which cannot be read: {err}", Path::new(&path).display())
                })?,
            }),
            _ => Err(format!("{URL_VARIABLE} and {ROOT_VARIABLE} go together: a TUF repository and the first root.json to trust it by")),
        }
    }
}

/// A role: the keys that sign for it and how many must.
#[derive(Debug)]
struct Role {
    keyids: BTreeSet<String>,
    threshold: usize,
}

/// A verified root's keys and roles.
#[derive(Debug)]
struct Root {
    version: u64,
    expires: SystemTime,
    consistent: bool,
    keys: HashMap<String, SubjectPublicKeyInfoDer<'static>>,
    roles: HashMap<String, Role>,
}

/// OLPC canonical JSON of `value`: what TUF signs.
fn canonical(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut serializer)
        .map_err(|err| format!("cannot be put in canonical form: {err}"))?;
    Ok(out)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        (0..text.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect()
    })
}

/// A TUF key as a SubjectPublicKeyInfo: ECDSA keys are PEM, Ed25519 keys hexadecimal.
fn public_key(entry: &Value) -> Option<SubjectPublicKeyInfoDer<'static>> {
    let public = entry.pointer("/keyval/public")?.as_str()?;
    match entry.get("keytype")?.as_str()? {
        "ecdsa" | "ecdsa-sha2-nistp256" => {
            SubjectPublicKeyInfoDer::from_pem_slice(public.as_bytes()).ok()
        }
        "ed25519" => {
            let raw = unhex(public).filter(|raw| raw.len() == 32)?;
            // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } }
            let mut der = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            der.extend(raw);
            Some(SubjectPublicKeyInfoDer::from(der))
        }
        _ => None,
    }
}

/// The time in `signed.expires`.
fn expires(signed: &Value) -> Result<SystemTime, String> {
    let text = signed
        .get("expires")
        .and_then(Value::as_str)
        .ok_or("no `expires`")?;
    humantime::parse_rfc3339_weak(text).map_err(|err| format!("`expires` `{text}`: {err}"))
}

fn version(signed: &Value) -> Result<u64, String> {
    signed
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| "no `version`".into())
}

impl Root {
    /// The root `document` describes (not yet checked against anything).
    fn read(document: &Value) -> Result<Root, String> {
        let signed = document.get("signed").ok_or("no `signed`")?;
        if signed.get("_type").and_then(Value::as_str) != Some("root") {
            return Err("not root metadata".into());
        }
        let keys = signed
            .get("keys")
            .and_then(Value::as_object)
            .ok_or("no `keys`")?
            .iter()
            .filter_map(|(id, entry)| Some((id.clone(), public_key(entry)?)))
            .collect();
        let roles = signed
            .get("roles")
            .and_then(Value::as_object)
            .ok_or("no `roles`")?
            .iter()
            .map(|(name, role)| {
                let keyids = role
                    .get("keyids")
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let threshold = role.get("threshold").and_then(Value::as_u64).unwrap_or(0);
                (
                    name.clone(),
                    Role {
                        keyids,
                        threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
                    },
                )
            })
            .collect();
        Ok(Root {
            version: version(signed)?,
            expires: expires(signed)?,
            consistent: signed
                .get("consistent_snapshot")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            keys,
            roles,
        })
    }

    /// Whether a threshold of `role`'s keys signed `document`.
    fn signed(&self, document: &Value, role: &str) -> Result<(), String> {
        let role_keys = self
            .roles
            .get(role)
            .ok_or_else(|| format!("the root names no `{role}` role"))?;
        if role_keys.threshold == 0 {
            return Err(format!("the `{role}` role has no threshold"));
        }
        let message = canonical(document.get("signed").ok_or("no `signed`")?)?;
        let signatures = document
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or("no `signatures`")?;
        let mut valid = BTreeSet::new();
        for signature in signatures {
            let (Some(keyid), Some(sig)) = (
                signature.get("keyid").and_then(Value::as_str),
                signature.get("sig").and_then(Value::as_str).and_then(unhex),
            ) else {
                continue;
            };
            if !role_keys.keyids.contains(keyid) || valid.contains(keyid) {
                continue;
            }
            if self
                .keys
                .get(keyid)
                .is_some_and(|key| spki_verifies(key, &message, &sig))
            {
                valid.insert(keyid.to_string());
            }
        }
        if valid.len() >= role_keys.threshold {
            Ok(())
        } else {
            Err(format!(
                "{role} metadata is signed by {} of the {} keys it needs",
                valid.len(),
                role_keys.threshold
            ))
        }
    }
}

/// Fetches `url`: `Ok(None)` when the repository has no such file.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| unreachable(url, &err))?;
    match response.status() {
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::FORBIDDEN => return Ok(None),
        status if !status.is_success() => {
            return Err(format!("{url}: the server answered {status}"))
        }
        _ => {}
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(format!("{url} is larger than {MAX_DOCUMENT} bytes"));
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| unreachable(url, &err))?;
    if body.len() > MAX_DOCUMENT {
        return Err(format!("{url} is larger than {MAX_DOCUMENT} bytes"));
    }
    Ok(Some(body.to_vec()))
}

/// Why `url` could not be read: the network failure explained, else the error.
fn unreachable(url: &str, err: &reqwest::Error) -> String {
    match crate::network::classify(err) {
        Some(fault) => format!(
            "{url} could not be read: {}",
            crate::network::explain(fault, url, crate::network::proxy_for(url).as_deref())
        ),
        None => format!("{url} could not be read: {err}"),
    }
}

fn json(bytes: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|err| format!("{what} is not JSON: {err}"))
}

/// The version, length and SHA-256 that metadata of `role` names for `file`.
fn meta(signed: &Value, file: &str) -> Result<(u64, Option<u64>, Option<String>), String> {
    let entry = signed
        .pointer(&format!("/meta/{}", file.replace('/', "~1")))
        .ok_or_else(|| format!("it names no `{file}`"))?;
    Ok((
        entry
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("it names no version of `{file}`"))?,
        entry.get("length").and_then(Value::as_u64),
        entry
            .pointer("/hashes/sha256")
            .and_then(Value::as_str)
            .map(str::to_string),
    ))
}

/// Checks `bytes` against a length and SHA-256 metadata names.
fn matches(
    bytes: &[u8],
    length: Option<u64>,
    sha256: Option<&str>,
    what: &str,
) -> Result<(), String> {
    if length.is_some_and(|length| length != bytes.len() as u64) {
        return Err(format!("{what} is not of the length the metadata names"));
    }
    if sha256.is_some_and(|hash| !hash.eq_ignore_ascii_case(&hex(&Sha256::digest(bytes)))) {
        return Err(format!(
            "{what} does not have the SHA-256 the metadata names"
        ));
    }
    Ok(())
}

/// Where an update keeps what it verified.
struct Kept {
    dir: Option<PathBuf>,
}

impl Kept {
    fn at(repository: &Repository) -> Kept {
        let mut key = Sha256::new();
        key.update(repository.url.as_bytes());
        key.update([0]);
        key.update(&repository.first_root);
        Kept {
            dir: crate::cache::shared()
                .directory()
                .map(|dir| dir.join("sigstore-tuf").join(hex(&key.finalize()))),
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.as_ref()?.join(name)).ok()
    }

    /// Writes `bytes` to `name`, through a temporary file renamed into place.
    fn write(&self, name: &str, bytes: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let temporary = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, dir.join(name))
        });
        if let Err(err) = written {
            tracing::debug!(dir = %dir.display(), "the Sigstore trusted root cannot be kept: {err}");
        }
    }
}

/// The newest trusted root the repository publishes, verified; from the cache while the
/// timestamp it was verified with has not expired.
pub(crate) async fn trusted_root(
    client: &reqwest::Client,
    repository: &Repository,
) -> Result<String, String> {
    let kept = Kept::at(repository);
    let now = SystemTime::now();
    if let (Some(until), Some(trusted)) = (kept.read("fresh-until"), kept.read("trusted_root.json"))
    {
        let fresh = std::str::from_utf8(&until)
            .ok()
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok())
            .is_some_and(|until| now < until);
        if let (true, Ok(trusted)) = (fresh, String::from_utf8(trusted)) {
            return Ok(trusted);
        }
    }
    let base = &repository.url;
    // The root: the first, then every newer version, each signed by the one before.
    let first = json(&repository.first_root, "the first root")?;
    let mut root = Root::read(&first)?;
    root.signed(&first, "root")
        .map_err(|err| format!("the first root: {err}"))?;
    for _ in 0..MAX_ROTATIONS {
        let next = root.version + 1;
        let Some(bytes) = fetch(client, &format!("{base}/{next}.root.json")).await? else {
            break;
        };
        let document = json(&bytes, &format!("{next}.root.json"))?;
        root.signed(&document, "root").map_err(|err| {
            format!("{next}.root.json is not signed by the root before it: {err}")
        })?;
        let newer = Root::read(&document)?;
        newer
            .signed(&document, "root")
            .map_err(|err| format!("{next}.root.json is not signed by its own keys: {err}"))?;
        if newer.version != next {
            return Err(format!(
                "{next}.root.json says it is version {}",
                newer.version
            ));
        }
        root = newer;
    }
    if root.expires <= now {
        return Err(format!(
            "its newest root (version {}) has expired",
            root.version
        ));
    }
    // The timestamp names the snapshot, which names the targets, which name the target.
    let step =
        |bytes: &[u8], name: &str, role: &str, wanted: Option<u64>| -> Result<Value, String> {
            let document = json(bytes, name)?;
            root.signed(&document, role)
                .map_err(|err| format!("{name}: {err}"))?;
            let signed = document.get("signed").cloned().unwrap_or_default();
            if signed.get("_type").and_then(Value::as_str) != Some(role) {
                return Err(format!("{name} is not {role} metadata"));
            }
            if expires(&signed)? <= now {
                return Err(format!("{name} has expired"));
            }
            if let Some(wanted) = wanted.filter(|w| *w != version(&signed).unwrap_or(0)) {
                return Err(format!(
                    "{name} is not version {wanted}, which the metadata above names"
                ));
            }
            Ok(signed)
        };
    let bytes = fetch(client, &format!("{base}/timestamp.json"))
        .await?
        .ok_or("it has no timestamp.json")?;
    let timestamp = step(&bytes, "timestamp.json", "timestamp", None)?;
    // Each names the next: its version (in the file's name, with consistent snapshots),
    // and where it says so its length and hash.
    let mut above = timestamp.clone();
    let mut expiries = vec![expires(&timestamp)?];
    for (file, role) in [("snapshot.json", "snapshot"), ("targets.json", "targets")] {
        let (version, length, sha256) = meta(&above, file)?;
        let name = if root.consistent {
            format!("{version}.{file}")
        } else {
            file.to_string()
        };
        let bytes = fetch(client, &format!("{base}/{name}"))
            .await?
            .ok_or_else(|| format!("it has no {name}"))?;
        matches(&bytes, length, sha256.as_deref(), &name)?;
        above = step(&bytes, &name, role, Some(version))?;
        expiries.push(expires(&above)?);
    }
    let targets = above;
    let target = targets
        .pointer("/targets/trusted_root.json")
        .ok_or("its targets name no `trusted_root.json`")?;
    let length = target.get("length").and_then(Value::as_u64);
    let sha256 = target
        .pointer("/hashes/sha256")
        .and_then(Value::as_str)
        .ok_or("its targets name no SHA-256 of `trusted_root.json`")?;
    let name = if root.consistent {
        format!("{sha256}.trusted_root.json")
    } else {
        "trusted_root.json".into()
    };
    let bytes = fetch(client, &format!("{base}/targets/{name}"))
        .await?
        .ok_or_else(|| format!("it has no targets/{name}"))?;
    matches(&bytes, length, Some(sha256), "trusted_root.json")?;
    let trusted = String::from_utf8(bytes).map_err(|_| "trusted_root.json is not text")?;
    let fresh_until = expiries.into_iter().min().unwrap_or(now);
    kept.write("trusted_root.json", trusted.as_bytes());
    kept.write(
        "fresh-until",
        humantime::format_rfc3339_seconds(fresh_until)
            .to_string()
            .as_bytes(),
    );
    Ok(trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_public_good_root_is_signed_by_its_own_keys() {
        let document = json(EMBEDDED_ROOT, "root").unwrap();
        let root = Root::read(&document).unwrap();
        assert_eq!(root.version, 12);
        assert!(root.consistent);
        root.signed(&document, "root").unwrap();
        // Any change to what was signed breaks it.
        let mut altered = document.clone();
        altered["signed"]["version"] = 13.into();
        assert!(root
            .signed(&altered, "root")
            .unwrap_err()
            .contains("signed by"));
    }

    #[test]
    fn metadata_names_what_it_covers() {
        let signed = serde_json::json!({"meta": {"snapshot.json": {"version": 3, "length": 2, "hashes": {"sha256": hex(&Sha256::digest(b"{}"))}}}});
        let (version, length, sha256) = meta(&signed, "snapshot.json").unwrap();
        assert_eq!((version, length), (3, Some(2)));
        matches(b"{}", length, sha256.as_deref(), "snapshot").unwrap();
        assert!(matches(b"[]", length, sha256.as_deref(), "snapshot").is_err());
        assert!(matches(b"{} ", length, None, "snapshot").is_err());
    }
}
