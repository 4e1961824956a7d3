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
    let url = format!(r#"{{"index":1,"type":"URL","data":{{"format":"string","value":"{url}"}}}}"#);
    format!(r#"{{"handle":"{id}","values":[{url},{{"index":2,"type":"EMAIL","data":"ops@example.com"}}]}}"#)
}

/// A running `idnode serve`, killed when dropped: a failing test leaves no server behind (one
/// would keep the test's ports, data directory and inherited file descriptors).
struct Served(Child);

impl Served {
    /// SIGKILL: no shutdown, no flush; then reaps the process.
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(drop)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Starts `idnode serve` on free ports and returns it with its DNS address once it serves.
fn serve(data: &Path) -> (Served, String) {
    let (child, dns, _) = serve_logging(data, None);
    (child, dns)
}

/// Starts `idnode serve`; returns it with its DNS and HTTP addresses. With `log`, every line
/// the server prints is appended there.
fn serve_logging(data: &Path, log: Option<std::sync::Arc<std::sync::Mutex<String>>>) -> (Served, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idnode"))
        // Every port free (the Handle port too: tests serving at once would all want 2641).
        .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--handle", "127.0.0.1:0"])
        .args(["--data", data.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let child = Served(child);
    let field =
        |line: &str, name: &str| line.split(name).nth(1).map(|rest| rest.split_whitespace().next().unwrap().to_owned());
    let (mut dns, mut http) = (None, None);
    while dns.is_none() {
        let line = lines.next().expect("server printed its addresses").unwrap();
        if let Some(log) = &log {
            log.lock().unwrap().push_str(&line);
        }
        http = http.or_else(|| field(&line, "http="));
        dns = dns.or_else(|| field(&line, "addr="));
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(log) = &log {
                log.lock().unwrap().push_str(&line);
            }
        }
    });
    (child, dns.unwrap(), format!("http://{}", http.expect("HTTP address logged before DNS")))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// `Authorization` for `user` (`index:identifier`), percent-encoded as pyhandle does it.
pub(crate) fn basic(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    let user = user.replace(':', "%3A");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
}

/// Sends a request; returns the status and the body.
pub(crate) fn call(method: &str, url: &str, auth: Option<&str>, body: Option<&str>) -> (u16, String) {
    let agent = agent();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("PUT", Some(body)) => {
            let mut r = agent.put(url).header("Content-Type", "application/json");
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send(body)
        }
        ("POST", Some(body)) => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send(body)
        }
        ("DELETE", _) => {
            let mut r = agent.delete(url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => panic!("unsupported request {method}"),
    }
    .unwrap();
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

fn admin_init(data: &Path, prefix: &str, secret: &str) {
    let file = data.with_extension("secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let out = idnode(&[
        "admin",
        "init",
        "--prefix",
        prefix,
        "--secret-file",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(file).unwrap();
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn secrets_are_stored_only_as_salted_hashes_and_never_logged_or_returned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (top, operator, wrong) = ("Top-Secret-4711", "Operator-Secret-0815", "Wrong-Secret-1234");
    admin_init(&data, "88", top);
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (mut server, _, http) = serve_logging(&data, Some(log.clone()));
    let api = format!("{http}/api/handles");
    let top_auth = basic("300:0.NA/88", top);
    let body = format!(
        r#"{{"values":[{{"index":100,"type":"HS_ADMIN","data":{{"format":"admin",
            "value":{{"handle":"0.NA/88.100","index":300,"permissions":"111111111111"}}}}}},
        {{"index":300,"type":"HS_SECKEY","data":"{operator}","publicRead":false}}]}}"#
    );
    let mut responses = Vec::new();
    let (status, text) = call("PUT", &format!("{api}/0.NA/88.100"), Some(&top_auth), Some(&body));
    assert_eq!(status, 201, "{text}");
    responses.push(text);
    let ops_auth = basic("300:0.NA/88.100", operator);
    let (status, text) = call(
        "PUT",
        &format!("{api}/88.100.1/X"),
        Some(&ops_auth),
        Some(r#"[{"index":1,"type":"URL","data":"https://x"}]"#),
    );
    assert_eq!(status, 201, "the operator's secret works: {text}");
    responses.push(text);
    let (status, text) = call("PUT", &format!("{api}/88.100.1/Y"), Some(&basic("300:0.NA/88.100", wrong)), Some("[]"));
    assert_eq!(status, 403, "{text}");
    responses.push(text);
    for auth in [None, Some(top_auth.as_str()), Some(ops_auth.as_str())] {
        let (status, text) = call("GET", &format!("{api}/0.NA/88.100?auth=true"), auth, None);
        assert_eq!(status, 200, "{text}");
        responses.push(text);
    }
    server.kill().unwrap();
    let export = idnode(&["export", "--data", data.to_str().unwrap()]);
    let exported = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(exported.contains("$argon2id$"), "the hash is what is stored: {exported}");
    let log = log.lock().unwrap().clone();
    assert!(log.contains("audit") && log.contains("authentication failed"), "refused writes are audited: {log}");
    for secret in [top, operator, wrong] {
        for file in files_under(&data) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in {}", file.display());
        }
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!exported.contains(secret), "{secret} in the export");
        assert!(responses.iter().all(|r| !r.contains(secret) && !r.contains("argon2")), "{secret} in a response");
    }
}

