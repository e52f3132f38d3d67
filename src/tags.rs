//! Choosing a family of tags from a repository's tag list (`ecrmirror_source_tags`): a tag's
//! version is its leading `v?MAJOR[.MINOR[.PATCH]]` (missing parts read as 0) and what
//! follows it (`-alpine`, `-rc1`) is a variant, not a semver pre-release; tags are ordered
//! highest version first (ties in the registry's order), tags without a version after them
//! (in the registry's order); `latest` keeps the first N of that order.

use regex_lite::Regex;
use semver::{Version, VersionReq};

/// What a tag must be to be chosen.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    /// A regular expression the whole tag matches.
    pub(crate) matching: Option<Regex>,
    /// Tags matching it (anywhere) are left out.
    pub(crate) excluding: Option<Regex>,
    /// A range over each tag's version; tags without one never pass.
    pub(crate) versions: Option<VersionReq>,
    /// How many of the ordered list are kept.
    pub(crate) latest: Option<usize>,
}

impl Filters {
    /// `match`: a regular expression the whole tag must match. The pattern is checked on
    /// its own first: a `)` of the user's must not close the group that anchors it.
    pub(crate) fn matching(pattern: &str) -> Result<Regex, String> {
        Regex::new(pattern).map_err(|err| err.to_string())?;
        Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
            format!("{err} (the pattern is anchored as `^(?:…)$`: end it without a `#` comment)")
        })
    }

    /// `exclude`: a regular expression; tags it matches (anywhere) are left out.
    pub(crate) fn excluding(pattern: &str) -> Result<Regex, String> {
        Regex::new(pattern).map_err(|err| err.to_string())
    }

    /// `versions`: a version range such as `>= 1.25, < 2`, as Cargo reads one: a bare
    /// version means `^` (compatible), `=1.2.3` exactly that version.
    pub(crate) fn versions(range: &str) -> Result<VersionReq, String> {
        VersionReq::parse(range).map_err(|err| {
            format!(
                "{err}: write comparisons separated by commas, such as `>= 1.25, < 2` or `~1.27`"
            )
        })
    }

    /// The tags of `listed` (in the registry's order) these filters choose, in order; a tag
    /// listed twice (on two pages) counts once.
    pub(crate) fn choose(&self, listed: &[String]) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut chosen: Vec<(Option<Version>, usize, &String)> = listed
            .iter()
            .filter(|tag| seen.insert(tag.as_str()))
            .enumerate()
            .filter(|(_, tag)| self.matching.as_ref().is_none_or(|m| m.is_match(tag)))
            .filter(|(_, tag)| self.excluding.as_ref().is_none_or(|x| !x.is_match(tag)))
            .map(|(at, tag)| (version(tag), at, tag))
            .filter(|(version, _, _)| match (&self.versions, version) {
                (None, _) => true,
                (Some(range), Some(version)) => range.matches(version),
                (Some(_), None) => false,
            })
            .collect();
        // Highest version first, ties in the registry's order; no version last.
        chosen.sort_by(|(a, at_a, _), (b, at_b, _)| match (a, b) {
            (Some(a), Some(b)) => b.cmp(a).then(at_a.cmp(at_b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => at_a.cmp(at_b),
        });
        let keep = self.latest.unwrap_or(usize::MAX);
        chosen
            .into_iter()
            .take(keep)
            .map(|(_, _, tag)| tag.clone())
            .collect()
    }
}

