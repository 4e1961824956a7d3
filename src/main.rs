//! The `idnode` command: CLI -> config -> tracing -> runtime -> run.

use std::io::{BufReader, BufWriter, IsTerminal as _, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use idnode::auth::Admin;
use idnode::config::Config;
use idnode::dns::{self, DnsName, client};
use idnode::http::client::ApiClient;
use idnode::identifier::Identifier;
use idnode::node::{Node, PutOptions, WriteError};
use idnode::record::json::JsonValue;
use idnode::registry::Registry;
use idnode::server::Server;
use idnode::{demo, import};

#[derive(Parser)]
#[command(name = "idnode", version, about = "Identifier resolution server for the industrial internet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the settings come from; flags override the file.
#[derive(clap::Args)]
struct Settings {
    /// TOML configuration file (every field optional).
    #[arg(long, env = "IDNODE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory holding the registry [default: idnode-data].
    #[arg(long, env = "IDNODE_DATA")]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: DNS over UDP and TCP.
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// DNS address for UDP and TCP [default: 127.0.0.1:5300].
        #[arg(long)]
        dns: Option<SocketAddr>,
        /// HTTP address of the Handle.Net JSON API [default: 127.0.0.1:8000].
        #[arg(long)]
        http: Option<SocketAddr>,
        /// A prefix this node is authoritative for (repeatable) [default: the whole namespace].
        #[arg(long = "zone", value_name = "PREFIX")]
        zones: Vec<String>,
        /// Run as a recursive node starting at this top-level node (repeatable).
        #[arg(long = "recursive", value_name = "ADDR")]
        roots: Vec<SocketAddr>,
        /// Load the demo namespace (prefix 88.100.1) unless it is already there.
        #[arg(long)]
        demo: bool,
    },
    /// Import identifiers from a JSON Lines file (one {"handle", "values"} object per line).
    Import {
        /// The file, or - for standard input.
        file: PathBuf,
        #[command(flatten)]
        settings: Settings,
        /// Records per transaction (at most 2000).
        #[arg(long, default_value_t = idnode::registry::MAX_BATCH)]
        batch: usize,
    },
    /// Export every identifier as JSON Lines.
    Export {
        #[command(flatten)]
        settings: Settings,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write a DNS zone file (RFC 1035) of the node's first zone instead of JSON Lines, for
        /// Knot, NSD or BIND.
        #[arg(long)]
        zone_file: bool,
    },
    /// Resolve an identifier over DNS and print its values.
    Resolve {
        identifier: String,
        /// The node to ask.
        #[arg(long, default_value = "127.0.0.1:5300")]
        server: SocketAddr,
        /// Ask over TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// The node's apex zone.
        #[arg(long, default_value = "id.example.")]
        apex: String,
    },
    /// Identifiers on a running node, through its HTTP API.
    Id {
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Prefixes on a running node, through its HTTP API.
    Prefix {
        #[command(subcommand)]
        command: PrefixCommand,
    },
    /// Node administration (works on the data directory while no server runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Measure a node: queries/s, latency, loss, and how long it takes to serve a target number of lookups.
    Bench {
        /// The node to load.
        #[arg(long, default_value = "127.0.0.1:5300")]
        server: SocketAddr,
        /// Query over TCP (one connection per client) instead of UDP.
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
        /// Share of queries for identifiers that do not exist (NXDOMAIN).
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
    },
    /// Print the DNS name of an identifier, to use with dig.
    DnsName {
        identifier: String,
        #[arg(long, default_value = "id.example.")]
        apex: String,
    },
}

/// How to reach a node's HTTP API, and who is asking.
#[derive(clap::Args)]
struct Api {
    /// The node's HTTP API.
    #[arg(long, env = "IDNODE_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// The administrator, INDEX:IDENTIFIER (e.g. 300:0.NA/88.100).
    #[arg(long, env = "IDNODE_USER")]
    user: Option<String>,
    /// A file whose first line is the administrator's secret; or set IDNODE_SECRET.
    #[arg(long, env = "IDNODE_SECRET_FILE")]
    secret_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum IdCommand {
    /// Resolve an identifier and print its values.
    Get {
        handle: String,
        /// Only values of this type (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only the value at this index (repeatable).
        #[arg(long)]
        index: Vec<u32>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Create or replace an identifier.
    Put {
        handle: String,
        /// A value as INDEX:TYPE:DATA, e.g. 1:URL:https://example.com/p/1 (repeatable).
        #[arg(long = "value", value_name = "INDEX:TYPE:DATA")]
        values: Vec<String>,
        /// A JSON file with a list of values in the Handle.Net shape.
        #[arg(long)]
        values_file: Option<PathBuf>,
        /// Change only the given values and keep the others.
        #[arg(long)]
        merge: bool,
        /// Fail if the identifier exists.
        #[arg(long)]
        no_overwrite: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Delete an identifier, or with --index only those values.
    Delete {
        handle: String,
        #[arg(long)]
        index: Vec<u32>,
        #[command(flatten)]
        api: Api,
    },
}

#[derive(Subcommand)]
enum PrefixCommand {
    /// Register a prefix below one you administer (a secondary node's or an enterprise's).
    Add {
        prefix: String,
        /// Give the prefix its own operator, 300:0.NA/PREFIX, with the secret in this file;
        /// without it, the prefix is administered by --user.
        #[arg(long)]
        operator_secret_file: Option<PathBuf>,
        #[command(flatten)]
        api: Api,
    },
    /// List the prefixes registered below PREFIX.
    List {
        prefix: String,
        #[arg(long, default_value_t = 0)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        #[command(flatten)]
        api: Api,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first administrator, 300:0.NA/PREFIX, with every right under PREFIX.
    Init {
        /// The prefix this node is responsible for (88 for a top-level node, 88.100 for a
        /// secondary node).
        #[arg(long, default_value = "88")]
        prefix: String,
        /// Read the secret from this file (first line); otherwise one is generated and printed once.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { settings, dns, http, zones, roots, demo } => {
            let mut config = settings.load()?;
            if let Some(dns) = dns {
                config.dns.listen = dns;
            }
            if let Some(http) = http {
                config.http.listen = http;
            }
            if !zones.is_empty() {
                config.dns.zones = zones;
            }
            if !roots.is_empty() {
                config.recursive.roots = roots;
            }
            serve(config, demo)
        }
        Command::Import { file, settings, batch } => import_file(&settings.load()?, &file, batch),
        Command::Export { settings, output, zone_file } => {
            let config = settings.load()?;
            let registry = open_registry(&config)?;
            let out: Box<dyn Write> = match output {
                Some(path) => Box::new(BufWriter::new(
                    std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            let count = if zone_file {
                let zone = dns::zone_config(&config.dns)?.remove(0);
                dns::zonefile::write(&registry, &zone, registry.serial(), out)?
            } else {
                import::export(&registry, out)?
            };
            eprintln!("exported {count} identifiers");
            Ok(())
        }
        Command::Resolve { identifier, server, tcp, apex } => {
            let id = Identifier::parse(&identifier)?;
            let apex = parse_apex(&apex)?;
            let r = client::resolve(server, &id, &apex, tcp, Duration::from_secs(3))?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{} ({}){}",
                id,
                r.name,
                if r.retried_over_tcp { ", truncated over UDP, retried over TCP" } else { "" }
            )?;
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
        Command::Id { command } => id_command(command),
        Command::Bench { server, tcp, duration, clients, rate, miss, identifiers, apex, target, plot } => {
            bench(server, tcp, duration, clients, rate, miss, identifiers.as_deref(), &apex, target, plot.as_deref())
        }
        Command::Prefix { command } => prefix_command(command),
        Command::Admin { command: AdminCommand::Init { prefix, secret_file, settings } } => {
            admin_init(&settings.load()?, &prefix, secret_file.as_deref())
        }
        Command::DnsName { identifier, apex } => {
            let name = client::dns_name(&Identifier::parse(&identifier)?, &parse_apex(&apex)?)?;
            writeln!(std::io::stdout(), "{name}")?;
            Ok(())
        }
    }
}

impl Settings {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(data) = &self.data {
            config.data_dir = data.clone();
        }
        Ok(config)
    }
}

fn parse_apex(apex: &str) -> anyhow::Result<DnsName> {
    DnsName::from_ascii(apex).with_context(|| format!("--apex {apex:?} is not a domain name"))
}

fn open_registry(config: &Config) -> anyhow::Result<Registry> {
    Ok(Registry::open(&config.data_dir)?)
}

fn serve(config: Config, load_demo: bool) -> anyhow::Result<()> {
    let registry = Arc::new(open_registry(&config)?);
    if load_demo && registry.get(&Identifier::parse(demo::DEMO_IDENTIFIER)?)?.is_none() {
        let report = demo::load(&registry)?;
        tracing::info!(records = report.records, "loaded the demo namespace");
    }
    let (node, frontend) = idnode::server::assemble(&config, registry.clone())?;
    if frontend.is_recursive() {
        tracing::info!(roots = ?config.recursive.roots, "recursive node: resolving names under the apex from the top-level nodes");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::bind(&config, node, frontend.clone()).await?;
        let addr = server.local_addr();
        let http = server.http_addr();
        tracing::info!(%http, "serving the Handle.Net JSON API over HTTP");
        tracing::info!(%addr, zones = ?frontend.zone_apexes().iter().map(ToString::to_string).collect::<Vec<_>>(), identifiers = registry.len()?, data = %config.data_dir.display(), workers = config.udp_workers(), "serving DNS over UDP and TCP");
        if load_demo {
            let name = client::dns_name(&Identifier::parse(demo::DEMO_IDENTIFIER)?, &frontend.apex())?;
            eprintln!(
                "\nTry:\n  dig @{} -p {} {} TXT\n  idnode resolve {} --server {}\n  curl http://{}/api/handles/{}\n",
                addr.ip(),
                addr.port(),
                name,
                demo::DEMO_IDENTIFIER,
                addr,
                http,
                demo::DEMO_IDENTIFIER
            );
        }
        server.serve(shutdown_signal()).await?;
        let stats = frontend.cache_stats();
        tracing::info!(hits = stats.hits, misses = stats.misses, "stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn import_file(config: &Config, file: &PathBuf, batch: usize) -> anyhow::Result<()> {
    let registry = open_registry(config)?;
    let from_stdin = file.as_os_str() == "-";
    let (input, bar): (Box<dyn std::io::Read + Send>, _) = if from_stdin {
        let bar = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}, {elapsed}")
                .expect("valid template"),
        );
        (Box::new(std::io::stdin()), bar)
    } else {
        let input = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let bar = indicatif::ProgressBar::new(input.metadata()?.len()).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .expect("valid template"),
        );
        (Box::new(input), bar)
    };
    let started = Instant::now();
    let result =
        import::import(&registry, BufReader::with_capacity(1 << 20, input), batch, |bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    let report = result.with_context(|| match from_stdin {
        true => "importing standard input".to_owned(),
        false => format!("importing {}", file.display()),
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} identifiers from {} lines in {:.1} s ({:.0}/s) into {}",
        report.records,
        report.lines,
        secs,
        report.records as f64 / secs.max(1e-9),
        config.data_dir.display()
    );
    Ok(())
}

fn admin_init(config: &Config, prefix: &str, secret_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    idnode::identifier::check_prefix(prefix).with_context(|| format!("--prefix {prefix}"))?;
    let id = Identifier::from_parts(idnode::identifier::PREFIX_AUTHORITY, prefix)?;
    let node = Node::new(Arc::new(open_registry(config)?), config.dns.zones.clone());
    let (secret, generated) = match secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let secret = text.lines().next().unwrap_or("").to_owned();
            anyhow::ensure!(!secret.is_empty(), "{} holds no secret on its first line", path.display());
            (secret, false)
        }
        None => (idnode::secret::generate_secret(), true),
    };
    let values = idnode::auth::prefix_admin_values((300, id.as_str()), Some(&secret), idnode::record::unix_now());
    let options = PutOptions { no_overwrite: true, ..PutOptions::default() };
    match node.put(&Admin::node(), &id, values, &options) {
        Err(WriteError::AlreadyExists { identifier }) => anyhow::bail!(
            "{identifier} already exists in {}: the node has an administrator for {prefix}",
            config.data_dir.display()
        ),
        result => result?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "administrator 300:{id} created with every right under {prefix}")?;
    if generated {
        writeln!(out, "secret: {secret}")?;
        writeln!(out, "(shown once; the node stores only its salted hash)")?;
    }
    Ok(())
}

//------------ Operator commands: clients of the HTTP API ----------------------------------

impl Api {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let secret = match (&self.secret_file, std::env::var("IDNODE_SECRET")) {
            (Some(path), _) => Some(first_line(path)?),
            (None, Ok(secret)) => Some(secret),
            (None, Err(_)) => None,
        };
        match (&self.user, secret) {
            (Some(user), Some(secret)) => Ok(ApiClient::new(&self.server, Some((user, &secret)))),
            (Some(_), None) => anyhow::bail!("--user needs a secret: --secret-file FILE or IDNODE_SECRET"),
            (None, _) => Ok(ApiClient::new(&self.server, None)),
        }
    }

    fn user(&self) -> anyhow::Result<&str> {
        self.user.as_deref().context("this command needs --user INDEX:IDENTIFIER (or IDNODE_USER)")
    }
}

fn first_line(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!line.is_empty(), "{} holds no secret on its first line", path.display());
    Ok(line)
}

fn id_command(command: IdCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        IdCommand::Get { handle, types, index, json, api } => {
            let mut query: Vec<(&str, String)> = types.into_iter().map(|t| ("type", t)).collect();
            query.extend(index.into_iter().map(|i| ("index", i.to_string())));
            let answer = api.client()?.get(&handle, &query)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
                return Ok(());
            }
            writeln!(out, "{}", answer["handle"].as_str().unwrap_or(&handle))?;
            for v in answer["values"].as_array().into_iter().flatten() {
                let data = match &v["data"]["value"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                writeln!(
                    out,
                    "{:>6}  {:<12}  {data}",
                    v["index"].as_u64().unwrap_or(0),
                    v["type"].as_str().unwrap_or("")
                )?;
            }
        }
        IdCommand::Put { handle, values, values_file, merge, no_overwrite, api } => {
            let mut list: Vec<JsonValue> = match &values_file {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{}: expected a JSON list of values", path.display()))?
                }
                None => Vec::new(),
            };
            for v in &values {
                list.push(parse_value_arg(v)?);
            }
            anyhow::ensure!(!list.is_empty() || !merge, "--merge needs values to change");
            let mut query = Vec::new();
            if merge {
                query.extend(list.iter().map(|v| ("index", v.index.to_string())));
            }
            if no_overwrite {
                query.push(("overwrite", "false".to_owned()));
            }
            let answer = api.client()?.put(&handle, &list, &query)?;
            writeln!(out, "stored {}", answer["handle"].as_str().unwrap_or(&handle))?;
        }
        IdCommand::Delete { handle, index, api } => {
            let query: Vec<(&str, String)> = index.iter().map(|i| ("index", i.to_string())).collect();
            api.client()?.delete(&handle, &query)?;
            match index.is_empty() {
                true => writeln!(out, "deleted {handle}")?,
                false => writeln!(out, "deleted values {index:?} of {handle}")?,
            }
        }
    }
    Ok(())
}

