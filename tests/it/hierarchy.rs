//! A parent node delegating a prefix to a child node: referrals over DNS and HTTP.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use idnode::identifier::Identifier;
use idnode::record::Value;
use idnode::record::json::JsonRecord;

use crate::dns::{query, udp};
use idnode::auth::Admin;

use crate::{TestNode, start_server, start_server_with};

const PUMP: &str = "pump-9._id.105.88.id.example.";

/// Registers at `parent` that prefix 88.105 is served at `address`, DNS port `port`.
fn delegate(parent: &TestNode, address: &str, port: u16) {
    let line = format!(
        r#"{{"handle":"0.NA/88.105","values":[
            {{"index":1,"type":"HS_SITE","data":{{"format":"site","value":{{
            "attributes":[{{"name":"dns-port","value":"{port}"}}],
            "servers":[{{"serverId":1,"address":"{address}",
                "interfaces":[{{"protocol":"HTTP","port":8000}}]}}]}}}}}}]}}"#
    );
    let record = serde_json::from_str::<JsonRecord>(&line).unwrap().into_record(0).unwrap();
    parent.node.put(&Admin::node(), &record.identifier, record.values, &Default::default()).unwrap();
}

async fn ask(node: std::net::SocketAddr, name: &str) -> Message {
    Message::from_vec(&udp(node, &query(name, RecordType::TXT, Some(1232))).await.unwrap()).unwrap()
}

#[tokio::test]
async fn parent_refers_to_the_child_which_answers_authoritatively() {
    let child = start_server_with(|c| c.dns.zones = vec!["88.105".into()]).await;
    let id = Identifier::parse("88.105/PUMP-9").unwrap();
    let url = vec![Value::new(1, "URL", "https://child/pump9", 0)];
    child.node.put(&Admin::node(), &id, url, &Default::default()).unwrap();
    let parent = start_server().await;
    delegate(&parent, "127.0.0.1", child.addr.port());

    let referral = ask(parent.addr, PUMP).await;
    assert_eq!(referral.metadata.response_code, ResponseCode::NoError);
    assert!(!referral.metadata.authoritative, "a referral is not authoritative");
    assert!(referral.answers.is_empty());
    let ns = &referral.authorities[0];
    assert_eq!(ns.name.to_ascii(), "105.88.id.example.");
    let RData::NS(target) = &ns.data else { panic!("{ns:?}") };
    assert_eq!(target.0.to_ascii(), "ns1.105.88.id.example.");
    assert_eq!(ns.ttl, 300);
    let glue = &referral.additionals[0];
    assert_eq!(
        (glue.name.to_ascii(), &glue.data),
        ("ns1.105.88.id.example.".into(), &RData::A(hickory_proto::rr::rdata::A("127.0.0.1".parse().unwrap())))
    );
    // The prefix name itself is below the cut too.
    assert!(!ask(parent.addr, "105.88.id.example.").await.metadata.authoritative);

    // Follow the referral: the glue address, the site's DNS port.
    let answer = ask(child.addr, PUMP).await;
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.answers.len(), 1);
    let soa = Message::from_vec(&udp(child.addr, &query("105.88.id.example.", RecordType::SOA, None)).await.unwrap())
        .unwrap();
    let RData::SOA(s) = &soa.answers[0].data else { panic!() };
    assert_eq!(s.mname.to_ascii(), "ns1.105.88.id.example.", "the child's own zone");
    let outside = ask(child.addr, "abc-123._id.1.100.88.id.example.").await;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused, "the child serves only its prefix");

    // HTTP at the parent: 300 with the delegation's sites.
    let url = format!("http://{}/api/handles/88.105/PUMP-9", parent.http);
    let (status, body) = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let mut r = agent.get(&url).call().unwrap();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        assert_eq!(
            location.as_deref(),
            Some("http://127.0.0.1:8000/api/handles/88.105/PUMP-9"),
            "the child's HTTP interface"
        );
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(status, 300, "{body}");
    assert!(
        body.contains(r#""responseCode":303"#) && body.contains(r#""format":"site""#) && body.contains("127.0.0.1"),
        "{body}"
    );

    // Moving the child shows in the parent's referrals at once.
    delegate(&parent, "127.0.0.2", child.addr.port());
    let moved = ask(parent.addr, PUMP).await;
    assert_eq!(moved.additionals[0].data, RData::A(hickory_proto::rr::rdata::A("127.0.0.2".parse().unwrap())));
    // Names the parent serves itself are unaffected.
    assert!(ask(parent.addr, "abc-123._id.1.100.88.id.example.").await.metadata.authoritative);
    parent.stop().await;
    child.stop().await;
}