/// The version a tag starts with: `v?MAJOR[.MINOR[.PATCH]]`, missing parts 0; `None` for
/// tags that do not start with one (`latest`, `alpine`, `stable-perl`).
pub(crate) fn version(tag: &str) -> Option<Version> {
    let digits = tag.strip_prefix('v').unwrap_or(tag);
    let mut parts = [0u64; 3];
    let mut rest = digits;
    for (n, part) in parts.iter_mut().enumerate() {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if end == 0 {
            // No digits where a part should be: the version ended with the previous part
            // (its dot belongs to the variant), or there is none at all.
            if n == 0 {
                return None;
            }
            break;
        }
        *part = rest[..end].parse().ok()?;
        rest = &rest[end..];
        match rest.strip_prefix('.') {
            Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) && n < 2 => rest = after,
            _ => break,
        }
    }
    Some(Version::new(parts[0], parts[1], parts[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_tag_reads_as_its_leading_version_and_a_variant() {
        let v = |tag| version(tag).map(|v| v.to_string());
        assert_eq!(v("1.27.3-alpine").as_deref(), Some("1.27.3"));
        assert_eq!(v("v2.1").as_deref(), Some("2.1.0"));
        assert_eq!(v("3").as_deref(), Some("3.0.0"));
        assert_eq!(v("1.2.3.4").as_deref(), Some("1.2.3"));
        assert_eq!(v("1.25-rc1").as_deref(), Some("1.25.0"));
        assert_eq!(v("8.0-bookworm").as_deref(), Some("8.0.0"));
        assert_eq!(v("1.").as_deref(), Some("1.0.0"));
        assert_eq!(v("latest"), None);
        assert_eq!(v("alpine"), None);
        assert_eq!(v("v"), None);
        assert_eq!(v("vx1"), None);
        assert_eq!(v("99999999999999999999999"), None);
    }

    #[test]
    fn tags_order_by_version_then_the_registrys_order_then_versionless() {
        let listed = tags(&[
            "latest",
            "1.2",
            "1.10",
            "1.2.0-alpine",
            "v2",
            "alpine",
            "1.9.9",
        ]);
        let all = Filters::default().choose(&listed);
        assert_eq!(
            all,
            tags(&[
                "v2",
                "1.10",
                "1.9.9",
                "1.2",
                "1.2.0-alpine",
                "latest",
                "alpine"
            ])
        );
        let newest = Filters {
            latest: Some(2),
            ..Default::default()
        };
        assert_eq!(newest.choose(&listed), tags(&["v2", "1.10"]));
    }

    #[test]
    fn filters_combine_and_a_range_reads_variants_by_their_version() {
        let listed = tags(&[
            "1.24.0-alpine",
            "1.25.1-alpine",
            "1.27.3-alpine",
            "1.27.3",
            "1.27.4-rc1-alpine",
            "2.0.0-alpine",
            "alpine",
        ]);
        let filters = Filters {
            matching: Some(Filters::matching(r"^1\.27\.\d+.*-alpine$").unwrap()),
            excluding: Some(Filters::excluding(r"-rc\d*").unwrap()),
            versions: Some(Filters::versions(">= 1.25, < 2").unwrap()),
            latest: None,
        };
        assert_eq!(filters.choose(&listed), tags(&["1.27.3-alpine"]));
        let ranged = Filters {
            versions: Some(Filters::versions(">= 1.25, < 2").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            ranged.choose(&listed),
            tags(&[
                "1.27.4-rc1-alpine",
                "1.27.3-alpine",
                "1.27.3",
                "1.25.1-alpine"
            ])
        );
        // `match` is whole-tag: `1.27` alone does not match `1.27.3`.
        let whole = Filters {
            matching: Some(Filters::matching(r"1\.27").unwrap()),
            ..Default::default()
        };
        assert!(whole.choose(&listed).is_empty());
        // A user's `)` cannot reopen the anchors: the pattern alone must be whole.
        assert!(Filters::matching(r"1\.2)|(abc").is_err());
        let alternation = Filters {
            matching: Some(Filters::matching(r"1\.27\.3|alpine").unwrap()),
            ..Default::default()
        };
        assert_eq!(alternation.choose(&listed), tags(&["1.27.3", "alpine"]));
        // A tag listed on two pages counts once.
        let twice = tags(&["1.0", "1.1", "1.1", "1.2"]);
        assert_eq!(
            Filters::default().choose(&twice),
            tags(&["1.2", "1.1", "1.0"])
        );
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(Filters::matching("(").is_err());
        assert!(Filters::excluding("[").is_err());
        assert!(Filters::versions(">= banana").is_err());
        assert!(Filters::versions(">= 1.25, < 2").is_ok());
        assert!(Filters::versions("~1.27").is_ok());
    }
}
