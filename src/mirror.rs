//! An idnode mirror: a node that copies a primary's registry over the primary's HTTP API and
//! serves it read-only over DNS, HTTP and the Handle protocol (`[replication.mirror]`).
//!
//! ```text
//! mirror                                         primary (HTTP API, TLS where it has it)
//!   GET /api/replication/changes?after=SEQ&wait=2 ──>  the change sets after SEQ, as soon as
//!       apply them in one durable transaction  <──     there are any (long poll)
//!   ... or, when SEQ is older than the primary's log (or at the first start):
//!   GET /api/replication/records?after=KEY ──────────>  the records one page at a time
//!       load each page; then the log from the sequence number of the first page
//! ```
//!
//! The mirror authenticates as an administrator of the primary listed in the primary's
//! `[replication] mirrors`. What it applies it applies with the primary's sequence numbers
//! ([`crate::registry::Registry::replicate`]): a mirror killed at any point resumes from what it
//! committed, and applies nothing twice. Its lag (writes and seconds behind) is in
//! [`crate::node::Node::mirror_status`], the metrics and the status page.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::registry::{ChangeSet, RecordsPage};

/// 1000: the most change sets one answer carries, and 4 MiB the most record bytes (an answer
/// goes past it by one set at most).
pub const MAX_SETS_PAGE: usize = 1000;
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// 2000: records in one page of a full copy.
pub const MAX_RECORDS_PAGE: usize = 2000;
/// 30 s: the longest a change-log request waits for a write.
pub const MAX_WAIT: u64 = 30;
/// How long the mirror asks the primary to wait: short, so that it notices a stop soon.
const WAIT: u64 = 2;
/// 64 MiB: the largest answer the mirror reads.
const MAX_ANSWER: u64 = 64 << 20;

/// An answer to `GET /api/replication/changes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangesPage {
    /// The primary's sequence number, the floor of its log, and whose sequence it is.
    pub seq: u64,
    pub floor: u64,
    pub log_id: u64,
    /// The requested sequence number is older than the log reaches: a full copy is needed.
    pub behind: bool,
    pub sets: Vec<(u64, ChangeSet)>,
}

