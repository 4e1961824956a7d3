//! The bodies of the `idnode` subcommands; `main.rs` declares the command line and dispatches
//! here. This is the top level: errors are `anyhow` with context, printed as one line by `main`.
//!
//! - [`serve`]: run the node until Ctrl-C or SIGTERM.
//! - [`data`]: work on the data directory while no server runs (import, export, `admin init`).
//! - [`remote`]: operator commands against a running node's HTTP API (`id`, `prefix`).
//! - [`probe`]: DNS clients of a running node (`resolve`, `dns-name`, `bench`).

pub mod data;
pub mod probe;
pub mod remote;
pub mod serve;

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The log filter's handle, to change it while the node runs (`log` in the configuration,
/// reloaded on SIGHUP).
static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Logs to standard error with the filter of `RUST_LOG` (default `info`), which
/// [`set_log_filter`] can change later.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let (filter, handle) = reload::Layer::new(filter);
    let output =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(filter).with(output).init();
    let _ = LOG_FILTER.set(handle);
}

/// Logs with `directives` (`info`, `idnode=debug,warn`, as `RUST_LOG`) from now on.
pub fn set_log_filter(directives: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(directives).with_context(|| format!("log = {directives:?}"))?;
    if let Some(handle) = LOG_FILTER.get() {
        handle.reload(filter).context("cannot change the log filter")?;
    }
    Ok(())
}

/// The first line of `path`, which must not be empty (secret files).
fn first_line(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!line.is_empty(), "{} holds no secret on its first line", path.display());
    Ok(line)
}