#[test]
fn every_acknowledged_write_survives_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin_init(&data, "88", "s");
    let (mut server, _, http) = serve_logging(&data, None);
    let auth = basic("300:0.NA/88", "s");
    // Four clients write at once; the node is killed the moment the last write is acknowledged.
    let acknowledged: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (http, auth) = (&http, &auth);
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let id = format!("88.100.{t}/W-{i:03}");
                            let body = format!(r#"[{{"index":1,"type":"URL","data":"https://example.com/{id}"}}]"#);
                            let (status, text) =
                                call("PUT", &format!("{http}/api/handles/{id}"), Some(auth), Some(&body));
                            assert_eq!(status, 201, "{text}");
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    server.kill().unwrap(); // SIGKILL: no shutdown, no flush
    assert_eq!(acknowledged.len(), 200);
    let (mut server, _, http) = serve_logging(&data, None);
    for id in &acknowledged {
        let (status, text) = call("GET", &format!("{http}/api/handles/{id}"), None, None);
        assert_eq!(status, 200, "{id} was acknowledged but is gone: {text}");
        assert!(text.contains(&format!("https://example.com/{id}")), "{text}");
    }
    server.kill().unwrap();
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

/// `idnode import -`: standard input, more than one batch, then a bad line. The batches before
/// it are stored (synced once when import stops), the bad line is named against the stream.
#[test]
fn import_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |input: String| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idnode"))
            .args(["import", "-", "--data", data.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Import may stop at a bad line before reading the rest: a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    };
    let mut input: String = (0..3000).map(|i| line(&format!("88.100.2/P{i}"), "https://p") + "\n").collect();
    input.push_str("{\"handle\":\"no-slash\"}\n");
    input.push_str(&line("88.100.2/AFTER", "https://after"));
    let out = run(input);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("importing standard input: line 3001"), "{err}");
    assert!(err.contains("3000 records before it were imported"), "{err}");
    let out = run((0..10).map(|i| line(&format!("88.100.3/Q{i}"), "https://q") + "\n").collect());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("imported 10 identifiers from 10 lines"), "{}", stderr(&out));
    let export = String::from_utf8(idnode(&["export", "--data", data.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(export.lines().count(), 3010);
    assert!(!export.contains("88.100.2/AFTER"));
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
    }
}

#[test]
fn health_says_whether_a_node_answers_dns() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, dns, _) = serve_logging(&dir.path().join("data"), None);
    let out = idnode(&["health", "--server", &dns]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered (No Error)"));
    server.kill().unwrap(); // and reaped: nothing answers on its port any more
    let out = idnode(&["health", "--server", &dns]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("cannot reach {dns}")), "{}", stderr(&out));
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

#[test]
fn operators_work_through_the_cli_within_their_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin_init(&data, "88", "top-secret");
    let (mut server, dns, http) = serve_logging(&data, None);
    let top_file = dir.path().join("top");
    let ops_file = dir.path().join("ops");
    std::fs::write(&top_file, "top-secret\n").unwrap();
    std::fs::write(&ops_file, "ops-secret\n").unwrap();
    let as_user = |user: &str, secret: &Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &http, "--user", user, "--secret-file", secret.to_str().unwrap()]);
        idnode(&all)
    };
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    // The top-level administrator registers secondary node 88.100 with its own operator.
    let text = ok(as_user(
        "300:0.NA/88",
        &top_file,
        &["prefix", "add", "88.100", "--operator-secret-file", ops_file.to_str().unwrap()],
    ));
    assert!(text.contains("administered by 300:0.NA/88.100"), "{text}");
    let ops = |args: &[&str]| as_user("300:0.NA/88.100", &ops_file, args);
    ok(ops(&["prefix", "add", "88.100.5"]));
    let refused = ops(&["prefix", "add", "88.101.5"]);
    assert!(!refused.status.success() && stderr(&refused).contains("HTTP 403"), "{}", stderr(&refused));
    assert_eq!(ok(ops(&["prefix", "list", "88.100"])).lines().collect::<Vec<_>>(), ["88.100.5"]);
    ok(ops(&["id", "put", "88.100.5/PUMP-1", "--value", "1:URL:https://example.com/pump/1", "--value", "2:NOTE:a:b"]));
    ok(ops(&["id", "put", "88.100.5/PUMP-1", "--merge", "--value", "3:EMAIL:ops@example.com"]));
    let text = ok(ops(&["id", "get", "88.100.5/PUMP-1"]));
    assert!(
        text.contains("https://example.com/pump/1") && text.contains("a:b") && text.contains("ops@example.com"),
        "{text}"
    );
    let resolved = ok(idnode(&["resolve", "88.100.5/PUMP-1", "--server", &dns]));
    assert!(resolved.contains("ops@example.com"), "DNS sees the write: {resolved}");
    ok(ops(&["id", "delete", "88.100.5/PUMP-1", "--index", "2"]));
    assert!(!ok(ops(&["id", "get", "88.100.5/PUMP-1"])).contains("a:b"));
    let outside = ops(&["id", "put", "88.101.1/X", "--value", "1:URL:x"]);
    assert!(
        stderr(&outside).contains("HTTP 403") && stderr(&outside).contains("may not create"),
        "{}",
        stderr(&outside)
    );
    let anonymous = idnode(&["id", "delete", "88.100.5/PUMP-1", "--server", &http]);
    assert!(stderr(&anonymous).contains("HTTP 401"), "{}", stderr(&anonymous));
    ok(ops(&["id", "delete", "88.100.5/PUMP-1"]));
    let gone = ops(&["id", "get", "88.100.5/PUMP-1"]);
    assert!(stderr(&gone).contains("HTTP 404"), "{}", stderr(&gone));
    server.kill().unwrap();
}

