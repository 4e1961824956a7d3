//! Every DNS answer path, over real UDP and TCP sockets.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use idnode::identifier::Identifier;
use idnode::record::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::start_server;

const ABC: &str = "abc-123._id.1.100.88.id.example.";
const DATASHEET: &str = "datasheet-9._id.1.100.88.id.example.";
const URI: RecordType = RecordType::Unknown(256);

pub(crate) fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

pub(crate) async fn udp(addr: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request, addr).await.unwrap();
    let mut buf = vec![0; 65535];
    let n = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await.ok()?.unwrap();
    buf.truncate(n);
    Some(buf)
}

pub(crate) async fn tcp_exchange(stream: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    stream.write_all(&(request.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_framed(stream).await
}

async fn read_framed(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    buf
}

async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    Message::from_vec(&udp(addr, &query(name, qtype, Some(1232))).await.expect("an answer")).unwrap()
}

pub(crate) fn txt_values(msg: &Message) -> Vec<(u32, String, Vec<u8>)> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => {
                let s: Vec<&[u8]> = t.txt_data.iter().map(|b| &**b).collect();
                idnode::dns::mapping::parse_txt(&s)
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn txt_answer_carries_public_values_and_echoes_the_question_case() {
    let node = start_server().await;
    let msg = ask(node.addr, "ABC-123._Id.1.100.88.ID.Example.", RecordType::TXT).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert!(msg.metadata.authoritative);
    assert!(!msg.metadata.recursion_available);
    assert_eq!(msg.queries[0].name().to_ascii(), "ABC-123._Id.1.100.88.ID.Example.");
    let values = txt_values(&msg);
    let kinds: Vec<&str> = values.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["URL", "EMAIL", "PRODUCT"], "INTERNAL is not public-read");
    assert_eq!(values[0], (1, "URL".into(), b"https://example.com/products/ABC-123".to_vec()));
    assert_eq!(msg.answers[0].ttl, 86400);
    assert_eq!(msg.edns.as_ref().unwrap().max_payload(), 1232);
    node.stop().await;
}

#[tokio::test]
async fn uri_and_any() {
    let node = start_server().await;
    let uri = ask(node.addr, ABC, URI).await;
    assert_eq!(uri.answers.len(), 1);
    let RData::Unknown { rdata, .. } = &uri.answers[0].data else { panic!("{:?}", uri.answers[0]) };
    let bytes = &rdata.anything;
    assert_eq!(&bytes[..4], &[0, 1, 0, 1], "priority = index 1, weight 1");
    assert_eq!(&bytes[4..], b"https://example.com/products/ABC-123");
    let any = ask(node.addr, ABC, RecordType::ANY).await;
    let types: Vec<RecordType> = any.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::TXT, RecordType::TXT, RecordType::TXT, URI]);
    node.stop().await;
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() {
    let node = start_server().await;
    let nx = ask(node.addr, "nope._id.1.100.88.id.example.", RecordType::TXT).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());
    let soa = &nx.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name.to_ascii(), "id.example.");
    assert_eq!(soa.ttl, 300);
    // Known name, type it does not have.
    let nodata = ask(node.addr, ABC, RecordType::A).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    // Empty non-terminals (a prefix, its _id label) exist: NODATA, not NXDOMAIN (RFC 8020).
    for name in ["1.100.88.id.example.", "_id.1.100.88.id.example.", "88.id.example."] {
        let msg = ask(node.addr, name, RecordType::TXT).await;
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(msg.answers.is_empty(), "{name}");
    }
    for name in ["2.100.88.id.example.", "_id.id.example.", "bad_label.id.example."] {
        let msg = ask(node.addr, name, RecordType::TXT).await;
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    node.stop().await;
}

#[tokio::test]
async fn apex_has_soa_and_ns_with_glue() {
    let node = start_server().await;
    let soa = ask(node.addr, "id.example.", RecordType::SOA).await;
    let RData::SOA(s) = &soa.answers[0].data else { panic!() };
    assert_eq!(s.mname.to_ascii(), "ns1.id.example.");
    assert_eq!(s.minimum, 300);
    let ns = ask(node.addr, "id.example.", RecordType::NS).await;
    assert_eq!(
        ns.answers[0].data,
        RData::NS(hickory_proto::rr::rdata::NS(Name::from_ascii("ns1.id.example.").unwrap()))
    );
    assert_eq!(ns.additionals[0].data, RData::A(hickory_proto::rr::rdata::A("127.0.0.1".parse().unwrap())));
    let a = ask(node.addr, "ns1.id.example.", RecordType::A).await;
    assert_eq!(a.answers.len(), 1);
    node.stop().await;
}

