//! `[replication]`: the change log's window, and who may transfer the node's zones (AXFR and
//! IXFR, with TSIG keys) and is told of writes (NOTIFY). Checked into [`Replication`] before the
//! node starts, so that a bad key or address is a configuration error, not a refused transfer.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use crate::registry::LogWindow;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// 100,000: write transactions the change log keeps, for IXFR (see
    /// `crate::registry::LogWindow`).
    pub log_keep: u64,
    /// 7: days the change log keeps a write.
    pub log_keep_days: u64,
    /// 4: zone transfers served at once; a further request waits for one to end. A transfer
    /// reads the registry on a thread of its own, so this bounds what secondaries can take from
    /// the queries.
    pub max_transfers: usize,
    /// TSIG keys (RFC 8945) for transfers and NOTIFY.
    pub keys: Vec<KeyConfig>,
    /// Who may transfer the zones. None by default: every transfer is refused.
    pub allow_transfer: Vec<AllowConfig>,
    /// Secondaries told of every write (NOTIFY, RFC 1996), coalesced.
    pub notify: Vec<NotifyConfig>,
    /// Administrators (`INDEX:IDENTIFIER`, or groups) who may read this node's change log and
    /// records over the HTTP API: its idnode mirrors. None by default.
    pub mirrors: Vec<String>,
    /// Makes this node a mirror of a primary (see [`crate::mirror`]).
    pub mirror: Option<MirrorConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The primary's HTTP API, `https://primary.example:8000` (`http://` only on loopback or a
    /// trusted network: the secret travels with every request).
    pub primary: String,
    /// This mirror's administrator at the primary, `INDEX:IDENTIFIER`, listed in the primary's
    /// `[replication] mirrors`.
    pub user: String,
    /// Its secret, or a file holding it.
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// PEM file of the CA that signed the primary's certificate; the public roots without it.
    pub ca_file: Option<PathBuf>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        let window = LogWindow::default();
        Self {
            log_keep: window.keep,
            log_keep_days: window.keep_secs / 86_400,
            max_transfers: 4,
            keys: Vec::new(),
            allow_transfer: Vec::new(),
            notify: Vec::new(),
            mirrors: Vec::new(),
            mirror: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key's name, a domain name (`idnode-xfr` or `idnode-xfr.`), as the secondary names it.
    pub name: String,
    /// `hmac-sha256`, the one algorithm served (RFC 8945 makes it mandatory to implement).
    pub algorithm: String,
    /// The shared secret, base64, as `keymgr`, `tsig-keygen` or `head -c32 /dev/urandom | base64`
    /// print it; or `secret_file`, a file holding it, to keep it out of this file.
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// An address (`192.0.2.1`) or a network (`192.0.2.0/24`); any source port.
    pub address: String,
    /// The key a request must be signed with; without it the address alone is trusted.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The secondary's DNS address, UDP.
    pub address: SocketAddr,
    /// The key NOTIFY messages are signed with.
    pub key: Option<String>,
}

/// A TSIG key, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Lower case, with the trailing dot.
    pub name: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Who may transfer: a network, and the key its requests must carry.
#[derive(Debug, Clone)]
pub struct Allow {
    pub network: ipnet::IpNet,
    pub key: Option<TsigKey>,
}

/// A secondary to notify.
#[derive(Debug, Clone)]
pub struct Notify {
    pub address: SocketAddr,
    pub key: Option<TsigKey>,
}

/// `[replication]`, checked.
#[derive(Debug, Clone, Default)]
pub struct Replication {
    pub window: LogWindow,
    pub max_transfers: usize,
    /// Every key, for telling an unknown key (BADKEY) from a key that is not the one required.
    pub keys: Vec<TsigKey>,
    pub allow: Vec<Allow>,
    pub notify: Vec<Notify>,
    /// Who may read the change log and records: `(index, identifier)`.
    pub mirrors: Vec<(u32, String)>,
    /// Set on a mirror.
    pub mirror: Option<crate::mirror::MirrorSettings>,
}

/// Why `[replication]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("replication.keys {name:?}: {reason}")]
    BadKey { name: String, reason: String },
    #[error("replication: no key named {name:?} in replication.keys")]
    UnknownKey { name: String },
    #[error("replication.allow_transfer {address:?}: not an address or a network ({reason})")]
    BadAddress { address: String, reason: String },
    #[error("replication.mirrors {admin:?}: {reason}")]
    BadMirror { admin: String, reason: String },
    #[error("replication.mirror: {0}")]
    BadPrimary(String),
}

impl ReplicationConfig {
    /// Reads the keys (and their files) and checks every reference to them.
    pub fn resolve(&self) -> Result<Replication, ReplicationError> {
        let keys = self.keys.iter().map(KeyConfig::resolve).collect::<Result<Vec<_>, _>>()?;
        let find = |name: &Option<String>| -> Result<Option<TsigKey>, ReplicationError> {
            let Some(name) = name else { return Ok(None) };
            let wanted = key_name(name);
            keys.iter()
                .find(|k| k.name == wanted)
                .cloned()
                .map(Some)
                .ok_or_else(|| ReplicationError::UnknownKey { name: name.clone() })
        };
        let allow = self
            .allow_transfer
            .iter()
            .map(|a| {
                let network = match a.address.parse::<ipnet::IpNet>() {
                    Ok(net) => net.trunc(),
                    Err(e) => a.address.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                        ReplicationError::BadAddress { address: a.address.clone(), reason: e.to_string() }
                    })?,
                };
                Ok(Allow { network, key: find(&a.key)? })
            })
            .collect::<Result<_, ReplicationError>>()?;
        let notify = self
            .notify
            .iter()
            .map(|n| Ok(Notify { address: n.address, key: find(&n.key)? }))
            .collect::<Result<_, ReplicationError>>()?;
        let window = LogWindow { keep: self.log_keep.max(1), keep_secs: self.log_keep_days.saturating_mul(86_400) };
        let mirrors = self
            .mirrors
            .iter()
            .map(|a| super::parse_admin(a).map_err(|reason| ReplicationError::BadMirror { admin: a.clone(), reason }))
            .collect::<Result<_, _>>()?;
        let mirror = self.mirror.as_ref().map(MirrorConfig::resolve).transpose()?;
        Ok(Replication { window, max_transfers: self.max_transfers.max(1), keys, allow, notify, mirrors, mirror })
    }
}

