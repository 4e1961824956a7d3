//! Zone transfers out, TSIG-signed queries and NOTIFY, over real sockets. Knot and NSD as real
//! secondaries are in conformance/replication; these pin the messages themselves.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use idnode::auth::Admin;
use idnode::config::{Config, ReplicationConfig};
use idnode::dns::xfr::tsig;
use idnode::identifier::Identifier;
use idnode::record::Value;
use tokio::net::{TcpStream, UdpSocket};

use crate::{TestNode, start_server_with};

const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn key() -> idnode::config::TsigKey {
    idnode::config::TsigKey { name: "xfr.".into(), secret: b"0123456789abcdef0123456789abcdef".to_vec() }
}

/// `[replication]` with the key `xfr.`, transfers allowed from `allow` with that key, and NOTIFY
/// sent to `notify`.
fn replication(allow: &str, notify: Option<SocketAddr>) -> impl FnOnce(&mut Config) {
    let mut text = format!(
        "[[keys]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
         [[allow_transfer]]\naddress = \"{allow}\"\nkey = \"xfr\"\n"
    );
    if let Some(to) = notify {
        text.push_str(&format!("[[notify]]\naddress = \"{to}\"\nkey = \"xfr\"\n"));
    }
    let replication: ReplicationConfig = toml::from_str(&text).unwrap();
    move |config| config.replication = replication
}

fn request(qtype: RecordType, client_serial: Option<u32>, signed: bool) -> Vec<u8> {
    let apex = Name::from_ascii("id.example.").unwrap();
    let mut msg = Message::new(77, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(apex.clone(), qtype));
    if let Some(serial) = client_serial {
        let soa = SOA::new(apex.clone(), apex.clone(), serial, 1, 1, 1, 1);
        msg.add_authority(Record::from_rdata(apex, 0, RData::SOA(soa)));
    }
    let mut bytes = msg.to_vec().unwrap();
    if signed {
        tsig::sign_request(&mut bytes, &key(), idnode::record::unix_now() as u64);
    }
    bytes
}

/// Sends `request` over TCP and reads messages until the answer is complete: an error, a
/// single SOA, or the closing SOA (the second of the AXFR form, the fourth of a difference).
async fn transfer(addr: SocketAddr, request: &[u8]) -> Vec<Message> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    idnode::dns::framing::write(&mut stream, request, &mut Vec::new(), None).await.unwrap();
    let mut out: Vec<Message> = Vec::new();
    loop {
        let mut buf = Vec::new();
        let read = idnode::dns::framing::read(&mut stream, &mut buf, 65535, Some(Duration::from_secs(10)));
        assert!(read.await.unwrap(), "the stream ended before its closing SOA");
        out.push(Message::from_vec(&buf).unwrap());
        if out[0].metadata.response_code != ResponseCode::NoError {
            return out;
        }
        let records = answers(&out);
        let is_soa = |i: usize| records.get(i).is_some_and(|r| r.record_type() == RecordType::SOA);
        let soas = records.iter().filter(|r| r.record_type() == RecordType::SOA).count();
        let needed = if is_soa(1) { 4 } else { 2 };
        if records.len() == 1 && is_soa(0) || soas >= needed {
            return out;
        }
    }
}

fn answers(messages: &[Message]) -> Vec<&Record> {
    messages.iter().flat_map(|m| &m.answers).collect()
}

fn serial_of(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    }
}

fn put(node: &TestNode, id: &str, url: &str) {
    let id = Identifier::parse(id).unwrap();
    node.node.put(&Admin::node(), &id, vec![Value::new(1, "URL", url, 0)], &Default::default()).unwrap();
}

