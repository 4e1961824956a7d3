//! The recursive node against misbehaving upstream servers: real DNS servers on loopback,
//! written here, that refuse, fail, stay silent, answer slowly, lie about TTLs or hand out
//! huge referrals. Each test shows one limit of the recursive role holding.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::dns::query;
use crate::{TestNode, start_server_with};

/// What an upstream server does with a query: a response, or `None` to stay silent.
type Behaviour = dyn Fn(&Message) -> Option<Message> + Send + Sync;

/// A DNS server on `ip` (UDP and TCP, one port) that answers as its behaviour says, after a
/// delay, and counts the queries it receives. Over UDP an answer larger than 1232 bytes goes
/// out truncated, as a well-behaved server sends it.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Upstream {
    async fn start(
        ip: &str,
        delay: Duration,
        behaviour: impl Fn(&Message) -> Option<Message> + Send + Sync + 'static,
    ) -> Self {
        // TCP on the port UDP got: a truncated answer is asked again there. Another test may
        // hold that TCP port already, so try a few UDP ports.
        for _ in 0..50 {
            let udp = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                return Self::serve(udp, Some(tcp), delay, Arc::new(behaviour));
            }
        }
        panic!("no port on {ip} free for both UDP and TCP");
    }

    /// A server on `addr` exactly (UDP, and TCP when that port is free for it too).
    async fn start_on(addr: SocketAddr, delay: Duration, behaviour: Arc<Behaviour>) -> Self {
        let udp = UdpSocket::bind(addr).await.unwrap();
        let tcp = TcpListener::bind(udp.local_addr().unwrap()).await.ok();
        Self::serve(udp, tcp, delay, behaviour)
    }

    fn serve(udp: UdpSocket, tcp: Option<TcpListener>, delay: Duration, behaviour: Arc<Behaviour>) -> Self {
        let udp = Arc::new(udp);
        let addr = udp.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let (socket, count, reply) = (udp.clone(), queries.clone(), behaviour.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0; 65535];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
                let (socket, reply) = (socket.clone(), reply.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let Some(response) = reply(&request) else { return };
                    let mut bytes = response.to_vec().unwrap();
                    if bytes.len() > 1232 {
                        let mut cut = response.truncate();
                        cut.metadata.truncation = true;
                        bytes = cut.to_vec().unwrap();
                    }
                    let _ = socket.send_to(&bytes, peer).await;
                });
            }
        }));
        if let Some(tcp) = tcp {
            let (count, reply) = (queries.clone(), behaviour);
            tasks.push(tokio::spawn(async move {
                while let Ok((mut stream, _)) = tcp.accept().await {
                    let (count, reply) = (count.clone(), reply.clone());
                    tokio::spawn(async move {
                        let mut len = [0; 2];
                        stream.read_exact(&mut len).await?;
                        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
                        stream.read_exact(&mut buf).await?;
                        count.fetch_add(1, Ordering::SeqCst);
                        let Some(response) = Message::from_vec(&buf).ok().and_then(|r| reply(&r)) else {
                            return Ok::<_, std::io::Error>(());
                        };
                        let bytes = response.to_vec().unwrap();
                        stream.write_all(&(bytes.len() as u16).to_be_bytes()).await?;
                        stream.write_all(&bytes).await
                    });
                }
            }));
        }
        Self { addr, queries, tasks }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// The response to `request` with `rcode` and nothing else.
fn empty(request: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.response_code = rcode;
    response.add_queries(request.queries.iter().cloned());
    response
}

/// An authoritative answer: one TXT record of `data` (in 255-byte strings) with `ttl`.
fn txt(request: &Message, ttl: u32, data: &str) -> Message {
    let mut response = empty(request, ResponseCode::NoError);
    response.metadata.authoritative = true;
    let owner = request.queries[0].name().clone();
    let strings = data.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    response.add_answer(Record::from_rdata(owner, ttl, RData::TXT(TXT::new(strings))));
    response
}

/// NXDOMAIN with an SOA whose TTL and MINIMUM are both `ttl`.
fn nxdomain(request: &Message, ttl: u32) -> Message {
    let mut response = empty(request, ResponseCode::NXDomain);
    response.metadata.authoritative = true;
    let apex = name("id.example.");
    let soa = SOA::new(name("ns1.id.example."), name("hostmaster.id.example."), 1, 3600, 600, 86400, ttl);
    response.add_authority(Record::from_rdata(apex, ttl, RData::SOA(soa)));
    response
}

