//! idnode's fuzz targets: one function per target, taking the fuzzer's bytes.
//!
//! The same functions run under libFuzzer (`fuzz_targets/<name>.rs`, nightly, `cargo fuzz run`)
//! and in the corpus replay (`tests/replay.rs`, stable, `cargo test`), so a crash found by
//! either is a failing test in both. Each target feeds the library's own entry points, never a
//! copy of them; a panic anywhere is a crash, and the asserts state what must hold besides.
//!
//! # Adding a target
//! 1. A module here with `pub fn NAME(data: &[u8])`, re-exported below and listed in
//!    [`TARGETS`].
//! 2. `fuzz_targets/NAME.rs` calling it, and its `[[bin]]` in `Cargo.toml`.
//! 3. A seed corpus in `corpus/NAME/` (the replay test refuses an empty one).

mod dns;
mod handle;
mod http;
mod json;
mod record;
mod recursor;

pub use dns::dns_request;
pub use handle::handle_request;
pub use http::http_params;
pub use json::json_value;
pub use record::record_decode;
pub use recursor::recursor_response;

/// A target: the bytes of one input in, a panic for a crash.
pub type Target = fn(&[u8]);

/// Every target by name; the name is also its `fuzz_targets/` file and its `corpus/` folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("dns_request", dns_request),
    ("json_value", json_value),
    ("record_decode", record_decode),
    ("http_params", http_params),
    ("recursor_response", recursor_response),
    ("handle_request", handle_request),
];

/// Bytes as hex, for assert messages that must let a failure be reproduced.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
