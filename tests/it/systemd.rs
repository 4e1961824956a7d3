//! `idnode serve` under systemd's protocols, with the real binary: readiness on the notify
//! socket once it serves, RELOADING=1 and READY=1 around a SIGHUP that reloads the zones and
//! connection caps (and keeps the running configuration when the file is broken), STOPPING=1 on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::RecordType;

/// The next notification that holds `state`, skipping others; panics after 20 s.
fn wait_for(socket: &UnixDatagram, state: &str) -> String {
    let mut buf = [0u8; 4096];
    for _ in 0..200 {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == state) {
                return message;
            }
        }
    }
    panic!("no {state} from the node");
}

/// The RCODE the node at `addr` answers a TXT question for `name` with.
fn rcode(addr: &str, name: &str) -> u8 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.send_to(&crate::dns::query(name, RecordType::TXT, None), addr).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    assert!(n >= 12);
    buf[3] & 0x0f
}

fn signal(pid: u32, name: &str) {
    assert!(Command::new("kill").args([name, &pid.to_string()]).status().unwrap().success());
}

#[test]
fn the_node_notifies_systemd_and_reloads_its_zones_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let config = dir.path().join("idnode.toml");
    std::fs::write(&config, "[dns]\nzones = [\"88.100\"]\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_idnode"))
        .args(["serve", "--config", config.to_str().unwrap(), "--data", dir.path().join("data").to_str().unwrap()])
        .args(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--handle", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &notify)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (lines, kept) = (BufReader::new(child.stderr.take().unwrap()).lines(), log.clone());
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| kept.lock().unwrap().push_str(&(l + "\n"))));

    assert!(wait_for(&socket, "READY=1").contains("STATUS=serving"));
    let logged = log.lock().unwrap().clone();
    let addr =
        logged.split("addr=").nth(1).and_then(|r| r.split_whitespace().next()).expect("the DNS address").to_owned();
    let (served, other) = ("x._id.1.100.88.id.example.", "x._id.1.200.88.id.example.");
    assert_eq!((rcode(&addr, served), rcode(&addr, other)), (3, 5), "NXDOMAIN in 88.100, REFUSED outside");

    let reloaded = "log = \"debug\"\n[dns]\nzones = [\"88.100\", \"88.200\"]\ntcp_max_connections = 5\n\
                    tcp_idle_timeout_secs = 1\n[http]\nmax_connections = 9\nheader_timeout_secs = 7\n\
                    [cache]\nsize_mb = 100\n";
    std::fs::write(&config, reloaded).unwrap();
    signal(child.id(), "-HUP");
    wait_for(&socket, "RELOADING=1");
    wait_for(&socket, "READY=1");
    assert_eq!(rcode(&addr, other), 3, "88.200 is served after the reload");
    let logged = log.lock().unwrap().clone();
    assert!(logged.contains("configuration reloaded") && logged.contains("\"cache\""), "{logged}");
    for applied in ["\"dns (but", "\"http (but"] {
        assert!(!logged.contains(applied), "{applied}: changed only in what was applied: {logged}");
    }
    // The DNS idle timeout, 60 s before, is 1 s for a connection opened now.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let read = std::io::Read::read(&mut idle, &mut [0u8; 1]);
    assert_eq!(read.ok(), Some(0), "the node closed it before the client's 10 s");
    // Connection caps are applied as they are: each accept loop logs it when it takes them.
    for line in
        ["HTTP: connection caps changed max_connections=9", "DNS TCP: connection caps changed max_connections=5"]
    {
        let seen = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            log.lock().unwrap().contains(line)
        });
        assert!(seen, "{line}: {}", log.lock().unwrap());
    }

    // A file that does not parse: refused, the running configuration stays.
    std::fs::write(&config, "[dns\n").unwrap();
    signal(child.id(), "-HUP");
    wait_for(&socket, "READY=1");
    assert_eq!(rcode(&addr, other), 3);
    assert!(log.lock().unwrap().contains("reload refused"));

    signal(child.id(), "-TERM");
    wait_for(&socket, "STOPPING=1");
    assert!(child.wait().unwrap().success());
}
