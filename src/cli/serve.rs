//! `idnode serve`: open the registry, assemble the node, serve until Ctrl-C or SIGTERM.
//!
//! Under systemd (`Type=notify`, packaging/idnode.service) the node says READY=1 once every
//! listener is bound, pings the watchdog at half its interval, and says STOPPING=1 on the way
//! out. SIGHUP reloads the configuration: what can change while the node runs is applied (the
//! zones, quotas, server administrators, the lookup target, the log filter, the DNS, Handle and
//! HTTP listeners' connection caps and timeouts, for connections accepted from then on, and the
//! HTTPS certificate and key, read again from their files), and what needs a restart is named in
//! the log.

use std::sync::Arc;

use crate::config::Config;
use crate::demo;
use crate::dns::client;
use crate::identifier::Identifier;
use crate::registry::Registry;
use crate::server::Server;

/// Serves `config` until a shutdown signal; with `load_demo`, loads the demo namespace first
/// unless it is already there, and prints commands to try. On SIGHUP `reload` gives the
/// configuration again.
pub fn run(
    config: Config,
    load_demo: bool,
    reload: impl Fn() -> anyhow::Result<Config> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(log) = &config.log {
        super::set_log_filter(log)?;
    }
    let registry = Arc::new(Registry::open_with_cache(&config.data_dir, Some(config.registry.cache_bytes()))?);
    if load_demo && registry.get(&Identifier::parse(demo::DEMO_IDENTIFIER)?)?.is_none() {
        let report = demo::load(&registry)?;
        tracing::info!(records = report.records, "loaded the demo namespace");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let server = runtime.block_on(Server::start(&config, registry.clone()))?;
    let frontend = server.frontend().clone();
    if frontend.is_recursive() {
        let roots = &config.recursive.roots;
        tracing::info!(?roots, "recursive node: resolving names under the apex from the top-level nodes");
    }
    runtime.block_on(async {
        let (addr, http) = (server.local_addr(), server.http_addr());
        tracing::info!(%http, "serving the Handle.Net JSON API over HTTP");
        if let Some(handle) = server.handle_addr() {
            tracing::info!(%handle, "serving the Handle protocol over UDP and TCP");
        }
        if let Some(ops) = server.ops_addr() {
            tracing::info!(%ops, "serving /metrics and /stats (idnode stats --ops http://{ops})");
        }
        let zones: Vec<String> = frontend.zone_apexes().iter().map(ToString::to_string).collect();
        let (identifiers, data, workers) = (registry.len()?, config.data_dir.display(), config.udp_workers());
        tracing::info!(%addr, ?zones, identifiers, %data, workers, "serving DNS over UDP and TCP");
        if load_demo {
            let id = demo::DEMO_IDENTIFIER;
            let name = client::dns_name(&Identifier::parse(id)?, &frontend.apex())?;
            let (ip, port) = (addr.ip(), addr.port());
            eprintln!("\nTry:\n  dig @{ip} -p {port} {name} TXT");
            eprintln!("  idnode resolve {id} --server {addr}\n  curl http://{http}/api/handles/{id}");
            if let Some(handle) = server.handle_addr() {
                eprintln!("  idnode resolve {id} --protocol handle --server {handle}");
            }
            eprintln!();
        }
        let filling = (config.cache.prefill && !frontend.is_recursive())
            .then(|| prefill(frontend.authoritative()))
            .transpose()?;
        let live = Live { node: server.node().clone(), tls: server.tls_reloader(), caps: server.caps() };
        let reloader = tokio::spawn(reload_on_hangup(config, live, reload));
        let watchdog = tokio::spawn(ping_watchdog());
        notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
        server
            .serve(async {
                shutdown_signal().await;
                notify(&[sd_notify::NotifyState::Stopping]);
            })
            .await?;
        if let Some((stop, thread)) = filling {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = thread.join();
        }
        reloader.abort();
        watchdog.abort();
        let stats = frontend.cache_stats();
        tracing::info!(hits = stats.hits, misses = stats.misses, "stopped");
        Ok(())
    })
}

/// Starts filling `authoritative`'s front cache on a thread of its own; setting the flag stops
/// it within one chunk of records.
fn prefill(
    authoritative: &Arc<crate::dns::authoritative::Authoritative>,
) -> anyhow::Result<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, authoritative) = (stop.clone(), authoritative.clone());
    let thread = std::thread::Builder::new().name("prefill".into()).spawn(move || {
        let started = std::time::Instant::now();
        match authoritative.prefill(&flag) {
            Ok(done) => {
                let secs = started.elapsed().as_secs_f64();
                let (cached, scanned, full) = (done.cached, done.scanned, done.full);
                tracing::info!(cached, scanned, full, secs, "filled the front cache from the registry");
            }
            Err(e) => tracing::warn!(error = %e, "filling the front cache stopped"),
        }
    })?;
    Ok((stop, thread))
}