#[tokio::test]
async fn a_signed_axfr_streams_the_zone_between_two_soas_every_message_signed() {
    let node = start_server_with(replication("127.0.0.1", None)).await;
    // Enough identifiers for several messages.
    node.registry
        .transact::<_, idnode::registry::RegistryError>(|txn| {
            for i in 0..3000 {
                let id = Identifier::parse(&format!("88.100.7/ITEM-{i:05}")).unwrap();
                let record = idnode::record::Record::new(&id, vec![Value::new(1, "URL", format!("https://x/{i}"), 0)]);
                txn.put(&record.unwrap(), false)?;
            }
            Ok(())
        })
        .unwrap();
    let messages = transfer(node.addr, &request(RecordType::AXFR, None, true)).await;
    assert!(messages.len() > 1, "{} message(s)", messages.len());
    assert!(messages.iter().all(|m| m.metadata.authoritative && m.metadata.id == 77));
    assert_eq!(messages[0].queries.len(), 1, "the question in the first message");
    let signed = |m: &Message| {
        m.signature.is_some() || m.additionals.last().is_some_and(|r| r.record_type() == RecordType::TSIG)
    };
    assert!(messages.iter().all(signed), "every message signed");
    let records = answers(&messages);
    let (first, last) = (records[0], records[records.len() - 1]);
    assert_eq!(serial_of(first), node.registry.serial());
    assert_eq!(serial_of(last), node.registry.serial());
    assert_eq!(records.iter().filter(|r| r.record_type() == RecordType::SOA).count(), 2);
    let item = Name::from_ascii("item-02999._id.7.100.88.id.example.").unwrap();
    assert_eq!(records.iter().filter(|r| r.name == item).count(), 2, "its TXT and its URI");
    let txt = records.iter().filter(|r| r.record_type() == RecordType::TXT).count();
    let mut public = 0;
    node.registry
        .for_each(|r| {
            public += r.values.iter().filter(|v| v.is_public()).count();
            Ok::<_, idnode::registry::RegistryError>(())
        })
        .unwrap();
    assert_eq!(txt, public, "one TXT a public value, the demo's included");
    node.stop().await;
}

#[tokio::test]
async fn ixfr_sends_the_difference_a_single_soa_when_up_to_date_and_the_zone_when_too_old() {
    let node = start_server_with(replication("127.0.0.1", None)).await;
    put(&node, "88.100.1/NEW-1", "https://x/one");
    let before = node.registry.serial();
    put(&node, "88.100.1/NEW-1", "https://x/changed");
    put(&node, "88.100.1/NEW-2", "https://x/two");
    let now = node.registry.serial();
    let messages = transfer(node.addr, &request(RecordType::IXFR, Some(before), true)).await;
    let records = answers(&messages);
    let kinds: Vec<_> = records.iter().map(|r| (r.record_type(), r.name.to_ascii())).collect();
    let soas: Vec<u32> = records.iter().filter(|r| r.record_type() == RecordType::SOA).map(|r| serial_of(r)).collect();
    assert_eq!(soas, [now, before, now, now], "{kinds:?}");
    let deleted: Vec<_> = records[2..].iter().take_while(|r| r.record_type() != RecordType::SOA).collect();
    assert_eq!(deleted.len(), 2, "the old TXT and URI of NEW-1: {kinds:?}");
    assert!(deleted[0].data.to_string().contains("https://x/one"), "{}", deleted[0].data);
    let added = records.len() - 2 - deleted.len() - 2;
    assert_eq!(added, 4, "the new TXT and URI of NEW-1 and NEW-2: {kinds:?}");

    let current = transfer(node.addr, &request(RecordType::IXFR, Some(now), true)).await;
    assert_eq!(answers(&current).len(), 1, "up to date: one SOA");
    assert_eq!(serial_of(answers(&current)[0]), now);

    // A serial from before the log began (the demo was a bulk load) gets the whole zone.
    let full = transfer(node.addr, &request(RecordType::IXFR, Some(1), true)).await;
    let records = answers(&full);
    assert_ne!(records[1].record_type(), RecordType::SOA, "the AXFR form");
    assert_eq!(serial_of(records[records.len() - 1]), now);
    node.stop().await;
}

