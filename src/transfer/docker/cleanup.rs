//! What the Docker method changes in the engine's local images, and how it is undone after a
//! copy, whether it worked, failed, or was cancelled: the local tags this method creates are
//! removed afterwards; images and tags the user had before are left as they were. Mirrors of
//! one source share its local reference while they run: the last of them to finish undoes
//! it, as the first found it ([`SourceUses`]).

use std::collections::HashMap;
use std::sync::Arc;

use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};
use bollard::Docker;

use super::local_reference;
use crate::transfer::Job;

/// Local changes to undo after a copy, whether it worked, failed, or was cancelled (a
/// `timeouts` limit drops the copy mid-way: dropping the clean-up then undoes what is left).
pub(super) struct Cleanup {
    pub(super) docker: Docker,
    /// The local reference the source is pulled by.
    pub(super) source_ref: String,
    pub(super) target_name: String,
    pub(super) target_tag: String,
    /// The digest the push reported, whose local reference the engine then holds.
    pub(super) pushed: Option<String>,
    /// The image the local source reference named before the pull (the user's), if any.
    pub(super) previous_source: Option<String>,
    /// Whether the pull ran (and may have made or moved the local source reference).
    pub(super) pulled: bool,
    pub(super) previous_target: Option<String>,
    /// The digest references the user's image of the target tag had.
    pub(super) previous_target_digests: Vec<String>,
    pub(super) tagged: Option<String>,
    /// The mirrors using the local source reference, which this one joined.
    uses: Option<Arc<SourceUses>>,
}

/// The mirrors of this process that use each local source reference now, and whether the
/// first of them found it missing (the provider brought the image in: it goes when the last
/// one is done). Without it, a mirror that finished removed the image another mirror of the
/// same source was about to tag or push.
#[derive(Default)]
pub(super) struct SourceUses(std::sync::Mutex<HashMap<String, SourceUse>>);

#[derive(Default)]
struct SourceUse {
    users: usize,
    /// The image the first user found under the reference (`None`: none, the provider
    /// brought it in).
    found: Option<String>,
    /// Whether a user that left pulled.
    pulled: bool,
}

impl SourceUses {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, SourceUse>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Cleanup {
    pub(super) fn new(docker: &Docker, job: &Job<'_>) -> Cleanup {
        let mut cleanup = Cleanup::idle(docker.clone());
        cleanup.source_ref = local_reference(job);
        cleanup.target_name = job.target.name();
        cleanup.target_tag = job.target.tag.clone();
        cleanup
    }

    /// Joins the mirrors using the local source reference, before anything is pulled (under
    /// the reference's lock): `previous` is the image it names now, if any. The first user's
    /// view of it is the one the last user's clean-up acts on.
    pub(super) fn join(&mut self, uses: &Arc<SourceUses>, previous: Option<String>) {
        uses.with(|uses| {
            let using = uses.entry(self.source_ref.clone()).or_default();
            using.users += 1;
            if using.users == 1 {
                using.found.clone_from(&previous);
            }
        });
        self.previous_source = previous;
        self.uses = Some(uses.clone());
    }

    /// Leaves the users of the local source reference: whether this was the last one, which
    /// then undoes it as the first one found it.
    fn leave(&mut self) -> bool {
        let Some(uses) = self.uses.take() else {
            return true;
        };
        let pulled = self.pulled;
        let left = uses.with(|uses| {
            let using = uses.get_mut(&self.source_ref)?;
            using.users = using.users.saturating_sub(1);
            using.pulled |= pulled;
            if using.users > 0 {
                return Some(None);
            }
            uses.remove(&self.source_ref).map(Some)
        });
        match left {
            // The last one: what the first one found is what is put back, after any pull.
            Some(Some(using)) => {
                self.previous_source = using.found;
                self.pulled = using.pulled;
                true
            }
            Some(None) => false,
            None => true,
        }
    }

