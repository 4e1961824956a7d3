//! Transport: the DNS sockets and their workers. Bytes in, bytes out; no records here.
//!
//! UDP (`udp`): one OS thread per worker, each with its own SO_REUSEPORT socket, receiving and
//! sending in batches and answering synchronously.
//!
//! TCP (`tcp`, RFC 7766): connections capped in all and per client address, length-prefixed
//! queries answered in order, idle clients cut off.
//!
//! Both hand each query to a [`DnsHandler`] and act on its [`Verdict`]: send the response, send
//! nothing, or spawn the deferred job (a recursive node's cache miss) under the server's task
//! tracker and cancellation, and send what it returns.
//!
//! A panic while answering one query (a bug, never expected) is caught where the transport hands
//! the query over: it is logged, that query gets no answer, and the worker or connection goes
//! on serving.
//!
//! HTTP: the Handle.Net API of [`crate::http`] on its own listener.
//!
//! Handle protocol (`handle`): the binary protocol of [`crate::handle`] over TCP and UDP on one
//! address, with its own connection caps and idle timeout.
//!
//! Shutdown: [`Server::serve`] runs until its `shutdown` future completes, then cancels every
//! worker and connection and waits for them, so the ports can be bound again at once.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{Caps, Timeout};
use crate::config::{Config, HttpConfig};
use crate::dns::{Frontend, Scratch, Transport, Verdict};
use crate::node::Node;
use crate::registry::Registry;
use crate::secret::SealKey;

mod handle;
mod tcp;
mod udp;

use tcp::TcpLimits;

/// What the DNS transports hand queries to: [`Frontend`] in the node, anything in tests.
pub trait DnsHandler: Send + Sync + 'static {
    /// Answers one request into `out`, synchronously, or hands back the work to spawn
    /// ([`Verdict::Defer`]).
    fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict;

    /// The prefix (`88.100.1`) of the name the last question in `scratch` asked, written into
    /// `out`, for the statistics; `false` when it has none.
    fn question_prefix(&self, _scratch: &Scratch, _out: &mut Vec<u8>) -> bool {
        false
    }

    /// Serves a zone transfer ([`Verdict::Transfer`]) to `peer` on `stream`; `Ok` when the
    /// connection may go on.
    fn transfer<'a>(
        &'a self,
        _request: &'a [u8],
        _peer: SocketAddr,
        _stream: &'a mut tokio::net::TcpStream,
        _timeout: Duration,
    ) -> impl Future<Output = Result<(), crate::dns::framing::FrameError>> + Send + 'a {
        async { Ok(()) }
    }
}

impl DnsHandler for Frontend {
    fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict {
        Frontend::handle(self, request, transport, scratch, out)
    }

    fn question_prefix(&self, scratch: &Scratch, out: &mut Vec<u8>) -> bool {
        Frontend::question_prefix(self, scratch, out)
    }

    fn transfer<'a>(
        &'a self,
        request: &'a [u8],
        peer: SocketAddr,
        stream: &'a mut tokio::net::TcpStream,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), crate::dns::framing::FrameError>> + Send + 'a {
        Frontend::transfer(self, request, peer, stream, timeout)
    }
}

/// Counts a DNS answer in `counter`: its outcome and the prefix its question named, and for the
/// metrics its RCODE, type and, when `started` (a sampled question), how long it took.
fn count_dns<H: DnsHandler>(
    counter: &mut Counter,
    handler: &H,
    protocol: Protocol,
    scratch: &Scratch,
    response: &[u8],
    prefix: &mut Vec<u8>,
    started: Option<std::time::Instant>,
) {
    let outcome = Outcome::of_dns(response);
    // A malformed question left no name to read.
    let named = outcome != Outcome::Error && handler.question_prefix(scratch, prefix);
    let timed = started.and_then(|t| scratch.cache_hit().map(|hit| (hit, t.elapsed())));
    let name_len = if outcome == Outcome::Error { usize::MAX / 2 } else { scratch.question_name_len() };
    counter.dns().count(protocol == Protocol::DnsTcp, response, name_len, timed);
    counter.count(protocol, outcome, named.then_some(prefix.as_slice()));
}

/// When the `n`th question (counted in `n`) is one whose answer is timed, the time it started:
/// the first of every [`crate::stats::dns::SAMPLE_EVERY`].
fn sampled(n: &mut u32) -> Option<std::time::Instant> {
    let due = *n % crate::stats::dns::SAMPLE_EVERY == 0;
    *n = n.wrapping_add(1);
    due.then(std::time::Instant::now)
}

