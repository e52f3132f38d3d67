//! The on-disk cache of source manifests and image configs, by digest. What a source
//! reference names now is asked with a `HEAD` (which Docker Hub does not count as a pull);
//! the body a digest names can never change, so once fetched it is read from here: a source
//! tag that has not moved costs no manifest `GET`.
//!
//! Where: `$ECRMIRROR_CACHE_DIR`, else `$XDG_CACHE_HOME/terraform-provider-ecrmirror`, else
//! `$HOME/.cache/terraform-provider-ecrmirror` (`%LOCALAPPDATA%\terraform-provider-ecrmirror`
//! on Windows); an entry is `blobs/sha256/<hex>`, its bytes as the registry served them.
//! Only `sha256` digests are kept.
//!
//! It is only ever a shortcut, never an answer: every entry read is hashed and one whose
//! bytes do not match its name (damaged, altered) is ignored, so the body is fetched again
//! and the entry rewritten. Entries are written to a temporary file renamed into place, so
//! provider processes running at once never see half an entry. A cache that cannot be read
//! or written costs requests, never a failure (a debug log says why); deleting the directory
//! is always safe. Entries are a few KiB and read whole, in the calling task.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::locks::Locks;

/// The largest entry kept: the largest manifest or image config the provider reads at all.
const MAX_ENTRY: usize = crate::distribution::session::DOCUMENT_LIMIT;

/// The variable that names the cache directory.
pub(crate) const DIRECTORY_VARIABLE: &str = "ECRMIRROR_CACHE_DIR";

/// The directory under the user's cache directory.
const NAME: &str = "terraform-provider-ecrmirror";

/// A content-addressed store of manifests and configs, or none (no directory to keep it
/// in): then every lookup misses and nothing is kept.
pub(crate) struct Cache {
    root: Option<PathBuf>,
    /// One fetch per digest at a time in this process (see [`Cache::fetching`]).
    fetching: Locks<String>,
}

/// This process's cache, where the environment puts it.
pub(crate) fn shared() -> &'static Cache {
    static SHARED: OnceLock<Cache> = OnceLock::new();
    SHARED.get_or_init(|| Cache {
        root: root(|name| std::env::var_os(name)),
        fetching: Locks::default(),
    })
}

