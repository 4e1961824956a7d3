//! Configuration: one TOML file, every field optional, defaults that work on a laptop.
//!
//! Command-line flags override the file (see `main.rs`). Each tunable says where its number
//! comes from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod replication;

pub use replication::{
    Allow, Notify, Replication, ReplicationConfig, ReplicationError, TsigKey, key_name as tsig_key_name,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the registry lives.
    pub data_dir: PathBuf,
    pub dns: DnsConfig,
    pub http: HttpConfig,
    pub handle: HandleConfig,
    pub cache: CacheConfig,
    pub recursive: RecursiveConfig,
    pub quota: QuotaConfig,
    pub ops: OpsConfig,
    pub replication: ReplicationConfig,
    pub registry: RegistryConfig,
    /// The log filter, as `RUST_LOG` takes it (`info`, `idnode=debug,warn`); over `RUST_LOG`
    /// when set, and changed by a reload (SIGHUP).
    pub log: Option<String>,
}

/// The registry's storage (`[registry]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// 64: MiB of registry pages redb keeps in memory. Pages it does not keep are read again
    /// from the kernel's page cache, which is shared and reclaimable, at a system call each.
    /// Measured on 1M identifiers (161 MB of registry) with a 320 MiB front cache: RSS after a
    /// warm run 443 MB at 64 and 531 MB at 128; the first pass over the names (all misses) ran
    /// at 87-99k queries/s at 64, 102k at 128, 81k at 32 (benches/README.md).
    pub cache_mb: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { cache_mb: 64 }
    }
}

impl RegistryConfig {
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mb.max(1).saturating_mul(1 << 20)
    }
}

/// Operations (`[ops]`): the listener for monitoring, and the lookup target the statistics
/// measure progress toward (`crate::stats`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// false (the default): no operations listener; statistics are counted and saved all the
    /// same. Off by default so that several nodes on one host need no port each.
    pub enabled: bool,
    /// 127.0.0.1:9641: `/metrics` (OpenMetrics text, which Prometheus scrapes) and `/stats`
    /// (JSON). Loopback by default: per-prefix volumes are the operator's business, not the
    /// public's.
    pub listen: SocketAddr,
    /// 0: no target. Lookups the node should serve in `target_days` days (a plan's
    /// "2,000,000,000 lookups in a year").
    pub target_lookups: u64,
    /// 365: the target's period in days.
    pub target_days: u32,
    /// 30: seconds between the status page's probes of the child nodes (one SOA query to each
    /// delegation's first server, at most 64, 1 s each); 0: no probes. Half a minute shows an
    /// outage while an operator looks, at two queries a minute per child.
    pub health_interval_secs: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:9641".parse().expect("literal address"),
            target_lookups: 0,
            target_days: 365,
            health_interval_secs: 30,
        }
    }
}

impl OpsConfig {
    /// The lookup target, if one is set.
    pub fn target(&self) -> Option<crate::stats::Target> {
        (self.target_lookups > 0)
            .then(|| crate::stats::Target { lookups: self.target_lookups, days: self.target_days.max(1) })
    }
}

/// Quotas (`[quota]`, see `crate::node::quota`): the national system's codes 603-605 as limits
/// the node keeps. Every limit defaults to 0, no limit, so a node behaves as before until its
/// operator sets one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// The most identifiers one prefix may hold (prefix records aside); one more is refused
    /// with 604. Replacing or deleting an identifier is never refused.
    pub identifiers: u64,
    /// The most derived prefixes with a prefix record directly under one prefix (`0.NA/88.100.x`
    /// under `88.100`); one more is refused with 605.
    pub prefixes: u64,
    /// The most requests one administrator (its identifier, whatever the index) may make in a
    /// UTC day over HTTP and the Handle protocol; more are refused with 603. Anonymous requests
    /// are not counted. The counts are kept in memory and restart at a restart.
    pub daily_requests: u64,
    /// Overrides by prefix (`[quota.prefix."88.100.1"]`), with any of the three keys: they apply
    /// at and below that prefix (for `daily_requests`, to administrators whose identifier lies
    /// there: `0.NA/88.100.1`, `88.100.1/admin`); the deepest override that sets a key wins.
    pub prefix: BTreeMap<String, QuotaOverride>,
}