/// `INDEX:TYPE:DATA` -> a value in the Handle.Net shape.
fn parse_value_arg(text: &str) -> anyhow::Result<JsonValue> {
    let mut parts = text.splitn(3, ':');
    let (Some(index), Some(kind), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--value {text:?}: expected INDEX:TYPE:DATA, e.g. 1:URL:https://example.com/p/1");
    };
    let index: u32 = index.parse().with_context(|| format!("--value {text:?}: {index:?} is not an index"))?;
    Ok(serde_json::from_value(serde_json::json!({ "index": index, "type": kind, "data": data }))?)
}

fn prefix_command(command: PrefixCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        PrefixCommand::Add { prefix, operator_secret_file, api } => {
            idnode::identifier::check_prefix(&prefix).with_context(|| format!("prefix {prefix}"))?;
            let record = format!("{}/{prefix}", idnode::identifier::PREFIX_AUTHORITY);
            let now = idnode::record::unix_now();
            let (values, admin) = match &operator_secret_file {
                Some(path) => {
                    let secret = first_line(path)?;
                    (idnode::auth::prefix_admin_values((300, &record), Some(&secret), now), format!("300:{record}"))
                }
                None => {
                    let user = api.user()?;
                    let (index, handle) = user.split_once(':').context("--user must be INDEX:IDENTIFIER")?;
                    let index = index.parse().with_context(|| format!("--user {user}: {index:?} is not an index"))?;
                    (idnode::auth::prefix_admin_values((index, handle), None, now), user.to_owned())
                }
            };
            let values: Vec<JsonValue> = values.iter().map(JsonValue::from_value).collect();
            api.client()?.put(&record, &values, &[("overwrite", "false".to_owned())])?;
            writeln!(out, "registered prefix {prefix} ({record}), administered by {admin}")?;
        }
        PrefixCommand::List { prefix, page, page_size, api } => {
            let answer = api.client()?.list("prefixes", &prefix, page, page_size)?;
            for p in answer["prefixes"].as_array().into_iter().flatten() {
                writeln!(out, "{}", p.as_str().unwrap_or_default())?;
            }
        }
    }
    Ok(())
}

