//! What a registry's settings say about a push: the repository creation template that
//! creates a missing repository on push (`DescribeRepositoryCreationTemplates`), and whether
//! ECR mounts blobs across repositories (`GetAccountSetting BLOB_MOUNTING`). Each is asked
//! once per registry for the life of the process, by the first mirror that needs it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ecr::types::{RctAppliedFor, RepositoryCreationTemplate};
use tokio::sync::OnceCell;

use super::{aws_error, Ecr, Repository, TagMutability};
use crate::error::{AwsRefusal, Error};

/// Whether ECR mounts a blob from another repository of the registry
/// (the `BLOB_MOUNTING` account setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mounting {
    Enabled,
    Disabled,
    /// Not known (another account's registry, or IAM refused the question): mounts are
    /// tried, and a refused one is answered with an upload session that is used.
    #[default]
    Unknown,
}

/// The templates of one registry, or why they could not be asked.
type Templates = std::result::Result<(String, Vec<RepositoryCreationTemplate>), String>;

/// The settings asked so far, by registry (`None`: the caller's own).
#[derive(Default)]
pub(super) struct Settings {
    templates: std::sync::Mutex<HashMap<Option<String>, Arc<OnceCell<Templates>>>>,
    mounting: OnceCell<Mounting>,
}

impl Ecr {
    /// The repository ECR creates on push as `repository` of `registry_id`'s registry, when
    /// it does not exist, from a template: of the templates applied for `CREATE_ON_PUSH`, the
    /// one with the longest prefix the name starts with (`<prefix>/`), else `ROOT`.
    /// `Ok(None)`: none applies. `Err`: the templates could not be asked (why, for the error
    /// that the repository is missing).
    pub(crate) async fn push_template(
        &self,
        registry_id: Option<&str>,
        repository: &str,
    ) -> std::result::Result<Option<Repository>, String> {
        let cell = {
            let mut cells = self
                .settings
                .templates
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            cells
                .entry(registry_id.map(str::to_string))
                .or_default()
                .clone()
        };
        let (registry, templates) = cell
            .get_or_init(|| self.templates(registry_id))
            .await
            .clone()?;
        Ok(
            applicable(&templates, repository).map(|template| Repository {
                registry_id: registry.clone(),
                name: repository.to_string(),
                tags: template_tags(template),
                encryption: template
                    .encryption_configuration()
                    .map(|config| match config.kms_key() {
                        Some(key) => format!("{} {key}", config.encryption_type().as_str()),
                        None => config.encryption_type().as_str().to_string(),
                    })
                    .unwrap_or_else(|| "AES256".into()),
                created_on_push: Some(template.prefix().unwrap_or_default().to_string()),
            }),
        )
    }

    /// Every repository creation template of the registry, and its account id.
    async fn templates(&self, registry_id: Option<&str>) -> Templates {
        let pages = self
            .client
            .describe_repository_creation_templates()
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await;
        let mut registry = registry_id.map(str::to_string);
        let mut all = Vec::new();
        for page in pages {
            match page {
                Ok(page) => {
                    registry = registry.or(page.registry_id().map(str::to_string));
                    all.extend(page.repository_creation_templates().iter().cloned());
                }
                Err(err) => {
                    let err =
                        aws_error(&self.endpoint, "DescribeRepositoryCreationTemplates", &err);
                    tracing::warn!("cannot ask for repository creation templates: {err:#}");
                    return Err(describe(&err));
                }
            }
        }
        match registry {
            Some(registry) => Ok((registry, all)),
            None => Err("ECR's answer names no registry.".into()),
        }
    }

