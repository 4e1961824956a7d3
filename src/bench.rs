//! `idnode bench`: the capacity planner. It drives DNS or Handle protocol load at any node (UDP
//! or TCP), measures queries per second, latency percentiles and loss, and projects how long a
//! node takes to serve a target number of lookups (by default the 2 billion of one city's plan)
//! and how many it serves a day. It can draw the run as an SVG.
//!
//! Each client keeps one query in flight (closed loop), like `dnsperf -c N -q N`; with a target
//! rate the clients pace themselves instead. Queries are built once; only their id changes. The
//! loop is the same for both protocols; [`Wire`] says where a query's id sits, which answer is
//! whose and what it says. Over TCP each client keeps one connection for the whole run (as
//! stub resolvers reuse DNS connections and the national SDKs pool Handle connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::dns::framing;
use crate::handle::message::{ENVELOPE_LEN, HEADER_LEN, UDP_CHUNK};

/// The protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// DNS TXT queries: the id is the message's first two bytes, the answer's RCODE says what
    /// it found.
    Dns,
    /// Handle RESOLUTION requests (envelope and message): the id is the envelope's request id,
    /// the answer's response code says what it found, and over UDP an answer may come in
    /// several numbered datagrams.
    Handle,
}

/// What an answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Values (NOERROR; Handle SUCCESS or VALUES_NOT_FOUND, DNS's NODATA).
    Found,
    /// NXDOMAIN; HANDLE_NOT_FOUND.
    NotFound,
    /// Anything else: SERVFAIL, REFUSED, PROTOCOL_ERROR, a referral...
    Other,
}

impl Wire {
    /// Writes `id` into an encoded query (DNS keeps its low 16 bits).
    fn set_id(self, query: &mut [u8], id: u32) {
        match self {
            Wire::Dns => query[..2].copy_from_slice(&(id as u16).to_be_bytes()),
            Wire::Handle => query[8..12].copy_from_slice(&id.to_be_bytes()),
        }
    }

    /// Whether `response` (a datagram, or a whole TCP message) answers the query with `id`.
    fn answers(self, response: &[u8], id: u32) -> bool {
        match self {
            Wire::Dns => response.len() >= 12 && response[..2] == (id as u16).to_be_bytes(),
            Wire::Handle => response.len() >= ENVELOPE_LEN && response[8..12] == id.to_be_bytes(),
        }
    }

