//! The status page of the operations listener (`GET /`, `/status`): one self-contained HTML page
//! (inline CSS and script, no external assets, embedded in the binary) that reads
//! `/status.json` and draws it: the node's role and zones, the delegations below them with each
//! child node's health as this node sees it ([`health`]), lookups per day per secondary-node
//! prefix and per enterprise prefix (inline SVG charts), today's lookups by protocol and
//! outcome, the caches' hit ratios and the busiest prefixes.
//!
//! Prefixes, addresses and site descriptions are written by operators with credentials and are
//! treated as hostile: the page carries no data at all (the script puts every value in with
//! `textContent`, never as markup), the JSON escapes `<`, `>` and `&`, and a Content Security
//! Policy lets only the page's own script run.

pub mod delegations;
pub mod health;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use sha2::Digest;

use crate::cache::CacheStats;
use crate::config::Config;
use crate::node::Node;
use crate::record::site::Site;
use crate::stats::{Report, Series};
pub use health::Health;

/// The page; every value on it comes from `/status.json`.
const PAGE: &str = include_str!("page.html");
/// 90: days the charts show (a quarter; the statistics keep 400).
const CHART_DAYS: usize = 90;
/// 8: lines per chart besides `other` (more are unreadable).
const CHART_LINES: usize = 8;
/// 256: delegations listed on the page.
const MAX_LISTED: usize = 256;

/// What the configuration says about the page (read when the node starts).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The top-level nodes a recursive node follows (DNS and Handle); empty on other nodes.
    pub recursive_roots: Vec<SocketAddr>,
    pub handle_roots: Vec<SocketAddr>,
    /// How often the delegations are probed; `None`: never.
    pub probe_every: Option<Duration>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let secs = config.ops.health_interval_secs;
        Self {
            recursive_roots: config.recursive.roots.clone(),
            handle_roots: config.recursive.handle_roots.clone(),
            probe_every: (secs > 0).then(|| Duration::from_secs(secs)),
        }
    }
}

/// The role a node plays in the national hierarchy, as its configuration makes it: recursive
/// with roots to follow; otherwise by its shallowest zone, top-level for the whole namespace or
/// a top-level prefix (`88`), secondary for a secondary-node prefix (`88.100`), else an
/// authoritative (enterprise) node.
pub fn role(zones: &[String], recursive: bool) -> &'static str {
    let depth = zones.iter().map(|z| if z.is_empty() { 0 } else { z.split('.').count() }).min();
    match (recursive, depth) {
        (true, _) => "recursive",
        (false, Some(0 | 1)) => "top-level",
        (false, Some(2)) => "secondary",
        (false, _) => "authoritative",
    }
}

//------------ The JSON ------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Status {
    pub role: &'static str,
    /// The sequence number of the last write (the zone serial is its low 32 bits).
    pub write_sequence: u64,
    /// On a mirror: how it stands with its primary.
    pub mirror: Option<crate::node::MirrorStatus>,
    pub version: &'static str,
    /// The DNS apex identifiers are named under.
    pub apex: String,
    /// Every zone served (`""`: the whole namespace); `homed` are those homed at run time.
    pub zones: Vec<String>,
    pub homed: Vec<String>,
    pub recursive_roots: Vec<String>,
    pub handle_roots: Vec<String>,
    pub delegations: Vec<Delegation>,
    /// More delegations than listed, or too many prefix records to look through.
    pub delegations_truncated: bool,
    /// Seconds between probes of the delegations; 0: not probed.
    pub probe_every_secs: u64,
    pub stats: Report,
    pub series: Series,
    pub caches: Vec<CacheRatio>,
}

#[derive(Debug, Serialize)]
pub struct Delegation {
    pub prefix: String,
    pub zone: String,
    pub sites: Vec<SiteView>,
    /// The last probe; `None` until the prober has seen it.
    pub health: Option<health::Probe>,
}

#[derive(Debug, Serialize)]
pub struct SiteView {
    /// The site's `desc` attribute.
    pub description: String,
    pub primary: bool,
    pub dns_port: u16,
    /// `address` and the interfaces (`TCP 2641`) of each server.
    pub servers: Vec<ServerView>,
}

