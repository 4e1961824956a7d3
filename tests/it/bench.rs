//! `idnode bench` against a real node: what it counts is what the node answered.

use std::time::Duration;

use idnode::bench::{Plan, run};
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
        let share = report.nxdomain as f64 / report.answered as f64;
        assert!((0.2..0.3).contains(&share), "NXDOMAIN share {share}");
        let stats = node.frontend.cache_stats();
        assert!(stats.hits >= report.answered / 2, "the node saw the load: {stats:?}");
    }
    // A paced run stays near its target rate.
    let plan = Plan {
        server: node.addr,
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
