//! Blobs shared by the mirrors of one process across the repositories of a target registry.
//!
//! ECR mounts a blob from another repository of the same registry when its `BLOB_MOUNTING`
//! setting is enabled, both repositories are encrypted alike, and an image in the repository
//! it is mounted from references the blob. So when mirrors of a family of images (one base
//! layer under each) run at once, the first to need a shared blob claims it and uploads it
//! into its repository; the others wait until that mirror's manifests reference it, then
//! mount it, instead of each uploading the same bytes at once.
//!
//! Waiting cannot deadlock: a copy waits only for a claim of a copy that is not waiting
//! itself, decided under one lock. (Of a cycle of waits, the wait made last would have been
//! for a copy already waiting.) A copy that may not wait uploads the blob itself. A claim
//! whose copy fails or ends without referencing it is released, and a waiter claims it anew.
//! Nor does a slow copy hold the others up past their own limits: a copy waits at most half
//! the time its `timeouts` limit has left, then uploads the blob itself, and a timeout meanwhile
//! says what it was waiting for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::ecr::Mounting;
use crate::transfer::BlobSharing;

/// Where a claimed blob stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Its copy is uploading it, or has not yet pushed the manifests that reference it.
    Uploading,
    /// A manifest of the holder's repository references it: it can be mounted from there.
    Referenced,
    /// Its copy failed or ended before referencing it.
    Released,
}

/// A blob in a target registry, among repositories encrypted alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    host: String,
    encryption: String,
    digest: String,
}

/// The repository a blob is (or is being) put into, by which copy.
struct Holder {
    repository: String,
    copy: u64,
    held: watch::Receiver<Held>,
}

#[derive(Default)]
struct Inner {
    holders: HashMap<Key, Holder>,
    /// How many of each copy's blobs are waiting for another copy's claim.
    waiting: HashMap<u64, usize>,
}

/// The blobs of a process's copies, by target registry.
#[derive(Default)]
pub(super) struct Sharing {
    inner: Mutex<Inner>,
    copies: AtomicU64,
}

/// One copy's part: the blobs it claimed, released when it ends unless it referenced them.
pub(super) struct Copy<'a> {
    sharing: &'a Sharing,
    id: u64,
    claims: Mutex<Vec<watch::Sender<Held>>>,
}

/// Where a blob the target repository lacks comes from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// Mounted from this repository of the registry (which may decline).
    Mount(String),
    /// Uploaded.
    Upload,
}

