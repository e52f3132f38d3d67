//! One owner per tag: the mirrors planned in this provider process by the ECR tag they
//! target. Terraform plans every resource of a configuration in one provider process, so two
//! planned mirrors of one tag from different sources are two resources fighting over it.
//! (One resource may be planned twice, as an update and then as the create that replaces it;
//! with one source, that is no conflict.)

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tf_provider::value::Value;

use super::state::ImageState;
use crate::clients::TagKey;

/// The sources planned to each tag.
#[derive(Debug, Default)]
pub struct PlannedTags {
    tags: Mutex<HashMap<TagKey, BTreeSet<String>>>,
}

impl PlannedTags {
    /// Records the tag `planned` targets; returns the other sources planned to it. Nothing
    /// is recorded while the repository, the tag or the source is unknown.
    pub fn record(&self, planned: &ImageState) -> Vec<String> {
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