/// The cache directory the variables `var` reads name (see the module's documentation).
/// Relative paths are ignored, as the XDG base directory specification asks.
fn root(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let absolute = |name: &str| {
        var(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute(DIRECTORY_VARIABLE)
        .or_else(|| absolute("XDG_CACHE_HOME").map(|dir| dir.join(NAME)))
        .or_else(|| absolute("HOME").map(|home| home.join(".cache").join(NAME)))
        .or_else(|| absolute("LOCALAPPDATA").map(|dir| dir.join(NAME)))
}

impl Cache {
    /// The cache's directory, when it has one.
    pub(crate) fn directory(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// A cache in `root`.
    #[cfg(test)]
    pub(crate) fn at(root: &Path) -> Cache {
        Cache {
            root: Some(root.to_path_buf()),
            fetching: Locks::default(),
        }
    }

    /// Held while the body `digest` names is looked up here and, on a miss, fetched and
    /// kept: reads of one digest at once (a `for_each` of data sources over tags that name
    /// one image) wait for the first, then find its entry, so a cold cache costs one `GET`
    /// per digest, not one per read.
    pub(crate) async fn fetching(&self, digest: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.fetching.of(digest.to_string()).lock_owned().await
    }

    /// Where the entry for `digest` lives: `sha256:<64 lowercase hex>` only, so that a
    /// digest a registry names can never lead out of the directory.
    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let lower_hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
        if hex.len() != 64 || !hex.bytes().all(lower_hex) {
            return None;
        }
        Some(self.root.as_ref()?.join("blobs").join("sha256").join(hex))
    }

    /// The bytes `digest` names, when the cache holds them intact.
    pub(crate) fn get(&self, digest: &str) -> Option<Bytes> {
        let path = self.path(digest)?;
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_ENTRY as u64 + 1).read_to_end(&mut bytes));
        match read {
            Ok(_) if bytes.len() <= MAX_ENTRY && crate::manifest::digest_of(&bytes) == digest => {
                Some(bytes.into())
            }
            Ok(_) => {
                tracing::debug!(path = %path.display(), "cache entry does not match its digest: ignored");
                None
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                tracing::debug!(path = %path.display(), "cache entry unreadable: {err}");
                None
            }
        }
    }

    /// Keeps `bytes` as what `digest` names, unless they are not (or too large, or the
    /// cache cannot be written: a debug log, nothing more).
    pub(crate) fn put(&self, digest: &str, bytes: &[u8]) {
        let Some(path) = self.path(digest) else {
            return;
        };
        if bytes.len() > MAX_ENTRY || crate::manifest::digest_of(bytes) != digest {
            return;
        }
        if let Err(err) = write_atomically(&path, bytes) {
            tracing::debug!(path = %path.display(), "cache entry not written: {err}");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed into place: a
/// reader sees the whole entry or none. The directories are made private to the user (a
/// private image's manifest is the user's business).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let temporary = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let written = std::fs::File::create_new(&temporary)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_the_variable_else_the_users_cache() {
        fn env<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> + 'a {
            move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        }
        let all = [
            (DIRECTORY_VARIABLE, "/srv/cache"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/me"),
        ];
        assert_eq!(root(env(&all)), Some(PathBuf::from("/srv/cache")));
        assert_eq!(
            root(env(&all[1..])),
            Some(PathBuf::from("/xdg/terraform-provider-ecrmirror"))
        );
        assert_eq!(
            root(env(&all[2..])),
            Some(PathBuf::from(
                "/home/me/.cache/terraform-provider-ecrmirror"
            ))
        );
        // Relative directories are no directory.
        let relative = [(DIRECTORY_VARIABLE, "cache"), ("XDG_CACHE_HOME", "x")];
        assert_eq!(root(env(&relative)), None);
    }

    #[test]
    fn an_entry_comes_back_only_whole_and_matching_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let body = br#"{"schemaVersion":2}"#;
        let digest = crate::manifest::digest_of(body);
        assert_eq!(cache.get(&digest), None, "empty at first");
        cache.put(&digest, body);
        assert_eq!(cache.get(&digest).as_deref(), Some(&body[..]));
        let hex = digest.trim_start_matches("sha256:");
        let path = dir.path().join("blobs/sha256").join(hex);
        assert!(path.is_file());
        // No temporary file is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        // Altered on disk: ignored, and the next put repairs it.
        std::fs::write(&path, br#"{"schemaVersion":3}"#).unwrap();
        assert_eq!(cache.get(&digest), None);
        cache.put(&digest, body);
        assert_eq!(cache.get(&digest).as_deref(), Some(&body[..]));

        // Bytes that are not what the digest names are never kept.
        let other = crate::manifest::digest_of(b"other");
        cache.put(&other, body);
        assert_eq!(cache.get(&other), None);
    }

    #[test]
    fn digests_that_could_name_another_path_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        for digest in [
            "sha256:../../etc/passwd",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha512:{}", "a".repeat(128)),
            &format!("sha256:{}/", "a".repeat(63)),
            "latest",
        ] {
            assert_eq!(cache.path(digest), None, "{digest}");
        }
        assert!(cache.path(&format!("sha256:{}", "0a".repeat(32))).is_some());
    }

    #[test]
    fn a_cache_that_cannot_be_written_is_no_failure() {
        let dir = tempfile::tempdir().unwrap();
        // The cache's directory is a file: nothing can be made under it.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let cache = Cache::at(&blocked);
        let body = b"{}";
        let digest = crate::manifest::digest_of(body);
        cache.put(&digest, body);
        assert_eq!(cache.get(&digest), None);
        // No directory at all: every lookup misses.
        let none = Cache {
            root: None,
            fetching: Locks::default(),
        };
        none.put(&digest, body);
        assert_eq!(none.get(&digest), None);
    }

    #[test]
    fn an_entry_over_the_limit_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let big = vec![b' '; MAX_ENTRY + 1];
        let digest = crate::manifest::digest_of(&big);
        cache.put(&digest, &big);
        assert_eq!(cache.get(&digest), None);
        assert!(!dir.path().join("blobs").exists());
    }
}