/// A referral to `cut` with one server name and glue address per entry of `addresses`.
fn referral(request: &Message, cut: &str, addresses: &[IpAddr]) -> Message {
    let mut response = empty(request, ResponseCode::NoError);
    for (i, address) in addresses.iter().enumerate() {
        let host = name(&format!("ns{}", i + 1)).append_domain(&name(cut)).unwrap();
        response.add_authority(Record::from_rdata(name(cut), 300, RData::NS(NS(host.clone()))));
        let IpAddr::V4(v4) = address else { panic!("IPv4 glue only") };
        response.add_additional(Record::from_rdata(host, 300, RData::A(A(*v4))));
    }
    response
}

/// A recursive node starting from `roots`, as `adjust` tunes it.
async fn recursive_node(roots: Vec<SocketAddr>, adjust: impl FnOnce(&mut idnode::config::Config)) -> TestNode {
    start_server_with(move |c| {
        c.recursive.roots = roots;
        c.recursive.timeout_ms = 500;
        adjust(c);
    })
    .await
}

/// Asks `node` over UDP from a fresh socket; `None` if no answer comes within `wait`.
async fn ask_within(node: SocketAddr, qname: &str, wait: Duration) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query(qname, RecordType::TXT, Some(1232)), node).await.unwrap();
    let mut buf = vec![0; 65535];
    let n = tokio::time::timeout(wait, socket.recv(&mut buf)).await.ok()?.unwrap();
    Some(Message::from_vec(&buf[..n]).unwrap())
}

async fn ask(node: SocketAddr, qname: &str) -> Message {
    ask_within(node, qname, Duration::from_secs(5)).await.expect("an answer within 5 s")
}

//------------ 1. In-flight cap --------------------------------------------------------------