/// One `[quota.prefix."P"]` table; a key left out keeps the value from above, and 0 lifts the
/// limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    pub identifiers: Option<u64>,
    pub prefixes: Option<u64>,
    pub daily_requests: Option<u64>,
}

impl QuotaConfig {
    /// The quotas the node core keeps, or the first override whose prefix is no prefix.
    pub fn quotas(&self) -> Result<crate::node::Quotas, ConfigError> {
        use crate::node::quota::{Limits, Override};
        let mut seen = std::collections::HashSet::new();
        for prefix in self.prefix.keys() {
            let key = format!("quota.prefix.{prefix:?}");
            crate::identifier::check_prefix(prefix)
                .map_err(|e| ConfigError::BadQuotaPrefix { key: key.clone(), reason: e.to_string() })?;
            if !seen.insert(prefix.to_ascii_lowercase()) {
                let reason = "another override names the same prefix in other case".to_owned();
                return Err(ConfigError::BadQuotaPrefix { key, reason });
            }
        }
        let global =
            Limits { identifiers: self.identifiers, prefixes: self.prefixes, daily_requests: self.daily_requests };
        let overrides = self.prefix.iter().map(|(prefix, o)| {
            let o = Override { identifiers: o.identifiers, prefixes: o.prefixes, daily_requests: o.daily_requests };
            (prefix.clone(), o)
        });
        Ok(crate::node::Quotas::new(global, overrides))
    }
}

/// The Handle protocol listener (`crate::handle` over `crate::server`'s sockets): TCP and UDP
/// on one address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandleConfig {
    /// false: no Handle protocol sockets.
    pub enabled: bool,
    /// TCP and UDP address. 2641: the Handle.Net servers' port (CNRI `hdl-setup-server`).
    pub listen: SocketAddr,
    /// 1024: simultaneous TCP clients before `accept` waits for a free slot (as
    /// `dns.tcp_max_connections`).
    pub tcp_max_connections: usize,
    /// 64: simultaneous TCP clients from one address, as for DNS: the national SDKs keep a
    /// small pool of persistent connections each, and one host cannot take all 1024.
    pub tcp_max_connections_per_source: usize,
    /// 60: seconds a TCP client may stay idle, or take to send a message or read an answer.
    /// CNRI's client waits 60 s for an answer (`tcp_timeout`); the national SDKs keep pooled
    /// connections alive with a resolution of `0` when idle.
    pub tcp_idle_timeout_secs: u64,
    /// The address a Handle client should use to reach this node, published in the node's own
    /// site (GET_SITE_INFO, `idnode admin site-info`). Needed when `listen` is unspecified
    /// (0.0.0.0 or ::), which means nothing to a client; otherwise `listen`'s address is
    /// published. The ports are always `listen`'s and `[http] listen`'s.
    pub public_address: Option<IpAddr>,
    /// 1: the site's serial number. CNRI's client compares it with the serial in response
    /// headers to notice a changed site; raise it when the published address or key changes.
    pub site_serial: u16,
    /// "idnode": the site's `desc` attribute, which CNRI's tools show.
    pub site_description: String,
    /// 64: MiB for the front cache of encoded RESOLUTION responses (`crate::handle::cache`;
    /// each entry weighs its encoded bodies, its keys and a fixed overhead, like `[cache]`). An
    /// identifier's response with its key weighs about 250 bytes, so the hot set of a quarter
    /// million identifiers fits; a fifth of the DNS cache's 320 MiB, Handle clients being the
    /// enterprise SDKs rather than every resolver. 0 turns the cache off.
    pub cache_mb: u64,
    /// []: the administrators (`INDEX:IDENTIFIER`, such as `300:0.NA/88`, or a group of them)
    /// who may home and unhome prefixes at this node with HOME_NA and UNHOME_NA, as CNRI's
    /// `server_admins`. Empty: nobody may.
    pub server_admins: Vec<String>,
}