#[tokio::test]
async fn refuses_outside_the_apex_and_other_classes() {
    let node = start_server().await;
    let out = ask(node.addr, "example.com.", RecordType::A).await;
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);
    assert!(!out.metadata.authoritative);
    let mut msg = Message::new(1, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii(ABC).unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    msg.add_query(q);
    let r = Message::from_vec(&udp(node.addr, &msg.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    node.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_formerr_notimp_or_nothing() {
    let node = start_server().await;
    let good = query(ABC, RecordType::TXT, None);
    // Two questions: FORMERR, echoing the id.
    let mut two = good.clone();
    two[5] = 2;
    let r = udp(node.addr, &two).await.unwrap();
    assert_eq!((&r[..2], r[3] & 0xf), (&good[..2], 1));
    // Opcode NOTIFY (4): NOTIMP.
    let mut notify = good.clone();
    notify[2] = 4 << 3;
    assert_eq!(udp(node.addr, &notify).await.unwrap()[3] & 0xf, 4);
    // Zone transfer over UDP: NOTIMP.
    let axfr = udp(node.addr, &query("id.example.", RecordType::AXFR, None)).await.unwrap();
    assert_eq!(axfr[3] & 0xf, 4);
    // A response, or a runt: no answer at all.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(udp(node.addr, &response).await.is_none());
    assert!(udp(node.addr, &good[..5]).await.is_none());
    // Garbage of every length: the node stays up and never panics.
    let mut seed = 0x2545_f491_u32;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(&bytes, node.addr).await.unwrap();
    }
    assert_eq!(ask(node.addr, ABC, RecordType::TXT).await.answers.len(), 3);
    node.stop().await;
}

#[tokio::test]
async fn edns_version_and_payload() {
    let node = start_server().await;
    // No EDNS in the query: none in the answer.
    let plain = Message::from_vec(&udp(node.addr, &query(ABC, RecordType::TXT, None)).await.unwrap()).unwrap();
    assert!(plain.edns.is_none());
    // EDNS version 1: BADVERS (extended RCODE 16), OPT version 0.
    let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(ABC).unwrap(), RecordType::TXT));
    let mut e = Edns::new();
    e.set_version(1);
    msg.set_edns(e);
    let r = Message::from_vec(&udp(node.addr, &msg.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(u16::from(r.metadata.response_code), 16, "BADVERS (shares code 16 with BADSIG)");
    assert_eq!(r.edns.unwrap().version(), 0);
    node.stop().await;
}

#[tokio::test]
async fn large_answer_sets_tc_over_udp_and_comes_whole_over_tcp() {
    let node = start_server().await;
    for edns in [None, Some(1232), Some(4096)] {
        let r = Message::from_vec(&udp(node.addr, &query(DATASHEET, RecordType::TXT, edns)).await.unwrap()).unwrap();
        assert!(r.metadata.truncation, "edns {edns:?}");
        assert!(r.answers.is_empty());
    }
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    let r = Message::from_vec(&tcp_exchange(&mut stream, &query(DATASHEET, RecordType::TXT, None)).await).unwrap();
    assert!(!r.metadata.truncation);
    assert!(txt_values(&r)[1].2.len() > 1232);
    node.stop().await;
}

#[tokio::test]
async fn tcp_serves_pipelined_queries_in_order() {
    let node = start_server().await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    let names = [ABC, DATASHEET, "nope._id.1.100.88.id.example.", "sensor-42._id.1.100.88.id.example."];
    let mut burst = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut q = query(name, RecordType::TXT, None);
        q[..2].copy_from_slice(&(i as u16).to_be_bytes());
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    stream.write_all(&burst).await.unwrap();
    for (i, name) in names.iter().enumerate() {
        let r = Message::from_vec(&read_framed(&mut stream).await).unwrap();
        assert_eq!(r.metadata.id, i as u16);
        assert_eq!(r.queries[0].name().to_ascii(), *name);
    }
    node.stop().await;
}

/// Answers are batched (`server/tcp.rs`): a batch larger than one write goes out in several, and
/// the answers to every whole query go out before the server waits for the rest of a query.
#[tokio::test]
async fn tcp_answers_a_pipelined_burst_before_waiting_for_a_query_half_sent() {
    let node = start_server().await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    let mut burst = Vec::new();
    for i in 0..301u16 {
        let mut q = query(ABC, RecordType::TXT, None);
        q[..2].copy_from_slice(&i.to_be_bytes());
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    let last = burst.len() - (query(ABC, RecordType::TXT, None).len() + 2);
    stream.write_all(&burst[..last + 3]).await.unwrap();
    let mut bytes = 0;
    for i in 0..300u16 {
        let answer = tokio::time::timeout(Duration::from_secs(5), read_framed(&mut stream)).await.expect("answered");
        bytes += answer.len();
        let r = Message::from_vec(&answer).unwrap();
        assert_eq!((r.metadata.id, r.answers.len()), (i, 3));
    }
    assert!(bytes > 64 * 1024, "more than one batch: {bytes} bytes");
    stream.write_all(&burst[last + 3..]).await.unwrap();
    let r = Message::from_vec(&read_framed(&mut stream).await).unwrap();
    assert_eq!(r.metadata.id, 300);
    node.stop().await;
}

#[tokio::test]
async fn tcp_idle_clients_are_closed() {
    let node = crate::start_server_with(|c| c.dns.tcp_idle_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    tcp_exchange(&mut stream, &query(ABC, RecordType::TXT, None)).await;
    let mut byte = [0u8];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
        .await
        .expect("closed before 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "the server closed the idle connection");
    node.stop().await;
}

#[tokio::test]
async fn writes_invalidate_cached_answers_including_negative_ones() {
    let node = start_server().await;
    let name = "new-1._id.7.100.88.id.example.";
    assert_eq!(ask(node.addr, name, RecordType::TXT).await.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        ask(node.addr, "7.100.88.id.example.", RecordType::TXT).await.metadata.response_code,
        ResponseCode::NXDomain
    );
    let id = Identifier::parse("88.100.7/NEW-1").unwrap();
    let admin = idnode::auth::Admin::node();
    let url = vec![Value::new(1, "URL", "https://n/1", 0)];
    node.node.put(&admin, &id, url, &Default::default()).unwrap();
    let r = ask(node.addr, name, RecordType::TXT).await;
    assert_eq!(txt_values(&r), [(1, "URL".into(), b"https://n/1".to_vec())]);
    let ent = ask(node.addr, "7.100.88.id.example.", RecordType::TXT).await;
    assert_eq!(ent.metadata.response_code, ResponseCode::NoError, "the new prefix is no longer NXDOMAIN");
    node.node.delete(&admin, &id, None).unwrap();
    assert_eq!(ask(node.addr, name, RecordType::TXT).await.metadata.response_code, ResponseCode::NXDomain);
    let stats = node.frontend.cache_stats();
    assert!(stats.hits == 0 && stats.misses >= 5, "{stats:?}");
    ask(node.addr, name, RecordType::TXT).await;
    assert_eq!(node.frontend.cache_stats().hits, 1);
    node.stop().await;
}

/// Workers receive and send in batches (recvmmsg/sendmmsg): a burst from many clients at once,
/// with runts among the queries, must give every client exactly the answers to its own
/// questions, whichever batch each query fell into.
#[tokio::test]
async fn bursts_from_many_clients_each_get_their_own_answers() {
    let node = start_server().await;
    let names = [
        (ABC, RecordType::TXT),
        (ABC, URI),
        (DATASHEET, RecordType::TXT),
        ("nope._id.1.100.88.id.example.", RecordType::TXT),
    ];
    let mut clients = Vec::new();
    for c in 0..8u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for q in 0..64u16 {
            let (name, qtype) = names[usize::from((c + q) % 4)];
            let mut request = query(name, qtype, Some(1232));
            request[..2].copy_from_slice(&(c << 8 | q).to_be_bytes());
            socket.send_to(&request, node.addr).await.unwrap();
            if q % 16 == 0 {
                socket.send_to(&request[..7], node.addr).await.unwrap();
            }
        }
        clients.push(socket);
    }
    let mut buf = vec![0; 65535];
    for (c, socket) in clients.iter().enumerate() {
        let mut seen = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            let msg = Message::from_vec(&buf[..n]).unwrap();
            let (client, q) = (msg.metadata.id >> 8, msg.metadata.id & 0xff);
            assert_eq!(usize::from(client), c, "an answer for another client");
            let (name, qtype) = names[(c + usize::from(q)) % 4];
            let question = &msg.queries[0];
            assert_eq!((question.name().to_ascii(), question.query_type()), (name.to_owned(), qtype));
            seen.push(q);
            if seen.len() == 64 {
                break;
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..64).collect::<Vec<u16>>(), "client {c} got each answer once");
    }
    node.stop().await;
}
