//! The `idnode` command: the command line, parsed and dispatched to [`idnode::cli`]
//! (CLI -> config -> tracing -> runtime -> run).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use idnode::cli::remote::{self, Api};
use idnode::cli::{data, probe, serve};
use idnode::config::Config;

/// mimalloc rather than glibc's allocator: a miss allocates for its redb read, its record and
/// its encoding, and the import frees on one thread what it allocated on another; measured in
/// `cargo bench --bench lookup`, a miss took 20% less time (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Handle protocol address for UDP and TCP [default: 127.0.0.1:2641].
        #[arg(long)]
        handle: Option<SocketAddr>,
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
    /// Import identifiers from a JSON Lines file (one {"handle", "values"} object per line), or
    /// with --zone-file from a DNS zone file.
    Import {
        /// The file, or - for standard input.
        file: PathBuf,
        #[command(flatten)]
        settings: Settings,
        /// Records per transaction (at most 2000).
        #[arg(long, default_value_t = idnode::registry::MAX_BATCH)]
        batch: usize,
        /// FILE is a DNS zone file (RFC 1035, as BIND, Knot or NSD write it) of the apex
        /// (`[dns] apex`) or a prefix zone below it: each TXT value under an identifier's name
        /// becomes a value of that identifier.
        #[arg(long)]
        zone_file: bool,
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
        /// The node to ask [default: 127.0.0.1:5300 for DNS, 127.0.0.1:2641 for Handle].
        #[arg(long)]
        server: Option<SocketAddr>,
        /// Ask over TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// The node's apex zone (DNS).
        #[arg(long, default_value = "id.example.")]
        apex: String,
        /// The protocol to ask in.
        #[arg(long, value_enum, default_value_t = probe::Protocol::Dns)]
        protocol: probe::Protocol,
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
    Bench(probe::BenchArgs),
    /// Resolution statistics of a running node: lookups today by protocol and outcome, the
    /// busiest prefixes, every day kept, progress toward the target (`[ops]` in its config).
    Stats {
        /// The node's operations listener (`[ops] listen`, with `[ops] enabled = true`).
        #[arg(long, env = "IDNODE_OPS", default_value = "http://127.0.0.1:9641")]
        ops: String,
        /// Print the JSON report itself.
        #[arg(long)]
        json: bool,
    },
    /// Check that a node answers DNS (one SOA query for the apex over UDP, 2 s at most): exits 0
    /// when any DNS answer comes back, for health checks.
    Health {
        /// The node to ask.
        #[arg(long, default_value = "127.0.0.1:5300")]
        server: SocketAddr,
        /// The name whose SOA is asked: the node's apex, or a name outside it, which every node
        /// refuses by itself (a recursive node resolves its apex at the top-level node).
        #[arg(long, default_value = "id.example.")]
        apex: String,
    },
    /// Print the DNS name of an identifier, to use with dig.
    DnsName {
        identifier: String,
        #[arg(long, default_value = "id.example.")]
        apex: String,
    },
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
    /// Make an administrator key pair for the Handle protocol: the private key in the file CNRI's
    /// tools read (hdl-admintool, PublicKeyAuthenticationInfo), the public key beside it (.pub,
    /// HS_PUBKEY) and printed as the JSON value to register under the administrator.
    Keygen {
        /// The private key file to write (mode 0600); the public key goes to FILE.pub.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Encrypt the private key with the passphrase on this file's first line (CNRI's
        /// PBKDF2 and AES-128); without it the file is written unencrypted.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The index the printed HS_PUBKEY value gets (Handle.Net puts keys at 300).
        #[arg(long, default_value_t = 300)]
        index: u32,
    },
    /// Print the node's Handle site (GET_SITE_INFO) as CNRI's siteinfo.json, or write siteinfo.bin,
    /// for a Handle client that uses the node as its root.
    SiteInfo {
        /// Print siteinfo.json (the default).
        #[arg(long, conflicts_with = "binary")]
        json: bool,
        /// Write the binary siteinfo.bin to this file instead.
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
}

fn main() -> ExitCode {
    idnode::cli::init_logging();
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
        Command::Serve { settings, dns, http, handle, zones, roots, demo } => {
            // The file with the command line's settings over it: at start, and again on SIGHUP.
            let load = move || -> anyhow::Result<Config> {
                let mut config = settings.load()?;
                config.dns.listen = dns.unwrap_or(config.dns.listen);
                config.http.listen = http.unwrap_or(config.http.listen);
                config.handle.listen = handle.unwrap_or(config.handle.listen);
                if !zones.is_empty() {
                    config.dns.zones = zones.clone();
                }
                if !roots.is_empty() {
                    config.recursive.roots = roots.clone();
                }
                Ok(config)
            };
            serve::run(load()?, demo, load)
        }
        Command::Import { file, settings, batch, zone_file } => {
            data::import(&settings.load()?, &file, batch, zone_file)
        }
        Command::Export { settings, output, zone_file } => {
            data::export(&settings.load()?, output.as_deref(), zone_file)
        }
        Command::Admin { command: AdminCommand::Init { prefix, secret_file, settings } } => {
            data::admin_init(&settings.load()?, &prefix, secret_file.as_deref())
        }
        Command::Admin { command: AdminCommand::Keygen { out, passphrase_file, index } } => {
            data::admin_keygen(&out, passphrase_file.as_deref(), index)
        }
        Command::Admin { command: AdminCommand::SiteInfo { json: _, binary, settings } } => {
            data::site_info(&settings.load()?, binary.as_deref())
        }
        Command::Resolve { identifier, server, tcp, apex, protocol } => {
            probe::resolve(&identifier, protocol, server, tcp, &apex)
        }
        Command::Health { server, apex } => probe::health(server, &apex),
        Command::DnsName { identifier, apex } => probe::dns_name(&identifier, &apex),
        Command::Bench(args) => probe::bench(args),
        Command::Stats { ops, json } => remote::stats(&ops, json),
        Command::Id { command: IdCommand::Get { handle, types, index, json, api } } => {
            remote::get(&api, &handle, types, &index, json)
        }
        Command::Id { command: IdCommand::Put { handle, values, values_file, merge, no_overwrite, api } } => {
            let args = remote::PutArgs { values: &values, values_file: values_file.as_deref(), merge, no_overwrite };
            remote::put(&api, &handle, args)
        }
        Command::Id { command: IdCommand::Delete { handle, index, api } } => remote::delete(&api, &handle, &index),
        Command::Prefix { command: PrefixCommand::Add { prefix, operator_secret_file, api } } => {
            remote::prefix_add(&api, &prefix, operator_secret_file.as_deref())
        }
        Command::Prefix { command: PrefixCommand::List { prefix, page, page_size, api } } => {
            remote::prefix_list(&api, &prefix, page, page_size)
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