//------------ idnode bench -------------------------------------------------------------------

#[allow(clippy::too_many_arguments)] // one per flag of the subcommand
fn bench(
    server: SocketAddr,
    tcp: bool,
    duration: u64,
    clients: usize,
    rate: Option<f64>,
    miss: f64,
    identifiers: Option<&std::path::Path>,
    apex: &str,
    target: u64,
    plot: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&miss), "--miss is a share between 0 and 1");
    anyhow::ensure!(clients > 0 && duration > 0, "--clients and --duration must be positive");
    let apex = parse_apex(apex)?;
    let text = match identifiers {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => demo::DEMO_JSONL.to_owned(),
    };
    let idnode::bench::Queries { hits, misses } = idnode::bench::queries(&text, &apex)
        .with_context(|| identifiers.map_or("the demo identifiers".to_owned(), |p| p.display().to_string()))?;
    let plan = idnode::bench::Plan {
        server,
        tcp,
        duration: Duration::from_secs(duration),
        clients,
        rate,
        hits,
        misses,
        miss_share: miss,
        timeout: Duration::from_secs(1),
    };
    let bar = indicatif::ProgressBar::new(duration * 10)
        .with_style(indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{len} {msg}").expect("valid template"));
    bar.set_length(duration);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(idnode::bench::run(plan, |answered, elapsed| {
        bar.set_position(elapsed.as_secs());
        bar.set_message(format!("{:.0} queries/s", answered as f64 / elapsed.as_secs_f64().max(1e-3)));
    }))?;
    bar.finish_and_clear();
    let l = &report.latency;
    let mut out = std::io::stdout().lock();
    let transport = if tcp { "TCP" } else { "UDP" };
    writeln!(
        out,
        "idnode bench: {duration} s, {clients} clients, {transport}, {:.0}% nonexistent, against {server}",
        miss * 100.0
    )?;
    writeln!(
        out,
        "  answered  {} ({:.0} queries/s); lost {} ({:.3}%); NXDOMAIN {:.1}%; other errors {}",
        report.answered,
        report.qps(),
        report.lost,
        report.loss() * 100.0,
        report.nxdomain as f64 * 100.0 / report.answered.max(1) as f64,
        report.other_errors
    )?;
    writeln!(
        out,
        "  latency   p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us",
        l.value_at_quantile(0.5),
        l.value_at_quantile(0.9),
        l.value_at_quantile(0.99),
        l.value_at_quantile(0.999),
        l.max()
    )?;
    writeln!(
        out,
        "  capacity  {target} lookups in {} at this rate; {:.2} billion lookups a day",
        idnode::bench::human(report.seconds_for(target)),
        report.per_day() / 1e9
    )?;
    if let Some(path) = plot {
        idnode::bench::plot(&report, &format!("{server} {transport}"), path)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        writeln!(out, "  plot      {}", path.display())?;
    }
    Ok(())
}
