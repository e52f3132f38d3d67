//! The seam between the resource and the ways an image can be copied.
//!
//! A [`Transfer`] copies one source image to one ECR tag. `docker` pulls and pushes through a
//! Docker engine; `registry` copies registry to registry over the distribution API.

pub mod docker;
pub mod registry;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;

use crate::credentials::Credentials;
use crate::error::Result;
use crate::reference::{Platform, SourceRef};

/// Where a mirror goes: `<host>/<repository>:<tag>`.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub repository: String,
    pub tag: String,
}

impl Target {
    /// `<host>/<repository>`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name(), self.tag)
    }
}

/// One copy to make.
#[derive(Debug)]
pub struct Job<'a> {
    pub source: &'a SourceRef,
    pub platform: Option<&'a Platform>,
    pub source_credentials: Option<Credentials>,
    pub target: Target,
    pub target_credentials: Credentials,
}

/// What a copy reports.
#[derive(Clone, Debug, Default)]
pub struct Copied {
    /// The digest the source reference resolved to (an index digest for multi-platform
    /// sources), when the method learnt it.
    pub source_digest: Option<String>,
    /// The manifest digest the method saw pushed, when it reports one.
    pub pushed_digest: Option<String>,
}

/// Async locks by key, each made on first use and kept for the life of the process: copies
/// that must not overlap (one source reference in the engine, one target repository or blob)
/// take the lock of their key.
pub struct Locks<K> {
    locks: std::sync::Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Locks<K> {
    fn default() -> Self {
        Locks {
            locks: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Locks<K> {
    /// The lock for `key`.
    pub fn of(&self, key: K) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key).or_default().clone()
    }
}

/// The `copy_method` values.
pub const METHODS: [&str; 2] = ["docker", "registry"];

/// The method used when neither the resource nor the provider names one.
pub const DEFAULT_METHOD: &str = "docker";

/// Checks a `copy_method` value.
pub fn check_method(method: &str) -> std::result::Result<(), String> {
    if METHODS.contains(&method) {
        Ok(())
    } else {
        Err(format!(
            "`{method}` is not a copy method: use \"docker\" (through a Docker engine) or \"registry\" (registry to registry, no engine)."
        ))
    }
}

/// A way to copy an image into ECR.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// Copies `job.source` to `job.target`.
    async fn copy(&self, job: &Job<'_>) -> Result<Copied>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_one_lock() {
        let locks = Locks::default();
        assert!(Arc::ptr_eq(&locks.of("a"), &locks.of("a")));
        assert!(!Arc::ptr_eq(&locks.of("a"), &locks.of("b")));
    }
}