#[tokio::test]
async fn a_flood_of_uncached_names_fills_at_most_max_in_flight_and_cached_names_are_still_answered() {
    // Answers names starting with "ok", ignores the rest: a flood of those waits on it.
    let upstream = Upstream::start("127.0.0.1", Duration::ZERO, |q| {
        q.queries[0].name().to_ascii().starts_with("ok").then(|| txt(q, 3600, "fine"))
    })
    .await;
    let node = recursive_node(vec![upstream.addr], |c| {
        c.recursive.max_in_flight = 20;
        c.recursive.timeout_ms = 2000;
    })
    .await;
    assert_eq!(ask(node.addr, "ok._id.1.88.id.example.").await.answers.len(), 1);

    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..200 {
        flood
            .send_to(&query(&format!("flood-{i}._id.1.88.id.example."), RecordType::TXT, None), node.addr)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = node.frontend.recursor_stats().unwrap();
    assert!((1..=20).contains(&stats.in_flight), "the cap holds: {stats:?}");
    assert!(stats.dropped >= 180, "the rest were dropped without a task: {stats:?}");

    // While the slots are full: a cached name and a name outside the apex are answered at once.
    let started = Instant::now();
    assert_eq!(ask(node.addr, "ok._id.1.88.id.example.").await.answers.len(), 1);
    assert_eq!(ask(node.addr, "example.org.").await.metadata.response_code, ResponseCode::Refused);
    // Not waiting for a slot: a slot would take the 3 s budget to come free.
    assert!(started.elapsed() < Duration::from_millis(2000), "{:?}", started.elapsed());
    let mut buf = vec![0; 512];
    let answered = std::iter::from_fn(|| flood.try_recv(&mut buf).ok()).count();
    assert_eq!(answered, 0, "a dropped query gets no answer (Unbound's behaviour)");

    // The slots come free once the resolutions give up.
    let deadline = Instant::now() + Duration::from_secs(6);
    while node.frontend.recursor_stats().unwrap().in_flight > 0 {
        assert!(Instant::now() < deadline, "resolutions end within their budget");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.stop().await;
}

//------------ 2. Identical questions merged -------------------------------------------------

#[tokio::test]
async fn fifty_concurrent_identical_questions_make_one_upstream_query() {
    let upstream = Upstream::start("127.0.0.1", Duration::from_millis(300), |q| Some(txt(q, 3600, "once"))).await;
    let node = recursive_node(vec![upstream.addr], |_| {}).await;
    let asks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(ask_within(node.addr, "same._id.1.88.id.example.", Duration::from_secs(5))))
        .collect();
    for a in asks {
        let answer = a.await.unwrap().expect("every client is answered");
        assert_eq!(answer.answers.len(), 1);
    }
    assert_eq!(upstream.queries(), 1, "one resolution served all fifty");
    node.stop().await;
}

//------------ 4. Servers per delegation, time per resolution -------------------------------

/// A recursive node whose root refers `x._id.105.88.id.example.` to 100 silent servers on
/// 127.0.1.1 ... 127.0.1.100 (all on one port, each counting what it gets).
async fn behind_100_silent_servers(timeout_ms: u64, budget_ms: u64) -> (TestNode, Vec<Upstream>, Upstream) {
    let first = Upstream::start("127.0.1.1", Duration::ZERO, |_| None).await;
    let port = first.addr.port();
    let mut servers = vec![first];
    for k in 2..=100 {
        let addr = SocketAddr::new(format!("127.0.1.{k}").parse().unwrap(), port);
        servers.push(Upstream::start_on(addr, Duration::ZERO, Arc::new(|_: &Message| None)).await);
    }
    let glue: Vec<IpAddr> = servers.iter().map(|s| s.addr.ip()).collect();
    let root =
        Upstream::start("127.0.0.1", Duration::ZERO, move |q| Some(referral(q, "105.88.id.example.", &glue))).await;
    let node = recursive_node(vec![root.addr], |c| {
        c.recursive.port = port;
        c.recursive.timeout_ms = timeout_ms;
        c.recursive.resolution_budget_ms = budget_ms;
    })
    .await;
    (node, servers, root)
}

#[tokio::test]
async fn a_referral_with_100_glue_addresses_costs_at_most_13_queries() {
    let (node, servers, _root) = behind_100_silent_servers(20, 10_000).await;
    let answer = ask_within(node.addr, "x._id.105.88.id.example.", Duration::from_secs(8)).await.expect("an answer");
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    let asked: usize = servers.iter().map(Upstream::queries).sum();
    assert_eq!(asked, 13, "13 servers of the delegation asked, the other 87 never");
    node.stop().await;
}

#[tokio::test]
async fn a_resolution_ends_within_its_budget_however_many_servers_are_silent() {
    let (node, _servers, _root) = behind_100_silent_servers(1000, 1500).await;
    let started = Instant::now();
    let answer = ask_within(node.addr, "x._id.105.88.id.example.", Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.expect("SERVFAIL, not silence").metadata.response_code, ResponseCode::ServFail);
    // The budget is 1.5 s; without it the 100 servers at 1 s each would take 100 s. The upper
    // bound is loose so that a loaded machine does not fail the test.
    assert!(elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(4500), "{elapsed:?}");
    node.stop().await;
}

//------------ 5. A broken server: the next one is asked -----------------------------------

#[tokio::test]
async fn refused_servfail_notimp_formerr_and_a_bogus_referral_move_on_to_the_next_server() {
    let mut roots = Vec::new();
    for rcode in [ResponseCode::Refused, ResponseCode::ServFail, ResponseCode::NotImp, ResponseCode::FormErr] {
        roots.push(Upstream::start("127.0.0.1", Duration::ZERO, move |q| Some(empty(q, rcode))).await);
    }
    // A referral to a zone that does not hold the name, and one back to the root.
    roots.push(
        Upstream::start("127.0.0.1", Duration::ZERO, |q| {
            Some(referral(q, "example.org.", &["127.0.0.1".parse().unwrap()]))
        })
        .await,
    );
    roots.push(
        Upstream::start("127.0.0.1", Duration::ZERO, |q| Some(referral(q, ".", &["127.0.0.1".parse().unwrap()]))).await,
    );
    roots.push(Upstream::start("127.0.0.1", Duration::ZERO, |q| Some(txt(q, 3600, "at last"))).await);
    let node = recursive_node(roots.iter().map(|r| r.addr).collect(), |_| {}).await;
    let answer = ask(node.addr, "x._id.1.88.id.example.").await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1, "the last server's answer");
    let asked: Vec<usize> = roots.iter().map(Upstream::queries).collect();
    assert_eq!(asked, [1; 7], "each server asked once, in turn");
    node.stop().await;
}

#[tokio::test]
async fn a_server_that_stopped_answering_is_asked_last_by_the_next_resolutions() {
    // A primary that hangs and its mirror, both serving the zone: the first question waits for
    // the primary's timeout; the next ones go to the mirror first.
    let hung = Upstream::start("127.0.0.1", Duration::ZERO, |_| None).await;
    let mirror = Upstream::start("127.0.0.1", Duration::ZERO, |q| Some(txt(q, 3600, "from the mirror"))).await;
    let node = recursive_node(vec![hung.addr, mirror.addr], |_| {}).await;
    for (i, name) in ["a._id.1.88.id.example.", "b._id.1.88.id.example.", "c._id.1.88.id.example."].iter().enumerate() {
        let answer = ask(node.addr, name).await;
        assert_eq!(answer.answers.len(), 1, "{name}: the mirror's answer");
        assert_eq!((hung.queries(), mirror.queries()), (1, i + 1), "{name}: the hung server asked once in all");
    }
    node.stop().await;
}

//------------ 6. Failures cached (RFC 9520) -------------------------------------------------

