//! A TUF repository as Sigstore publishes its trusted root (tuf-repo-cdn.sigstore.dev):
//! top-level roles only, consistent snapshots, ECDSA P-256 keys, the target
//! `trusted_root.json`. Served over plain HTTP on loopback, so tests can let the provider
//! fetch a "public-good" trusted root from it, rotate its root, let metadata expire or
//! tamper with a target.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::sigstore::Key;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// OLPC canonical JSON, what TUF signs.
fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut serializer)
        .expect("JSON values serialise");
    out
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A role's key as TUF describes it, and its key id.
fn key_entry(key: &Key) -> (String, Value) {
    let entry = json!({
        "keytype": "ecdsa",
        "scheme": "ecdsa-sha2-nistp256",
        "keyval": {"public": key.public_pem()},
    });
    (hex(&Sha256::digest(canonical(&entry))), entry)
}

/// A TUF repository on disk: `<n>.root.json`, `timestamp.json`, `<n>.snapshot.json`,
/// `<n>.targets.json` and `targets/<sha256>.trusted_root.json`.
pub struct TufRepository {
    dir: PathBuf,
    root_keys: Vec<Key>,
    /// The timestamp, snapshot and targets roles' key (one for all three).
    online: Key,
    root_version: u64,
    version: u64,
    /// How long new metadata is valid.
    pub lifetime: Duration,
}

impl TufRepository {
    /// A new repository in `dir` (version 1 of every role) whose target `trusted_root.json`
    /// is `trusted_root`.
    pub fn new(dir: &Path, trusted_root: &str) -> Result<TufRepository> {
        std::fs::create_dir_all(dir.join("targets"))?;
        let mut repository = TufRepository {
            dir: dir.to_path_buf(),
            root_keys: vec![Key::p256()?, Key::p256()?],
            online: Key::p256()?,
            root_version: 0,
            version: 0,
            lifetime: Duration::from_secs(7 * 86_400),
        };
        let keys = std::mem::take(&mut repository.root_keys);
        repository.write_root(&keys, &[])?;
        repository.root_keys = keys;
        repository.publish(trusted_root)?;
        Ok(repository)
    }

    /// The first root: what a client starts from (embedded in it, as cosign embeds
    /// Sigstore's).
    pub fn initial_root(&self) -> Result<Vec<u8>> {
        std::fs::read(self.dir.join("1.root.json")).context("reading 1.root.json")
    }

    /// Signs `signed` with `keys`: the document TUF serves.
    fn document(signed: Value, keys: &[&Key]) -> Value {
        let bytes = canonical(&signed);
        let signatures: Vec<Value> = keys
            .iter()
            .map(|key| json!({"keyid": key_entry(key).0, "sig": hex(&key.sign(&bytes))}))
            .collect();
        json!({"signatures": signatures, "signed": signed})
    }

    fn write(&self, name: &str, document: &Value) -> Result<Vec<u8>> {
        let bytes = serde_json::to_vec_pretty(document)?;
        std::fs::write(self.dir.join(name), &bytes).with_context(|| format!("writing {name}"))?;
        Ok(bytes)
    }

    /// The next root version, naming `new` as root keys (threshold 2 of them, or 1 for one
    /// key), signed by them and by `old` (the keys of the version before).
    fn write_root(&mut self, new: &[Key], old: &[Key]) -> Result<()> {
        self.root_version += 1;
        let mut keys = serde_json::Map::new();
        let mut root_ids = Vec::new();
        for key in new {
            let (id, entry) = key_entry(key);
            root_ids.push(id.clone());
            keys.insert(id, entry);
        }
        let (online_id, online_entry) = key_entry(&self.online);
        keys.insert(online_id.clone(), online_entry);
        let role =
            |ids: Vec<String>, threshold: usize| json!({"keyids": ids, "threshold": threshold});
        let signed = json!({
            "_type": "root",
            "spec_version": "1.0",
            "version": self.root_version,
            "expires": rfc3339(SystemTime::now() + Duration::from_secs(365 * 86_400)),
            "consistent_snapshot": true,
            "keys": keys,
            "roles": {
                "root": role(root_ids.clone(), root_ids.len().min(2)),
                "timestamp": role(vec![online_id.clone()], 1),
                "snapshot": role(vec![online_id.clone()], 1),
                "targets": role(vec![online_id], 1),
            },
        });
        let signers: Vec<&Key> = old.iter().chain(new).collect();
        let document = Self::document(signed, &signers);
        self.write(&format!("{}.root.json", self.root_version), &document)?;
        Ok(())
    }