#[test]
fn the_example_configs_for_each_role_load() {
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker");
    for role in ["top", "secondary-101", "secondary-102", "recursive"] {
        let path = docker.join(format!("{role}.toml"));
        let config = idnode::config::Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let zones =
            idnode::dns::zone_config(&config.dns, &config.dns.zones()).unwrap_or_else(|e| panic!("{role}: {e}"));
        match role {
            "secondary-101" => assert_eq!(zones[0].apex.to_ascii(), "101.88.id.example."),
            "secondary-102" => assert_eq!(zones[0].apex.to_ascii(), "102.88.id.example."),
            "recursive" => assert!(!config.recursive.roots.is_empty()),
            _ => assert_eq!(zones[0].apex.to_ascii(), "id.example."),
        }
    }
}

#[test]
fn admin_keygen_writes_cnri_s_key_files_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("admin.key");
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "a passphrase\n").unwrap();
    let keygen = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_idnode"))
            .args(["admin", "keygen", "--out", key.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()])
            .args(["--index", "301"])
            .output()
            .unwrap()
    };
    let out = keygen();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((value["index"].as_u64(), value["type"].as_str()), (Some(301), Some("HS_PUBKEY")));
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.decode(value["data"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("admin.key.pub")).unwrap(), public, "the .pub file is the value");
    assert!(idnode::record::site::decode_rsa_pubkey(&public).is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let file = std::fs::read(&key).unwrap();
    assert_eq!(&file[..4], &[0, 0, 0, 4], "encrypted as CNRI's PBKDF2 and AES");
    assert!(idnode::handle::admin_key::AdminKey::read_private_file(&file, Some(b"a passphrase")).is_ok());
    let again = keygen();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read(&key).unwrap(), file);
}

/// `idnode import --zone-file`: a BIND-style zone moved into a node, then resolved over DNS from
/// the started node; a bad record is named by its line, and standard input works too.
#[test]
fn a_zone_file_imports_and_resolves_over_dns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let zone = "\
$ORIGIN id.example.
$TTL 1h
@       IN SOA ns1 hostmaster ( 2024010101 3h 15m 1w 5m ) ; from BIND
        IN NS  ns1
ns1     IN A   192.0.2.53
$ORIGIN _id.1.100.88.id.example.
Pump-7  300 IN TXT \"1\" \"URL\" \"https://example.com/pump/7\"
        300 IN URI 1 1 \"https://example.com/pump/7\"
            IN TXT \"2\" \"EMAIL\" \"ops@example.com\"
";
    let file = dir.path().join("id.example.zone");
    std::fs::write(&file, zone).unwrap();
    let out = idnode(&["import", "--zone-file", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("imported 1 identifiers from 9 lines"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("zone id.example.: its SOA (1), NS (1) and name server addresses (1)"),
        "{}",
        stderr(&out)
    );

    // A bad record on standard input: named by its line, the identifier before it stored.
    let bad = "$ORIGIN id.example.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n\
               V._id.88 TXT \"1\" \"NOTE\" \"kept\"\nmx._id.88 MX 10 mail\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_idnode"))
        .args(["import", "--zone-file", "-", "--data", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(bad.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("importing standard input: line 5: MX at mx._id.88.id.example.: MX records are not"), "{err}");

    let (mut server, addr) = serve(&data);
    let out = idnode(&["resolve", "88.100.1/pump-7", "--server", &addr]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("https://example.com/pump/7") && text.contains("ops@example.com"), "{text}");
    let out = idnode(&["resolve", "88/V", "--server", &addr]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"), "{}", stderr(&out));
    server.kill().unwrap();
    let export = String::from_utf8(idnode(&["export", "--data", data.to_str().unwrap()]).stdout).unwrap();
    assert!(export.contains("\"88.100.1/Pump-7\""), "the case as the file wrote it: {export}");
}