/// Tells systemd `states` when it started the node with a notify socket; anything else is a
/// no-op.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog at half its interval, when it set one (`WatchdogSec=`).
async fn ping_watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let mut every = tokio::time::interval(std::time::Duration::from_micros(usec / 2));
    loop {
        every.tick().await;
        notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// What a reload changes while the node serves.
struct Live {
    node: Arc<crate::node::Node>,
    /// The HTTP API's certificate and key, when it speaks HTTPS.
    tls: Option<crate::http::TlsReloader>,
    /// The listeners' connection caps.
    caps: crate::server::ListenerCaps,
}

/// Reloads the configuration on each SIGHUP (see the module docs).
async fn reload_on_hangup(
    mut current: Config,
    live: Live,
    reload: impl Fn() -> anyhow::Result<Config> + Send + 'static,
) {
    #[cfg(unix)]
    {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("no SIGHUP handler: the configuration is read at start only");
            return;
        };
        while hangup.recv().await.is_some() {
            notify(&[
                sd_notify::NotifyState::Reloading,
                sd_notify::NotifyState::monotonic_usec_now().unwrap_or(sd_notify::NotifyState::Status("reloading")),
            ]);
            match reload().and_then(|new| apply(&current, &new, &live).map(|()| new)) {
                Ok(new) => current = new,
                Err(e) => tracing::error!(error = %format!("{e:#}"), "reload refused; the running configuration stays"),
            }
            notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
        }
    }
    #[cfg(not(unix))]
    let _ = (current, live, reload);
}

/// Applies what of `new` can change while the node runs, and names in the log what else
/// changed (it takes a restart). Nothing is applied when any part is refused.
fn apply(old: &Config, new: &Config, live: &Live) -> anyhow::Result<()> {
    let node = &live.node;
    // The certificate and key are read again even when their paths stay (a renewed
    // certificate); turning HTTPS on or off takes a restart.
    let tls = match (&live.tls, &new.http.tls_cert, &new.http.tls_key) {
        (Some(reloader), Some(cert), Some(key)) => Some((reloader, crate::http::TlsReloader::prepare(cert, key)?)),
        _ => None,
    };
    let quotas = new.quota.quotas()?;
    let admins = new.handle.server_admins()?;
    if let Some(log) = &new.log {
        tracing_subscriber::EnvFilter::try_new(log).map_err(|e| anyhow::anyhow!("log = {log:?}: {e}"))?;
    }
    let zones_changed = node.set_configured_zones(new.dns.zones.clone())?;
    node.set_quotas(quotas);
    node.set_server_admins(admins);
    node.stats().set_target(new.ops.target());
    let tls_reloaded = tls.map(|(reloader, prepared)| reloader.install(prepared)).is_some();
    live.caps.dns.set(new.dns.tcp_max_connections, new.dns.tcp_max_connections_per_source);
    if let Some(handle) = &live.caps.handle {
        handle.set(new.handle.tcp_max_connections, new.handle.tcp_max_connections_per_source);
    }
    live.caps.http.set(new.http.max_connections, new.http.max_connections_per_source);
    live.caps.dns_idle.set(std::time::Duration::from_secs(new.dns.tcp_idle_timeout_secs));
    if let Some(idle) = &live.caps.handle_idle {
        idle.set(std::time::Duration::from_secs(new.handle.tcp_idle_timeout_secs));
    }
    live.caps.http_timeouts.set(&new.http);
    if let Some(ops) = &live.caps.ops_timeouts {
        ops.set(&new.http);
    }
    if let Some(log) = &new.log {
        super::set_log_filter(log)?;
    }
    let mut later = Vec::new();
    let differs = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    // What is applied above is left out of the comparison: zones, connection caps, timeouts, ...
    let without_zones = |c: &Config| crate::config::DnsConfig {
        zones: Vec::new(),
        tcp_max_connections: 0,
        tcp_max_connections_per_source: 0,
        tcp_idle_timeout_secs: 0,
        ..c.dns.clone()
    };
    let without_admins = |c: &Config| crate::config::HandleConfig {
        server_admins: Vec::new(),
        tcp_max_connections: 0,
        tcp_max_connections_per_source: 0,
        tcp_idle_timeout_secs: 0,
        ..c.handle.clone()
    };
    let without_caps = |c: &Config| crate::config::HttpConfig {
        max_connections: 0,
        max_connections_per_source: 0,
        header_timeout_secs: 0,
        idle_timeout_secs: 0,
        request_timeout_secs: 0,
        tls_handshake_timeout_secs: 0,
        ..c.http.clone()
    };
    let without_target = |c: &Config| crate::config::OpsConfig { target_lookups: 0, target_days: 0, ..c.ops.clone() };
    for (name, changed) in [
        ("data_dir", differs(&old.data_dir, &new.data_dir)),
        ("dns (but zones, connection caps and timeouts)", differs(&without_zones(old), &without_zones(new))),
        (
            "http (but connection caps, timeouts and the certificate and key files' contents)",
            differs(&without_caps(old), &without_caps(new)),
        ),
        (
            "handle (but server_admins, connection caps and timeouts)",
            differs(&without_admins(old), &without_admins(new)),
        ),
        ("cache", differs(&old.cache, &new.cache)),
        ("recursive", differs(&old.recursive, &new.recursive)),
        ("ops (but the target)", differs(&without_target(old), &without_target(new))),
        ("replication", differs(&old.replication, &new.replication)),
        ("registry", differs(&old.registry, &new.registry)),
    ] {
        if changed {
            later.push(name);
        }
    }
    tracing::info!(
        zones_changed,
        tls_reloaded,
        ?later,
        "configuration reloaded: zones, quotas, server administrators, target, log filter, connection caps, \
         listener timeouts and the HTTPS certificate applied; the sections in `later` changed and take \
         effect at the next restart"
    );
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