/// Calls the handler; a panic in it drops this one query instead of the worker. (A panic in a
/// deferred job ends only that job's task: the runtime catches it, and the job's place among
/// the resolutions in flight is given back as it unwinds.)
fn answer<H: DnsHandler>(
    handler: &H,
    request: &[u8],
    transport: Transport,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Verdict {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request, transport, scratch, out))) {
        Ok(verdict) => verdict,
        Err(_) => {
            let shown = hex::encode(&request[..request.len().min(512)]);
            tracing::error!(request = %shown, "answering a query panicked; it was dropped, serving goes on");
            Verdict::Drop
        }
    }
}

/// The node and the DNS front end that `config` describes over `registry` (sealing new secrets
/// with `seal_key`), wired together: the front end's cache subscribes to the node's writes.
/// [`Server::start`] binds them to sockets; this half alone serves tests and fuzz targets that
/// need no socket.
pub fn assemble(
    config: &Config,
    registry: Arc<Registry>,
    seal_key: Option<Arc<SealKey>>,
) -> Result<(Arc<Node>, Arc<Frontend>), ServerError> {
    assemble_all(config, registry, seal_key, crate::handle::site_info::OwnSite::default()).map(|a| (a.node, a.dns))
}

/// The node with every front end that has a cache subscribed to it.
pub struct Assembled {
    pub node: Arc<Node>,
    pub dns: Arc<Frontend>,
    pub handle: Arc<crate::handle::Frontend>,
    /// Tells the secondaries in `[replication] notify` of writes, when there are any.
    pub notifier: Option<Arc<crate::dns::xfr::notify::Notifier>>,
    /// On a mirror: how to reach its primary.
    pub mirror: Option<crate::mirror::MirrorSettings>,
}

/// [`assemble`], with the Handle front end too, publishing `site` (its resolution cache,
/// `handle.cache_mb`, subscribed to the node's writes like the DNS cache).
pub fn assemble_all(
    config: &Config,
    registry: Arc<Registry>,
    seal_key: Option<Arc<SealKey>>,
    site: crate::handle::site_info::OwnSite,
) -> Result<Assembled, ServerError> {
    let mut node = Node::new(registry.clone(), config.dns.zones())?;
    let replication = config.replication.resolve().map_err(crate::config::ConfigError::from)?;
    registry.set_log_window(replication.window);
    node.set_mirrors(replication.mirrors.clone());
    if let Some(mirror) = &replication.mirror {
        node.set_primary(mirror.primary.clone());
    }
    node.set_server_admins(config.handle.server_admins()?);
    node.set_quotas(config.quota.quotas()?);
    node.set_stats(Arc::new(crate::stats::Stats::load(&registry, config.ops.target())?));
    if let Some(key) = seal_key {
        node.set_seal_key(key);
    }
    let dns = Arc::new(Frontend::from_config(config, &node.zones(), registry)?);
    node.subscribe(dns.authoritative().clone());
    let notifier = crate::dns::xfr::notify::Notifier::new(dns.authoritative().clone(), &replication.notify);
    if let Some(notifier) = &notifier {
        node.subscribe(notifier.clone());
    }
    let handle_cache =
        config.handle.cache_bytes().map(|bytes| Arc::new(crate::handle::cache::ResolutionCache::new(bytes)));
    if let Some(cache) = &handle_cache {
        node.subscribe(cache.clone());
    }
    let node = Arc::new(node);
    let recursor = crate::handle::recursive::Recursor::from_config(&config.recursive);
    let handle = crate::handle::Frontend::new(node.clone()).with_site(site).with_recursor(recursor);
    let handle = Arc::new(match handle_cache {
        Some(cache) => handle.with_cache(cache),
        None => handle,
    });
    Ok(Assembled { node, dns, handle, notifier, mirror: replication.mirror })
}