impl HandleConfig {
    /// The server administrators as `(index, identifier)`, each checked.
    pub fn server_admins(&self) -> Result<Vec<(u32, String)>, ConfigError> {
        self.server_admins
            .iter()
            .map(|admin| {
                parse_admin(admin).map_err(|reason| ConfigError::BadServerAdmin { admin: admin.clone(), reason })
            })
            .collect()
    }

    /// The most the resolution cache may weigh; `None` when it is off.
    pub fn cache_bytes(&self) -> Option<u64> {
        (self.cache_mb > 0).then(|| self.cache_mb.saturating_mul(1 << 20))
    }
}

impl Default for HandleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:2641".parse().expect("literal address"),
            tcp_max_connections: 1024,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout_secs: 60,
            public_address: None,
            site_serial: 1,
            site_description: "idnode".into(),
            cache_mb: 64,
            server_admins: Vec::new(),
        }
    }
}

/// The recursive role: with `roots` set, the node resolves names under the apex for clients by
/// following referrals from those top-level nodes, and serves no zone of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecursiveConfig {
    /// The top-level nodes' DNS addresses; empty: not a recursive node.
    pub roots: Vec<SocketAddr>,
    /// The top-level nodes' Handle protocol addresses (TCP); empty: Handle requests asking
    /// for recursion are not resolved for clients (`crate::handle::recursive`). The limits
    /// below apply to them too.
    pub handle_roots: Vec<SocketAddr>,
    /// 53: the DNS port of the child nodes that referrals name (glue carries no port).
    pub port: u16,
    /// 1000: milliseconds to wait for one server before asking the next (a loopback or LAN
    /// round trip is well under 10 ms; a dead server should cost a client about a second).
    pub timeout_ms: u64,
    /// 8: referrals followed at most (the national tree is 3-4 levels deep).
    pub max_referrals: usize,
    /// 1024: client queries being resolved at once, over UDP and TCP together; more are dropped
    /// unanswered, and their clients ask again after their own timeout (Unbound's
    /// `num-queries-per-thread`, 1024 in builds with libevent, which drops in the same way).
    /// Each one holds a task, and at most one upstream socket.
    pub max_in_flight: usize,
    /// 3000: milliseconds one resolution may take in all, every referral, server, retry and TCP
    /// fallback included; then SERVFAIL. Below the 5 s a stub resolver (glibc's `timeout:5`, dig)
    /// waits before it asks again, so the client hears SERVFAIL instead of nothing.
    pub resolution_budget_ms: u64,
    /// 86400: the longest a cached answer or delegation is kept, and the largest TTL written to
    /// clients, whatever the upstream says (Unbound's `cache-max-ttl`, one day).
    pub max_ttl: u32,
    /// 3600: the same for NXDOMAIN and NODATA (Unbound's `cache-max-negative-ttl`, one hour).
    pub max_negative_ttl: u32,
}

impl Default for RecursiveConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            handle_roots: Vec::new(),
            port: 53,
            timeout_ms: 1000,
            max_referrals: 8,
            max_in_flight: 1024,
            resolution_budget_ms: 3000,
            max_ttl: 86_400,
            max_negative_ttl: 3600,
        }
    }
}