    /// What the first (or only) datagram of an answer says.
    fn outcome(self, response: &[u8]) -> Outcome {
        let code = match self {
            Wire::Dns => response.get(3).map(|b| u32::from(b & 0x0f)),
            Wire::Handle => response.get(ENVELOPE_LEN + 4..ENVELOPE_LEN + 8).map(|b| be32(b, 0)),
        };
        match (self, code) {
            (Wire::Dns, Some(0)) | (Wire::Handle, Some(1 | 200)) => Outcome::Found,
            (Wire::Dns, Some(3)) | (Wire::Handle, Some(100)) => Outcome::NotFound,
            _ => Outcome::Other,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: SocketAddr,
    pub wire: Wire,
    pub tcp: bool,
    pub duration: Duration,
    pub clients: usize,
    /// Queries per second over all clients; `None`: as fast as answers come back.
    pub rate: Option<f64>,
    /// Queries for existing identifiers, and for identifiers that do not exist, in `wire`'s
    /// encoding ([`queries`]).
    pub hits: Vec<Vec<u8>>,
    pub misses: Vec<Vec<u8>>,
    /// Share of queries drawn from `misses`.
    pub miss_share: f64,
    /// 1 s: how long a query may go unanswered before it counts as lost (dnsperf's default
    /// is 5 s; a loopback or LAN answer comes in well under a millisecond).
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    /// NXDOMAIN, or HANDLE_NOT_FOUND over the Handle protocol.
    pub not_found: u64,
    pub other_errors: u64,
    /// Latency of answered queries, microseconds.
    pub latency: Histogram<u64>,
    /// Answers in each second of the run.
    pub per_second: Vec<u64>,
}

impl Report {
    pub fn qps(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Seconds to serve `lookups` at the measured rate.
    pub fn seconds_for(&self, lookups: u64) -> f64 {
        lookups as f64 / self.qps().max(1e-9)
    }

    pub fn per_day(&self) -> f64 {
        self.qps() * 86_400.0
    }

    pub fn loss(&self) -> f64 {
        self.lost as f64 / (self.sent.max(1)) as f64
    }
}

struct ClientStats {
    sent: u64,
    answered: u64,
    lost: u64,
    not_found: u64,
    other_errors: u64,
    latency: Histogram<u64>,
    per_second: Vec<u64>,
}

impl ClientStats {
    fn new() -> Self {
        Self {
            sent: 0,
            answered: 0,
            lost: 0,
            not_found: 0,
            other_errors: 0,
            // 1 us to 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            per_second: Vec::new(),
        }
    }

    fn answer(&mut self, outcome: Outcome, took: Duration, second: usize) {
        self.answered += 1;
        match outcome {
            Outcome::Found => {}
            Outcome::NotFound => self.not_found += 1,
            Outcome::Other => self.other_errors += 1,
        }
        self.latency.saturating_record(took.as_micros().max(1) as u64);
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += 1;
    }
}

/// Runs the plan; `progress` is told the answers so far, about ten times a second.
pub async fn run(plan: Plan, mut progress: impl FnMut(u64, Duration)) -> std::io::Result<Report> {
    let plan = Arc::new(plan);
    let answered = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + plan.duration;
    let mut clients = Vec::with_capacity(plan.clients);
    for c in 0..plan.clients {
        let (plan, answered) = (plan.clone(), answered.clone());
        clients.push(tokio::spawn(async move { client(c, &plan, start, stop, &answered).await }));
    }
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress(answered.load(Ordering::Relaxed), start.elapsed());
    }
    let mut total = ClientStats::new();
    for c in clients {
        let stats = c.await.map_err(std::io::Error::other)??;
        total.sent += stats.sent;
        total.answered += stats.answered;
        total.lost += stats.lost;
        total.not_found += stats.not_found;
        total.other_errors += stats.other_errors;
        total.latency.add(&stats.latency).map_err(std::io::Error::other)?;
        if total.per_second.len() < stats.per_second.len() {
            total.per_second.resize(stats.per_second.len(), 0);
        }
        for (t, s) in total.per_second.iter_mut().zip(&stats.per_second) {
            *t += s;
        }
    }
    // The last, partial second would drag the series down.
    total.per_second.truncate(plan.duration.as_secs() as usize);
    Ok(Report {
        elapsed: plan.duration,
        sent: total.sent,
        answered: total.answered,
        lost: total.lost,
        not_found: total.not_found,
        other_errors: total.other_errors,
        latency: total.latency,
        per_second: total.per_second,
    })
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

async fn client(
    index: usize,
    plan: &Plan,
    start: Instant,
    stop: Instant,
    answered: &AtomicU64,
) -> std::io::Result<ClientStats> {
    let mut conn = if plan.tcp {
        let stream = TcpStream::connect(plan.server).await?;
        stream.set_nodelay(true)?;
        Conn::Tcp(stream)
    } else {
        let local: SocketAddr = if plan.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = UdpSocket::bind(local).await?;
        socket.connect(plan.server).await?;
        Conn::Udp(socket)
    };
    let mut stats = ClientStats::new();
    let mut seed = 0x9e37_79b9_u32 ^ (index as u32).wrapping_mul(0x85eb_ca6b) | 1;
    let mut buf = vec![0u8; 65_535];
    let mut query = Vec::with_capacity(512);
    let mut id = (index as u32).wrapping_mul(7919);
    let mut pacing = plan.rate.map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(plan.clients as f64 / rate.max(1e-3)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    while Instant::now() < stop {
        if let Some(interval) = pacing.as_mut() {
            interval.tick().await;
        }
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let miss = !plan.misses.is_empty() && f64::from(seed % 10_000) < plan.miss_share * 10_000.0;
        let pool = if miss { &plan.misses } else { &plan.hits };
        query.clear();
        query.extend_from_slice(&pool[(seed as usize / 7) % pool.len()]);
        id = id.wrapping_add(1);
        plan.wire.set_id(&mut query, id);
        let sent_at = Instant::now();
        stats.sent += 1;
        let outcome = tokio::time::timeout(plan.timeout, exchange(&mut conn, plan.wire, &query, &mut buf, id)).await;
        match outcome {
            Ok(Ok(outcome)) => {
                let second = sent_at.saturating_duration_since(start).as_secs() as usize;
                stats.answer(outcome, sent_at.elapsed(), second);
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) if plan.tcp => return Err(e),
            _ => stats.lost += 1,
        }
    }
    Ok(stats)
}

/// Sends one query and reads until the answer with its id arrives (over UDP, every datagram
/// of it); returns what it said.
async fn exchange(conn: &mut Conn, wire: Wire, query: &[u8], buf: &mut Vec<u8>, id: u32) -> std::io::Result<Outcome> {
    match conn {
        Conn::Udp(socket) => {
            socket.send(query).await?;
            let (mut outcome, mut chunks) = (None, 0usize);
            loop {
                let n = socket.recv(buf).await?;
                // A late answer to an earlier, lost query is skipped.
                if !wire.answers(&buf[..n], id) {
                    continue;
                }
                if wire == Wire::Dns {
                    return Ok(wire.outcome(&buf[..n]));
                }
                // A Handle answer longer than one datagram comes in numbered 492-byte chunks;
                // its code is in the first.
                if be32(buf, 12) == 0 {
                    outcome = Some(wire.outcome(&buf[..n]));
                }
                chunks += 1;
                if let Some(outcome) = outcome.filter(|_| chunks >= (be32(buf, 16) as usize).div_ceil(UDP_CHUNK)) {
                    return Ok(outcome);
                }
            }
        }
        Conn::Tcp(stream) if wire == Wire::Dns => {
            let mut framed = Vec::with_capacity(query.len() + 2);
            framing::write(stream, query, &mut framed, None).await?;
            if !framing::read(stream, buf, framing::MAX_MESSAGE, None).await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(wire.outcome(buf))
        }
        Conn::Tcp(stream) => {
            stream.write_all(query).await?;
            stream.read_exact(&mut buf[..ENVELOPE_LEN]).await?;
            let len = ENVELOPE_LEN + be32(buf, 16) as usize;
            if len < ENVELOPE_LEN + HEADER_LEN || !wire.answers(buf, id) {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not the answer to this request"));
            }
            if buf.len() < len {
                buf.resize(len, 0);
            }
            stream.read_exact(&mut buf[ENVELOPE_LEN..len]).await?;
            Ok(wire.outcome(&buf[..len]))
        }
    }
}

/// Draws the latency distribution and the queries per second over time side by side.
pub fn plot(report: &Report, title: &str, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);

    // Latency: percentile (x) against microseconds (y).
    let quantiles: Vec<(f64, f64)> = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0]
        .iter()
        .map(|&p| (p, report.latency.value_at_percentile(p) as f64))
        .collect();
    let max_us = quantiles.iter().map(|q| q.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("{title}: latency by percentile"), ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(50.0..100.0, (1.0..max_us).log_scale())?;
    chart.configure_mesh().x_desc("percentile").y_desc("latency (us, log scale)").draw()?;
    chart.draw_series(LineSeries::new(quantiles.iter().copied(), &BLUE))?;
    chart.draw_series(quantiles.iter().map(|&(x, y)| Circle::new((x, y), 3, BLUE.filled())))?;

    // Throughput: answers per second over the run.
    let series: Vec<(f64, f64)> =
        report.per_second.iter().enumerate().map(|(s, &n)| (s as f64 + 0.5, n as f64)).collect();
    let max_qps = series.iter().map(|s| s.1).fold(1.0, f64::max) * 1.15;
    let seconds = (report.per_second.len().max(1)) as f64;
    let mut chart = ChartBuilder::on(&right)
        .caption(format!("queries/s over time (mean {:.0})", report.qps()), ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..max_qps)?;
    chart.configure_mesh().x_desc("second").y_desc("answers").draw()?;
    chart.draw_series(LineSeries::new(series, &RED))?;
    root.present()?;
    Ok(())
}

/// Why the identifiers to query could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueriesError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("no identifier the protocol can ask for")]
    Empty,
}

/// The queries of a run in `wire`'s encoding: one for each identifier of `text` (JSON Lines
/// records as `idnode import` reads them, or one identifier a line) that the protocol can ask
/// for, and 1000 for identifiers that do not exist under the first prefix among them: NXDOMAIN
/// or HANDLE_NOT_FOUND, as a mistyped or unregistered product code gets. DNS asks TXT under
/// `apex`; an identifier too long for a DNS name is served over HTTP and Handle only, and left
/// out of a DNS run.
pub fn queries(text: &str, wire: Wire, apex: &crate::dns::DnsName) -> Result<Queries, QueriesError> {
    use crate::identifier::Identifier;
    let encode = |id: &Identifier| match wire {
        Wire::Dns => crate::dns::client::txt_query(id, apex).ok(),
        Wire::Handle => Some(crate::handle::client::request(id, 0)),
    };
    let mut hits = Vec::new();
    let mut prefix = None;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |reason: String| QueriesError::Line { line: n + 1, reason };
        let handle = match line.trim_start().starts_with('{') {
            true => serde_json::from_str::<serde_json::Value>(line).map_err(|e| at(e.to_string()))?["handle"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            false => line.trim().to_owned(),
        };
        let id = Identifier::parse(&handle).map_err(|e| at(e.to_string()))?;
        if id.record_prefix().is_none() {
            prefix.get_or_insert_with(|| id.prefix().to_owned());
        }
        hits.extend(encode(&id));
    }
    if hits.is_empty() {
        return Err(QueriesError::Empty);
    }
    let prefix = prefix.unwrap_or_else(|| "88.100.1".to_owned());
    let misses = (0..1000)
        .filter_map(|i| Identifier::parse(&format!("{prefix}/BENCH-NONE-{i:04}")).ok())
        .filter_map(|id| encode(&id))
        .collect();
    Ok(Queries { hits, misses })
}

/// Encoded queries for existing identifiers and for identifiers that do not exist.
pub struct Queries {
    pub hits: Vec<Vec<u8>>,
    pub misses: Vec<Vec<u8>>,
}

/// "3 h 41 min", "12.5 days": a duration for people.
pub fn human(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.0} h {:.0} min", (s / 3600.0).floor(), (s % 3600.0) / 60.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_follow_the_measured_rate() {
        let mut latency = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        latency.record(100).unwrap();
        let r = Report {
            elapsed: Duration::from_secs(10),
            sent: 1_000_010,
            answered: 1_000_000,
            lost: 10,
            not_found: 0,
            other_errors: 0,
            latency,
            per_second: vec![100_000; 10],
        };
        assert_eq!(r.qps(), 100_000.0);
        assert_eq!(r.seconds_for(2_000_000_000), 20_000.0);
        assert_eq!(r.per_day(), 8_640_000_000.0);
        assert!((r.loss() - 1e-5).abs() < 1e-9);
        assert_eq!(human(20_000.0), "5 h 33 min");
        assert_eq!(human(90.0), "90 s");
        assert_eq!(human(3.0 * 86_400.0), "3.0 days");
    }
}