#[tokio::test]
async fn the_recursive_node_follows_referrals_caches_and_fails_fast() {
    let child = start_server_with(|c| c.dns.zones = vec!["88.105".into()]).await;
    let id = Identifier::parse("88.105/PUMP-9").unwrap();
    let url = vec![Value::new(1, "URL", "https://child/pump9", 0)];
    child.node.put(&Admin::node(), &id, url, &Default::default()).unwrap();
    let parent = start_server().await;
    delegate(&parent, "127.0.0.1", child.addr.port());
    let (root, child_port) = (parent.addr, child.addr.port());
    // The first root is dead: the recursive node must go on to the next.
    let dead: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let recursive = start_server_with(move |c| {
        c.recursive.roots = vec![dead, root];
        c.recursive.port = child_port;
        c.recursive.timeout_ms = 300;
    })
    .await;

    let answer = ask(recursive.addr, PUMP).await;
    assert!(answer.metadata.recursion_available && !answer.metadata.authoritative);
    assert_eq!(answer.answers.len(), 1);
    let nx = ask(recursive.addr, "nope._id.105.88.id.example.").await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities[0].name.to_ascii(), "105.88.id.example.", "the child's SOA");
    assert_eq!(ask(recursive.addr, "example.org.").await.metadata.response_code, ResponseCode::Refused);
    // The demo identifiers of the parent (its own zone) resolve too.
    assert_eq!(ask(recursive.addr, "abc-123._id.1.100.88.id.example.").await.answers.len(), 3);
    // A 2 KB answer: truncated over UDP to the recursive node, which retries over TCP; the
    // client, over UDP, gets TC and then the whole answer over TCP.
    let big = "datasheet-9._id.1.100.88.id.example.";
    assert!(ask(recursive.addr, big).await.metadata.truncation);
    let mut stream = tokio::net::TcpStream::connect(recursive.addr).await.unwrap();
    let whole =
        Message::from_vec(&crate::dns::tcp_exchange(&mut stream, &query(big, RecordType::TXT, None)).await).unwrap();
    assert_eq!(whole.answers.len(), 2);
    assert!(whole.metadata.recursion_available);

    // Cached: the child going away does not matter for what is cached ...
    child.stop().await;
    assert_eq!(ask(recursive.addr, PUMP).await.answers.len(), 1);
    // ... but a new name below it fails quickly with SERVFAIL (remembered for a second, RFC 9520).
    let started = std::time::Instant::now();
    let failed = ask(recursive.addr, "other._id.105.88.id.example.").await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < std::time::Duration::from_millis(1500), "{:?}", started.elapsed());
    recursive.stop().await;
    parent.stop().await;
}

#[tokio::test]
async fn http_refers_below_a_delegation_even_when_a_stale_copy_is_stored() {
    let parent = start_server().await;
    // Registered here before 88.105 was handed to a child node: a stale local copy.
    let id = Identifier::parse("88.105/STALE").unwrap();
    let url = vec![Value::new(1, "URL", "https://parent/stale", 0)];
    parent.node.put(&Admin::node(), &id, url, &Default::default()).unwrap();
    delegate(&parent, "127.0.0.1", 5353);
    // DNS refers at the cut ...
    let referral = ask(parent.addr, "stale._id.105.88.id.example.").await;
    assert!(!referral.metadata.authoritative && referral.answers.is_empty());
    // ... and so does HTTP, for the stored identifier and for one below the delegated prefix.
    for handle in ["88.105/STALE", "88.105.7/NEW"] {
        let url = format!("http://{}/api/handles/{handle}", parent.http);
        let (status, location, body) = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent =
                ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
            let mut r = agent.get(&url).call().unwrap();
            let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
            (r.status().as_u16(), location, r.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap();
        assert_eq!(status, 300, "{handle}: {body}");
        assert!(body.contains(r#""responseCode":303"#) && !body.contains("parent/stale"), "{handle}: {body}");
        assert_eq!(location, Some(format!("http://127.0.0.1:8000/api/handles/{handle}")));
    }
    parent.stop().await;
}
