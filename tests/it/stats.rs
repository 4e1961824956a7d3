//! Resolution statistics and metrics over real sockets: lookups over DNS (UDP, TCP), the Handle
//! protocol and HTTP are counted by protocol, outcome and prefix, shown at `/stats` and
//! `/metrics` on the operations listener, and still there after a restart.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use crate::dns::{query, tcp_exchange, udp};
use crate::handle_admin::{Out, once, resolution};

/// GET `path` from `addr`; the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = crate::status::get(addr, path).await;
    (status, body)
}

/// `/stats` as JSON, once it counts at least `lookups` today (the workers merge their counts
/// within a second or two).
async fn stats_with(ops: SocketAddr, lookups: u64) -> serde_json::Value {
    for _ in 0..50 {
        let (status, body) = get(ops, "/stats").await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if json["today"]["lookups"].as_u64().unwrap() >= lookups {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the statistics never counted {lookups} lookups");
}

fn enable_ops(c: &mut idnode::config::Config) {
    c.ops.enabled = true;
    c.ops.target_lookups = 1000;
}

#[tokio::test]
async fn lookups_are_counted_by_protocol_outcome_and_prefix_and_kept_across_a_restart() {
    let node = crate::start_server_with(enable_ops).await;
    let ops = node.ops.expect("the operations listener");
    let (found, missing) = ("abc-123._id.1.100.88.id.example.", "nope._id.1.100.88.id.example.");
    for name in [found, found, missing] {
        udp(node.addr, &query(name, RecordType::TXT, None)).await.expect("a DNS answer");
    }
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    tcp_exchange(&mut stream, &query(found, RecordType::TXT, None)).await;
    drop(stream);
    let handle = Out { flags: 0x0100_0000, ..Out::new(1, 1, resolution("88.100.1/ABC-123")) };
    assert_eq!(once(node.handle, &handle).await.code, 1);
    let (status, _) = get(node.http, "/api/handles/88.100.1/ABC-123").await;
    assert_eq!(status, 200);

    let json = stats_with(ops, 6).await;
    assert_eq!(json["today"]["lookups"], 6, "{json}");
    let by_protocol = &json["today"]["by_protocol"];
    assert_eq!((by_protocol["dns-udp"].as_u64(), by_protocol["dns-tcp"].as_u64()), (Some(3), Some(1)), "{json}");
    assert_eq!((by_protocol["handle-tcp"].as_u64(), by_protocol["http"].as_u64()), (Some(1), Some(1)), "{json}");
    assert_eq!(json["today"]["by_outcome"]["not-found"], 1, "{json}");
    assert_eq!(json["top_prefixes"][0]["prefix"], "88.100.1", "{json}");
    assert_eq!(json["top_prefixes"][0]["lookups"], 6, "{json}");
    assert_eq!(json["top_secondary_prefixes"][0]["prefix"], "88.100", "{json}");
    assert_eq!(json["target"]["done"], 6, "{json}");

    let (status, metrics) = get(ops, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"idnode_lookups_total{protocol="dns-udp",outcome="answer"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_lookups_total{protocol="dns-udp",outcome="not-found"} 1"#), "{metrics}");
    assert!(metrics.contains("idnode_identifiers "), "{metrics}");
    assert!(metrics.contains(r#"idnode_cache_hits_total{cache="dns"}"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_dns_responses_total{transport="udp",rcode="NXDOMAIN"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_dns_responses_total{transport="tcp",rcode="NOERROR"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_dns_questions_total{qtype="TXT"} 4"#), "{metrics}");
    // The first question of each worker and connection is timed: at least one from the registry.
    assert!(metrics.contains("# TYPE idnode_dns_answer_seconds histogram"), "{metrics}");
    assert!(metrics.contains(r#"idnode_writes_total{result="applied"}"#), "{metrics}");
    assert!(metrics.contains("idnode_auth_failures_total 0"), "{metrics}");
    assert!(metrics.contains(r#"idnode_dns_answer_seconds_count{source="registry"}"#), "{metrics}");
    // The Handle connection's first (and only) lookup is timed, and every HTTP lookup.
    assert!(metrics.contains(r#"idnode_answer_seconds_count{protocol="handle"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_answer_seconds_count{protocol="http"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"idnode_cache_evictions_total{cache="dns"} 0"#), "{metrics}");

    // Saved when the node stops, read back when it starts.
    let node = node.restart(enable_ops).await;
    let json = stats_with(node.ops.unwrap(), 6).await;
    assert_eq!(json["today"]["lookups"], 6, "{json}");
    node.stop().await;
}