/// The HTTP listener (`crate::http::listener`). Every timeout is in whole seconds; 0 is raised
/// to 1, so that no limit can be switched off by accident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The Handle.Net JSON API. 8000: Handle.Net's HTTP port.
    pub listen: SocketAddr,
    /// 1024: simultaneous connections before `accept` waits for a free slot (the same cap as
    /// `dns.tcp_max_connections`, and the default `ulimit -n` leaves room for it).
    pub max_connections: usize,
    /// 64: simultaneous connections from one client IP address; more are closed at once. A
    /// browser opens 6 per host and a bulk importer a few dozen, while 64 is 1/16 of
    /// `max_connections`, so one address cannot take more than a sixteenth of the node (clients
    /// behind one NAT share it; an IPv6 client owning a /64 is not held by it).
    pub max_connections_per_source: usize,
    /// 10: seconds to receive a request's complete headers (hyper's `header_read_timeout`; a
    /// client on a slow link sends a few hundred bytes of headers in well under a second). In
    /// hyper 1.x the same timer also runs while a keep-alive connection waits for its next
    /// request, so it is the keep-alive timeout too (see `crate::http::listener`).
    pub header_timeout_secs: u64,
    /// 60: a connection on which a read or a write has waited this long is closed (a client that
    /// stops sending its body or stops reading its response). Keep it above
    /// `request_timeout_secs`: while a handler works, hyper keeps a read pending to notice a
    /// client that hangs up, and that wait counts here.
    pub idle_timeout_secs: u64,
    /// 30: seconds for a whole request, handler and reading the body included (a 64 MiB batch
    /// on a 20 Mbit/s link takes about 27 s); then the answer is 503 with responseCode 2.
    pub request_timeout_secs: u64,
    /// A PEM file with the certificate chain, leaf first. With `tls_key` set too, the listener
    /// speaks HTTPS only; one without the other is an error at startup.
    pub tls_cert: Option<PathBuf>,
    /// A PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// 10: seconds for a TLS handshake (two round trips; as long as the header timeout).
    pub tls_handshake_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".parse().expect("literal address"),
            max_connections: 1024,
            max_connections_per_source: 64,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            request_timeout_secs: 30,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP address. 5300: an unprivileged port, so a newcomer needs no root.
    pub listen: SocketAddr,
    /// The zone under which identifiers are served. `id.example.` is reserved for documentation
    /// (RFC 2606), so it never collides with a real zone; operators set their own.
    pub apex: String,
    /// The prefixes this node is authoritative for, each a zone under the apex (`88.105` is
    /// `105.88.<apex>`); `""` is the whole namespace. A top-level node serves `["88"]` or
    /// `[""]`, a secondary node its own prefix.
    pub zones: Vec<String>,
    /// UDP sockets (SO_REUSEPORT), one worker each; 0 means one per CPU core.
    pub udp_workers: usize,
    /// 1232: the EDNS UDP payload recommended by DNS Flag Day 2020 (no IP fragmentation).
    pub max_udp_payload: u16,
    /// 1024: simultaneous TCP clients before `accept` waits for a free slot.
    pub tcp_max_connections: usize,
    /// 64: simultaneous TCP clients from one address; more are closed at once. A resolver farm
    /// behind one address opens a few dozen at most, and one host can no longer take all 1024.
    pub tcp_max_connections_per_source: usize,
    /// 10: seconds an idle TCP client is kept (RFC 7766 6.2.3 suggests seconds, not minutes), and
    /// the longest a client may take to send a query or read an answer.
    pub tcp_idle_timeout_secs: u64,
    /// The SOA RNAME; default `hostmaster.<apex>`.
    pub hostmaster: Option<String>,
    /// The zone's name servers; default one, `ns1.<apex>`, at the listen address.
    pub nameservers: Vec<NameServer>,
    /// 3600: TTL of the SOA and NS records (one hour, common for zone infrastructure).
    pub ttl: u32,
    /// 300: negative-caching TTL, the SOA MINIMUM (RFC 2308: 1-3 hours is typical; identifiers
    /// are registered often, so a newly registered one should not stay unknown for long).
    pub negative_ttl: u32,
    /// 3600 / 600 / 1209600: SOA refresh, retry, expire (RIPE-203 recommendations).
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    /// 300: TTL of referrals to child nodes, so that resolvers follow a moved secondary node
    /// within five minutes.
    pub referral_ttl: u32,
    /// Response rate limiting over UDP (see [`crate::dns::rrl`]).
    pub rrl: RrlConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServer {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// The most memory the cached answers take, in MiB (each entry weighs its encoded answers,
    /// its key and a fixed overhead). 320: an identifier with four records weighs about 440
    /// bytes and a nonexistent name about 260, so the hot set of a busy node (700,000 names, as
    /// in benches/compare) fits. A recursive node's caches share it: answers 90%, delegations
    /// and failure counts 5% each.
    pub size_mb: u64,
    /// true: after a start, fill the cache from the registry in key order on a thread of its
    /// own, until it holds 90% of `size_mb` or every identifier, so the first queries are hits
    /// (`crate::dns::authoritative::Prefilled`). The node answers meanwhile; a recursive node
    /// has nothing to fill.
    pub prefill: bool,
}

