//! Clients of a running node: `idnode resolve`, `idnode health`, `idnode dns-name` and `idnode bench`, over DNS
//! or the Handle protocol.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::bench::{self, Plan, Queries, Wire};
use crate::demo;
use crate::dns::{DnsName, client};
use crate::identifier::Identifier;

/// Parses the `--apex` flag.
pub fn parse_apex(apex: &str) -> anyhow::Result<DnsName> {
    DnsName::from_ascii(apex).with_context(|| format!("--apex {apex:?} is not a domain name"))
}

/// The protocol `idnode resolve` and `idnode bench` ask in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Dns,
    /// The Handle protocol (RFC 3652).
    Handle,
}

/// `idnode resolve`: asks `server` (the protocol's default port on 127.0.0.1 when `None`) for
/// `identifier` and prints its public values.
pub fn resolve(
    identifier: &str,
    protocol: Protocol,
    server: Option<SocketAddr>,
    tcp: bool,
    apex: &str,
) -> anyhow::Result<()> {
    let id = Identifier::parse(identifier)?;
    if protocol == Protocol::Handle {
        return resolve_handle(&id, server.unwrap_or(([127, 0, 0, 1], 2641).into()), tcp);
    }
    let server = server.unwrap_or(([127, 0, 0, 1], 5300).into());
    let r = client::resolve(server, &id, &parse_apex(apex)?, tcp, Duration::from_secs(3))?;
    let mut out = std::io::stdout().lock();
    let retried = if r.retried_over_tcp { ", truncated over UDP, retried over TCP" } else { "" };
    writeln!(out, "{id} ({}){retried}", r.name)?;
    if !r.ok {
        anyhow::bail!("{id}: {} from {server}", r.rcode);
    }
    if r.values.is_empty() {
        anyhow::bail!("{id} exists but has no public values");
    }
    for (index, kind, data) in r.values {
        writeln!(out, "{index:>6}  {kind:<12}  {}", String::from_utf8_lossy(&data))?;
    }
    Ok(())
}

/// `idnode resolve --protocol handle`: one anonymous RESOLUTION, over TCP when `tcp`.
fn resolve_handle(id: &Identifier, server: SocketAddr, tcp: bool) -> anyhow::Result<()> {
    let r = crate::handle::client::resolve(server, id, tcp, Duration::from_secs(3))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{id} (Handle protocol {}.{}, {})", r.version.0, r.version.1, if tcp { "TCP" } else { "UDP" })?;
    match r.code {
        1 => {}
        303 => writeln!(out, "referred elsewhere (303 PREFIX_REFERRAL); the sites to ask:")?,
        code => anyhow::bail!("{id}: response code {code} from {server}: {}", r.message.unwrap_or_default()),
    }
    for (index, kind, data) in r.values {
        writeln!(out, "{index:>6}  {kind:<12}  {}", String::from_utf8_lossy(&data))?;
    }
    Ok(())
}

/// `idnode health`: whether the node at `server` answers DNS (one SOA query for `apex` over
/// UDP); the exit status says so, for a container's health check or a monitoring script.
pub fn health(server: SocketAddr, apex: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let rcode = client::probe(server, &parse_apex(apex)?, Duration::from_secs(2))?;
    writeln!(std::io::stdout(), "{server} answered ({rcode}) in {} ms", started.elapsed().as_millis())?;
    Ok(())
}

/// `idnode dns-name`: prints the DNS name of `identifier` under `apex`.
pub fn dns_name(identifier: &str, apex: &str) -> anyhow::Result<()> {
    let name = client::dns_name(&Identifier::parse(identifier)?, &parse_apex(apex)?)?;
    writeln!(std::io::stdout(), "{name}")?;
    Ok(())
}