impl Sharing {
    /// A copy's part in the sharing.
    pub(super) fn begin(&self) -> Copy<'_> {
        Copy {
            sharing: self,
            id: self.copies.fetch_add(1, Ordering::Relaxed),
            claims: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `repository` of `host` holds blob `digest` (it answered a `HEAD` for it):
    /// another repository may mount it from there (if ECR finds no image of it referencing
    /// the blob, the mount is declined and the blob uploaded).
    pub(super) fn found(&self, host: &str, repository: &str, sharing: &BlobSharing, digest: &str) {
        if sharing.mounting == Mounting::Disabled {
            return;
        }
        let key = key(host, sharing, digest);
        let mut inner = self.inner();
        let free = inner
            .holders
            .get(&key)
            .is_none_or(|h| *h.held.borrow() == Held::Released);
        if free {
            let (_, held) = watch::channel(Held::Referenced);
            inner.holders.insert(
                key,
                Holder {
                    repository: repository.to_string(),
                    copy: u64::MAX,
                    held,
                },
            );
        }
    }
}

impl Copy<'_> {
    /// Where blob `digest`, which `repository` of `host` lacks, should come from. Waits while
    /// another copy that is not waiting itself puts it into another repository; claims it
    /// when no copy has. `copy` is `None` for copies that neither claim nor wait (a
    /// referrer's blobs): they mount only what is referenced already.
    pub(super) async fn origin(
        copy: Option<&Self>,
        sharing: &Sharing,
        host: &str,
        repository: &str,
        blobs: &BlobSharing,
        digest: &str,
    ) -> Origin {
        if blobs.mounting == Mounting::Disabled {
            return Origin::Upload;
        }
        let key = key(host, blobs, digest);
        loop {
            let (mut held, waiter, held_in) = {
                let mut inner = sharing.inner();
                let state = inner
                    .holders
                    .get(&key)
                    .map(|h| (h.repository.clone(), h.copy, *h.held.borrow()));
                match (state, copy) {
                    (Some((held_in, _, Held::Referenced)), _) if held_in != repository => {
                        return Origin::Mount(held_in)
                    }
                    (Some((held_in, _, Held::Uploading | Held::Referenced)), _)
                        if held_in == repository =>
                    {
                        return Origin::Upload
                    }
                    (Some((held_in, holder, Held::Uploading)), Some(copy)) => {
                        let holder_waits = inner.waiting.get(&holder).is_some_and(|n| *n > 0);
                        if holder == copy.id || holder_waits {
                            return Origin::Upload;
                        }
                        *inner.waiting.entry(copy.id).or_default() += 1;
                        let held = inner.holders[&key].held.clone();
                        (held, copy, held_in)
                    }
                    (_, Some(copy)) => {
                        let (claim, held) = watch::channel(Held::Uploading);
                        inner.holders.insert(
                            key,
                            Holder {
                                repository: repository.to_string(),
                                copy: copy.id,
                                held,
                            },
                        );
                        copy.claims
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(claim);
                        return Origin::Upload;
                    }
                    (_, None) => return Origin::Upload,
                }
            };
            let note = format!(
                "It was waiting for blob {digest}, which another mirror is putting into repository `{held_in}` of the same registry, to mount it from there (a mirror waits at most half the time its limit has left, then uploads the blob itself)."
            );
            crate::retry::Notes::waiting(&note);
            let budget = crate::retry::Notes::time_left().map(|left| left / 2);
            // A dropped claim counts as released.
            let waited = held.wait_for(|h| *h != Held::Uploading);
            let in_time = match budget {
                Some(budget) => tokio::time::timeout(budget, waited).await.is_ok(),
                None => {
                    let _ = waited.await;
                    true
                }
            };
            crate::retry::Notes::waited(&note);
            let mut inner = sharing.inner();
            if let Some(n) = inner.waiting.get_mut(&waiter.id) {
                *n = n.saturating_sub(1);
            }
            if !in_time {
                tracing::info!(%digest, "waited long enough for another mirror's upload; uploading it");
                return Origin::Upload;
            }
        }
    }

    /// The copy's manifests are pushed: every blob it claimed is referenced in its
    /// repository now, and may be mounted from there.
    pub(super) fn referenced(self) {
        self.settle(Held::Referenced);
    }

    fn settle(&self, to: Held) {
        let claims = std::mem::take(&mut *self.claims.lock().unwrap_or_else(|e| e.into_inner()));
        for claim in claims {
            claim.send_if_modified(|held| {
                let modified = *held == Held::Uploading;
                if modified {
                    *held = to;
                }
                modified
            });
        }
        self.sharing.inner().waiting.remove(&self.id);
    }
}

impl Drop for Copy<'_> {
    /// A copy that ends without [`Copy::referenced`] releases its claims.
    fn drop(&mut self) {
        self.settle(Held::Released);
    }
}