#[tokio::test]
async fn a_failed_resolution_is_remembered_and_the_wait_doubles_when_it_fails_again() {
    let upstream = Upstream::start("127.0.0.1", Duration::ZERO, |q| Some(empty(q, ResponseCode::ServFail))).await;
    let node = recursive_node(vec![upstream.addr], |_| {}).await;
    let broken = "broken._id.1.88.id.example.";
    for _ in 0..5 {
        assert_eq!(ask(node.addr, broken).await.metadata.response_code, ResponseCode::ServFail);
    }
    assert_eq!(upstream.queries(), 1, "no upstream traffic while the failure is cached");
    // Another type of the same name is another question.
    let other =
        Message::from_vec(&crate::dns::udp(node.addr, &query(broken, RecordType::A, None)).await.expect("an answer"))
            .unwrap();
    assert_eq!(other.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(upstream.queries(), 2);
    // After the first second (RFC 9520: at least 1 s) the name is tried again; it fails again,
    // so now it is remembered for two.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(node.addr, broken).await.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(upstream.queries(), 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(node.addr, broken).await.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(upstream.queries(), 3, "the second failure is kept for 2 s");
    node.stop().await;
}

//------------ 7. TTLs clamped ---------------------------------------------------------------

#[tokio::test]
async fn upstream_ttls_of_2_pow_31_minus_1_are_clamped_in_answers_and_negative_answers() {
    let upstream = Upstream::start("127.0.0.1", Duration::ZERO, |q| {
        let forever = i32::MAX as u32;
        Some(if q.queries[0].name().to_ascii().starts_with("nx") { nxdomain(q, forever) } else { txt(q, forever, "x") })
    })
    .await;
    let node = recursive_node(vec![upstream.addr], |_| {}).await;
    for _ in 0..2 {
        // The first answer comes from the resolution, the second from the cache.
        let answer = ask(node.addr, "long._id.1.88.id.example.").await;
        assert_eq!(answer.answers.len(), 1);
        assert!(answer.answers[0].ttl <= 86_400, "max_ttl: {}", answer.answers[0].ttl);
        let negative = ask(node.addr, "nx._id.1.88.id.example.").await;
        assert_eq!(negative.metadata.response_code, ResponseCode::NXDomain);
        assert!(negative.authorities[0].ttl <= 3600, "max_negative_ttl: {}", negative.authorities[0].ttl);
    }
    assert_eq!(upstream.queries(), 2, "both cached");
    node.stop().await;
}

#[tokio::test]
async fn configured_ttl_caps_are_what_clients_see() {
    let upstream = Upstream::start("127.0.0.1", Duration::ZERO, |q| {
        Some(if q.queries[0].name().to_ascii().starts_with("nx") { nxdomain(q, 7200) } else { txt(q, 7200, "x") })
    })
    .await;
    let node = recursive_node(vec![upstream.addr], |c| {
        c.recursive.max_ttl = 60;
        c.recursive.max_negative_ttl = 5;
    })
    .await;
    assert_eq!(ask(node.addr, "long._id.1.88.id.example.").await.answers[0].ttl, 60);
    assert_eq!(ask(node.addr, "nx._id.1.88.id.example.").await.authorities[0].ttl, 5);
    node.stop().await;
}

//------------ 8. Caches bounded in bytes ----------------------------------------------------

#[tokio::test]
async fn the_recursive_node_keeps_its_caches_within_size_mb() {
    // Every name is its own delegation (the root refers each to the child, at the name itself),
    // and each answer weighs about 1 KB: 1500 of them would take about 1.8 MB.
    let child = Upstream::start("127.0.0.2", Duration::ZERO, |q| Some(txt(q, 3600, &"v".repeat(760)))).await;
    let root = Upstream::start("127.0.0.1", Duration::ZERO, |q| {
        Some(referral(q, &q.queries[0].name().to_ascii(), &["127.0.0.2".parse().unwrap()]))
    })
    .await;
    let port = child.addr.port();
    let node = recursive_node(vec![root.addr], |c| {
        c.cache.size_mb = 1;
        c.recursive.port = port;
    })
    .await;
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let addr = node.addr;
            tokio::spawn(async move {
                for i in (c..1500).step_by(16) {
                    assert_eq!(ask(addr, &format!("n{i}._id.1.88.id.example.")).await.answers.len(), 1);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let stats = node.frontend.recursor_stats().unwrap();
    let total = stats.answers.bytes + stats.delegations.bytes + stats.failures.bytes;
    assert!(total <= 1 << 20, "all the recursive node's caches within 1 MiB: {total} bytes, {stats:?}");
    assert!(stats.answers.entries < 1500 && stats.delegations.entries > 0, "{stats:?}");
    node.stop().await;
}