/// Why a node could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Rrl(#[from] crate::dns::rrl::RrlError),
    #[error("the seal key for secrets: {0}")]
    SealKey(#[from] crate::secret::SealKeyError),
    #[error(transparent)]
    Http(#[from] crate::http::ListenError),
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind { transport: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the UDP workers: {0}")]
    Workers(std::io::Error),
    #[error("a transport task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    ServerKey(#[from] crate::handle::key::KeyError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

use crate::handle::{key::ServerKey, site_info};
use crate::stats::{Counter, Outcome, Protocol};

/// The Handle protocol's TCP listener and UDP socket (on the same port) and its TCP limits.
struct HandleSockets {
    tcp: TcpListener,
    udp: std::net::UdpSocket,
    limits: TcpLimits,
    /// The node's own site, built for the bound address, and the server key.
    site: crate::handle::site_info::OwnSite,
}

impl HandleSockets {
    /// Binds the sockets and builds the site from the addresses they got. The server key is
    /// read from the data directory: a missing key is a warning (no key in the site, unsigned
    /// responses), a file that is not a key an error.
    async fn bind(config: &Config, http: Option<site_info::HttpListener>) -> Result<Self, ServerError> {
        let key = ServerKey::load(&config.data_dir)?.map(Arc::new);
        let mirror = config.replication.mirror.is_some();
        if key.is_none() {
            let path = ServerKey::path(&config.data_dir);
            tracing::warn!(
                key = %path.display(),
                "no Handle server key: the site publishes none and certified requests are answered \
                 unsigned; `idnode admin init` creates it"
            );
        }
        let config = &config.handle;
        let addr = config.listen;
        let (tcp, udp) = bind_both(addr, "Handle TCP", "Handle UDP", handle::bind_udp).await?;
        let addr = tcp.local_addr().map_err(|source| ServerError::Bind { transport: "Handle TCP", addr, source })?;
        let limits = TcpLimits {
            caps: Caps::new(config.tcp_max_connections, config.tcp_max_connections_per_source),
            idle_timeout: Timeout::new(Duration::from_secs(config.tcp_idle_timeout_secs)),
        };
        // A mirror's site is no primary site (RFC 3651 3.2.2): clients send writes elsewhere.
        let site = site_info::build(config, addr, http, key.as_deref()).map(|site| site_info::as_mirror(site, mirror));
        if let Err(e) = &site {
            tracing::warn!("GET_SITE_INFO is refused: {e}");
        }
        Ok(Self { tcp, udp, limits, site: site_info::OwnSite::new(site, key) })
    }
}

/// The connection caps of the listeners a reload may change ([`Server::caps`]); the Handle
/// protocol's only when it is on.
#[derive(Clone)]
pub struct ListenerCaps {
    pub dns: Arc<Caps>,
    pub handle: Option<Arc<Caps>>,
    pub http: Arc<Caps>,
    /// The DNS and Handle listeners' idle timeouts, and the HTTP API's timeouts.
    pub dns_idle: Arc<Timeout>,
    pub handle_idle: Option<Arc<Timeout>>,
    pub http_timeouts: crate::http::HttpTimeouts,
    /// The operations listener's timeouts, which follow the HTTP API's.
    pub ops_timeouts: Option<crate::http::HttpTimeouts>,
}

/// A node bound to its sockets, ready to [`serve`](Server::serve).
pub struct Server {
    node: Arc<Node>,
    frontend: Arc<Frontend>,
    handle_frontend: Arc<crate::handle::Frontend>,
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    http: crate::http::HttpListener,
    tcp_limits: TcpLimits,
    /// The Handle protocol's sockets, unless `handle.enabled` is false.
    handle: Option<HandleSockets>,
    /// Response rate limiting for UDP; `None` when `dns.rrl.responses_per_second` is 0.
    rrl: Option<Arc<crate::dns::rrl::Rrl>>,
    /// The operations listener (`/metrics`, `/stats`, the status page), unless `ops.enabled`
    /// is false, with what the status page shows of the configuration.
    ops: Option<(crate::http::HttpListener, crate::status::Settings)>,
    notifier: Option<Arc<crate::dns::xfr::notify::Notifier>>,
    mirror: Option<crate::mirror::MirrorSettings>,
}

impl Server {
    /// The one way from a configuration to a running node (`idnode serve` and the test
    /// harness): assembles the node and its front ends over `registry`, then binds every socket
    /// now, so that the caller learns the addresses (port 0 works) and a busy port is an error
    /// before anything is served.
    pub async fn start(config: &Config, registry: Arc<Registry>) -> Result<Self, ServerError> {
        let seal_key = Some(Arc::new(SealKey::load_or_create(&config.data_dir)?));
        let addr = config.dns.listen;
        let workers = config.udp_workers();
        let (tcp, udp) = bind_both(addr, "TCP", "UDP", |addr| (0..workers).map(|_| udp::bind(addr)).collect()).await?;
        let http = crate::http::HttpListener::bind(&config.http).await?;
        let tcp_limits = TcpLimits {
            caps: Caps::new(config.dns.tcp_max_connections, config.dns.tcp_max_connections_per_source),
            idle_timeout: Timeout::new(Duration::from_secs(config.dns.tcp_idle_timeout_secs)),
        };
        let mut handle = match config.handle.enabled {
            true => {
                let tls = config.http.tls_cert.is_some() && config.http.tls_key.is_some();
                let http = http.local_addr().ok().map(|addr| site_info::HttpListener { addr, tls });
                Some(HandleSockets::bind(config, http).await?)
            }
            false => None,
        };
        // The site is known once the Handle sockets have their addresses.
        let site = handle.as_mut().map(|h| std::mem::take(&mut h.site)).unwrap_or_default();
        let Assembled { node, dns: frontend, handle: handle_frontend, notifier, mirror } =
            assemble_all(config, registry, seal_key, site)?;
        let rrl = crate::dns::rrl::Rrl::new(&config.dns.rrl)?.map(Arc::new);
        let ops = match config.ops.enabled {
            // The API's limits, fewer connections, never TLS (loopback or a monitoring network).
            true => {
                let listen = config.ops.listen;
                let (max_connections, max_connections_per_source) = (64, 16);
                let ops = HttpConfig { listen, max_connections, max_connections_per_source, ..config.http.clone() };
                let ops = HttpConfig { tls_cert: None, tls_key: None, ..ops };
                Some((crate::http::HttpListener::bind(&ops).await?, crate::status::Settings::from_config(config)))
            }
            false => None,
        };
        Ok(Self { node, frontend, handle_frontend, udp, tcp, http, tcp_limits, handle, rrl, ops, notifier, mirror })
    }

    /// The connection caps and timeouts of the DNS, Handle and HTTP API listeners, which a
    /// reload changes.
    pub fn caps(&self) -> ListenerCaps {
        ListenerCaps {
            dns: self.tcp_limits.caps.clone(),
            handle: self.handle.as_ref().map(|h| h.limits.caps.clone()),
            http: self.http.caps(),
            dns_idle: self.tcp_limits.idle_timeout.clone(),
            handle_idle: self.handle.as_ref().map(|h| h.limits.idle_timeout.clone()),
            http_timeouts: self.http.timeouts(),
            ops_timeouts: self.ops.as_ref().map(|(ops, _)| ops.timeouts()),
        }
    }

    /// What replaces the HTTP API's certificate and key while the node serves (a reload);
    /// `None` when the API speaks plain HTTP.
    pub fn tls_reloader(&self) -> Option<crate::http::TlsReloader> {
        self.http.tls_reloader()
    }

    /// The operations listener's address (`/metrics`, `/stats`); `None` when it is off.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(o, _)| o.local_addr().ok())
    }

    /// The node core: the writes and reads every front end goes through.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The DNS front end (its cache and recursor statistics).
    pub fn frontend(&self) -> &Arc<Frontend> {
        &self.frontend
    }

    /// The Handle protocol front end (its cache statistics).
    pub fn handle_frontend(&self) -> &Arc<crate::handle::Frontend> {
        &self.handle_frontend
    }

    /// The DNS address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; the unspecified one is never reached.
        self.tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The Handle protocol's address (TCP and UDP); `None` when `handle.enabled` is false.
    pub fn handle_addr(&self) -> Option<SocketAddr> {
        self.handle.as_ref().and_then(|h| h.tcp.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains every task.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let frontend = self.frontend;
        let runtime = tokio::runtime::Handle::current();
        let stats = self.node.stats().clone();
        let saver = tokio::spawn(save_stats(stats.clone(), self.node.clone(), token.clone()));
        let settler = tokio::spawn(settle_registry(self.node.clone(), token.clone()));
        let node = self.node.clone();
        let mut workers: Vec<_> = self
            .udp
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (frontend, tracker, token, runtime) =
                    (frontend.clone(), tracker.clone(), token.clone(), runtime.clone());
                let (rrl, stats) = (self.rrl.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("udp-worker-{i}"))
                    .spawn(move || udp::worker(socket, &frontend, rrl.as_ref(), &stats, &tracker, &token, &runtime))
            })
            .collect::<Result<_, _>>()
            .map_err(ServerError::Workers)?;
        let handle_for_ops = self.handle.is_some().then(|| self.handle_frontend.clone());
        if let Some(handle) = self.handle {
            let frontend = self.handle_frontend;
            let (udp_frontend, udp_token, udp_stats) = (frontend.clone(), token.clone(), stats.clone());
            let worker = std::thread::Builder::new()
                .name("handle-udp".into())
                .spawn(move || handle::udp_worker(handle.udp, &udp_frontend, &udp_stats, &udp_token))
                .map_err(ServerError::Workers)?;
            workers.push(worker);
            let (limits, stats) = (handle.limits.clone(), stats.clone());
            tracker.spawn(handle::acceptor(handle.tcp, frontend, limits, stats, tracker.clone(), token.clone()));
        }
        if let Some((listener, settings)) = self.ops {
            let health = Arc::new(crate::status::Health::default());
            if let Some(every) = settings.probe_every {
                let probes =
                    crate::status::health::run(health.clone(), node.clone(), frontend.apex(), every, token.clone());
                tracker.spawn(probes);
            }
            let ops = crate::ops::Ops {
                node: node.clone(),
                dns: frontend.clone(),
                handle: handle_for_ops,
                rrl: self.rrl.clone(),
                status: settings,
                health,
            };
            tracker.spawn(listener.serve(crate::ops::router(Arc::new(ops)), token.clone()));
        }
        if let Some(notifier) = self.notifier {
            tracker.spawn(notifier.run(token.clone()));
        }
        if let Some(settings) = self.mirror {
            tracker.spawn(crate::mirror::run(self.node.clone(), settings, token.clone()));
        }
        let http = tracker.spawn(crate::http::serve(self.http, self.node, token.clone()));
        let limits = self.tcp_limits.clone();
        tracker.spawn(tcp::acceptor(self.tcp, frontend, limits, stats.clone(), tracker.clone(), token.clone()));
        shutdown.await;
        token.cancel();
        // The workers notice within one receive timeout.
        tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join()))).await?;
        tracker.close();
        tracker.wait().await;
        http.await?;
        saver.await?;
        settler.await?;
        // Every worker and connection merged its counts as it ended: the last save.
        tokio::task::spawn_blocking(move || stats.save(node.registry())).await??;
        Ok(())
    }
}

