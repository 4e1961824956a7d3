//! idnode mirrors over real sockets: a primary and a mirror node, each with its own registry,
//! the mirror pulling over the primary's HTTP API.

use std::time::{Duration, Instant};

use idnode::auth::Admin;
use idnode::config::{Config, ReplicationConfig};
use idnode::identifier::Identifier;
use idnode::record::Value;

use crate::cli::{basic, call};
use crate::handle_admin::operator_on;
use crate::{TestNode, start_server_with};

/// A primary that lets `300:0.NA/88.100` (secret "s3cret") mirror it, keeping `keep` writes in
/// its log.
async fn primary(keep: u64) -> TestNode {
    let text = format!("mirrors = [\"300:0.NA/88.100\"]\nlog_keep = {keep}\n");
    let replication: ReplicationConfig = toml::from_str(&text).unwrap();
    operator_on(start_server_with(move |c| c.replication = replication).await)
}

fn mirror_of(primary: &TestNode, secret: &str) -> impl FnOnce(&mut Config) + use<> {
    let text =
        format!("[mirror]\nprimary = \"http://{}\"\nuser = \"300:0.NA/88.100\"\nsecret = \"{secret}\"\n", primary.http);
    let replication: ReplicationConfig = toml::from_str(&text).unwrap();
    move |c| {
        c.replication = replication;
        c.ops.enabled = true;
    }
}

/// Every record of a registry, as stored.
fn records(node: &TestNode) -> Vec<idnode::record::Record> {
    let mut out = Vec::new();
    node.registry
        .for_each(|r| {
            out.push(r);
            Ok::<_, idnode::registry::RegistryError>(())
        })
        .unwrap();
    out
}

fn put(node: &TestNode, id: &str, url: &str) {
    let id = Identifier::parse(id).unwrap();
    node.node.put(&Admin::node(), &id, vec![Value::new(1, "URL", url, 0)], &Default::default()).unwrap();
}

/// Waits (5 s at most) until the mirror has applied everything the primary committed.
async fn caught_up(primary: &TestNode, mirror: &TestNode) -> Duration {
    let started = Instant::now();
    while mirror.registry.seq() != primary.registry.seq() {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", mirror.node.mirror_status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_mirror_copies_the_primary_follows_its_writes_and_refuses_its_own() {
    let primary = primary(100_000).await;
    // The primary's demo records differ from the mirror's.
    put(&primary, "88.100.1/ABC-123", "https://primary/only");
    for i in 0..50 {
        put(&primary, &format!("88.100.1/M-{i}"), &format!("https://x/{i}"));
    }
    // The mirror starts with records of its own, the demo's and one the primary never had, at a
    // sequence number the primary's log covers: the copy replaces them all the same.
    let dir = tempfile::tempdir().unwrap();
    {
        let registry = idnode::registry::Registry::open(dir.path()).unwrap();
        idnode::demo::load(&registry).unwrap();
        let id = Identifier::parse("88.100.1/MIRROR-ONLY").unwrap();
        let record = idnode::record::Record::new(&id, vec![Value::new(1, "URL", "https://x", 0)]).unwrap();
        registry.transact(|txn| txn.put(&record, false)).unwrap();
    }
    let mirror = crate::start_server_in(dir, false, mirror_of(&primary, "s3cret")).await;
    caught_up(&primary, &mirror).await;
    assert_eq!(records(&mirror), records(&primary), "the same records");
    assert_eq!(mirror.registry.serial(), primary.registry.serial(), "the same zone serial");

    // A write at the primary is answered by the mirror's DNS (its cache told, as for a write).
    let name = "m-7._id.1.100.88.id.example.";
    let query = crate::dns::query(name, hickory_proto::rr::RecordType::TXT, None);
    let before = crate::dns::udp(mirror.addr, &query).await.unwrap();
    assert!(String::from_utf8_lossy(&before).contains("https://x/7"));
    put(&primary, "88.100.1/M-7", "https://x/changed");
    primary.node.delete(&Admin::node(), &Identifier::parse("88.100.1/M-8").unwrap(), None).unwrap();
    caught_up(&primary, &mirror).await;
    let after = crate::dns::udp(mirror.addr, &query).await.unwrap();
    assert!(String::from_utf8_lossy(&after).contains("https://x/changed"));
    assert_eq!(records(&mirror), records(&primary), "the change and the deletion");

    let status = mirror.node.mirror_status().unwrap();
    assert_eq!((status.state, status.lag_writes), ("following", 0), "{status:?}");
    let (code, page) = crate::stats::get(mirror.ops.unwrap(), "/status.json").await;
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!((code, &page["role"], &page["mirror"]["state"]), (200, &"mirror".into(), &"following".into()), "{page}");
    assert_eq!(page["write_sequence"], primary.registry.seq(), "{page}");
    assert!(primary.node.mirror_status().is_none());

    // A write at the mirror is refused with the primary's address.
    let url = format!("http://{}/api/handles/88.100.1/NEW", mirror.http);
    let auth = basic("300:0.NA/88.100", "s3cret");
    let (status, body) = tokio::task::spawn_blocking(move || {
        call("PUT", &url, Some(&auth), Some(r#"[{"index":1,"type":"URL","data":"https://x"}]"#))
    })
    .await
    .unwrap();
    assert_eq!(status, 421, "{body}");
    assert!(body.contains(&format!("mirror of http://{}", primary.http)), "{body}");
    // And over the Handle protocol, before any challenge: 301, RC_SERVER_NOT_RESP.
    let create = crate::handle_admin::Out::new(
        100,
        9,
        crate::handle_admin::with_values("88.100.1/NEW", &[crate::handle_admin::value(1, "URL", "https://x", 0x0e)]),
    );
    let refused = crate::handle_admin::once(mirror.handle, &create).await;
    assert_eq!(refused.code, 301, "{:?}", String::from_utf8_lossy(&refused.body));
    assert!(String::from_utf8_lossy(&refused.body).contains("mirror of"));
    mirror.stop().await;
    primary.stop().await;
}

#[tokio::test]
async fn a_mirror_behind_the_log_copies_again_deletions_included_and_a_stranger_gets_nothing() {
    let primary = primary(5).await;
    put(&primary, "88.100.1/KEEP", "https://x/keep");
    put(&primary, "88.100.1/GONE", "https://x/gone");
    let empty = tempfile::tempdir().unwrap();
    let mirror = crate::start_server_in(empty, false, mirror_of(&primary, "s3cret")).await;
    caught_up(&primary, &mirror).await;
    // Stopped, while the primary makes more writes than its log keeps.
    let data = mirror.stop_keeping_data().await;
    primary.node.delete(&Admin::node(), &Identifier::parse("88.100.1/GONE").unwrap(), None).unwrap();
    for i in 0..20 {
        put(&primary, &format!("88.100.2/N-{i}"), "https://x/n");
    }
    let mirror = crate::start_server_in(data, false, mirror_of(&primary, "s3cret")).await;
    caught_up(&primary, &mirror).await;
    assert_eq!(records(&mirror), records(&primary), "copied again: GONE is gone here too");
    mirror.stop().await;

    let stranger = start_server_with(mirror_of(&primary, "wrong secret")).await;
    let started = Instant::now();
    while stranger.node.mirror_status().unwrap().error.is_none() {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = stranger.node.mirror_status().unwrap();
    assert_eq!(status.state, "unreachable");
    assert!(status.error.as_deref().unwrap_or_default().contains("403"), "{status:?}");
    assert!(records(&stranger).iter().all(|r| !r.identifier.as_str().starts_with("88.100.2/")));
    stranger.stop().await;
    primary.stop().await;
}
