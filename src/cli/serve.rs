//! `idnode serve`: open the registry, assemble the node, serve until Ctrl-C or SIGTERM.

use std::sync::Arc;

use crate::config::Config;
use crate::demo;
use crate::dns::client;
use crate::identifier::Identifier;
use crate::registry::Registry;
use crate::server::Server;

/// Serves `config` until a shutdown signal; with `load_demo`, loads the demo namespace first
/// unless it is already there, and prints commands to try.
pub fn run(config: Config, load_demo: bool) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::open(&config.data_dir)?);
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
        server.serve(shutdown_signal()).await?;
        let stats = frontend.cache_stats();
        tracing::info!(hits = stats.hits, misses = stats.misses, "stopped");
        Ok(())
    })
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