/// The flags of `idnode bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The node to load (default: 127.0.0.1:5300 for DNS, 127.0.0.1:2641 for the Handle
    /// protocol).
    #[arg(long)]
    server: Option<SocketAddr>,
    /// DNS TXT queries, or Handle protocol RESOLUTION requests.
    #[arg(long, value_enum, default_value_t = Protocol::Dns)]
    protocol: Protocol,
    /// Query over TCP (one persistent connection per client) instead of UDP.
    #[arg(long)]
    tcp: bool,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent clients, each with one query in flight.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Target queries per second over all clients (default: as fast as the node answers).
    #[arg(long)]
    rate: Option<f64>,
    /// Share of queries for identifiers that do not exist (NXDOMAIN, HANDLE_NOT_FOUND).
    #[arg(long, default_value_t = 0.1)]
    miss: f64,
    /// Identifiers to query, one per line (or an export file); default: the demo namespace.
    #[arg(long)]
    identifiers: Option<PathBuf>,
    #[arg(long, default_value = "id.example.")]
    apex: String,
    /// Lookups to project the time for.
    #[arg(long, default_value_t = 2_000_000_000)]
    target: u64,
    /// Write an SVG of the latency distribution and queries/s over time.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// `idnode bench`: loads `args.server` and prints queries/s, loss, latency and capacity.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs { server, protocol, tcp, duration, clients, rate, miss, identifiers, apex, target, plot } = args;
    let (wire, default_port, not_found) = match protocol {
        Protocol::Dns => (Wire::Dns, 5300, "NXDOMAIN"),
        Protocol::Handle => (Wire::Handle, 2641, "HANDLE_NOT_FOUND"),
    };
    let server = server.unwrap_or(([127, 0, 0, 1], default_port).into());
    anyhow::ensure!((0.0..=1.0).contains(&miss), "--miss is a share between 0 and 1");
    anyhow::ensure!(clients > 0 && duration > 0, "--clients and --duration must be positive");
    let apex = parse_apex(&apex)?;
    let text = match &identifiers {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => demo::DEMO_JSONL.to_owned(),
    };
    let Queries { hits, misses } = bench::queries(&text, wire, &apex)
        .with_context(|| identifiers.as_ref().map_or("the demo identifiers".to_owned(), |p| p.display().to_string()))?;
    let timeout = Duration::from_secs(1);
    let (duration_s, duration) = (duration, Duration::from_secs(duration));
    let plan = Plan { server, wire, tcp, duration, clients, rate, hits, misses, miss_share: miss, timeout };
    let style = indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{len} {msg}")?;
    let bar = indicatif::ProgressBar::new(duration_s).with_style(style);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(bench::run(plan, |answered, elapsed| {
        bar.set_position(elapsed.as_secs());
        bar.set_message(format!("{:.0} queries/s", answered as f64 / elapsed.as_secs_f64().max(1e-3)));
    }))?;
    bar.finish_and_clear();
    let l = &report.latency;
    let mut out = std::io::stdout().lock();
    let transport = match (protocol, tcp) {
        (Protocol::Dns, false) => "UDP",
        (Protocol::Dns, true) => "TCP",
        (Protocol::Handle, false) => "Handle protocol, UDP",
        (Protocol::Handle, true) => "Handle protocol, TCP",
    };
    let nonexistent = miss * 100.0;
    writeln!(
        out,
        "idnode bench: {duration_s} s, {clients} clients, {transport}, {nonexistent:.0}% nonexistent, against {server}"
    )?;
    writeln!(
        out,
        "  answered  {} ({:.0} queries/s); lost {} ({:.3}%); {not_found} {:.1}%; other errors {}",
        report.answered,
        report.qps(),
        report.lost,
        report.loss() * 100.0,
        report.not_found as f64 * 100.0 / report.answered.max(1) as f64,
        report.other_errors
    )?;
    let quantile = |q| l.value_at_quantile(q);
    let (p50, p90, p99, p999) = (quantile(0.5), quantile(0.9), quantile(0.99), quantile(0.999));
    writeln!(out, "  latency   p50 {p50} us, p90 {p90} us, p99 {p99} us, p99.9 {p999} us, max {} us", l.max())?;
    let (time, per_day) = (bench::human(report.seconds_for(target)), report.per_day() / 1e9);
    writeln!(out, "  capacity  {target} lookups in {time} at this rate; {per_day:.2} billion lookups a day")?;
    if let Some(path) = plot {
        bench::plot(&report, &format!("{server} {transport}"), &path).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        writeln!(out, "  plot      {}", path.display())?;
    }
    Ok(())
}
