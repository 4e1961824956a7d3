//! idnode: an identifier resolution server for the industrial internet.
//!
//! A node stores identifiers (`88.100.1/ABC-123`) with their values in the Handle value model
//! and answers for them over DNS; the HTTP (Handle.Net JSON) and Handle binary interfaces and
//! the node hierarchy build on the same registry and cache.
//!
//! # Layout
//! - [`identifier`]: `PREFIX/SUFFIX` syntax, validation, the case-folded registry key, and
//!   prefix-record naming (`0.NA/88.100` is the record of `88.100`).
//! - [`record`]: the Handle value model and its stored (postcard) form.
//! - [`record::json`]: the Handle.Net JSON shape of values, for files and the HTTP API.
//! - [`record::admin`]: the `HS_ADMIN` and `HS_VLIST` binary layouts.
//! - [`code`]: Handle response codes, which every core answer and error names.
//! - [`secret`]: `HS_SECKEY` values, sealed as salted Argon2id hashes before they are stored.
//! - [`registry`]: the durable store (redb), keyed by identifier: one transactional write
//!   primitive and a bulk-load variant for import.
//! - [`cache`]: the bounded, TTL-aware front cache of encoded answers.
//! - [`auth`]: administrators, the authenticator (bounded secret checks) and `HS_ADMIN`
//!   permissions.
//! - [`dns`]: the DNS query pipeline (the only user of hickory-proto): name mapping, wire
//!   parsing, zone answers and referrals, the recursive role, and a small client.
//! - [`http`]: the Handle.Net JSON API over HTTP (the only user of axum).
//! - [`node`]: the protocol-neutral core: resolve and list with read rights, the served
//!   [`node::Zones`] and their delegations, and the write path (authorize inside the write
//!   transaction, commit durably, then invalidate cached answers).
//! - [`server`]: transport: UDP workers, TCP connections, the HTTP listener, shutdown.
//! - [`import`]: JSON Lines import and export; [`demo`]: the demo namespace.
//! - [`bench`]: `idnode bench`, the load generator and capacity planner.
//! - [`record::site`]: `HS_SITE` values: where a delegated prefix is served.
//! - [`config`]: the TOML configuration and its defaults.
//!
//! # Request pipeline
//! ```text
//!  UDP worker / TCP connection         (server: bytes in, bytes out)
//!            │ request bytes
//!            ▼
//!  dns::Frontend::handle ── malformed ──> FORMERR / NOTIMP / drop
//!            │ parsed once: lower-cased name ── recursive node ──> dns::recursive
//!            ▼                                  (cached: answer; miss: Defer, server spawns it)
//!  cache ── hit ──> copy question, patch header, append encoded answer
//!            │ miss
//!            ▼
//!  dns::authoritative::zone ──> registry (redb) ──> encode, insert in cache
//! ```
//! Writes go to the registry first (durable), then invalidate the names they touch in the cache.
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

pub mod auth;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod code;
pub mod config;
pub mod demo;
pub mod dns;
pub mod http;
pub mod identifier;
pub mod import;
pub mod node;
pub mod record;
pub mod registry;
pub mod secret;
pub mod server;
mod sources;
