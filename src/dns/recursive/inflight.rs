//! Resolutions in flight: the cap on client queries being resolved at once, and the merging of
//! identical questions into one resolution.
//!
//! The cap is a semaphore. A query takes a permit ([`Admission`]) before any task exists for
//! it; when none is left the query is dropped unanswered, as Unbound drops what exceeds its
//! `num-queries-per-thread` (its `jostle-timeout`, which evicts the older half of slow queries,
//! is not copied). The client asks again after its own timeout, when slots may have come free;
//! a SERVFAIL instead would be remembered by the client's resolver (RFC 9520) and outlast the
//! burst that caused it.
//!
//! Merging: the first query for a question leads. It resolves, caches the outcome, then
//! publishes it on a `watch` channel; queries for the same question arriving meanwhile follow:
//! they wait for that outcome instead of asking upstream again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

type Pending<T> = Mutex<HashMap<Box<[u8]>, watch::Receiver<Option<T>>>>;

pub(super) struct InFlight<T> {
    permits: Arc<Semaphore>,
    max: usize,
    dropped: AtomicU64,
    /// The questions being resolved, by cache key, with where their outcome will appear.
    pending: Pending<T>,
}

/// A query's place among the resolutions in flight, given back when dropped.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

pub(super) enum Join<'a, T> {
    /// The outcome was cached by a resolution that ended just before.
    Done(T),
    /// Another query is resolving the same question.
    Follow(Follower<T>),
    /// This query resolves the question, and must [`Lead::finish`].
    Lead(Lead<'a, T>),
}

pub(super) struct Follower<T>(watch::Receiver<Option<T>>);

pub(super) struct Lead<'a, T> {
    pending: &'a Pending<T>,
    key: Box<[u8]>,
    /// `None` once finished.
    outcome: Option<watch::Sender<Option<T>>>,
}

impl<T: Clone> InFlight<T> {
    pub(super) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            dropped: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more query, or `None` (counted as dropped) when all are taken.
    pub(super) fn admit(&self) -> Option<Admission> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Admission { _permit: permit }),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Queries holding a place now.
    pub(super) fn admitted(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// Distinct questions being resolved now.
    pub(super) fn resolutions(&self) -> usize {
        lock(&self.pending).len()
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Joins the resolution of `key`. `cached` is looked up under the same lock: a leader caches
    /// its outcome before it leaves the map, so a query that finds neither is the next leader.
    pub(super) fn join(&self, key: &[u8], cached: impl FnOnce() -> Option<T>) -> Join<'_, T> {
        let mut pending = lock(&self.pending);
        if let Some(outcome) = pending.get(key) {
            return Join::Follow(Follower(outcome.clone()));
        }
        if let Some(done) = cached() {
            return Join::Done(done);
        }
        let (sender, receiver) = watch::channel(None);
        pending.insert(key.into(), receiver);
        Join::Lead(Lead { pending: &self.pending, key: key.into(), outcome: Some(sender) })
    }
}

impl<T: Clone> Follower<T> {
    /// The leader's outcome; `None` if the leader went away without one (cancelled at shutdown).
    pub(super) async fn outcome(mut self) -> Option<T> {
        self.0.wait_for(Option::is_some).await.ok().and_then(|outcome| outcome.clone())
    }
}

impl<T> Lead<'_, T> {
    /// Hands `outcome` to the followers and leaves the map.
    pub(super) fn finish(mut self, outcome: T) {
        if let Some(sender) = self.outcome.take() {
            sender.send_replace(Some(outcome));
        }
        lock(self.pending).remove(&self.key);
    }
}

impl<T> Drop for Lead<'_, T> {
    /// A leader cancelled before it finished leaves the map too; its followers get `None`.
    fn drop(&mut self) {
        if self.outcome.is_some() {
            lock(self.pending).remove(&self.key);
        }
    }
}

/// The map stays consistent under a panic (every change is one call), so a poisoned lock is
/// still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_a_later_query_the_cached_one() {
        let flight = InFlight::<u32>::new(10);
        let Join::Lead(lead) = flight.join(b"q", || None) else { panic!("the first query leads") };
        let Join::Follow(follower) = flight.join(b"q", || None) else { panic!("the second follows") };
        assert!(matches!(flight.join(b"other", || None), Join::Lead(_)), "another question leads its own");
        assert_eq!(flight.resolutions(), 1, "the other lead was dropped unfinished and left");
        lead.finish(7);
        assert_eq!(follower.outcome().await, Some(7));
        assert_eq!(flight.resolutions(), 0);
        assert!(matches!(flight.join(b"q", || Some(7)), Join::Done(7)));
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_releases_its_followers() {
        let flight = InFlight::<u32>::new(10);
        let Join::Lead(lead) = flight.join(b"q", || None) else { panic!() };
        let Join::Follow(follower) = flight.join(b"q", || None) else { panic!() };
        drop(lead);
        assert_eq!(follower.outcome().await, None);
        assert!(matches!(flight.join(b"q", || None), Join::Lead(_)), "the next query leads anew");
    }

    #[test]
    fn admissions_are_capped_and_given_back() {
        let flight = InFlight::<u32>::new(2);
        let (a, b) = (flight.admit(), flight.admit());
        assert!(a.is_some() && b.is_some());
        assert!(flight.admit().is_none());
        assert_eq!((flight.admitted(), flight.dropped()), (2, 1));
        drop(a);
        assert!(flight.admit().is_some());
    }
}
