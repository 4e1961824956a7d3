# Shell functions shared by the bench scripts (benches/compare/run, benches/soak,
# benches/crash-loop): installing what they need, building the node, a work directory cleaned up
# with the processes started, query files, waiting for a server. Sourced, not run; the scripts
# set `set -euo pipefail` themselves.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
idnode=$bench_root/target/release/idnode

# install_missing COMMAND=PACKAGE...: installs from Debian the packages whose command is missing
# (as root; otherwise says what to install). Sets `installed` to the packages it installed.
install_missing() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
  done
  installed=${missing[*]}
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || { echo "missing: ${missing[*]}; run as root to install them"; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# build_idnode: the release binary at $idnode.
build_idnode() {
  (cd "$bench_root" && cargo build --release --quiet --bin idnode)
}

# bench_usage: prints the script's header comment (its usage) and exits 2.
bench_usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
}

# bench_workdir NAME: a new directory /tmp/NAME.XXXXXX in `work`. At exit every process whose
# id the script added to `pids` is killed, then the directory is removed (kept if `keep` is set).
bench_workdir() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local p
  # Only those still running as this shell's children: the id of one that ended may be reused.
  for p in "${pids[@]}"; do
    if [ "$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')" = "$$" ]; then kill -9 "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ -n "${keep:-}" ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}

# gen_queries N QUERIES [IDENTIFIERS] [COUNT]: COUNT dnsperf queries (TXT; default 200,000) for
# the identifiers of `benches/gen-identifiers N`: 90% of them name an identifier drawn uniformly
# from all N (so a COUNT of a few times N reaches the whole registry, not only what a front cache
# holds), 10% a nonexistent one. The existing ones' names also go to IDENTIFIERS (for `idnode
# bench --identifiers`). The draws are seeded: the same arguments write the same files.
gen_queries() {
  python3 - "$1" "$2" "${3:-/dev/null}" "${4:-200000}" <<'EOF'
import random, sys
n, path, identifiers, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
random.seed(1)
with open(path, "w") as f, open(identifiers, "w") as ids:
    for q in range(count):
        if q % 10 == 9:
            f.write(f"sn-none-{q:09d}._id.{q % 16}.100.88.id.example. TXT\n")
        else:
            i = random.randrange(n)
            f.write(f"sn-{i:09d}._id.{i % 16}.100.88.id.example. TXT\n")
            ids.write(f"88.100.{i % 16}/SN-{i:09d}\n")
EOF
}

# wait_dns ADDR PORT PID LOG: waits until the server PID answers for the first generated
# identifier (a zone of millions of records takes a while to load); fails if it exits first.
wait_dns() {
  local _
  for _ in $(seq 1200); do
    dig @"$1" -p "$2" +time=1 +tries=1 sn-000000000._id.0.100.88.id.example. TXT 2>/dev/null |
      grep -qE 'status: NOERROR|ANSWER: 0' && return
    kill -0 "$3" 2>/dev/null || { echo "the server on $1:$2 exited:"; cat "$4" 2>/dev/null; exit 1; }
    sleep 0.5
  done
  echo "the server on $1:$2 did not start"
  exit 1
}

# dnsperf_field NAME OUTPUT: a number from dnsperf's summary ("Queries lost", "Queries per second").
dnsperf_field() {
  sed -nE "s/.*$1: +([0-9.]+).*/\1/p" <<<"$2"
}