impl CacheConfig {
    pub fn max_bytes(&self) -> u64 {
        self.size_mb.saturating_mul(1 << 20)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("idnode-data"),
            dns: DnsConfig::default(),
            http: HttpConfig::default(),
            handle: HandleConfig::default(),
            cache: CacheConfig::default(),
            recursive: RecursiveConfig::default(),
            quota: QuotaConfig::default(),
            ops: OpsConfig::default(),
            replication: ReplicationConfig::default(),
            registry: RegistryConfig::default(),
            log: None,
        }
    }
}

impl DnsConfig {
    /// The zones the node serves, as the one value its core and every front end use.
    pub fn zones(&self) -> crate::node::Zones {
        crate::node::Zones::new(self.zones.clone())
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5300".parse().expect("literal address"),
            apex: "id.example.".into(),
            zones: vec![String::new()],
            udp_workers: 0,
            max_udp_payload: 1232,
            tcp_max_connections: 1024,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout_secs: 10,
            hostmaster: None,
            nameservers: Vec::new(),
            ttl: 3600,
            negative_ttl: 300,
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            referral_ttl: 300,
            rrl: RrlConfig::default(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { size_mb: 320, prefill: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("dns.apex {apex:?} is not a domain name: {reason}")]
    BadApex { apex: String, reason: String },
    #[error("handle.server_admins: {admin:?}: {reason}")]
    BadServerAdmin { admin: String, reason: String },
    #[error("dns.zones: {zone:?} is not a prefix: {reason}")]
    BadZone { zone: String, reason: String },
    #[error("{key}: not a prefix: {reason}")]
    BadQuotaPrefix { key: String, reason: String },
    #[error("name server {name:?} is not a domain name: {reason}")]
    BadNameServer { name: String, reason: String },
    #[error(transparent)]
    Replication(#[from] ReplicationError),
}

/// An administrator as the settings name one, `INDEX:IDENTIFIER` (`300:0.NA/88`).
pub fn parse_admin(admin: &str) -> Result<(u32, String), String> {
    let (index, identifier) = admin.split_once(':').ok_or("it is not INDEX:IDENTIFIER")?;
    let index = index.parse().map_err(|_| "its index is not a number from 0 to 4294967295")?;
    let identifier = crate::identifier::Identifier::parse(identifier).map_err(|e| e.to_string())?;
    Ok((index, identifier.to_string()))
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    /// UDP workers to run: the configured number, or one per core.
    pub fn udp_workers(&self) -> usize {
        match self.dns.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Response rate limiting over UDP (`[dns.rrl]`), applied by `crate::dns::rrl`: per client
/// network, a token bucket refilled at `responses_per_second`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    /// Responses per second allowed per bucket; 0 turns RRL off. 200: NSD's default
    /// `rrl-ratelimit` (BIND and Knot have no default; their documentation's examples use 5 to
    /// 20, which suits a caching-resolver population; an identifier zone answers busy resolvers
    /// that ask for many names, so the gentler NSD figure is used).
    pub responses_per_second: u32,
    /// 1 in `slip` limited responses is sent truncated (TC) instead of dropped; 0 drops all, 1
    /// truncates all. 2: NSD's `rrl-slip` and BIND's `slip` default (Knot's is 1), so a real
    /// client gets a TC answer on its first or second try.
    pub slip: u32,
    /// Seconds of rate a bucket can save up as burst credit: a bucket holds at most
    /// `responses_per_second * window_secs` tokens. 4: Knot's bucket capacity (`RRL_CAPACITY`,
    /// 4 s). BIND's `window` (15 s) is a different thing, how long a flooder's debt is
    /// remembered; as burst credit 15 s would let a quiet attacker fire 15 seconds' worth of
    /// answers at once.
    pub window_secs: u32,
    /// Client networks share a bucket: IPv4 /24 (BIND, Knot, NSD), so that an attacker cannot
    /// escape the limit by forging neighbouring addresses of the victim.
    pub ipv4_prefix_len: u8,
    /// IPv6 /56 (BIND and Knot; NSD uses /64): a site is typically given a /56 or /48.
    pub ipv6_prefix_len: u8,
    /// Networks never limited, as "ADDR/LEN" strings, e.g. "127.0.0.0/8", "::1/128" (a bare
    /// address means that one address; host bits beyond LEN are ignored). Default: loopback
    /// only, so local tools and benchmarks are not limited; a forged loopback source cannot
    /// come in from outside.
    pub exempt: Vec<String>,
    /// Buckets in the table, a power of two. Fixed size: memory is bounded (about 40 bytes a
    /// bucket) whatever the traffic. 65,536 (2.5 MiB): smaller than Knot (393,241) and NSD
    /// (1,000,000), which serve far more distinct clients; a collision only makes two keys
    /// take turns in one bucket, which resets it (as in Knot), so a busier node should raise it.
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            responses_per_second: 200,
            slip: 2,
            window_secs: 4,
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 56,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            table_size: 1 << 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_unknown_fields_are_refused() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.dns.listen.port(), 5300);
        assert_eq!(c.dns.max_udp_payload, 1232);
        assert_eq!((c.handle.enabled, c.handle.listen.port(), c.handle.tcp_idle_timeout_secs), (true, 2641, 60));
        let c: Config = toml::from_str("[dns]\napex = \"id.example.cn.\"\n[cache]\nsize_mb = 10").unwrap();
        assert_eq!((c.dns.apex.as_str(), c.cache.max_bytes()), ("id.example.cn.", 10 << 20));
        let r = &c.recursive;
        assert_eq!(
            (r.max_in_flight, r.resolution_budget_ms, r.max_ttl, r.max_negative_ttl),
            (1024, 3000, 86_400, 3600)
        );
        let err = toml::from_str::<Config>("[dns]\nlisten_on = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `listen_on`"), "{err}");
    }

    #[test]
    fn quotas_default_to_none_and_overrides_name_prefixes() {
        let c: Config = toml::from_str("").unwrap();
        let q = c.quota.quotas().unwrap();
        assert_eq!((q.identifiers("88"), q.prefixes("88"), q.daily_requests("88")), (0, 0, 0));
        let text = "[quota]\nidentifiers = 10\n[quota.prefix.\"88.100.1\"]\nidentifiers = 3\ndaily_requests = 7\n";
        let q = toml::from_str::<Config>(text).unwrap().quota.quotas().unwrap();
        assert_eq!((q.identifiers("88.100.1.2"), q.identifiers("88.100"), q.daily_requests("88.100.1")), (3, 10, 7));
        let bad = toml::from_str::<Config>("[quota.prefix.\"88..1\"]\nprefixes = 1\n").unwrap();
        let err = bad.quota.quotas().unwrap_err().to_string();
        assert!(err.starts_with("quota.prefix.\"88..1\": not a prefix"), "{err}");
        let err = toml::from_str::<Config>("[quota.prefix.\"88\"]\nidentifier = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `identifier`"), "{err}");
    }

    #[test]
    fn the_example_configs_load_and_public_nodes_use_https() {
        for name in ["top", "secondary-101", "secondary-102", "recursive"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docker/{name}.toml"));
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            crate::dns::zone_config(&config.dns, &config.dns.zones()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let public = !config.http.listen.ip().is_loopback();
            assert!(!public || config.http.tls_cert.is_some() && config.http.tls_key.is_some(), "{name}");
            assert!(config.dns.rrl.responses_per_second > 0, "{name}: RRL is on");
        }
    }
}
