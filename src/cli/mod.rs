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

use anyhow::Context as _;

/// The first line of `path`, which must not be empty (secret files).
fn first_line(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!line.is_empty(), "{} holds no secret on its first line", path.display());
    Ok(line)
}
