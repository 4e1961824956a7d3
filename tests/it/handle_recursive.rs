//! The recursive role over the Handle protocol when prefixes are delegated through service
//! handles (`HS_SERV`, as the Global Handle Registry delegates many): the recursive node
//! resolves the service handle at the roots for its sites, and resolves there.

use crate::handle_admin::{Out, once, put_value, resolution, top_and_secondary, word};

const REC_PO: u32 = 0x1000_0000 | 0x0100_0000;

#[tokio::test]
async fn a_prefix_named_through_a_service_handle_is_resolved_at_the_service_s_site() {
    let (top, secondary, site) = top_and_secondary().await;
    // 0.NA/88.100 names its site through 0.SERV/88.100, which holds it.
    let put = |id: &str, kind: &str, data: Vec<u8>| put_value(&top, id, kind, data);
    put("0.NA/88.100", "HS_SERV", b"0.SERV/88.100".to_vec());
    put("0.SERV/88.100", "HS_SITE", site);
    let root = top.handle;
    let recursive = crate::start_server_with(|c| c.recursive.handle_roots = vec![root]).await;
    let ask = |handle: &str, request: u32| Out { flags: REC_PO, ..Out::new(1, request, resolution(handle)) };

    let answer = once(recursive.handle, &ask("88.100.1/ABC-123", 5)).await;
    assert_eq!((answer.code, answer.request), (1, 5), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer.body).contains("https://example.com/products/ABC-123"));
    // A service handle that is not registered: HANDLE_NOT_FOUND saying so, not a hang; one
    // that names no site: an error.
    put("0.NA/88.600", "HS_SERV", b"0.SERV/NOWHERE".to_vec());
    let lost = once(recursive.handle, &ask("88.600/X", 6)).await;
    assert_eq!(lost.code, 100, "{lost:?}");
    assert!(String::from_utf8_lossy(&lost.body).contains("no node serves the prefix 88.600"), "{lost:?}");
    put("0.NA/88.700", "HS_SERV", b"0.SERV/88.700".to_vec());
    put("0.SERV/88.700", "URL", b"https://not-a-site.example/".to_vec());
    let siteless = once(recursive.handle, &ask("88.700/X", 7)).await;
    assert_eq!(siteless.code, 2, "{siteless:?}");
    recursive.stop().await;
    top.stop().await;
    secondary.stop().await;
}

#[tokio::test]
async fn over_udp_a_slow_recursive_resolution_does_not_hold_up_the_others() {
    let (top, secondary, site) = top_and_secondary().await;
    // 88.900 is delegated to a server that takes connections and never answers.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut stuck_site = idnode::record::site::Site::decode(&site).unwrap();
    stuck_site.servers.truncate(1);
    stuck_site.servers[0].interfaces.iter_mut().for_each(|i| i.port = u32::from(stuck.local_addr().unwrap().port()));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = stuck.accept().await {
            open.push(connection);
        }
    });
    put_value(&top, "0.NA/88.100", "HS_SITE", site);
    put_value(&top, "0.NA/88.900", "HS_SITE", stuck_site.encode());
    let root = top.handle;
    let recursive = crate::start_server_with(|c| {
        c.recursive.handle_roots = vec![root];
        c.recursive.timeout_ms = 4000;
        c.recursive.resolution_budget_ms = 8000;
    })
    .await;
    let ask = |handle: &str, request: u32| Out { flags: REC_PO, ..Out::new(1, request, resolution(handle)) }.bytes();

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&ask("88.900/SLOW", 21), recursive.handle).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    socket.send_to(&ask("88.100.1/ABC-123", 22), recursive.handle).await.unwrap();
    let mut buf = [0u8; 2048];
    let mut answered = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(15), socket.recv(&mut buf)).await.unwrap().unwrap();
        answered.push((word(&buf[..n], 8), word(&buf[..n], 24)));
    }
    // The second request is answered (SUCCESS) while the first still waits on its server, which
    // then times out (ERROR).
    assert_eq!(answered, [(22, 1), (21, 2)]);
    held.abort();
    recursive.stop().await;
    top.stop().await;
    secondary.stop().await;
}

#[tokio::test]
async fn a_prefix_with_a_hung_primary_site_is_resolved_at_its_mirror_site() {
    use idnode::auth::Admin;
    use idnode::identifier::Identifier;
    use idnode::record::Value;
    let (top, secondary, site) = top_and_secondary().await;
    // The primary's site hangs (takes connections, never answers); the mirror's site is the
    // secondary's. One HS_SITE value each, primary first, as docs/replication.md says.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut primary = idnode::record::site::Site::decode(&site).unwrap();
    primary.servers.truncate(1);
    primary.servers[0].interfaces.iter_mut().for_each(|i| i.port = u32::from(hung.local_addr().unwrap().port()));
    let mut mirror = idnode::record::site::Site::decode(&site).unwrap();
    mirror.primary_site = false;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = hung.accept().await {
            open.push(connection);
        }
    });
    let values = vec![Value::new(1, "HS_SITE", primary.encode(), 0), Value::new(2, "HS_SITE", mirror.encode(), 0)];
    let id = Identifier::parse("0.NA/88.100").unwrap();
    top.node.put(&Admin::node(), &id, values, &Default::default()).unwrap();
    let root = top.handle;
    let recursive = crate::start_server_with(|c| {
        c.recursive.handle_roots = vec![root];
        c.recursive.timeout_ms = 500;
    })
    .await;
    let ask = Out { flags: REC_PO, ..Out::new(1, 9, resolution("88.100.1/ABC-123")) };
    let answer = once(recursive.handle, &ask).await;
    assert_eq!((answer.code, answer.request), (1, 9), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer.body).contains("https://example.com/products/ABC-123"));
    held.abort();
    recursive.stop().await;
    top.stop().await;
    secondary.stop().await;
}
