//! Operator commands against a running node, through its HTTP API (`idnode id`, `idnode
//! prefix`): the same requests pyhandle or curl would send, with the same authorization.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::http::client::ApiClient;
use crate::record::json::JsonValue;
use crate::{auth, identifier, record};

/// How to reach a node's HTTP API, and who is asking.
#[derive(clap::Args)]
pub struct Api {
    /// The node's HTTP API.
    #[arg(long, env = "IDNODE_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// The administrator, INDEX:IDENTIFIER (e.g. 300:0.NA/88.100).
    #[arg(long, env = "IDNODE_USER")]
    user: Option<String>,
    /// A file whose first line is the administrator's secret; or set IDNODE_SECRET.
    #[arg(long, env = "IDNODE_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// Trust only the certificates in this PEM file (a private CA's, or the node's own) for an
    /// https --server, instead of the public roots.
    #[arg(long, env = "IDNODE_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl Api {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let secret = match (&self.secret_file, std::env::var("IDNODE_SECRET")) {
            (Some(path), _) => Some(super::first_line(path)?),
            (None, Ok(secret)) => Some(secret),
            (None, Err(_)) => None,
        };
        let ca = match &self.ca_file {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let credentials = match (&self.user, &secret) {
            (Some(user), Some(secret)) => Some((user.as_str(), secret.as_str())),
            (Some(_), None) => anyhow::bail!("--user needs a secret: --secret-file FILE or IDNODE_SECRET"),
            (None, _) => None,
        };
        ApiClient::new(&self.server, credentials, ca.as_deref())
            .with_context(|| format!("--ca-file {}", self.ca_file.as_deref().unwrap_or(Path::new("")).display()))
    }

    fn user(&self) -> anyhow::Result<&str> {
        self.user.as_deref().context("this command needs --user INDEX:IDENTIFIER (or IDNODE_USER)")
    }
}

/// `idnode id get`: prints the values (or with `json` the API's answer) of `handle`, only those
/// of `types` and at `indexes` when given.
pub fn get(api: &Api, handle: &str, types: Vec<String>, indexes: &[u32], json: bool) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = types.into_iter().map(|t| ("type", t)).collect();
    query.extend(indexes.iter().map(|i| ("index", i.to_string())));
    let answer = api.client()?.get(handle, &query)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    writeln!(out, "{}", answer["handle"].as_str().unwrap_or(handle))?;
    for v in answer["values"].as_array().into_iter().flatten() {
        let data = match &v["data"]["value"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let (index, kind) = (v["index"].as_u64().unwrap_or(0), v["type"].as_str().unwrap_or(""));
        writeln!(out, "{index:>6}  {kind:<12}  {data}")?;
    }
    Ok(())
}

/// What `idnode id put` writes.
pub struct PutArgs<'a> {
    /// Values as `INDEX:TYPE:DATA`.
    pub values: &'a [String],
    /// A JSON file with a list of values in the Handle.Net shape.
    pub values_file: Option<&'a Path>,
    /// Change only the given values and keep the others.
    pub merge: bool,
    /// Fail if the identifier exists.
    pub no_overwrite: bool,
}

/// `idnode id put`: creates or replaces `handle`.
pub fn put(api: &Api, handle: &str, args: PutArgs<'_>) -> anyhow::Result<()> {
    let mut list: Vec<JsonValue> = match args.values_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: expected a JSON list of values", path.display()))?
        }
        None => Vec::new(),
    };
    for v in args.values {
        list.push(parse_value_arg(v)?);
    }
    anyhow::ensure!(!list.is_empty() || !args.merge, "--merge needs values to change");
    let mut query = Vec::new();
    if args.merge {
        query.extend(list.iter().map(|v| ("index", v.index.to_string())));
    }
    if args.no_overwrite {
        query.push(("overwrite", "false".to_owned()));
    }
    let answer = api.client()?.put(handle, &list, &query)?;
    writeln!(std::io::stdout(), "stored {}", answer["handle"].as_str().unwrap_or(handle))?;
    Ok(())
}