/// Binds TCP on `addr`, then UDP (`udp`) on the port TCP got, so that port 0 gives one port
/// for both. That port may already be another socket's over UDP (a client's ephemeral port):
/// with port 0 a new one is tried then, 16 times at most.
async fn bind_both<U>(
    addr: SocketAddr,
    tcp_name: &'static str,
    udp_name: &'static str,
    udp: impl Fn(SocketAddr) -> std::io::Result<U>,
) -> Result<(TcpListener, U), ServerError> {
    let bind_error = |transport, addr| move |source| ServerError::Bind { transport, addr, source };
    let mut tries = 0;
    loop {
        let tcp = TcpListener::bind(addr).await.map_err(bind_error(tcp_name, addr))?;
        let got = tcp.local_addr().map_err(bind_error(tcp_name, addr))?;
        match udp(got) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries < 16 => tries += 1,
            Err(e) => return Err(bind_error(udp_name, got)(e)),
        }
    }
}

/// Saves the statistics every [`crate::stats::SAVE_EVERY`] until `token` is cancelled (the
/// caller saves once more when every front end has stopped).
async fn save_stats(stats: Arc<crate::stats::Stats>, node: Arc<Node>, token: CancellationToken) {
    let save = |stats: Arc<crate::stats::Stats>, node: Arc<Node>| async move {
        let saved = tokio::task::spawn_blocking(move || stats.save(node.registry())).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the statistics; trying again later"),
            Err(e) => tracing::warn!(error = %e, "saving the statistics failed"),
        }
    };
    let mut every = tokio::time::interval(crate::stats::SAVE_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = every.tick() => save(stats.clone(), node.clone()).await,
        }
    }
}

/// How often [`settle_registry`] looks for a pause in writes.
const SETTLE_EVERY: Duration = Duration::from_millis(500);

/// Settles the registry after writes ([`crate::registry::Registry::settle`]: empty synced commits
/// that put redb's reads back on their fast path), once no record was written for
/// [`SETTLE_EVERY`], until `token` is cancelled. While records are written it waits: the next
/// write would undo the settle.
async fn settle_registry(node: Arc<Node>, token: CancellationToken) {
    let mut every = tokio::time::interval(SETTLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seq = node.registry().seq();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = every.tick() => {}
        }
        let seq = node.registry().seq();
        if std::mem::replace(&mut last_seq, seq) != seq || !node.registry().unsettled() {
            continue;
        }
        let node = node.clone();
        match tokio::task::spawn_blocking(move || node.registry().settle()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot settle the registry; trying again later"),
            Err(e) => tracing::warn!(error = %e, "settling the registry failed"),
        }
    }
}
