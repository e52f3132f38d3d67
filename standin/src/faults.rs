//! Fault injection: fail or delay the next calls of an operation.
//!
//! A rule names a target: an ECR operation (`DescribeImages`), `registry` for every registry
//! request through a front, `registry:<METHOD>` for one method (`registry:PUT`), or
//! `registry:<METHOD>:<part of the path>` (`registry:GET:/blobs/`). Rules are
//! set over HTTP with `POST /_standin/faults` (a JSON [`Rule`]) and cleared with
//! `DELETE /_standin/faults`.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rule {
    /// `registry`, `registry:<METHOD>`, `registry:<METHOD>:<part of the path>`, or an ECR
    /// operation name.
    pub target: String,
    /// How many matching calls it applies to; 0 means every call from now on.
    #[serde(default)]
    pub count: u32,
    /// HTTP status to answer with; none only delays the call.
    #[serde(default)]
    pub status: Option<u16>,
    /// ECR error type (`__type`) for ECR operations, e.g. `ServerException`.
    #[serde(default)]
    pub error_type: Option<String>,
    /// Error message.
    #[serde(default)]
    pub message: Option<String>,
    /// Delay before the call is answered (or failed), in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// `Retry-After` seconds to send with the failure.
    #[serde(default)]
    pub retry_after: Option<u32>,
    /// Registry rules: answer as the backend does, but with the body's first byte changed
    /// (a blob whose bytes do not match its digest).
    #[serde(default)]
    pub corrupt: bool,
    /// Registry rules: answer as the backend does, but drop the connection after half the
    /// body (a reset or a truncated body mid-blob).
    #[serde(default)]
    pub truncate: bool,
    /// Registry rules: answer as the backend does, but without these response headers (a
    /// registry whose `HEAD` names no `Docker-Content-Digest`).
    #[serde(default)]
    pub without_headers: Vec<String>,
}

impl Rule {
    /// A rule for every call of `target` that, until more is set, neither fails nor delays.
    pub fn on(target: &str) -> Rule {
        Rule {
            target: target.to_string(),
            count: 0,
            status: None,
            error_type: None,
            message: None,
            delay_ms: 0,
            retry_after: None,
            corrupt: false,
            truncate: false,
            without_headers: Vec::new(),
        }
    }
}

impl Rule {
    /// What the rule does to a call, in words: `ThrottlingException`, `429 (Retry-After:
    /// 2 s)`, `reset mid-body`, `slow (800 ms)`.
    pub fn effect(&self) -> String {
        let mut effect = match (&self.error_type, self.status) {
            (Some(error_type), _) => error_type.clone(),
            (None, Some(status)) => match self.retry_after {
                Some(after) => format!("{status} (Retry-After: {after} s)"),
                None => status.to_string(),
            },
            (None, None) if self.truncate => "reset mid-body".into(),
            (None, None) if self.corrupt => "damaged body".into(),
            (None, None) if !self.without_headers.is_empty() => {
                format!("without {}", self.without_headers.join(", "))
            }
            (None, None) => String::new(),
        };
        if self.delay_ms > 0 {
            let slow = format!("slow ({} ms)", self.delay_ms);
            effect = if effect.is_empty() {
                slow
            } else {
                format!("{effect}, {slow}")
            };
        }
        effect
    }
}

/// What a matching rule asks for.
#[derive(Clone, Debug)]
pub struct Fault {
    pub delay: Duration,
    pub status: Option<u16>,
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<u32>,
    pub corrupt: bool,
    pub truncate: bool,
    pub without_headers: Vec<String>,
}

/// The rules in force.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<(Rule, u32)>>,
    /// How often rules fired, by target and by what they did (kept when rules are
    /// cleared).
    fired: Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl Faults {
    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push((rule, 0));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How often rules for `target` (a rule's target, as set) fired, cleared or not.
    pub fn fired(&self, target: &str) -> u64 {
        self.fired
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| t == target)
            .map(|(_, n)| n)
            .sum()
    }

    /// How often rules fired, by target and [`Rule::effect`].
    pub fn fired_by_kind(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.fired.lock().unwrap().clone()
    }

    /// The fault for one call of `target`, if a rule matches; counts the call against it.
    pub fn take(&self, target: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let index = rules.iter().position(|(rule, used)| {
            matches(&rule.target, target) && (rule.count == 0 || *used < rule.count)
        })?;
        let (rule, used) = &mut rules[index];
        *used += 1;
        *self
            .fired
            .lock()
            .unwrap()
            .entry((rule.target.clone(), rule.effect()))
            .or_default() += 1;
        let fault = Fault {
            delay: Duration::from_millis(rule.delay_ms),
            status: rule.status,
            error_type: rule.error_type.clone(),
            message: rule.message.clone(),
            retry_after: rule.retry_after,
            corrupt: rule.corrupt,
            truncate: rule.truncate,
            without_headers: rule.without_headers.clone(),
        };
        if rule.count != 0 && *used >= rule.count {
            rules.remove(index);
        }
        Some(fault)
    }
}

/// Whether `pattern` covers `target`: an ECR operation's name, or `registry:<METHOD>:<path>`
/// for a registry request, covered by `registry`, `registry:<METHOD>` and
/// `registry:<METHOD>:<part of the path>`.
fn matches(pattern: &str, target: &str) -> bool {
    let Some(request) = target.strip_prefix("registry:") else {
        return pattern == target;
    };
    let (method, path) = request.split_once(':').unwrap_or((request, ""));
    match pattern.strip_prefix("registry") {
        Some("") => true,
        Some(rest) => match rest.strip_prefix(':').map(|r| r.split_once(':')) {
            Some(Some((m, part))) => m == method && path.contains(part),
            Some(None) => rest[1..] == *method,
            None => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(target: &str, count: u32) -> Rule {
        Rule {
            count,
            status: Some(500),
            ..Rule::on(target)
        }
    }

    #[test]
    fn counted_rule_fires_exactly_count_times() {
        let faults = Faults::default();
        faults.add(rule("DescribeImages", 2));
        assert!(faults.take("DescribeImages").is_some());
        assert!(faults.take("ListImages").is_none());
        assert!(faults.take("DescribeImages").is_some());
        assert!(faults.take("DescribeImages").is_none());
    }

    #[test]
    fn registry_rule_matches_every_method() {
        let faults = Faults::default();
        faults.add(rule("registry", 0));
        assert!(faults.take("registry:GET:/v2/").is_some());
        assert!(faults.take("registry:PUT:/v2/a/manifests/1").is_some());
        faults.clear();
        assert!(faults.take("registry:GET:/v2/").is_none());
    }

    #[test]
    fn registry_rules_narrow_to_a_method_and_a_path() {
        let faults = Faults::default();
        faults.add(rule("registry:GET:/blobs/", 0));
        faults.add(rule("registry:PUT", 1));
        assert!(faults.take("registry:GET:/v2/a/manifests/1").is_none());
        assert!(faults.take("registry:HEAD:/v2/a/blobs/sha256:1").is_none());
        assert!(faults.take("registry:GET:/v2/a/blobs/sha256:1").is_some());
        assert!(faults.take("registry:PUT:/v2/a/blobs/uploads/x").is_some());
        assert!(faults.take("registry:PUT:/v2/a/blobs/uploads/x").is_none());
    }
}