fn key(host: &str, sharing: &BlobSharing, digest: &str) -> Key {
    Key {
        host: host.to_string(),
        encryption: sharing.encryption.clone(),
        digest: digest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> BlobSharing {
        BlobSharing {
            mounting: Mounting::Enabled,
            encryption: "AES256".into(),
        }
    }

    #[tokio::test]
    async fn a_waiter_mounts_once_the_holder_references_the_blob() {
        let sharing = Sharing::default();
        let (first, second) = (sharing.begin(), sharing.begin());
        let blobs = enabled();
        assert_eq!(
            Copy::origin(Some(&first), &sharing, "h", "a", &blobs, "d").await,
            Origin::Upload
        );
        let (done, mounted) = tokio::join!(
            async {
                tokio::task::yield_now().await;
                first.referenced();
            },
            Copy::origin(Some(&second), &sharing, "h", "b", &blobs, "d")
        );
        let () = done;
        assert_eq!(mounted, Origin::Mount("a".into()));
    }

    #[tokio::test]
    async fn a_released_claim_is_claimed_anew_and_disabled_mounting_uploads() {
        let sharing = Sharing::default();
        let blobs = enabled();
        let (first, second) = (sharing.begin(), sharing.begin());
        assert_eq!(
            Copy::origin(Some(&first), &sharing, "h", "a", &blobs, "d").await,
            Origin::Upload
        );
        let (dropped, origin) = tokio::join!(
            async {
                tokio::task::yield_now().await;
                drop(first);
            },
            Copy::origin(Some(&second), &sharing, "h", "b", &blobs, "d")
        );
        let () = dropped;
        assert_eq!(origin, Origin::Upload);
        let third = sharing.begin();
        second.referenced();
        assert_eq!(
            Copy::origin(Some(&third), &sharing, "h", "c", &blobs, "d").await,
            Origin::Mount("b".into())
        );
        let disabled = BlobSharing {
            mounting: Mounting::Disabled,
            ..enabled()
        };
        assert_eq!(
            Copy::origin(Some(&third), &sharing, "h", "c", &disabled, "d").await,
            Origin::Upload
        );
        // Another encryption shares nothing.
        let kms = BlobSharing {
            encryption: "KMS k".into(),
            ..enabled()
        };
        assert_eq!(
            Copy::origin(None, &sharing, "h", "c", &kms, "d").await,
            Origin::Upload
        );
    }

    #[tokio::test]
    async fn a_waiter_stops_waiting_after_half_its_time_left() {
        let sharing = Sharing::default();
        let blobs = enabled();
        let (slow, waiter) = (sharing.begin(), sharing.begin());
        assert_eq!(
            Copy::origin(Some(&slow), &sharing, "h", "a", &blobs, "d").await,
            Origin::Upload
        );
        let notes = crate::retry::Notes::until(
            std::time::Instant::now() + std::time::Duration::from_millis(400),
        );
        let started = std::time::Instant::now();
        let origin = notes
            .watch(Copy::origin(Some(&waiter), &sharing, "h", "b", &blobs, "d"))
            .await;
        assert_eq!(origin, Origin::Upload);
        assert!(started.elapsed() < std::time::Duration::from_millis(390));
        assert_eq!(notes.last(), None, "the wait is over, so no longer noted");
    }

    #[tokio::test]
    async fn a_copy_that_waits_is_not_waited_for() {
        let sharing = Sharing::default();
        let blobs = enabled();
        let (a, b) = (sharing.begin(), sharing.begin());
        // a claims x, b claims y.
        assert_eq!(
            Copy::origin(Some(&a), &sharing, "h", "ra", &blobs, "x").await,
            Origin::Upload
        );
        assert_eq!(
            Copy::origin(Some(&b), &sharing, "h", "rb", &blobs, "y").await,
            Origin::Upload
        );
        // b waits for a's x; a may not wait for b's y then: it uploads y itself.
        let b_waits = Copy::origin(Some(&b), &sharing, "h", "rb", &blobs, "x");
        let a_decides = async {
            tokio::task::yield_now().await;
            let origin = Copy::origin(Some(&a), &sharing, "h", "ra", &blobs, "y").await;
            a.referenced();
            origin
        };
        let (b_origin, a_origin) = tokio::join!(b_waits, a_decides);
        assert_eq!(a_origin, Origin::Upload);
        assert_eq!(b_origin, Origin::Mount("ra".into()));
    }
}
