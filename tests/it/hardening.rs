//! Attacks on a running node: each must fail, and the node must go on serving.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use idnode::auth::Admin;
use idnode::identifier::Identifier;
use idnode::record::Value;
use idnode::record::json::JsonRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{basic, call};
use crate::dns::{query, udp};
use crate::{TestNode, start_server, start_server_with};

const ABC: &str = "abc-123._id.1.100.88.id.example.";

async fn ask(addr: SocketAddr, name: &str) -> Message {
    Message::from_vec(&udp(addr, &query(name, RecordType::TXT, Some(1232))).await.expect("an answer")).unwrap()
}

/// The JSON Lines record that delegates `prefix` to one server.
fn delegation_line(prefix: &str) -> String {
    format!(
        r#"{{"handle":"0.NA/{prefix}","values":[{{"index":1,"type":"HS_SITE","data":{{"format":"site","value":{{
            "servers":[{{"serverId":1,"address":"192.0.2.1"}}]}}}}}}]}}"#
    )
    .replace('\n', "")
}

/// Gives prefix `prefix` a delegation (an HS_SITE value) at the node, as the node itself.
fn delegate(node: &TestNode, prefix: &str) -> Result<(), idnode::node::WriteError> {
    let record = serde_json::from_str::<JsonRecord>(&delegation_line(prefix)).unwrap().into_record(0).unwrap();
    node.node.put(&Admin::node(), &record.identifier, record.values, &Default::default()).map(drop)
}

