//! idnode: an identifier resolution server for the industrial internet.
//!
//! A node stores identifiers (`88.100.1/ABC-123`) with their values in the Handle value model
//! and answers for them over DNS, the HTTP (Handle.Net JSON) API and the Handle binary protocol;
//! the node hierarchy builds on the same registry and cache.
//!
//! # Layout
//! Three layers that never blur: transports move bytes, front ends translate one protocol into
//! calls on the node core, the core decides against the registry.
//!
//! Value model (no I/O):
//! - [`identifier`]: `PREFIX/SUFFIX` syntax, validation, the case-folded registry key, and
//!   prefix-record naming (`0.NA/88.100` is the record of `88.100`).
//! - [`record`]: the Handle value model and its stored (postcard) form; beside it the codecs of
//!   the values the node interprets: [`record::admin`] (`HS_ADMIN`, `HS_VLIST`),
//!   [`record::site`] (`HS_SITE`), and [`record::json`] (the Handle.Net JSON shape).
//! - [`code`]: Handle response codes, which every core answer and error names.
//!
//! Storage:
//! - [`registry`]: the durable store (redb): one transactional write primitive, a bulk variant
//!   for import, snapshots and listings. It refuses an unsealed secret.
//! - [`secret`]: `HS_SECKEY` values sealed as salted Argon2id hashes before they are stored.
//! - [`cache`]: the bounded, TTL-aware front cache of encoded answers.
//!
//! The node core (protocol-neutral; imports no front end):
//! - [`node`]: resolve and list under the read rules, put, delete and batch decided by one
//!   function inside the write transaction (`node::rules`), the served [`node::Zones`] and
//!   their delegations, the [`node::Subscriber`] hook the front ends' caches hang on, and the
//!   [`node::quota`]s (identifiers and derived prefixes per prefix, requests per administrator
//!   and day).
//! - [`auth`]: administrators, `HS_ADMIN` permissions, the authenticator (bounded secret
//!   checks, throttling); `Admin::node()` is the trusted in-process principal that `admin init`,
//!   the demo and the tests write as.
//!
//! Front ends:
//! - [`dns`]: parses a query once, then the authoritative role (zone answers, referrals, the
//!   answer cache) or the recursive role; the one query exchange and TCP framing, the `idnode
//!   resolve` client, zone-file export and import, zone transfers out (AXFR, IXFR, TSIG,
//!   NOTIFY), response rate limiting. The only user of hickory-proto.
//! - [`http`]: the Handle.Net JSON API (handlers that translate requests into node calls, the
//!   one code-to-status table, the listener with its limits and TLS). The only user of axum.
//! - [`handle`]: the Handle binary protocol (RFC 3652 as CNRI's Handle.Net 9.x speaks it): the
//!   message layer (envelope, header, request digests, UDP chunks), resolution through the
//!   node core behind a cache of encoded responses, authentication by challenge and response,
//!   sessions, administration, the node's own site (GET_SITE_INFO) and the server key that
//!   signs certified responses.
//!
//! Transport and assembly:
//! - [`server`]: [`server::Server::start`], the one way from a [`config::Config`] to a bound
//!   node; UDP workers, TCP connections, the HTTP listener's task, the Handle protocol's TCP
//!   and UDP sockets, shutdown.
//! - `accept`: the accept loop every TCP listener (DNS, Handle, HTTP) shares: a connection
//!   permit before `accept`, slots per client address.
//! - [`config`]: the TOML configuration and its defaults.
//! - [`trust`]: the certificates the node's own HTTPS clients trust (the operator CLI's
//!   `--ca-file`, a mirror's `ca_file`).
//!
//! Replication: the registry's change log (`registry::changes`) feeds zone transfers
//! (`dns::xfr`) and idnode mirrors: a primary serves its log and records over the HTTP API
//! (`http::replication`), a mirror copies and follows it ([`mirror`](mod@mirror), with the
//! node core's mirror mode in `node::mirror`).
//!
//! Around the node: [`cli`] (the subcommands' bodies; `main.rs` only parses and dispatches),
//! [`import`](mod@import) (JSON Lines import and export), [`demo`] (the demo namespace), [`bench`](mod@bench) (`idnode
//! bench`, the load generator and capacity planner).
//!
//! Operations: [`stats`] (lookups by protocol, outcome, prefix and day, saved in the registry),
//! [`ops`] (the operations listener: `/metrics`, `/stats`) and [`status`] (its status page, and
//! the background prober of child nodes' health).
//!
//! # The path of a DNS query
//! ```text
//!  server::udp worker (recvmmsg batch) / server::tcp connection (dns::framing)
//!            │ request bytes
//!            ▼
//!  dns::Frontend::handle ── wire::parse once ── malformed ──> FORMERR / NOTIMP / drop
//!            │ Question (lower-cased name)    ── outside every zone ──> REFUSED
//!            ├──────────── recursive node ──> recursive::Recursor: cached ──> Respond
//!            ▼                                miss ──> Verdict::Defer(Pending): spawned
//!  dns::authoritative: cache ── hit ──> copy question, patch header, append encoded answer
//!            │ miss
//!            ▼
//!  authoritative::zone ──> registry snapshot (redb) ──> answer / referral at a delegation
//!            │                                           (node::Zones) ──> encode, cache
//!            ▼
//!  Verdict::Respond ──> the worker sends (RRL first, over UDP)
//! ```
//!
//! # The path of a write
//! ```text
//!  http::listener (limits, TLS) ──> http::handles::put: parse, authenticate (Argon2, blocking
//!            │                      pool), read the body only then
//!            ▼
//!  node::Node::put / delete / batch ──> seal new secrets (outside the transaction)
//!            ▼
//!  registry::Registry::transact ── for each op: node::rules::apply decides on what the
//!            │                     transaction sees (HS_ADMIN rights, prefixes), then writes
//!            ▼ durable commit
//!  node::Subscriber::changed ──> dns::authoritative drops the stale cached answers,
//!                                 handle::cache the stale cached responses
//!            ▼
//!  audit log ──> the front end maps the outcome (or the error's code) to its reply
//! ```
//!
//! # Glossary
//! - **identifier**: `PREFIX/SUFFIX`, e.g. `88.100.1/ABC-123`; matched ignoring ASCII case.
//! - **prefix**: dot-separated levels (`88` national, `100` secondary node, `1` enterprise).
//! - **suffix**: any UTF-8 text after the first `/`, assigned by the prefix's owner.
//! - **value**: one typed datum of an identifier (index, type, data, TTL, permissions).
//! - **record**: an identifier with all its values, as stored.
//! - **node**: one running idnode serving some prefixes.
//! - **delegation**: a parent node handing a sub-prefix to a child node.
//! - **referral**: an answer that points a client at the node responsible for a prefix.

pub mod accept;
pub mod auth;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod code;
pub mod config;
pub mod demo;
pub mod dns;
pub mod handle;
pub mod http;
pub mod identifier;
pub mod import;
pub mod mirror;
pub mod node;
pub mod ops;
pub mod record;
pub mod registry;
pub mod secret;
pub mod server;
pub mod stats;
pub mod status;
pub mod trust;
