//! Lifecycle: shutdown drains every task and frees every port.

use std::net::{TcpListener, UdpSocket};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{query, udp};
use crate::start_server;

#[tokio::test]
async fn every_port_can_be_bound_again_after_shutdown() {
    let node = start_server().await;
    let (addr, http) = (node.addr, node.http);
    let r = udp(addr, &query("abc-123._id.1.100.88.id.example.", RecordType::TXT, None)).await.unwrap();
    assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 3);
    // An open TCP client must not keep the node from stopping.
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), node.stop()).await.expect("shutdown finishes");
    TcpListener::bind(addr).expect("TCP port is free again");
    UdpSocket::bind(addr).expect("UDP port is free again");
    TcpListener::bind(http).expect("HTTP port is free again");
}

#[tokio::test]
async fn a_busy_port_is_an_error_at_bind_time() {
    let node = start_server().await;
    let taken = node.addr;
    let dir = tempfile::tempdir().unwrap();
    let mut config = idnode::config::Config { data_dir: dir.path().to_owned(), ..Default::default() };
    config.dns.listen = taken;
    let registry = std::sync::Arc::new(idnode::registry::Registry::open(dir.path()).unwrap());
    let err = idnode::server::Server::start(&config, registry).await.err().expect("port in use");
    assert!(format!("{err:#}").contains(&format!("cannot listen on TCP {taken}")), "{err:#}");
    node.stop().await;
}

/// The serving node settles its registry (empty synced commits, `src/registry/settle.rs`) once
/// writes pause, and the settle leaves what was written as it was.
#[tokio::test]
async fn the_registry_is_settled_once_writes_pause() {
    let node = start_server().await;
    let settled = |node: &crate::TestNode| {
        let registry = node.registry.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while registry.unsettled() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            !registry.unsettled()
        }
    };
    assert!(settled(&node).await, "the demo load and the start's commits are settled");
    let id = idnode::identifier::Identifier::parse("88.100.1/SETTLE-1").unwrap();
    let record =
        idnode::record::Record::new(&id, vec![idnode::record::Value::new(1, "URL", "https://x/1", 0)]).unwrap();
    let seq = node.registry.seq();
    node.registry.transact(|txn| txn.put(&record, false).map(drop)).unwrap();
    assert!(node.registry.unsettled());
    assert!(settled(&node).await, "settled after the write");
    assert_eq!(node.registry.seq(), seq + 1, "a settle is no write");
    assert_eq!(node.registry.get(&id).unwrap(), Some(record));
    node.stop().await;
}