impl MirrorConfig {
    fn resolve(&self) -> Result<crate::mirror::MirrorSettings, ReplicationError> {
        let bad = ReplicationError::BadPrimary;
        if !(self.primary.starts_with("https://") || self.primary.starts_with("http://")) {
            return Err(bad(format!("primary {:?} is not an http:// or https:// address", self.primary)));
        }
        super::parse_admin(&self.user).map_err(|reason| bad(format!("user {:?}: {reason}", self.user)))?;
        let secret = secret_of(&self.secret, &self.secret_file).map_err(bad)?;
        let ca_pem = match &self.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| bad(format!("cannot read ca_file {}: {e}", path.display())))?)
            }
            None => None,
        };
        Ok(crate::mirror::MirrorSettings { primary: self.primary.clone(), user: self.user.clone(), secret, ca_pem })
    }
}

impl KeyConfig {
    fn resolve(&self) -> Result<TsigKey, ReplicationError> {
        let bad = |reason: String| ReplicationError::BadKey { name: self.name.clone(), reason };
        if !self.algorithm.eq_ignore_ascii_case("hmac-sha256") {
            return Err(bad(format!("algorithm {:?}: only hmac-sha256 is served", self.algorithm)));
        }
        let name = key_name(&self.name);
        let labels_ok = name.len() <= 255 && name.split('.').all(|l| l.len() <= 63);
        if name == "." || !labels_ok || name.contains("..") {
            return Err(bad("not a domain name".into()));
        }
        let text = secret_of(&self.secret, &self.secret_file).map_err(bad)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| bad(format!("the secret is not base64: {e}")))?;
        // RFC 8945 6: a key shorter than the hash's output weakens it.
        if secret.len() < 16 {
            return Err(bad(format!("the secret has {} bytes; use at least 32", secret.len())));
        }
        Ok(TsigKey { name, secret })
    }
}

/// A secret given in the file (`secret`) or in a file of its own (`secret_file`, its line end
/// dropped): exactly one of the two.
fn secret_of(secret: &Option<String>, file: &Option<PathBuf>) -> Result<String, String> {
    match (secret, file) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| format!("cannot read secret_file {}: {e}", path.display())),
        _ => Err("give either secret or secret_file".into()),
    }
}

/// A key name as compared: lower case, with the trailing dot.
pub fn key_name(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') { name } else { format!("{name}.") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ReplicationConfig {
        toml::from_str(text).unwrap()
    }

    const KEY: &str = "[[keys]]\nname = \"XFR\"\nalgorithm = \"hmac-sha256\"\n\
                       secret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n";

    #[test]
    fn keys_addresses_and_networks_are_checked() {
        let text = format!(
            "{KEY}[[allow_transfer]]\naddress = \"10.1.2.3/8\"\nkey = \"xfr.\"\n[[allow_transfer]]\naddress = \"::1\"\n\
             [[notify]]\naddress = \"127.0.0.1:15353\"\nkey = \"xfr\"\n"
        );
        let r = config(&text).resolve().unwrap();
        assert_eq!(r.keys[0].name, "xfr.");
        assert_eq!(r.keys[0].secret.len(), 32);
        assert_eq!(r.allow[0].network.to_string(), "10.0.0.0/8", "host bits dropped");
        assert!(r.allow[0].network.contains(&"10.200.0.1".parse::<IpAddr>().unwrap()));
        assert_eq!(r.allow[0].key.as_ref().unwrap().name, "xfr.");
        assert_eq!(r.allow[1].network.to_string(), "::1/128");
        assert!(r.allow[1].key.is_none());
        assert_eq!(r.notify[0].key.as_ref().unwrap().name, "xfr.");
        assert_eq!(format!("{:?}", r.keys[0]), "TsigKey { name: \"xfr.\", .. }", "the secret is never logged");
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |text: &str| config(text).resolve().unwrap_err().to_string();
        assert!(err(&format!("{KEY}[[allow_transfer]]\naddress = \"10.0.0.0/33\"\n")).contains("10.0.0.0/33"));
        assert!(err(&format!("{KEY}[[allow_transfer]]\naddress = \"::1\"\nkey = \"other\"\n")).contains("other"));
        let md5 = KEY.replace("hmac-sha256", "hmac-md5");
        assert!(err(&md5).contains("only hmac-sha256"));
        let short = "[[keys]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"c2hvcnQ=\"\n";
        assert!(err(short).contains("at least 32"));
        let neither = "[[keys]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\n";
        assert!(err(neither).contains("either secret or secret_file"));
    }
}
