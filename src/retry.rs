//! The provider's one retry loop, its backoff, how often each kind of request is tried, and
//! the notes a timeout reads. Every request that may fail transiently (a registry's, a
//! blob copy, the Docker engine's pulls and pushes) is tried again through [`retrying`];
//! the ECR API's calls are tried again by the AWS SDK, [`ECR_API_TRIES`] times.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a registry request, a blob copy or a Docker pull or push that failed
/// transiently is tried in all.
pub(crate) const TRIES: u32 = 3;

/// How often a Docker pull or push is tried in all when the engine went out of reach
/// mid-copy (it may be restarting).
pub(crate) const ENGINE_TRIES: u32 = 5;

/// How often an ECR API call is tried, unless AWS_MAX_ATTEMPTS or the profile says.
pub(crate) const ECR_API_TRIES: u32 = 6;

/// How long to wait before try `tries + 1` when the other side did not say: exponential
/// (below 1 s, then below 2 s, …) with full jitter, so that requests failed by one blip do
/// not all come back at once.
pub(crate) fn backoff(tries: u32) -> Duration {
    let ceiling = Duration::from_millis(500 * 2u64.pow(tries.min(6)));
    ceiling.mul_f64(fastrand::f64())
}

/// How long to wait before try `tries + 1` of a Docker pull or push when the engine went out
/// of reach (it may be restarting): 2 s, 4 s, 8 s, 16 s.
pub(crate) fn engine_backoff(tries: u32) -> Duration {
    Duration::from_secs(2u64.pow(tries.min(6)))
}

/// The wait before try `tries + 1` of something that failed after `tries` tries: none when
/// the failure is not `transient` or [`TRIES`] are spent; else the wait the other side
/// `asked` for, else [`backoff`].
pub(crate) fn wait_before_next(
    transient: bool,
    asked: Option<Duration>,
    tries: u32,
) -> Option<Duration> {
    (transient && tries < TRIES).then(|| asked.unwrap_or_else(|| backoff(tries)))
}

tokio::task_local! {
    /// Where the operation this task runs for notes its retries (see [`Notes`]).
    static NOTES: Notes;
}

/// The retries and waits of one operation (a mirror under its `timeouts` limit), so that a
/// timeout can say what the operation was waiting for when it ran out, and when it runs out.
#[derive(Clone, Default)]
pub(crate) struct Notes(Arc<Mutex<Option<String>>>, Option<std::time::Instant>);

impl Notes {
    /// Notes for an operation that must end by `deadline`.
    pub(crate) fn until(deadline: std::time::Instant) -> Notes {
        Notes(Arc::default(), Some(deadline))
    }

    /// How long the operation this task runs for has left, when it has a limit.
    pub(crate) fn time_left() -> Option<Duration> {
        NOTES
            .try_with(|notes| notes.1)
            .ok()
            .flatten()
            .map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()))
    }

    /// Notes that the operation this task runs for waits for `what` (a sentence), until
    /// [`Notes::waited`] says it no longer does.
    pub(crate) fn waiting(what: &str) {
        Notes::note(what.to_string());
    }

    /// The wait [`Notes::waiting`] noted as `what` is over.
    pub(crate) fn waited(what: &str) {
        let _ = NOTES.try_with(|notes| {
            if let Ok(mut last) = notes.0.lock() {
                if last.as_deref() == Some(what) {
                    *last = None;
                }
            }
        });
    }

    /// Runs `work` with its retries (of this task) noted here.
    pub(crate) async fn watch<F: std::future::Future>(&self, work: F) -> F::Output {
        NOTES.scope(self.clone(), work).await
    }

    /// The last retry noted: what was tried again, after which failure and how long after.
    pub(crate) fn last(&self) -> Option<String> {
        self.0.lock().map(|last| last.clone()).unwrap_or_default()
    }

    /// Notes a retry with the operation this task runs for, if any.
    fn note(retry: String) {
        let _ = NOTES.try_with(|notes| {
            if let Ok(mut last) = notes.0.lock() {
                *last = Some(retry);
            }
        });
    }
}

/// `step` (made anew by each call), tried again after the wait `wait` gives for its error
/// and the number of tries so far, until `wait` gives none. The debug log names `what`, and
/// the operation's [`Notes`] the last retry.
pub(crate) async fn retrying<T, E, F, Fut>(
    what: &str,
    mut step: F,
    wait: impl Fn(&E, u32) -> Option<Duration>,
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match step().await {
            Err(err) => match wait(&err, tries) {
                Some(wait) => {
                    tracing::debug!(attempt = tries, ?wait, "retrying {what}: {err}");
                    Notes::note(format!(
                        "Its last retry: {what}, try {}, {} after: {err}",
                        tries + 1,
                        crate::error::display_duration(Duration::from_millis(
                            wait.as_millis().try_into().unwrap_or(u64::MAX)
                        ))
                    ));
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                None => return Err(err),
            },
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_given_only_for_transient_failures_with_tries_left() {
        let asked = Some(Duration::from_secs(2));
        assert_eq!(wait_before_next(true, asked, 1), asked);
        assert_eq!(wait_before_next(true, asked, TRIES), None);
        assert_eq!(wait_before_next(false, asked, 1), None);
        let waited = wait_before_next(true, None, 2).expect("a backoff");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}
