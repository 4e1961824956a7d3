//! Replays every file of `corpus/<target>/` through its target, on stable Rust: what the
//! fuzzer found interesting stays a regression test wherever `cargo test` runs.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn replay(name: &str, target: idnode_fuzz::Target) {
    let dir = root().join("corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Named on failure: the panic message alone does not say which input it was.
        eprintln!("replaying {}", file.display());
        target(&data);
    }
}

/// Every target of `idnode_fuzz::TARGETS`, so that a new target is replayed once it is listed.
#[test]
fn every_corpus_replays() {
    for (name, target) in idnode_fuzz::TARGETS {
        replay(name, *target);
    }
}

/// Each listed target has its libFuzzer wrapper, and each wrapper is listed.
#[test]
fn every_wrapper_is_listed() {
    let mut wrappers: Vec<String> = std::fs::read_dir(root().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    wrappers.sort();
    let mut listed: Vec<String> = idnode_fuzz::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(wrappers, listed, "fuzz_targets/ and idnode_fuzz::TARGETS name the same targets");
}