#[derive(Debug, Serialize)]
pub struct ServerView {
    pub address: String,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CacheRatio {
    pub cache: &'static str,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); `None` before the first lookup.
    pub ratio: Option<f64>,
    pub entries: usize,
    pub bytes: u64,
}

impl SiteView {
    fn of(site: &Site) -> Self {
        let description =
            site.attributes.iter().find(|a| a.name == "desc").map(|a| a.value.clone()).unwrap_or_default();
        let servers = site
            .servers
            .iter()
            .map(|s| ServerView {
                address: s.address.to_string(),
                interfaces: s.interfaces.iter().map(|i| format!("{} {}", i.protocol, i.port)).collect(),
            })
            .collect();
        Self { description, primary: site.primary_site, dns_port: site.dns_port(), servers }
    }
}

impl CacheRatio {
    fn of(cache: &'static str, stats: CacheStats) -> Self {
        let asked = stats.hits + stats.misses;
        let ratio = (asked > 0).then(|| stats.hits as f64 / asked as f64);
        Self { cache, hits: stats.hits, misses: stats.misses, ratio, entries: stats.entries, bytes: stats.bytes }
    }
}

/// What the status JSON is built from.
pub struct Sources<'a> {
    pub node: &'a Node,
    pub apex: String,
    pub settings: &'a Settings,
    pub health: &'a Health,
    pub caches: Vec<(&'static str, CacheStats)>,
}

impl Status {
    /// The status now: reads the registry (the delegations), so off the async threads.
    pub fn build(from: &Sources<'_>) -> Result<Self, crate::registry::RegistryError> {
        let zones = from.node.zones();
        let (found, delegations_truncated) = delegations::find(from.node, MAX_LISTED)?;
        let delegations = found
            .into_iter()
            .map(|d| Delegation {
                health: from.health.get(&d.prefix),
                sites: d.sites.iter().map(SiteView::of).collect(),
                prefix: d.prefix,
                zone: d.zone,
            })
            .collect();
        let recursive = !from.settings.recursive_roots.is_empty() || !from.settings.handle_roots.is_empty();
        let stats = from.node.stats();
        let mirror = from.node.mirror_status();
        Ok(Status {
            role: if mirror.is_some() { "mirror" } else { role(zones.prefixes(), recursive) },
            write_sequence: from.node.registry().seq(),
            mirror,
            version: env!("CARGO_PKG_VERSION"),
            apex: from.apex.clone(),
            zones: zones.prefixes().to_vec(),
            homed: zones.homed().to_vec(),
            recursive_roots: from.settings.recursive_roots.iter().map(ToString::to_string).collect(),
            handle_roots: from.settings.handle_roots.iter().map(ToString::to_string).collect(),
            delegations,
            delegations_truncated,
            probe_every_secs: from.settings.probe_every.map_or(0, |d| d.as_secs()),
            stats: stats.report(),
            series: stats.series(CHART_DAYS, CHART_LINES),
            caches: from.caches.iter().map(|(name, c)| CacheRatio::of(name, *c)).collect(),
        })
    }

    /// The JSON, with `<`, `>` and `&` escaped (`\u003c`): they occur only inside strings, so the
    /// document means the same, and no browser that sniffs it finds markup in it.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        Ok(escape_json(&serde_json::to_string(self)?))
    }
}

fn escape_json(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

//------------ The responses -------------------------------------------------------------------

/// The page, with a policy that lets only its own script run and connect back for its JSON.
pub fn page() -> Response {
    let mut response = (StatusCode::OK, PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(policy) = HeaderValue::from_str(policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    hardened(response)
}

/// The status JSON, or why it could not be built.
pub fn json(status: Result<Status, String>) -> Response {
    let response = match status.and_then(|s| s.to_json().map_err(|e| e.to_string())) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    hardened(response)
}

fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The Content Security Policy: the page's one script by its hash, its inline styles, its
/// JSON from the same origin, nothing else.
fn policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let script = inline_script(PAGE).unwrap_or_default();
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// The text of the page's one `<script>` element.
fn inline_script(page: &str) -> Option<&str> {
    let start = page.find("<script>")? + "<script>".len();
    let end = start + page[start..].find("</script>")?;
    Some(&page[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_follows_the_configuration() {
        let zones = |z: &[&str]| z.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(role(&zones(&[""]), false), "top-level");
        assert_eq!(role(&zones(&["88"]), false), "top-level");
        assert_eq!(role(&zones(&["88.105", "88.105.7"]), false), "secondary");
        assert_eq!(role(&zones(&["88.105.7"]), false), "authoritative");
        assert_eq!(role(&zones(&[""]), true), "recursive");
    }

    #[test]
    fn the_json_carries_no_markup_and_reads_back_the_same() {
        let json = serde_json::json!({"desc": "<script>alert(1)</script> & <img src=x onerror=alert(2)>"});
        let escaped = escape_json(&json.to_string());
        assert!(!escaped.contains('<') && !escaped.contains('>') && !escaped.contains('&'), "{escaped}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&escaped).unwrap(), json);
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_script() {
        let script = inline_script(PAGE).expect("the page has its script");
        assert!(script.contains("status.json"));
        assert_eq!(PAGE.matches("<script").count(), 1, "one script, the one the policy hashes");
        assert!(policy().contains("script-src 'sha256-") && !policy().contains("script-src 'unsafe"));
        assert!(!PAGE.contains("innerHTML") && !PAGE.contains("outerHTML") && !PAGE.contains("insertAdjacentHTML"));
        let page = PAGE.replace("http://www.w3.org/2000/svg", "");
        assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("src="), "no external assets");
    }
}
