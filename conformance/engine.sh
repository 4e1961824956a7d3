# shellcheck shell=bash
# What conformance/docker and conformance/systemd share (sourced, root only): the check helpers,
# Debian's Docker engine (docker.io; a dockerd of the run's own when none answers, stopped at the
# end), a work directory, and base images made from Debian's packages, since no image registry
# is reachable here: a minimal bookworm by debootstrap, then `docker import`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
fails() { ! "$@"; }
check() { # description, command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi
}
summary() { # name: prints the tally; fails when a check did
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

[ "$(id -u)" -eq 0 ] || { echo "$0 needs root (dockerd, debootstrap)"; exit 1; }
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's docker.io installs its client as /usr/bin/docker; another one earlier in PATH may be
# only a client, of an engine that is not there.
docker() { /usr/bin/docker "$@"; }

work=$(mktemp -d)
dockerd_pid=
at_exit=() # commands run at the end, last first
finish() {
  local i
  for ((i = ${#at_exit[@]} - 1; i >= 0; i--)); do eval "${at_exit[i]}" >/dev/null 2>&1 || true; done
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap finish EXIT

if ! docker info >/dev/null 2>&1; then
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; echo "dockerd did not start"; exit 1; }
fi

# base NAME PACKAGES...: prints the name of a Debian bookworm image with PACKAGES, made by
# debootstrap and kept between runs under a tag that names its contents (docker rmi to remake
# it). idnode-rust also gets this machine's Rust toolchain.
base() {
  local name=$1 include tag
  shift
  tag=bookworm-$( (echo "$*"; [ "$name" != idnode-rust ] || rustc --version) | sha256sum | cut -c1-12)
  echo "$name:$tag"
  docker image inspect "$name:$tag" >/dev/null 2>&1 && return
  include=$(IFS=,; echo "$*")
  debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  if [ "$name" = idnode-rust ]; then
    # Relocatable: rustc finds its libraries beside itself.
    local sysroot
    sysroot=$(rustc --print sysroot)
    mkdir -p "$work/rootfs/usr/local/rust"
    cp -a "$sysroot/bin" "$sysroot/lib" "$work/rootfs/usr/local/rust/"
    [ -d "$sysroot/libexec" ] && cp -a "$sysroot/libexec" "$work/rootfs/usr/local/rust/"
    # And the certificate authorities this machine trusts, so that cargo in the build stage
    # reaches crates.io the way cargo on this machine does (through its egress proxy, if any).
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  tar -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$name:$tag" >/dev/null
  rm -rf "$work/rootfs"
}
