//! Integration tests: real sockets, a real redb database in a temporary directory.

mod alloc;
mod bench;
mod cli;
mod dns;
mod handle;
mod handle_admin;
mod handle_home;
mod handle_recursive;
mod handle_sm2;
mod hardening;
mod hierarchy;
mod http_server;
mod layout;
mod mirror;
mod quota;
mod recursor;
mod server;
mod stats;
mod status;
mod systemd;
mod xfr;

use std::net::SocketAddr;
use std::sync::Arc;

use idnode::config::Config;
use idnode::dns::Frontend;
use idnode::node::Node;
use idnode::registry::Registry;
use idnode::server::Server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A node serving the demo namespace on 127.0.0.1, port 0, with its own data directory.
pub struct TestNode {
    pub addr: SocketAddr,
    pub http: SocketAddr,
    /// The Handle protocol's address (TCP and UDP).
    pub handle: SocketAddr,
    /// The operations listener's address, when the test turned it on.
    pub ops: Option<SocketAddr>,
    /// What replaces the HTTPS certificate, when the API speaks HTTPS.
    pub tls: Option<idnode::http::TlsReloader>,
    pub frontend: Arc<Frontend>,
    /// The Handle protocol front end (its cache statistics).
    pub handle_frontend: Arc<idnode::handle::Frontend>,
    pub node: Arc<Node>,
    pub registry: Arc<Registry>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), idnode::server::ServerError>>>,
    _dir: tempfile::TempDir,
}

pub async fn start_server() -> TestNode {
    start_server_with(|_| {}).await
}

pub async fn start_server_with(adjust: impl FnOnce(&mut Config)) -> TestNode {
    start_server_in(tempfile::tempdir().unwrap(), true, adjust).await
}

/// A node on the data directory `dir`, with the demo namespace loaded into it when `demo`.
async fn start_server_in(dir: tempfile::TempDir, demo: bool, adjust: impl FnOnce(&mut Config)) -> TestNode {
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.dns.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.handle.listen = "127.0.0.1:0".parse().unwrap();
    config.ops.listen = "127.0.0.1:0".parse().unwrap();
    config.dns.udp_workers = 2;
    adjust(&mut config);
    let registry = Arc::new(Registry::open(&config.data_dir).unwrap());
    if demo {
        idnode::demo::load(&registry).unwrap();
    }
    let server = Server::start(&config, registry.clone()).await.unwrap();
    let (node, frontend) = (server.node().clone(), server.frontend().clone());
    let handle_frontend = server.handle_frontend().clone();
    let addr = server.local_addr();
    let http = server.http_addr();
    let ops = server.ops_addr();
    let tls = server.tls_reloader();
    // A test that switches the Handle protocol off gets the unspecified address.
    let handle = server.handle_addr().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    TestNode {
        addr,
        http,
        handle,
        ops,
        tls,
        frontend,
        handle_frontend,
        node,
        registry,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

impl TestNode {
    /// Stops the node and waits until every socket is closed.
    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// Stops the node and starts it again on the same data directory (new ports), configured
    /// by `adjust`.
    pub async fn restart(self, adjust: impl FnOnce(&mut Config)) -> TestNode {
        let dir = self.stop_keeping_data().await;
        start_server_in(dir, false, adjust).await
    }

    /// Stops the node and hands back its data directory, closed, for [`start_server_in`].
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        let TestNode { _dir: dir, registry, node, frontend, handle_frontend, .. } = self;
        // The registry is closed only when its last holder lets go.
        drop((registry, node, frontend, handle_frontend));
        dir
    }
}