#[tokio::test]
async fn transfers_are_refused_without_the_key_with_a_bad_one_from_elsewhere_and_over_udp() {
    let node = start_server_with(replication("127.0.0.1", None)).await;
    let rcode = |messages: Vec<Message>| messages[0].metadata.response_code;
    assert_eq!(rcode(transfer(node.addr, &request(RecordType::AXFR, None, false)).await), ResponseCode::Refused);
    let mut forged = request(RecordType::AXFR, None, false);
    let other = idnode::config::TsigKey { secret: b"not the secret, but 32 bytes....".to_vec(), ..key() };
    tsig::sign_request(&mut forged, &other, idnode::record::unix_now() as u64);
    assert_eq!(rcode(transfer(node.addr, &forged).await), ResponseCode::NotAuth);
    let udp = crate::dns::udp(node.addr, &request(RecordType::AXFR, None, true)).await.unwrap();
    assert_eq!(Message::from_vec(&udp).unwrap().metadata.response_code, ResponseCode::NotImp);
    node.stop().await;

    let elsewhere = start_server_with(replication("192.0.2.0/24", None)).await;
    let refused = transfer(elsewhere.addr, &request(RecordType::AXFR, None, true)).await;
    assert_eq!(rcode(refused), ResponseCode::Refused, "127.0.0.1 is not in 192.0.2.0/24");
    elsewhere.stop().await;
}

#[tokio::test]
async fn a_signed_soa_query_gets_a_signed_answer_and_a_bad_signature_notauth() {
    let node = start_server_with(replication("127.0.0.1", None)).await;
    let signed = request(RecordType::SOA, None, true);
    let answer = crate::dns::udp(node.addr, &signed).await.unwrap();
    let message = Message::from_vec(&answer).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    assert_eq!(serial_of(&message.answers[0]), node.registry.serial());
    let tsig = tsig::find(&answer).unwrap().expect("signed");
    assert_eq!(tsig.key_name, "xfr.");
    // An answer that does not fit a datagram with its TSIG: truncated, and still signed.
    let mut big = crate::dns::query("datasheet-9._id.1.100.88.id.example.", RecordType::TXT, Some(1232));
    tsig::sign_request(&mut big, &key(), idnode::record::unix_now() as u64);
    let answer = crate::dns::udp(node.addr, &big).await.unwrap();
    assert!(answer.len() <= 1232, "{} bytes", answer.len());
    assert!(Message::from_vec(&answer).unwrap().metadata.truncation);
    assert!(tsig::find(&answer).unwrap().is_some(), "signed");
    let mut bad = signed.clone();
    let at = bad.len() - 10;
    bad[at] ^= 1; // a byte of the MAC
    let answer = Message::from_vec(&crate::dns::udp(node.addr, &bad).await.unwrap()).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NotAuth);
    node.stop().await;
}

#[tokio::test]
async fn a_write_is_notified_signed_with_the_new_serial() {
    let secondary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let node = start_server_with(replication("127.0.0.1", Some(secondary.local_addr().unwrap()))).await;
    let receive = async || {
        let mut buf = vec![0; 4096];
        let buf = &mut buf;
        {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), secondary.recv_from(buf)).await.unwrap().unwrap();
            let notify = buf[..n].to_vec();
            let message = Message::from_vec(&notify).unwrap();
            assert_eq!(message.metadata.op_code, OpCode::Notify);
            let tsig = tsig::find(&notify).unwrap().expect("signed");
            assert_eq!(tsig.check(&notify, &key(), idnode::record::unix_now() as u64), tsig::Check::Good);
            let mut answer = notify[..12].to_vec();
            answer[2] |= 0x80;
            answer[4..12].copy_from_slice(&[0; 8]);
            secondary.send_to(&answer, from).await.unwrap();
            serial_of(&message.answers[0])
        }
    };
    assert_eq!(receive().await, node.registry.serial(), "every zone is notified at start");
    put(&node, "88.100.1/NOTIFIED", "https://x/n");
    assert_eq!(receive().await, node.registry.serial(), "and after a write");
    node.stop().await;
}
