//! The demo namespace: prefix `88.100.1` and a handful of product identifiers, so that a
//! newcomer can query a node the moment it starts (`idnode serve --demo`).
//!
//! The records live in `demo.jsonl`, in the import file format, and are loaded through the
//! ordinary import path. `88.100.1/DATASHEET-9` is larger than a 1232-byte UDP answer, so it
//! shows the TC bit and the TCP retry.

use crate::import::{ImportError, ImportReport, import};
use crate::registry::Registry;

pub const DEMO_JSONL: &str = include_str!("demo.jsonl");
/// An identifier of the demo namespace to show in examples.
pub const DEMO_IDENTIFIER: &str = "88.100.1/ABC-123";

/// Loads the demo records.
pub fn load(registry: &Registry) -> Result<ImportReport, ImportError> {
    import(registry, DEMO_JSONL.as_bytes(), crate::registry::MAX_BATCH, |_| {})
}
