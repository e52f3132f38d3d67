//! A real distribution registry process (`docker-registry`) on a private unix socket.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// The registry binary; `STANDIN_REGISTRY_BIN` overrides it.
fn registry_binary() -> String {
    std::env::var("STANDIN_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".to_string())
}

/// A running registry process. It is killed when this value and its clones are dropped.
#[derive(Clone)]
pub struct Backend {
    socket: PathBuf,
    storage: PathBuf,
    _child: std::sync::Arc<Child>,
}

impl Backend {
    /// Starts a registry whose socket, configuration and storage live under `dir`.
    pub async fn start(dir: &Path) -> Result<Backend> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("registry.sock");
        let storage = dir.join("storage");
        let config = dir.join("config.yml");
        let _ = std::fs::remove_file(&socket);
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  net: unix\n  addr: {}\n  relativeurls: true\n",
                storage.display(),
                socket.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting `{}` (Debian package docker-registry)",
                    registry_binary()
                )
            })?;
        let backend = Backend {
            socket,
            storage,
            _child: std::sync::Arc::new(child),
        };
        backend.wait_ready().await?;
        Ok(backend)
    }

    async fn wait_ready(&self) -> Result<()> {
        for _ in 0..200 {
            if let Ok(status) = self.probe().await {
                if status == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("the registry at {} did not come up", self.socket.display())
    }

    async fn probe(&self) -> Result<u16> {
        let request = hyper::Request::get("/v2/")
            .header("host", "registry")
            .body(Empty::<Bytes>::new())?;
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }

    /// The unix socket the registry listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The registry's filesystem storage root.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// Sends one request to the registry over a fresh connection.
    pub async fn send<B>(
        &self,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<hyper::body::Incoming>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = UnixStream::connect(&self.socket).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender.send_request(request).await?)
    }

    /// Whether the registry holds the blob `digest` in `repository` (a committed upload).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool> {
        let request = hyper::Request::head(format!("/v2/{repository}/blobs/{digest}"))
            .header("host", "registry")
            .body(Empty::<Bytes>::new())?;
        let response = self.send(request).await?;
        Ok(response.status().is_success())
    }

    /// Where the registry keeps the tags of `repository`.
    pub fn tags_dir(&self, repository: &str) -> PathBuf {
        self.repository_dir(repository).join("_manifests/tags")
    }

    /// The referrers of `digest` in `repository`: a descriptor of every manifest there whose
    /// `subject` is `digest`, as the OCI referrers API lists them (`artifactType` from the
    /// manifest, else its config's media type; its annotations). Read from the storage, as
    /// distribution 2.8 serves no referrers API.
    pub fn referrers(&self, repository: &str, digest: &str) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        for (hex, size, manifest) in self.manifests(repository) {
            if manifest.pointer("/subject/digest").and_then(|d| d.as_str()) != Some(digest) {
                continue;
            }
            let artifact_type = manifest
                .get("artifactType")
                .or_else(|| manifest.pointer("/config/mediaType"))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let mut descriptor = serde_json::json!({
                "mediaType": manifest.get("mediaType").cloned().unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into()),
                "digest": format!("sha256:{hex}"),
                "size": size,
                "artifactType": artifact_type,
            });
            if let Some(annotations) = manifest.get("annotations") {
                descriptor["annotations"] = annotations.clone();
            }
            found.push(descriptor);
        }
        found.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
        found
    }

    /// Whether a manifest of `repository` names blob `digest` (as its config or a layer):
    /// the blob is part of an image there, not only an upload.
    pub fn referenced(&self, repository: &str, digest: &str) -> bool {
        self.manifests(repository).iter().any(|(_, _, manifest)| {
            let config = manifest.pointer("/config/digest").and_then(|d| d.as_str());
            let layers = manifest.get("layers").and_then(|l| l.as_array());
            config == Some(digest)
                || layers.is_some_and(|layers| {
                    layers
                        .iter()
                        .any(|layer| layer.get("digest").and_then(|d| d.as_str()) == Some(digest))
                })
        })
    }

    /// Every manifest `repository` holds: its hex digest, size and JSON, read from the storage.
    fn manifests(&self, repository: &str) -> Vec<(String, usize, serde_json::Value)> {
        let revisions = self
            .repository_dir(repository)
            .join("_manifests/revisions/sha256");
        let Ok(entries) = std::fs::read_dir(revisions) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            if !entry.path().join("link").exists() {
                continue;
            }
            let hex = entry.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(self.blob_path(&hex)) else {
                continue;
            };
            if let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                found.push((hex, bytes.len(), manifest));
            }
        }
        found
    }

    /// Where the registry keeps the bytes of the blob `sha256:<hex>`.
    fn blob_path(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or_default())
            .join(hex)
            .join("data")
    }

    /// Where the registry keeps everything of `repository`.
    pub fn repository_dir(&self, repository: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/repositories")
            .join(repository)
    }
}
