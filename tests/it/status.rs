//! The status page over real sockets: `/` and `/status` serve the one HTML page with a policy
//! that runs only its own script, and `/status.json` carries the role, the zone, the
//! delegations with each child node's health as the prober saw it, and the per-day series; a
//! `<script>` an operator wrote into a delegated prefix's site description comes out escaped.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use idnode::auth::Admin;
use idnode::record::json::JsonRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dns::{query, udp};
use crate::{TestNode, start_server_with};

const HOSTILE: &str = r#"child <script>document.title="pwned"</script><img src=x onerror=alert(1)> & co"#;

/// GET `path`: the status, the headers (lower-cased names) and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: idnode\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await.unwrap().unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Registers at `parent` that `prefix` is served at 127.0.0.1, DNS port `port`, with the site
/// description `desc`.
fn delegate(parent: &TestNode, prefix: &str, port: u16, desc: &str) {
    let value = serde_json::json!({
        "handle": format!("0.NA/{prefix}"),
        "values": [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {
            "attributes": [{"name": "dns-port", "value": port.to_string()}, {"name": "desc", "value": desc}],
            "servers": [{"serverId": 1, "address": "127.0.0.1", "interfaces": [{"protocol": "TCP", "port": 2641}]}]
        }}}]
    });
    let record = serde_json::from_value::<JsonRecord>(value).unwrap().into_record(0).unwrap();
    parent.node.put(&Admin::node(), &record.identifier, record.values, &Default::default()).unwrap();
}

#[tokio::test]
async fn the_status_page_shows_zones_delegations_with_health_and_series_and_escapes_what_operators_wrote() {
    let child = start_server_with(|c| c.dns.zones = vec!["88.105".into()]).await;
    let parent = start_server_with(|c| {
        c.ops.enabled = true;
        c.ops.health_interval_secs = 1;
    })
    .await;
    let ops = parent.ops.expect("the operations listener");
    delegate(&parent, "88.105", child.addr.port(), HOSTILE);
    // A port nothing answers on: bound, then closed.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    delegate(&parent, "88.106", closed, "gone");
    for _ in 0..3 {
        udp(parent.addr, &query("abc-123._id.1.100.88.id.example.", RecordType::TXT, None)).await.unwrap();
    }

    for path in ["/", "/status"] {
        let (status, head, body) = get(ops, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
        assert!(head.contains("content-security-policy: default-src 'none'; script-src 'sha256-"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(body.starts_with("<!DOCTYPE html>") && body.contains("status.json"), "{body}");
    }

    // The prober runs every second; the workers merge their counts within one.
    let mut last = String::new();
    for _ in 0..60 {
        let (status, head, body) = get(ops, "/status.json").await;
        assert_eq!(status, 200, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(!body.contains('<') && !body.contains('>') && !body.contains('&'), "markup escaped: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = |prefix: &str| {
            json["delegations"].as_array().unwrap().iter().find(|d| d["prefix"] == prefix).map(|d| d["health"].clone())
        };
        let counted = json["series"]["secondary"][0]["lookups"].as_array().and_then(|l| l.last()?.as_u64());
        if state("88.105").is_some_and(|h| h["state"] == "up")
            && state("88.106").is_some_and(|h| h["state"] == "down")
            && counted.is_some_and(|n| n >= 3)
        {
            assert_eq!(json["role"], "top-level", "{json}");
            assert_eq!(json["zones"], serde_json::json!([""]), "{json}");
            assert_eq!(json["apex"], "id.example.", "{json}");
            let listed = json["delegations"].as_array().unwrap().iter().find(|d| d["prefix"] == "88.105").unwrap();
            assert_eq!(listed["sites"][0]["description"], HOSTILE, "read back unchanged: {json}");
            assert_eq!(listed["sites"][0]["servers"][0]["address"], "127.0.0.1", "{json}");
            assert_eq!(listed["sites"][0]["dns_port"], child.addr.port(), "{json}");
            assert_eq!(listed["health"]["detail"], "NOERROR", "{json}");
            assert_eq!(listed["health"]["server"], child.addr.to_string(), "{json}");
            let series = &json["series"];
            assert_eq!(series["dates"].as_array().unwrap().len(), 90, "{json}");
            assert_eq!(series["dates"].as_array().unwrap().last().unwrap(), &json["stats"]["date"], "{json}");
            assert_eq!(series["secondary"][0]["prefix"], "88.100", "{json}");
            assert_eq!(series["prefixes"][0]["prefix"], "88.100.1", "{json}");
            assert_eq!(json["caches"][0]["cache"], "dns", "{json}");
            parent.stop().await;
            child.stop().await;
            return;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the delegations were never probed up and down, or the lookups not counted: {last}");
}

#[tokio::test]
async fn a_secondary_node_is_shown_as_one_and_probes_can_be_off() {
    let node = start_server_with(|c| {
        c.dns.zones = vec!["88.100".into()];
        c.ops.enabled = true;
        c.ops.health_interval_secs = 0;
    })
    .await;
    let (status, _, body) = get(node.ops.unwrap(), "/status.json").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((json["role"].as_str(), json["probe_every_secs"].as_u64()), (Some("secondary"), Some(0)), "{json}");
    assert_eq!(json["zones"], serde_json::json!(["88.100"]), "{json}");
    assert_eq!(json["delegations"], serde_json::json!([]), "{json}");
    node.stop().await;
}
