//! One owner per tag, in this provider process (one Terraform run):
//!
//! - [`PlannedTags`]: the mirrors planned, by the ECR tag they target. Terraform plans every
//!   resource of a configuration in one provider process, so two planned mirrors of one tag
//!   from different sources are two resources fighting over it. (One resource may be
//!   planned twice, as an update and then as the create that replaces it; with one source,
//!   that is no conflict.)
//! - [`TagLedger`]: the mirrors applied: one lock per tag, and the tags a mirror of this run
//!   made or adopted, which a destroy of the same tag leaves.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tf_provider::value::Value;

use super::state::ImageState;

/// One ECR tag: the registry's account id, the repository, the tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TagKey {
    pub(crate) registry_id: String,
    pub(crate) repository: String,
    pub(crate) tag: String,
}

impl TagKey {
    /// `repository:tag` in the registry of `registry_id` (`None`: the caller's own, while
    /// its id is not known).
    pub(crate) fn new(registry_id: Option<&str>, repository: &str, tag: &str) -> TagKey {
        TagKey {
            registry_id: registry_id.unwrap_or_default().to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        }
    }
}

/// The ECR tags of this provider process (one Terraform run): one lock per tag, and which
/// tags a mirror of this run made or adopted.
///
/// A mirror holds its tag's lock from reading what ECR's tag holds to recording the tag as
/// its own; a destroy holds it from asking whether a mirror of this run owns the tag to the
/// untag. So when a renamed `for_each` key destroys and creates one tag in one apply, in
/// whatever order Terraform runs them, each sees the other: a destroy that finds the tag
/// owned leaves it (the deposed instance of a `create_before_destroy` replacement, or a key
/// renamed), and a mirror that comes after a destroy pushes the tag again. Locks of other
/// tags never wait on each other.
#[derive(Debug, Default)]
pub(crate) struct TagLedger {
    locks: Mutex<HashMap<TagKey, Arc<tokio::sync::Mutex<()>>>>,
    mirrored: Mutex<HashSet<TagKey>>,
}

impl TagLedger {
    /// Waits for the lock of `tag` and holds it until the guard is dropped.
    pub(crate) async fn lock(&self, tag: &TagKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tag.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Records that a mirror of this run now owns `tag` (under its lock).
    pub(crate) fn record(&self, tag: TagKey) {
        self.mirrored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag);
    }

    /// Whether a mirror of this run owns `tag` (asked under its lock).
    pub(crate) fn mirrored(&self, tag: &TagKey) -> bool {
        self.mirrored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tag)
    }
}

/// The sources planned to each tag.
#[derive(Debug, Default)]
pub(crate) struct PlannedTags {
    tags: Mutex<HashMap<TagKey, BTreeSet<String>>>,
}

impl PlannedTags {
    /// Records the tag `planned` targets; returns the other sources planned to it. Nothing
    /// is recorded while the repository, the tag or the source is unknown.
    pub(crate) fn record(&self, planned: &ImageState) -> Vec<String> {
        let (Some(key), Value::Value(source)) = (planned.tag_key(), &planned.docker_source) else {
            return Vec::new();
        };
        let mut tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        let sources = tags.entry(key).or_default();
        sources.insert(source.clone());
        sources.iter().filter(|s| *s != source).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::fixtures::{config, v};
    use super::*;

    #[test]
    fn a_second_source_on_one_tag_is_told_and_a_replan_is_not() {
        let tags = PlannedTags::default();
        let planned = |source: &str, tag: &str| ImageState {
            tag: v(tag),
            ..config(source)
        };
        assert!(tags.record(&planned("app:1.0", "1")).is_empty());
        assert!(tags.record(&planned("app:1.0", "1")).is_empty(), "a replan");
        assert_eq!(tags.record(&planned("app:2.0", "1")), vec!["app:1.0"]);
        assert!(tags.record(&planned("app:2.0", "2")).is_empty());
        let mut unknown = planned("app:3.0", "1");
        unknown.tag = Value::Unknown;
        assert!(tags.record(&unknown).is_empty());
    }
}