/// `[replication.mirror]`, checked.
#[derive(Clone)]
pub struct MirrorSettings {
    /// The primary's HTTP API (`https://primary.example:8000`).
    pub primary: String,
    /// `index:identifier` of this mirror's administrator at the primary, and its secret.
    pub user: String,
    pub secret: String,
    /// PEM certificates to trust for the primary's TLS (its CA); otherwise the public roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for MirrorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorSettings").field("primary", &self.primary).field("user", &self.user).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
    #[error("{url}: HTTP {status}: {message}")]
    Refused { url: String, status: u16, message: String },
    #[error("{url}: the answer cannot be read: {reason}")]
    Malformed { url: String, reason: String },
    #[error("the primary's CA file: {0}")]
    Ca(String),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// Follows the primary until `token` is cancelled, on a thread of its own (the HTTP client
/// blocks); returns when it has stopped.
pub async fn run(node: Arc<Node>, settings: MirrorSettings, token: CancellationToken) {
    // A thread of its own rather than the blocking pool, which a runtime waits for as it shuts
    // down: a runtime dropped without cancelling `token` (a panicking test) does not hang on it.
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new().name("mirror".into()).spawn(move || {
        follow(&node, &settings, &token);
        let _ = done.send(());
    });
    match spawned {
        Ok(_) => drop(finished.await),
        Err(e) => tracing::error!(error = %e, "cannot start the mirror's thread"),
    }
}

fn follow(node: &Node, settings: &MirrorSettings, token: &CancellationToken) {
    let client = match Client::new(settings) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "the mirror cannot start");
            node.update_mirror_status(|s| (s.state, s.error) = ("unreachable", Some(e.to_string())));
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    // A registry that has not copied this primary's records has a sequence of its own (another
    // log id, which the first answer shows) or is in the middle of a copy.
    let mut copy_needed = node.registry().in_resync().unwrap_or(true);
    while !token.is_cancelled() {
        let step = match copy_needed {
            true => copy(node, &client, token).map(|()| false),
            false => client.changes(node.registry().seq()).and_then(|page| apply(node, page)),
        };
        match step {
            Ok(behind) => {
                copy_needed = behind;
                backoff = Duration::from_millis(500);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the primary did not answer as a mirror's primary should; trying again");
                node.update_mirror_status(|s| (s.state, s.error) = ("unreachable", Some(e.to_string())));
                // Sleeps in short steps, so that a stop is noticed within 100 ms.
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !token.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Applies one answer of the change log; returns whether a full copy is needed.
fn apply(node: &Node, page: ChangesPage) -> Result<bool, MirrorError> {
    let now = crate::record::unix_now();
    if node.registry().log_id()? != page.log_id {
        tracing::info!("the records here are not the primary's (a first start): copying the primary's records");
        return Ok(true);
    }
    if page.behind {
        let (seq, floor) = (node.registry().seq(), page.floor);
        tracing::warn!(seq, floor, "behind the primary's log: copying its records");
        return Ok(true);
    }
    // What the primary sends is checked as any input: the sets follow on from this node's
    // sequence number without a gap, and every record is one the registry can read, under its
    // own key. Anything else means the copy cannot be trusted: copy again.
    let mut expected = node.registry().seq();
    for (seq, set) in &page.sets {
        if *seq <= expected {
            continue;
        }
        if *seq != expected + 1 || !set.changes.iter().all(|c| valid(&c.key, c.new.as_deref())) {
            tracing::warn!(seq, expected = expected + 1, "the primary's change log does not follow on: copying again");
            return Ok(true);
        }
        expected = *seq;
    }
    let last_seen = page.sets.last().map(|(seq, _)| *seq);
    let oldest_pending = page.sets.first().map(|(_, set)| set.time);
    let applied = node.replicate(page.sets)?;
    let seq = node.registry().seq();
    node.update_mirror_status(|s| {
        s.state = "following";
        s.error = None;
        s.primary_seq = page.seq.max(last_seen.unwrap_or(0));
        s.last_contact = now;
        // What this answer brought is applied; anything newer is at most one answer away.
        s.lag_seconds = match (seq < s.primary_seq, oldest_pending) {
            (true, Some(time)) => u64::try_from(now - time).unwrap_or(0),
            _ => 0,
        };
    });
    if applied > 0 {
        tracing::debug!(applied, seq, "applied the primary's changes");
    }
    Ok(false)
}

/// Copies every record of the primary, page by page, then sets the sequence number of the
/// first page: the log brings the rest.
fn copy(node: &Node, client: &Client, token: &CancellationToken) -> Result<(), MirrorError> {
    let started = std::time::Instant::now();
    node.update_mirror_status(|s| s.state = "copying");
    let mut after: Option<Vec<u8>> = None;
    let mut first_seq = None;
    let mut records = 0u64;
    loop {
        if token.is_cancelled() {
            return Ok(());
        }
        let page = client.records(after.as_deref())?;
        let in_order = page.records.windows(2).all(|w| w[0].0 < w[1].0)
            && page.records.first().is_none_or(|(k, _)| after.as_ref().is_none_or(|a| k > a));
        if !in_order || !page.records.iter().all(|(k, v)| valid(k, Some(v))) {
            return Err(MirrorError::Malformed {
                url: client.base.clone(),
                reason: "a page of records out of key order, or a record that cannot be read under its key".into(),
            });
        }
        first_seq.get_or_insert((page.seq, page.log_id));
        node.load_page(after.as_deref(), &page)?;
        records += page.records.len() as u64;
        node.update_mirror_status(|s| (s.primary_seq, s.last_contact) = (page.seq, crate::record::unix_now()));
        match (page.last, page.records.last()) {
            (false, Some((key, _))) => after = Some(key.clone()),
            _ => break,
        }
    }
    let (seq, log_id) = first_seq.unwrap_or_default();
    node.finish_resync(seq, log_id)?;
    node.update_mirror_status(|s| (s.state, s.error) = ("following", None));
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(records, seq, secs, "copied the primary's records; following its log from here");
    Ok(())
}

/// Whether `bytes` (absent: a deletion) is a record the registry can read, stored under `key`,
/// with its secrets sealed as every write must have them.
fn valid(key: &[u8], bytes: Option<&[u8]>) -> bool {
    bytes.is_none_or(|b| {
        crate::record::Record::decode(key, b).is_ok_and(|r| r.values.iter().all(crate::secret::is_sealed))
    })
}

/// The HTTP client of the primary's replication API.
struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

impl Client {
    fn new(settings: &MirrorSettings) -> Result<Self, MirrorError> {
        use base64::Engine as _;
        let user = percent_encoding::utf8_percent_encode(&settings.user, percent_encoding::NON_ALPHANUMERIC);
        let credentials = format!("{user}:{}", settings.secret);
        let authorization = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(WAIT + 60)));
        if let Some(pem) = &settings.ca_pem {
            config = config.tls_config(crate::trust::trusting(pem).map_err(MirrorError::Ca)?);
        }
        let base = settings.primary.trim_end_matches('/').to_owned();
        Ok(Self { agent: config.build().into(), base, authorization })
    }

    fn changes(&self, after: u64) -> Result<ChangesPage, MirrorError> {
        self.get(&format!("{}/api/replication/changes?after={after}&wait={WAIT}", self.base))
    }

    fn records(&self, after: Option<&[u8]>) -> Result<RecordsPage, MirrorError> {
        let after = after.map_or_else(String::new, |key| format!("&after={}", hex::encode(key)));
        self.get(&format!("{}/api/replication/records?limit={MAX_RECORDS_PAGE}{after}", self.base))
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, MirrorError> {
        let request = |reason: String| MirrorError::Request { url: url.to_owned(), reason };
        let response = self
            .agent
            .get(url)
            .header("Authorization", &self.authorization)
            .call()
            .map_err(|e| request(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.into_body().with_config().limit(MAX_ANSWER).read_to_vec();
        let body = body.map_err(|e| request(e.to_string()))?;
        if status != 200 {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|j| j.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(MirrorError::Refused { url: url.to_owned(), status, message });
        }
        postcard::from_bytes(&body).map_err(|e| MirrorError::Malformed { url: url.to_owned(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;
    use crate::record::{Record, Value};

    #[test]
    fn what_a_primary_sends_is_checked_like_any_input() {
        let id = Identifier::parse("88.100.1/ABC").unwrap();
        let record = Record::new(&id, vec![Value::new(1, "URL", "https://x", 0)]).unwrap().encode();
        assert!(valid(b"88.100.1/abc", Some(&record)));
        assert!(valid(b"88.100.1/abc", None), "a deletion");
        // Stored records leave the identifier out (its key is it): under another key a record
        // reads as that key's identifier, unless its capitals do not fit.
        assert!(!valid(b"88.100.1/1-x", Some(&record)), "capitals on no letters");
        assert!(!valid(b"88", Some(&record)), "capitals past the key's end");
        assert!(!valid(b"88.100.1/abc", Some(b"not a record")));
        let secret = Record::new(&id, vec![Value::new(300, "HS_SECKEY", "plain secret", 0)]).unwrap().encode();
        assert!(!valid(b"88.100.1/abc", Some(&secret)), "an unsealed secret");
    }
}
