//! `idnode bench` against a real node: what it counts is what the node answered.

use std::time::Duration;

use idnode::bench::{Plan, Wire, run};
use idnode::dns::DnsName;
use idnode::identifier::Identifier;

use crate::start_server;

fn query(id: &str) -> Vec<u8> {
    idnode::dns::client::txt_query(&Identifier::parse(id).unwrap(), &DnsName::from_ascii("id.example.").unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_counts_answers_nxdomain_and_loss() {
    let node = start_server().await;
    for tcp in [false, true] {
        let plan = Plan {
            server: node.addr,
            wire: Wire::Dns,
            tcp,
            duration: Duration::from_secs(1),
            clients: 4,
            rate: None,
            hits: vec![query("88.100.1/ABC-123"), query("88.100.1/VALVE-7")],
            misses: vec![query("88.100.1/NONE-1")],
            miss_share: 0.25,
            timeout: Duration::from_secs(1),
        };
        let report = run(plan, |_, _| {}).await.unwrap();
        assert!(report.answered > 100, "{report:?}");
        assert_eq!(report.lost, 0);
        assert_eq!(report.other_errors, 0);
        let share = report.not_found as f64 / report.answered as f64;
        assert!((0.2..0.3).contains(&share), "NXDOMAIN share {share}");
        let stats = node.frontend.cache_stats();
        assert!(stats.hits >= report.answered / 2, "the node saw the load: {stats:?}");
    }
    // A paced run stays near its target rate.
    let plan = Plan {
        server: node.addr,
        wire: Wire::Dns,
        tcp: false,
        duration: Duration::from_secs(2),
        clients: 4,
        rate: Some(400.0),
        hits: vec![query("88.100.1/ABC-123")],
        misses: vec![],
        miss_share: 0.0,
        timeout: Duration::from_secs(1),
    };
    let report = run(plan, |_, _| {}).await.unwrap();
    assert!((600..=1000).contains(&report.answered), "{} answers at 400/s for 2 s", report.answered);
    // Nothing listening: every query is lost, none hangs the run.
    let plan = Plan {
        server: "127.0.0.1:9".parse().unwrap(),
        wire: Wire::Dns,
        tcp: false,
        duration: Duration::from_millis(300),
        clients: 2,
        rate: None,
        hits: vec![query("88.100.1/ABC-123")],
        misses: vec![],
        miss_share: 0.0,
        timeout: Duration::from_millis(100),
    };
    let report = run(plan, |_, _| {}).await.unwrap();
    assert_eq!(report.answered, 0);
    assert!(report.lost > 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_over_the_handle_protocol_counts_what_the_node_answered() {
    let node = start_server().await;
    // A record answered in several UDP datagrams, so the bench reassembles.
    let big = Identifier::parse("88.100.1/BIG").unwrap();
    let values = (1..=5).map(|i| idnode::record::Value::new(i, "URL", "x".repeat(300), 0)).collect();
    node.node.put(&idnode::auth::Admin::node(), &big, values, &Default::default()).unwrap();
    let text = "88.100.1/ABC-123\n88.100.1/VALVE-7\n88.100.1/BIG\n";
    let queries = idnode::bench::queries(text, Wire::Handle, &DnsName::from_ascii("id.example.").unwrap()).unwrap();
    assert_eq!((queries.hits.len(), queries.misses.len()), (3, 1000));
    for tcp in [false, true] {
        let hits_before = node.handle_frontend.cache_stats().unwrap().hits;
        let plan = Plan {
            server: node.handle,
            wire: Wire::Handle,
            tcp,
            duration: Duration::from_secs(1),
            clients: 4,
            rate: None,
            hits: queries.hits.clone(),
            misses: queries.misses.clone(),
            miss_share: 0.25,
            timeout: Duration::from_secs(1),
        };
        let report = run(plan, |_, _| {}).await.unwrap();
        assert!(report.answered > 100, "{report:?}");
        // Every query sent was answered (the one in flight at the deadline too), none failed.
        assert_eq!((report.sent, report.lost, report.other_errors), (report.answered, 0, 0), "tcp {tcp}: {report:?}");
        let share = report.not_found as f64 / report.answered as f64;
        assert!((0.2..0.3).contains(&share), "HANDLE_NOT_FOUND share {share}");
        let hits = node.handle_frontend.cache_stats().unwrap().hits - hits_before;
        assert!(hits >= report.answered / 2, "the node's cache saw the load: {hits} of {}", report.answered);
    }
    node.stop().await;
}
