//! NOTIFY (RFC 1996) to the secondaries in `[replication] notify`, after every committed write,
//! so that they transfer within a round trip or two instead of at their next refresh.
//!
//! Coalesced per secondary: a write marks each secondary dirty and wakes its task; the task
//! sends one NOTIFY per zone, waits for the answers (retrying after 1, 2, 4 and 8 s), and goes
//! round again only if more writes came meanwhile. A burst of writes costs a secondary one or
//! two NOTIFYs, and a secondary that is down costs one task waiting, never the writer. Every
//! zone is notified once at start too: writes made while the node was down are news.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::tsig;
use crate::config;
use crate::dns::authoritative::Authoritative;
use crate::dns::exchange::{random_id, unspecified};

/// Tries per NOTIFY (RFC 1996 3.6 suggests 5) and the first wait for an answer, doubled each try.
const TRIES: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// Tells the configured secondaries of writes: a subscriber of the node.
pub struct Notifier {
    authoritative: Arc<Authoritative>,
    targets: Vec<Target>,
}

struct Target {
    config: config::Notify,
    dirty: AtomicBool,
    wake: Notify,
}

impl Notifier {
    /// `None` when no secondary is to be notified.
    pub fn new(authoritative: Arc<Authoritative>, targets: &[config::Notify]) -> Option<Arc<Self>> {
        let targets: Vec<Target> = targets
            .iter()
            .map(|config| Target { config: config.clone(), dirty: AtomicBool::new(true), wake: Notify::new() })
            .collect();
        (!targets.is_empty()).then(|| Arc::new(Self { authoritative, targets }))
    }

    /// Runs one task per secondary until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let tasks = (0..self.targets.len()).map(|i| {
            let (notifier, token) = (self.clone(), token.clone());
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = notifier.serve(i) => {}
                }
            }
        });
        join_all(tasks).await;
    }

    async fn serve(&self, i: usize) {
        let target = &self.targets[i];
        loop {
            if !target.dirty.swap(false, Ordering::SeqCst) {
                target.wake.notified().await;
                continue;
            }
            let serial = self.authoritative.registry().serial();
            let zones: Vec<_> =
                self.authoritative.zones().iter().map(|z| (z.apex().clone(), z.soa(serial, z.ttl()))).collect();
            for (apex, soa) in zones {
                match notify(&target.config, &apex, soa).await {
                    Ok(tries) => {
                        tracing::debug!(to = %target.config.address, zone = %apex, serial, tries, "NOTIFY answered")
                    }
                    Err(e) => tracing::warn!(to = %target.config.address, zone = %apex, "NOTIFY failed: {e}"),
                }
            }
        }
    }
}

impl crate::node::Subscriber for Notifier {
    fn changed(&self, _change: &crate::node::Changed) {
        for target in &self.targets {
            target.dirty.store(true, Ordering::SeqCst);
            target.wake.notify_one();
        }
    }

    fn zones_changed(&self, _zones: &crate::node::Zones) {
        self.changed(&crate::node::Changed::default());
    }
}

/// Sends one NOTIFY for `apex` carrying its new `soa` and waits for the answer; returns the tries
/// it took.
/// The answer's own TSIG is not checked: it carries nothing acted on, and a forged one can only
/// end the retries early, after which the secondary's refresh timer still catches up.
async fn notify(
    target: &config::Notify,
    apex: &hickory_proto::rr::Name,
    soa: hickory_proto::rr::Record,
) -> std::io::Result<u32> {
    let mut message = Message::new(random_id(), MessageType::Query, OpCode::Notify);
    let mut query = Query::query(apex.clone(), RecordType::SOA);
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    // The new SOA, which secondaries log (RFC 1996 3.7 lets them use it as a hint).
    message.add_answer(soa);
    message.metadata.authoritative = true;
    let mut bytes = message.to_vec().map_err(std::io::Error::other)?;
    let now = crate::record::unix_now().max(0) as u64;
    if let Some(key) = &target.key {
        tsig::sign_request(&mut bytes, key, now);
    }
    let socket = UdpSocket::bind(unspecified(target.address)).await?;
    socket.connect(target.address).await?;
    let mut wait = FIRST_WAIT;
    let mut buf = vec![0u8; 4096];
    for attempt in 1..=TRIES {
        socket.send(&bytes).await?;
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            let answer = &buf[..received?];
            if answer.len() < 12 || answer[..2] != bytes[..2] || answer[2] & 0x80 == 0 {
                continue;
            }
            let rcode = answer[3] & 0x0f;
            if rcode != 0 {
                return Err(std::io::Error::other(format!("answered with RCODE {rcode}")));
            }
            return Ok(attempt);
        }
        wait *= 2;
    }
    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer after {TRIES} tries")))
}

async fn join_all(tasks: impl Iterator<Item = impl std::future::Future<Output = ()> + Send + 'static>) {
    let mut set = tokio::task::JoinSet::new();
    for task in tasks {
        set.spawn(task);
    }
    while set.join_next().await.is_some() {}
}
