//! A Terraform provider registry (the provider registry protocol) over HTTPS, with a
//! throwaway CA, serving a release directory made by `make release`, so that a real
//! `terraform init` installs the provider and checks its signature and checksums. It can
//! serve a tampered zip or signature to prove that `terraform init` refuses them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::tls::{serve_tls_on, ThrowawayCa};

const NAMESPACE: &str = "techtospeech";
const TYPE: &str = "ecrmirror";

/// What to corrupt on the way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    Nothing,
    /// The zip's bytes change after its checksum was published.
    Zip,
    /// The detached signature of the SHA256SUMS file is corrupted.
    Signature,
}

/// The signing key users are told about.
#[derive(Clone, Debug)]
pub struct SigningKey {
    pub key_id: String,
    pub ascii_armor: String,
}

struct Served {
    dist: PathBuf,
    version: String,
    key: SigningKey,
    tamper: Tamper,
    base: String,
}

/// A running registry.
pub struct ProviderRegistry {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the server certificate (`SSL_CERT_FILE` for Terraform).
    pub ca_pem: String,
}

impl ProviderRegistry {
    /// Serves `dist` (the release of `version`) on `https://localhost:<port>`.
    pub async fn start(
        dist: &Path,
        version: &str,
        key: SigningKey,
        tamper: Tamper,
    ) -> Result<ProviderRegistry> {
        let ca = ThrowawayCa::new()?;
        let tls = ca.server_config(&["localhost", "127.0.0.1"])?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Served {
            dist: dist.to_path_buf(),
            version: version.to_string(),
            key,
            tamper,
            base: format!("https://localhost:{}", addr.port()),
        });
        let router = Router::new()
            .route("/.well-known/terraform.json", get(discovery))
            .route("/v1/providers/{namespace}/{kind}/versions", get(versions))
            .route(
                "/v1/providers/{namespace}/{kind}/{version}/download/{os}/{arch}",
                get(download),
            )
            .route("/files/{name}", get(file))
            .with_state(served);
        serve_tls_on(listener, router, tls);
        Ok(ProviderRegistry {
            addr,
            ca_pem: ca.pem(),
        })
    }

    /// `localhost:<port>`, the host part of the provider's source address.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }
}

fn name(served: &Served, suffix: &str) -> String {
    format!("terraform-provider-{TYPE}_{}_{suffix}", served.version)
}

/// The platforms there is a zip for, as `(os, arch)`.
fn platforms(served: &Served) -> Vec<(String, String)> {
    let prefix = name(served, "");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&served.dist) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(platform) = file
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".zip"))
            {
                if let Some((os, arch)) = platform.split_once('_') {
                    found.push((os.to_string(), arch.to_string()));
                }
            }
        }
    }
    found.sort();
    found
}

async fn discovery() -> Json<serde_json::Value> {
    Json(json!({"providers.v1": "/v1/providers/"}))
}

fn unknown_provider(namespace: &str, kind: &str) -> bool {
    namespace != NAMESPACE || kind != TYPE
}

async fn versions(
    State(served): State<Arc<Served>>,
    UrlPath((namespace, kind)): UrlPath<(String, String)>,
) -> Response {
    if unknown_provider(&namespace, &kind) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let platforms: Vec<_> = platforms(&served)
        .into_iter()
        .map(|(os, arch)| json!({"os": os, "arch": arch}))
        .collect();
    Json(json!({"versions": [{
        "version": served.version,
        "protocols": ["6.0"],
        "platforms": platforms,
    }]}))
    .into_response()
}

async fn download(
    State(served): State<Arc<Served>>,
    UrlPath((namespace, kind, version, os, arch)): UrlPath<(
        String,
        String,
        String,
        String,
        String,
    )>,
) -> Response {
    if unknown_provider(&namespace, &kind) || version != served.version {
        return StatusCode::NOT_FOUND.into_response();
    }
    let zip = name(&served, &format!("{os}_{arch}.zip"));
    let Ok(bytes) = std::fs::read(served.dist.join(&zip)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let shasum: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = &served.base;
    Json(json!({
        "protocols": ["6.0"],
        "os": os,
        "arch": arch,
        "filename": zip,
        "download_url": format!("{base}/files/{zip}"),
        "shasums_url": format!("{base}/files/{}", name(&served, "SHA256SUMS")),
        "shasums_signature_url": format!("{base}/files/{}", name(&served, "SHA256SUMS.sig")),
        "shasum": shasum,
        "signing_keys": {"gpg_public_keys": [{
            "key_id": served.key.key_id,
            "ascii_armor": served.key.ascii_armor,
        }]},
    }))
    .into_response()
}

async fn file(State(served): State<Arc<Served>>, UrlPath(file): UrlPath<String>) -> Response {
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(mut bytes) = std::fs::read(served.dist.join(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let corrupt = match served.tamper {
        Tamper::Zip => file.ends_with(".zip"),
        Tamper::Signature => file.ends_with(".sig"),
        Tamper::Nothing => false,
    };
    if corrupt {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    bytes.into_response()
}

/// Reads the armored public key and long key id of the signing key in `gnupg_home`.
pub fn signing_key(gnupg_home: &Path) -> Result<SigningKey> {
    let run = |args: &[&str]| -> Result<String> {
        let output = std::process::Command::new("gpg")
            .env("GNUPGHOME", gnupg_home)
            .args(args)
            .output()
            .context("running gpg (Debian package gpg)")?;
        anyhow::ensure!(output.status.success(), "gpg {args:?} failed");
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let listing = run(&["--batch", "--with-colons", "--list-keys"])?;
    let key_id = listing
        .lines()
        .find(|l| l.starts_with("pub:"))
        .and_then(|l| l.split(':').nth(4))
        .context("no public key in the keyring")?
        .to_string();
    let ascii_armor = run(&["--batch", "--armor", "--export", &key_id])?;
    Ok(SigningKey {
        key_id,
        ascii_armor,
    })
}