    /// A clean-up with nothing to undo.
    pub(super) fn idle(docker: Docker) -> Cleanup {
        Cleanup {
            docker,
            source_ref: String::new(),
            target_name: String::new(),
            target_tag: String::new(),
            pushed: None,
            previous_source: None,
            pulled: false,
            previous_target: None,
            previous_target_digests: Vec::new(),
            tagged: None,
            uses: None,
        }
    }

    pub(super) async fn undo_now(&mut self) {
        self.undo_target().await;
        self.undo_source().await;
    }

    /// Puts the target tag back as it was, and drops the push's digest reference.
    pub(super) async fn undo_target(&mut self) {
        let docker = &self.docker;
        let target_ref = format!("{}:{}", self.target_name, self.target_tag);
        if let Some(tagged) = self.tagged.take() {
            let tagged = &tagged;
            let result = match &self.previous_target {
                Some(previous) if previous == tagged => Ok(()),
                Some(previous) => docker
                    .tag_image(
                        previous,
                        Some(TagImageOptions {
                            repo: Some(self.target_name.clone()),
                            tag: Some(self.target_tag.clone()),
                        }),
                    )
                    .await
                    .map(|_| ()),
                None => remove(docker, &target_ref).await,
            };
            // The push left a digest reference to the target: it goes too, unless the user's
            // image of the target tag had it already.
            if let Some(pushed) = &self.pushed {
                let reference = format!("{}@{pushed}", self.target_name);
                if !self.previous_target_digests.contains(&reference) {
                    let _ = remove(docker, &reference).await;
                }
            }
            if let Err(err) = result {
                tracing::warn!(target = %target_ref, "could not restore the local tag: {err}");
            }
        }
    }

    /// Removes the pulled image the provider brought in, or puts back a moved tag of the
    /// user's.
    pub(super) async fn undo_source(&mut self) {
        if !self.leave() {
            // Another mirror of the source still uses it: the last one undoes it.
            self.pulled = false;
            return;
        }
        let docker = &self.docker;
        let source_ref = &self.source_ref;
        let pulled = std::mem::replace(&mut self.pulled, false);
        let restored = match (&self.previous_source, pulled) {
            (_, false) => Ok(()),
            // The provider brought the image in: it goes.
            (None, true) => remove(docker, source_ref).await,
            // A tag of the user's that the pull re-pointed points back at their image.
            (Some(previous), true) if !source_ref.contains('@') => {
                let (repo, tag) = source_ref
                    .rsplit_once(':')
                    .unwrap_or((source_ref, "latest"));
                docker
                    .tag_image(
                        previous,
                        Some(TagImageOptions {
                            repo: Some(repo.to_string()),
                            tag: Some(tag.to_string()),
                        }),
                    )
                    .await
                    .map(|_| ())
            }
            // A digest names one image: the user's reference is as it was.
            (Some(_), true) => Ok(()),
        };
        if let Err(err) = restored {
            tracing::debug!(source = %source_ref, "left the local source reference as it is: {err}");
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Nothing left to undo once the copy finished (each undo clears what it undid).
        if self.tagged.is_none() && !self.pulled {
            self.leave();
            return;
        }
        let idle = Cleanup::idle(self.docker.clone());
        let mut pending = std::mem::replace(self, idle);
        // Cancelled (a `timeouts` limit): undo before the error goes back to Terraform, which
        // ends the provider soon after; a single-threaded runtime can only spawn it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match runtime.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| {
                runtime.block_on(pending.undo_now());
            }),
            _ => {
                runtime.spawn(async move { pending.undo_now().await });
            }
        }
    }
}

pub(super) async fn remove(
    docker: &Docker,
    reference: &str,
) -> std::result::Result<(), bollard::errors::Error> {
    docker
        .remove_image(
            reference,
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
                platforms: None,
            }),
            None,
        )
        .await
        .map(|_| ())
}