/// `idnode id delete`: deletes `handle`, or only the values at `indexes`.
pub fn delete(api: &Api, handle: &str, indexes: &[u32]) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = indexes.iter().map(|i| ("index", i.to_string())).collect();
    api.client()?.delete(handle, &query)?;
    let mut out = std::io::stdout();
    match indexes.is_empty() {
        true => writeln!(out, "deleted {handle}")?,
        false => writeln!(out, "deleted values {indexes:?} of {handle}")?,
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

/// `idnode prefix add`: registers `prefix` (its prefix record `0.NA/PREFIX`), administered by
/// its own operator `300:0.NA/PREFIX` when `operator_secret_file` is given, else by `--user`.
pub fn prefix_add(api: &Api, prefix: &str, operator_secret_file: Option<&Path>) -> anyhow::Result<()> {
    identifier::check_prefix(prefix).with_context(|| format!("prefix {prefix}"))?;
    let record = format!("{}/{prefix}", identifier::PREFIX_AUTHORITY);
    let now = record::unix_now();
    let (values, admin) = match operator_secret_file {
        Some(path) => {
            let secret = super::first_line(path)?;
            (auth::prefix_admin_values((300, &record), Some(&secret), now), format!("300:{record}"))
        }
        None => {
            let user = api.user()?;
            let (index, handle) = user.split_once(':').context("--user must be INDEX:IDENTIFIER")?;
            let index = index.parse().with_context(|| format!("--user {user}: {index:?} is not an index"))?;
            (auth::prefix_admin_values((index, handle), None, now), user.to_owned())
        }
    };
    let values: Vec<JsonValue> = values.iter().map(JsonValue::from_value).collect();
    api.client()?.put(&record, &values, &[("overwrite", "false".to_owned())])?;
    writeln!(std::io::stdout(), "registered prefix {prefix} ({record}), administered by {admin}")?;
    Ok(())
}

/// `idnode prefix list`: the prefixes registered below `prefix`, one page.
pub fn prefix_list(api: &Api, prefix: &str, page: usize, page_size: usize) -> anyhow::Result<()> {
    let answer = api.client()?.list("prefixes", prefix, page, page_size)?;
    let mut out = std::io::stdout().lock();
    for p in answer["prefixes"].as_array().into_iter().flatten() {
        writeln!(out, "{}", p.as_str().unwrap_or_default())?;
    }
    Ok(())
}

/// `idnode stats`: the node's resolution statistics, from its operations listener's `/stats`
/// (`[ops]`), as text or as the JSON itself.
pub fn stats(ops: &str, json: bool) -> anyhow::Result<()> {
    let report = ApiClient::new(ops, None, None)?.get_path("/stats")?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let counts = |map: &serde_json::Value| -> String {
        let pairs = map.as_object().into_iter().flatten();
        pairs.map(|(k, v)| format!("{k} {}", v.as_u64().unwrap_or(0))).collect::<Vec<_>>().join(", ")
    };
    let today = &report["today"];
    writeln!(out, "lookups today ({}, UTC): {}", report["date"].as_str().unwrap_or("?"), today["lookups"])?;
    writeln!(out, "  by protocol: {}", counts(&today["by_protocol"]))?;
    writeln!(out, "  by outcome:  {}", counts(&today["by_outcome"]))?;
    let days = report["days"].as_array().map_or(0, Vec::len);
    writeln!(out, "lookups in the {days} days kept: {}", report["total"])?;
    if let Some(target) = report["target"].as_object() {
        let share = target["share"].as_f64().unwrap_or(0.0) * 100.0;
        writeln!(
            out,
            "target: {} lookups in {} days; done {} ({share:.4}%); at the last days' rate {} in the period",
            target["lookups"], target["days"], target["done"], target["projected"]
        )?;
    }
    for (title, key) in [("enterprise prefixes", "top_prefixes"), ("secondary-node prefixes", "top_secondary_prefixes")]
    {
        writeln!(out, "busiest {title} today:")?;
        for p in report[key].as_array().into_iter().flatten() {
            writeln!(out, "  {:<24} {}", p["prefix"].as_str().unwrap_or("?"), p["lookups"])?;
        }
    }
    writeln!(out, "the last days:")?;
    let all = report["days"].as_array().cloned().unwrap_or_default();
    for day in all.iter().skip(all.len().saturating_sub(7)) {
        writeln!(out, "  {} {}", day["date"].as_str().unwrap_or("?"), day["lookups"])?;
    }
    Ok(())
}