    /// Rotates the root keys: version n+1 names new keys, signed by the old and the new.
    pub fn rotate_root(&mut self) -> Result<()> {
        let new = vec![Key::p256()?, Key::p256()?];
        let old = std::mem::take(&mut self.root_keys);
        self.write_root(&new, &old)?;
        self.root_keys = new;
        Ok(())
    }

    /// Publishes `trusted_root` as the target `trusted_root.json`: new targets, snapshot and
    /// timestamp versions.
    pub fn publish(&mut self, trusted_root: &str) -> Result<()> {
        self.version += 1;
        let expires = rfc3339(SystemTime::now() + self.lifetime);
        let hash = hex(&Sha256::digest(trusted_root.as_bytes()));
        std::fs::write(
            self.dir.join(format!("targets/{hash}.trusted_root.json")),
            trusted_root,
        )?;
        let targets = json!({
            "_type": "targets", "spec_version": "1.0", "version": self.version, "expires": expires,
            "targets": {"trusted_root.json": {"length": trusted_root.len(), "hashes": {"sha256": hash}}},
        });
        let targets = self.write(
            &format!("{}.targets.json", self.version),
            &Self::document(targets, &[&self.online]),
        )?;
        let snapshot = json!({
            "_type": "snapshot", "spec_version": "1.0", "version": self.version, "expires": expires,
            "meta": {"targets.json": {"version": self.version, "length": targets.len(),
                "hashes": {"sha256": hex(&Sha256::digest(&targets))}}},
        });
        let snapshot = self.write(
            &format!("{}.snapshot.json", self.version),
            &Self::document(snapshot, &[&self.online]),
        )?;
        let timestamp = json!({
            "_type": "timestamp", "spec_version": "1.0", "version": self.version, "expires": expires,
            "meta": {"snapshot.json": {"version": self.version, "length": snapshot.len(),
                "hashes": {"sha256": hex(&Sha256::digest(&snapshot))}}},
        });
        self.write(
            "timestamp.json",
            &Self::document(timestamp, &[&self.online]),
        )?;
        Ok(())
    }

    /// Changes one byte of every published target, its length kept (the hash the targets
    /// metadata names no longer matches): a tampered mirror.
    pub fn tamper_target(&self) -> Result<()> {
        for entry in std::fs::read_dir(self.dir.join("targets"))? {
            let path = entry?.path();
            let mut bytes = std::fs::read(&path)?;
            let middle = bytes.len() / 2;
            if let Some(byte) = bytes.get_mut(middle) {
                *byte ^= 0x01;
            }
            std::fs::write(&path, bytes)?;
        }
        Ok(())
    }
}

/// Serves the files of a directory over HTTP on loopback; what it served, in order.
pub struct Served {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Clone)]
struct Files {
    dir: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn file(State(files): State<Files>, UrlPath(path): UrlPath<String>) -> Response {
    files
        .requests
        .lock()
        .expect("request log")
        .push(format!("GET /{path}"));
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(files.dir.join(&path)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `dir` on `http://127.0.0.1:<port>/`.
pub async fn serve(dir: &Path) -> Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new()
        .route("/{*path}", get(file))
        .with_state(Files {
            dir: dir.to_path_buf(),
            requests: requests.clone(),
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Served { addr, requests })
}

/// The names and versions of what a repository holds, for tests' messages.
pub fn listing(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name, e.metadata().ok()?.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_holds_every_role_signed() {
        let dir = tempfile::tempdir().unwrap();
        let mut repository = TufRepository::new(dir.path(), "{}").unwrap();
        let root: Value = serde_json::from_slice(&repository.initial_root().unwrap()).unwrap();
        assert_eq!(root["signed"]["version"], 1);
        assert_eq!(root["signatures"].as_array().unwrap().len(), 2);
        repository.rotate_root().unwrap();
        repository.publish("{\"a\":1}").unwrap();
        let names = listing(dir.path());
        for name in [
            "1.root.json",
            "2.root.json",
            "timestamp.json",
            "2.snapshot.json",
            "2.targets.json",
        ] {
            assert!(names.contains_key(name), "{names:?}");
        }
    }
}