#[tokio::test]
async fn a_referral_below_a_252_byte_cut_is_servfail_and_udp_keeps_serving() {
    let node = start_server().await;
    // 88 and four segments of 59/58/58/58 characters: the cut's DNS name is 252 bytes, so
    // `ns1.<cut>` is no DNS name. Each such query used to kill one UDP worker.
    let segments = ["a".repeat(59), "b".repeat(58), "c".repeat(58), "d".repeat(58)];
    let prefix = format!("88.{}", segments.join("."));
    // A write is refused up front, with the reason...
    let refused = delegate(&node, &prefix).unwrap_err().to_string();
    assert!(refused.contains("ns1") && refused.contains("255"), "{refused}");
    // ...but a record that arrives by import (or was stored before the check) must not harm.
    let line = delegation_line(&prefix);
    idnode::import::import(&node.registry, line.as_bytes(), 10, |_| {}).unwrap();
    let below = format!("e.{}.{}.{}.{}.88.id.example.", segments[3], segments[2], segments[1], segments[0]);
    for _ in 0..4 {
        assert_eq!(ask(node.addr, &below).await.metadata.response_code, ResponseCode::ServFail);
    }
    for _ in 0..4 {
        assert_eq!(ask(node.addr, ABC).await.answers.len(), 3, "every worker still answers");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_source_is_rate_limited_while_another_source_is_answered() {
    let node = start_server_with(|c| {
        c.dns.rrl.exempt.clear();
        c.dns.rrl.responses_per_second = 20;
        c.dns.rrl.ipv4_prefix_len = 32;
    })
    .await;
    let flood = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let request = query(ABC, RecordType::TXT, Some(1232));
    for _ in 0..200 {
        flood.send_to(&request, node.addr).await.unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0; 65535];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), flood.recv(&mut buf)).await {
        let msg = Message::from_vec(&buf[..n]).unwrap();
        if msg.metadata.truncation { truncated += 1 } else { full += 1 }
    }
    assert!((15..=40).contains(&full), "about the rate got full answers: {full}");
    assert!(truncated >= 40, "limited answers slip as TC, one in two: {truncated}");
    assert!(full + truncated < 150, "the rest were dropped: {full} + {truncated}");
    let other = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    other.send_to(&request, node.addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(1), other.recv(&mut buf)).await.unwrap().unwrap();
    let msg = Message::from_vec(&buf[..n]).unwrap();
    assert!(!msg.metadata.truncation && msg.answers.len() == 3, "another source is answered normally");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_answers_never_outlive_an_acknowledged_write() {
    let node = start_server().await;
    let id = Identifier::parse("88.100.1/RACE").unwrap();
    let name = "race._id.1.100.88.id.example.";
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Queriers keep missing the cache on the name while it is written, so that misses that read
    // the registry before a write race with the write's invalidation.
    let queriers: Vec<_> = (0..3)
        .map(|_| {
            let (addr, done) = (node.addr, done.clone());
            tokio::spawn(async move {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let request = query(name, RecordType::TXT, None);
                let mut buf = vec![0; 4096];
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    socket.send_to(&request, addr).await.unwrap();
                    let _ = tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await;
                }
            })
        })
        .collect();
    for round in 0..300u32 {
        let (n, id) = (node.node.clone(), id.clone());
        let values = vec![Value::new(1, "URL", format!("https://race/{round}"), 0)];
        tokio::task::spawn_blocking(move || n.put(&Admin::node(), &id, values, &Default::default()).unwrap())
            .await
            .unwrap();
        let answer = ask(node.addr, name).await;
        let seen = crate::dns::txt_values(&answer);
        assert_eq!(seen, [(1, "URL".into(), format!("https://race/{round}").into_bytes())], "round {round}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for q in queriers {
        q.await.unwrap();
    }
    node.stop().await;
}

#[tokio::test]
async fn only_a_changed_delegation_drops_cached_names_and_only_below_its_cut() {
    let node = start_server().await;
    let other = "lamp-2._id.101.88.id.example.";
    let id = Identifier::parse("88.101/LAMP-2").unwrap();
    node.node.put(&Admin::node(), &id, vec![Value::new(1, "URL", "https://l/2", 0)], &Default::default()).unwrap();
    ask(node.addr, ABC).await;
    ask(node.addr, other).await;
    let hits = |n: &TestNode| n.frontend.cache_stats().hits;
    let before = hits(&node);
    // A no-op write to a prefix record (what an enterprise operator can do on its own prefix)
    // used to empty the whole cache.
    let prefix = Identifier::parse("0.NA/88.100").unwrap();
    let current = node.registry.get(&prefix).unwrap().map(|r| r.values).unwrap_or_default();
    node.node.put(&Admin::node(), &prefix, current, &Default::default()).unwrap();
    ask(node.addr, ABC).await;
    assert_eq!(hits(&node), before + 1, "a write without a delegation change keeps the cache");
    delegate(&node, "88.100").unwrap();
    let referral = ask(node.addr, ABC).await;
    assert!(!referral.metadata.authoritative && !referral.authorities.is_empty(), "names below the cut refer");
    assert_eq!(hits(&node), before + 1, "and were dropped from the cache");
    ask(node.addr, other).await;
    assert_eq!(hits(&node), before + 2, "names beside the cut stay cached");
    node.stop().await;
}

/// Makes `300:0.NA/88` the administrator of 88 with `secret`, through the node.
pub(crate) fn top_admin(node: &TestNode, secret: &str) -> String {
    let id = Identifier::parse("0.NA/88").unwrap();
    let values = idnode::auth::prefix_admin_values((300, id.as_str()), Some(secret), 0);
    node.node.put(&Admin::node(), &id, values, &Default::default()).unwrap();
    basic("300:0.NA/88", secret)
}

#[tokio::test]
async fn secrets_arrive_plain_or_not_at_all_and_never_leave() {
    let node = start_server().await;
    let auth = top_admin(&node, "top-secret");
    let base = format!("http://{}/api/handles", node.http);
    let hostile = "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let (url, auth2) = (format!("{base}/88.100/OPS"), auth.clone());
    let body = format!(r#"[{{"index":300,"type":"HS_SECKEY","data":"{hostile}","publicRead":false}}]"#);
    let (status, text) =
        tokio::task::spawn_blocking(move || call("PUT", &url, Some(&auth2), Some(&body))).await.unwrap();
    assert_eq!(status, 400, "a ready hash is refused: {text}");
    assert!(text.contains("pre-hashed"), "{text}");
    let (url, auth2) = (format!("{base}/88.100/OPS"), auth.clone());
    let body = r#"[{"index":300,"type":"hs_seckey","data":"ops-secret"}]"#;
    let (status, _) = tokio::task::spawn_blocking(move || call("PUT", &url, Some(&auth2), Some(body))).await.unwrap();
    assert_eq!(status, 201);
    let stored = node.registry.get(&Identifier::parse("88.100/OPS").unwrap()).unwrap().unwrap();
    assert!(stored.values[0].data.starts_with(b"$argon2id$v=19$m=19456,t=2,p=1$"), "a lower-case type is hashed too");
    let url = format!("{base}/88.100/OPS");
    let (_, text) = tokio::task::spawn_blocking(move || call("GET", &url, None, None)).await.unwrap();
    assert!(!text.contains("argon2") && !text.contains("ops-secret"), "never served: {text}");
    let ops = basic("300:88.100/OPS", "ops-secret");
    let url = format!("{base}/88.100/OPS");
    let (status, _) = tokio::task::spawn_blocking(move || call("GET", &url, Some(&ops), None)).await.unwrap();
    assert_eq!(status, 200, "the secret works");
    node.stop().await;
}

/// Sends raw HTTP/1.1 and returns the response head.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn bodies_are_read_only_after_authentication_and_within_limits() {
    let node = start_server().await;
    let auth = top_admin(&node, "top-secret");
    // 64 MiB announced, a few bytes sent: the node answers 401 without waiting for the rest.
    let head = raw_http(
        node.http,
        b"PUT /api/handles/88.100/X HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n\r\n[{\"index\":1",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let big = format!(r#"[{{"index":1,"type":"URL","data":"{}"}}]"#, "x".repeat(2 << 20));
    let url = format!("http://{}/api/handles/88.100/X", node.http);
    let (status, text) = tokio::task::spawn_blocking(move || call("PUT", &url, Some(&auth), Some(&big))).await.unwrap();
    assert_eq!(status, 413, "{text}");
    node.stop().await;
}

#[tokio::test]
async fn failed_authentications_back_off() {
    let node = start_server().await;
    top_admin(&node, "top-secret");
    let url = format!("http://{}/api/handles/88.100.1/ABC-123", node.http);
    let wrong = basic("300:0.NA/88", "guess");
    let statuses = tokio::task::spawn_blocking(move || {
        (0..8).map(|_| call("GET", &url, Some(&wrong), None).0).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(&statuses[..6], [403; 6], "{statuses:?}");
    assert_eq!(&statuses[6..], [429; 2], "then the client waits: {statuses:?}");
    node.stop().await;
}

#[tokio::test]
async fn listings_are_bounded_and_go_on_after_a_name() {
    let node = start_server().await;
    let auth = top_admin(&node, "top-secret");
    let base = format!("http://{}/api/handles?prefix=88.100.1", node.http);
    let (a, b) = (auth.clone(), base.clone());
    let (status, text) =
        tokio::task::spawn_blocking(move || call("GET", &format!("{b}&page=20&pageSize=10000"), Some(&a), None))
            .await
            .unwrap();
    assert_eq!(status, 400, "{text}");
    let (status, text) =
        tokio::task::spawn_blocking(move || call("GET", &format!("{base}&after=88.100.1/ABC-123"), Some(&auth), None))
            .await
            .unwrap();
    assert_eq!(status, 200, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names = body["handles"].as_array().unwrap();
    assert!(!names.is_empty() && names.iter().all(|n| n.as_str().unwrap() > "88.100.1/ABC-123"), "{text}");
    let total: usize = body["totalCount"].as_str().unwrap().parse().unwrap();
    assert_eq!(total, names.len() + 1, "every demo identifier but ABC-123 follows it: {text}");
    node.stop().await;
}
