//! The `idnode` binary as a user runs it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn idnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idnode")).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn line(id: &str, url: &str) -> String {
    format!(
        r#"{{"handle":"{id}","values":[{{"index":1,"type":"URL","data":{{"format":"string","value":"{url}"}}}},{{"index":2,"type":"EMAIL","data":"ops@example.com"}}]}}"#
    )
}

/// Starts `idnode serve` on a free port and returns it with its address once it serves.
fn serve(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idnode"))
        .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

#[test]
fn bad_import_line_is_named_and_leaves_no_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    let bad = r#"{"handle":"88.100.1","values":[]}"#;
    std::fs::write(
        &file,
        [line("88.100.1/A", "https://a"), line("88.100.1/B", "https://b"), bad.into(), line("88.100.1/C", "https://c")]
            .join("\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = idnode(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 3: 88.100.1 has no suffix"), "{err}");
    assert!(err.contains("2 records before it were imported"), "{err}");
    let export = idnode(&["export", "--data", data.to_str().unwrap()]);
    let text = String::from_utf8(export.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("88.100.1/B") && !text.contains("88.100.1/C"));
}

#[test]
fn import_says_clearly_when_a_server_holds_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, _) = serve(&data);
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, line("88.1/X", "https://x")).unwrap();
    let out = idnode(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is in use by another idnode process"), "{}", stderr(&out));
}

#[test]
fn imported_identifiers_resolve_before_and_after_a_hard_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("gen.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    for i in 0..5000 {
        writeln!(f, "{}", line(&format!("88.100.{}/SN-{i:06}", i % 7), &format!("https://example.com/p/{i}"))).unwrap();
    }
    drop(f);
    let out = idnode(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap(), "--batch", "700"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("imported 5000 identifiers"), "{}", stderr(&out));
    for round in 0..2 {
        let (mut server, addr) = serve(&data);
        for i in [0, 1, 777, 4321, 4999] {
            let id = format!("88.100.{}/sn-{i:06}", i % 7); // any case resolves
            let tcp = if i % 2 == 0 { "--tcp" } else { "--server" };
            let args: Vec<&str> = if tcp == "--tcp" {
                vec!["resolve", &id, "--server", &addr, "--tcp"]
            } else {
                vec!["resolve", &id, "--server", &addr]
            };
            let out = idnode(&args);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "round {round} {id}: {}{}", text, stderr(&out));
            assert!(text.contains(&format!("https://example.com/p/{i}")) && text.contains("ops@example.com"), "{text}");
        }
        let missing = idnode(&["resolve", "88.100.1/none", "--server", &addr]);
        assert!(!missing.status.success());
        assert!(stderr(&missing).contains("Non-Existent Domain"), "{}", stderr(&missing));
        server.kill().unwrap(); // SIGKILL: no clean shutdown
        server.wait().unwrap();
    }
}

#[test]
fn dns_name_and_config_errors() {
    let out = idnode(&["dns-name", "88.100.1/ABC-123"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "abc-123._id.1.100.88.id.example.");
    let out = idnode(&["dns-name", "88.100.1/X", "--apex", "id.example.cn"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "x._id.1.100.88.id.example.cn.");
    let out = idnode(&["dns-name", "88..1/X"]);
    assert!(stderr(&out).contains("prefix segment 2 is empty"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "[dns]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n").unwrap();
    let out = idnode(&["serve", "--config", cfg.to_str().unwrap(), "--data", dir.path().join("d").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("node.toml") && err.contains("unknown field `bogus`"), "{err}");
}
