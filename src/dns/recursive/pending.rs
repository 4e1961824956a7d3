//! The recursive role as a front end: it gets the question the front end parsed once, answers
//! it on the worker from the cache, or hands the transport a [`Pending`] job to spawn.
//!
//! The job owns everything it needs (the question, the place among the resolutions in flight),
//! so the transport neither parses the request again nor calls back into the front end: it
//! spawns [`Pending::resolve`] under its own task tracker and cancellation, and sends what it
//! returns.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Admission, Recursor};
use crate::dns::wire::{self, OptOut, Query, QueryName};
use crate::dns::{Question, Verdict};

impl Recursor {
    /// Answers `question` (under the apex, class IN) into `out` when its outcome is cached (an
    /// answer, NXDOMAIN/NODATA or a remembered failure); otherwise takes one of the
    /// `recursive.max_in_flight` places and defers the resolution. With every place taken the
    /// query is dropped before any task exists for it.
    pub(in crate::dns) fn answer(self: &Arc<Self>, question: &Question<'_>, out: &mut Vec<u8>) -> Verdict {
        let now = Instant::now();
        let mut key = [0u8; wire::MAX_NAME + 2];
        let len = Self::key(question.name, question.query.qtype, &mut key);
        if let Some(entry) = self.cached(&key[..len], now) {
            if question.respond(&entry.value.body, out) {
                Self::count_down(&entry, out, question.query.question_end, now);
            }
            return Verdict::Respond;
        }
        match self.admit() {
            Some(admission) => Verdict::Defer(Pending::new(self.clone(), admission, question)),
            None => Verdict::Drop,
        }
    }
}

/// A recursive node's cache miss, admitted: the resolution still to run, owning its question.
pub struct Pending {
    recursor: Arc<Recursor>,
    /// Given back when the job ends, however it ends (done, cancelled, or panicked).
    _admission: Admission,
    /// Boxed: it is most of the job, and a [`Verdict`] is returned by value for every packet.
    name: Box<QueryName>,
    query: Query,
    /// The request up to the end of its question: what the response starts with.
    head: Box<[u8]>,
    opt: Option<OptOut>,
    limit: usize,
}

impl Pending {
    fn new(recursor: Arc<Recursor>, admission: Admission, question: &Question<'_>) -> Self {
        let head = question.request.get(..question.query.question_end).unwrap_or(question.request);
        Self {
            recursor,
            _admission: admission,
            name: Box::new(question.name.clone()),
            query: question.query,
            head: head.into(),
            opt: question.opt,
            limit: question.limit,
        }
    }

    /// The question's name, lower-cased.
    pub fn name(&self) -> &QueryName {
        &self.name
    }

    /// The parsed query: id, type, class, EDNS.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// Resolves (or joins a resolution of the same question), and returns the response.
    pub async fn resolve(self) -> Vec<u8> {
        let entry = self.recursor.resolve(&self.name, self.query.qtype).await;
        let mut out = Vec::with_capacity(512);
        if wire::write_response(&mut out, &self.head, &self.query, &entry.value.body, self.opt, self.limit) {
            Recursor::count_down(&entry, &mut out, self.query.question_end, Instant::now());
        }
        out
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.query.id).field("qtype", &self.query.qtype).finish_non_exhaustive()
    }
}