    /// Whether the registry of `registry_id` mounts blobs across repositories. Asked once, of
    /// the caller's own registry (`GetAccountSetting` answers for it alone); another
    /// account's registry, or a refused question, is [`Mounting::Unknown`].
    pub(crate) async fn mounting(&self, registry_id: Option<&str>) -> Mounting {
        if registry_id.is_some() {
            return Mounting::Unknown;
        }
        *self
            .settings
            .mounting
            .get_or_init(|| async {
                match self
                    .client
                    .get_account_setting()
                    .name("BLOB_MOUNTING")
                    .send()
                    .await
                {
                    Ok(output) => match output.value() {
                        Some("ENABLED") => Mounting::Enabled,
                        Some(_) => Mounting::Disabled,
                        None => Mounting::Unknown,
                    },
                    Err(err) => {
                        let err = aws_error(&self.endpoint, "GetAccountSetting", &err);
                        tracing::info!("blob mounting unknown, mounts are tried: {err:#}");
                        Mounting::Unknown
                    }
                }
            })
            .await
    }
}

/// What a failed question says, for the user: the refusal and what to grant.
fn describe(err: &Error) -> String {
    match err {
        Error::Aws {
            refusal: AwsRefusal::Access,
            cause,
            ..
        } => format!("IAM refused ecr:DescribeRepositoryCreationTemplates ({cause}); grant it to tell whether ECR creates the repository on push."),
        other => format!("{other}: {}", other.detail()),
    }
}

/// The template ECR applies on push to `repository`, among `templates`.
fn applicable<'a>(
    templates: &'a [RepositoryCreationTemplate],
    repository: &str,
) -> Option<&'a RepositoryCreationTemplate> {
    let on_push = templates
        .iter()
        .filter(|t| t.applied_for().contains(&RctAppliedFor::CreateOnPush));
    let mut root = None;
    let mut best: Option<&RepositoryCreationTemplate> = None;
    for template in on_push {
        let prefix = template.prefix().unwrap_or_default();
        if prefix == "ROOT" {
            root = Some(template);
        } else if covers(prefix, repository)
            && best.is_none_or(|b| b.prefix().unwrap_or_default().len() < prefix.len())
        {
            best = Some(template);
        }
    }
    best.or(root)
}

/// Whether `prefix` covers `repository`: ECR reads a prefix as `<prefix>/`.
fn covers(prefix: &str, repository: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    repository
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The tag mutability a template gives the repositories it creates.
fn template_tags(template: &RepositoryCreationTemplate) -> TagMutability {
    use aws_sdk_ecr::types::ImageTagMutability as M;
    let filters = || {
        template
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| f.filter().to_string())
            .collect()
    };
    match template.image_tag_mutability() {
        Some(M::Immutable) => TagMutability::Immutable,
        Some(M::ImmutableWithExclusion) => TagMutability::ImmutableExcept(filters()),
        Some(M::MutableWithExclusion) => TagMutability::MutableExcept(filters()),
        _ => TagMutability::Mutable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(prefix: &str, applied_for: &[RctAppliedFor]) -> RepositoryCreationTemplate {
        RepositoryCreationTemplate::builder()
            .prefix(prefix)
            .set_applied_for(Some(applied_for.to_vec()))
            .build()
    }

    #[test]
    fn the_longest_covering_prefix_applied_for_create_on_push_wins_else_root() {
        let push = [RctAppliedFor::CreateOnPush];
        let templates = [
            template("ROOT", &push),
            template("mirror", &push),
            template("mirror/team", &push),
            template("mirror/team/app", &[RctAppliedFor::Replication]),
            template("mir", &push),
        ];
        let chosen = |name| applicable(&templates, name).and_then(|t| t.prefix());
        assert_eq!(chosen("mirror/team/app"), Some("mirror/team"));
        assert_eq!(chosen("mirror/other"), Some("mirror"));
        assert_eq!(chosen("mirrors/x"), Some("ROOT"));
        assert_eq!(chosen("mirror"), Some("ROOT"));
        assert_eq!(applicable(&templates[1..], "other"), None);
        assert_eq!(
            applicable(&[template("ROOT", &[RctAppliedFor::PullThroughCache])], "x"),
            None
        );
    }
}
