//! Replication between idnode nodes, the node core's part: a primary lets the administrators in
//! `[replication] mirrors` read its change log and records; a mirror applies what it reads
//! ([`crate::registry::Registry::replicate`]), tells its front ends as a write would, refuses
//! writes with a pointer to its primary, and keeps its lag where the metrics and the status
//! page read it. The transport, pulling over the primary's HTTP API, is [`crate::mirror`].

use std::sync::{Arc, Mutex};

use crate::auth::Admin;
use crate::record::{Record, types};
use crate::registry::{ChangeSet, RecordsPage, RegistryError};

use super::{Changed, Node};

/// How a mirror stands with its primary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MirrorStatus {
    /// The primary's HTTP API.
    pub primary: String,
    /// `starting`, `copying` (a full copy), `following` (caught up, or applying the log), or
    /// `unreachable`.
    pub state: &'static str,
    /// The primary's sequence number as last seen, and this node's.
    pub primary_seq: u64,
    pub seq: u64,
    /// Writes the primary has made that this node has not applied yet.
    pub lag_writes: u64,
    /// Seconds since the oldest change the primary holds and this node has not applied was
    /// made (0 when caught up).
    pub lag_seconds: u64,
    /// Unix time of the last answer from the primary.
    pub last_contact: i64,
    /// Why the last request to the primary failed, until one succeeds.
    pub error: Option<String>,
}

/// A mirror's primary and its status.
pub(super) struct Mirroring {
    pub(super) primary: String,
    status: Mutex<MirrorStatus>,
}

impl Node {
    /// Makes this node a mirror of the primary whose HTTP API is at `primary`: it refuses
    /// writes from now on.
    pub fn set_primary(&mut self, primary: String) {
        let status = MirrorStatus { primary: primary.clone(), state: "starting", ..MirrorStatus::default() };
        self.mirroring = Some(Arc::new(Mirroring { primary, status: Mutex::new(status) }));
    }

    /// The primary's HTTP API, when this node is a mirror.
    pub fn primary(&self) -> Option<&str> {
        self.mirroring.as_deref().map(|m| m.primary.as_str())
    }

    /// How this mirror stands with its primary; `None` on a node that is no mirror.
    pub fn mirror_status(&self) -> Option<MirrorStatus> {
        let mirroring = self.mirroring.as_deref()?;
        let mut status = mirroring.status.lock().map(|s| s.clone()).unwrap_or_default();
        status.seq = self.registry.seq();
        status.lag_writes = status.primary_seq.saturating_sub(status.seq);
        Some(status)
    }

    /// Updates what [`Node::mirror_status`] reports.
    pub fn update_mirror_status(&self, update: impl FnOnce(&mut MirrorStatus)) {
        if let Some(mut status) = self.mirroring.as_deref().and_then(|m| m.status.lock().ok()) {
            update(&mut status);
        }
    }

    /// Sets the administrators who may read this node's change log and records (mirrors).
    pub fn set_mirrors(&self, mirrors: Vec<(u32, String)>) {
        self.mirrors.store(Arc::new(mirrors));
    }

    /// Whether `admin` may read the change log and records (`[replication] mirrors`).
    pub fn may_mirror(&self, admin: &Admin) -> Result<bool, RegistryError> {
        let mirrors = self.mirrors.load();
        Ok(!mirrors.is_empty() && admin.is_among(&self.registry.snapshot()?, &mirrors)?)
    }

    /// A receiver of this node's sequence number, which moves with every committed write: what
    /// a primary's change-log request waits on.
    pub fn watch_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.seq_watch.subscribe()
    }

    pub(super) fn seq_moved(&self) {
        self.seq_watch.send_replace(self.registry.seq());
    }

    /// Applies a primary's change sets (see [`crate::registry::Registry::replicate`]) and tells
    /// the front ends what changed; returns how many were new here.
    pub fn replicate(&self, sets: Vec<(u64, ChangeSet)>) -> Result<usize, RegistryError> {
        let applied = self.registry.replicate(sets)?;
        let mut changed = Changed::default();
        for change in applied.iter().flat_map(|set| &set.changes) {
            let decode = |bytes: &Option<Vec<u8>>| bytes.as_deref().and_then(|b| Record::decode(&change.key, b).ok());
            let (old, new) = (decode(&change.old), decode(&change.new));
            let Some(id) = new.as_ref().or(old.as_ref()).map(|r| r.identifier.clone()) else { continue };
            let sites = |r: &Option<Record>| {
                r.as_ref().map_or_else(Vec::new, |r| {
                    r.values.iter().filter(|v| v.is_type(types::SITE)).map(|v| (v.index, v.data.clone())).collect()
                })
            };
            if let Some(prefix) = id.record_prefix().filter(|_| sites(&old) != sites(&new)) {
                changed.delegations.push(prefix.to_owned());
            }
            changed.identifiers.push(id);
        }
        if !applied.is_empty() {
            self.subscribers.iter().for_each(|s| s.changed(&changed));
            self.seq_moved();
        }
        Ok(applied.len())
    }

    /// Loads one page of a full copy from the primary (see
    /// [`crate::registry::Registry::load_page`]).
    pub fn load_page(&self, after: Option<&[u8]>, page: &RecordsPage) -> Result<(), RegistryError> {
        self.registry.load_page(after, page)
    }

    /// Ends a full copy taken at the primary's sequence number `seq` of its sequence `log_id`:
    /// every cached answer may be stale, so the front ends drop them all.
    pub fn finish_resync(&self, seq: u64, log_id: u64) -> Result<(), RegistryError> {
        self.registry.finish_resync(seq, log_id)?;
        let zones = self.zones();
        self.subscribers.iter().for_each(|s| s.zones_changed(&zones));
        self.seq_moved();
        Ok(())
    }
}
