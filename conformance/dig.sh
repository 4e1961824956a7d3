#!/usr/bin/env bash
# Conformance with ISC dig (bind9-dnsutils) and Knot's kdig (knot-dnsutils).
# Expects a node serving the demo namespace at $SERVER:$PORT (conformance/run starts one).
set -uo pipefail

: "${SERVER:?}" "${PORT:?}" "${IDNODE:?}"
APEX=id.example.
ABC=abc-123._id.1.100.88.$APEX
BIG=datasheet-9._id.1.100.88.$APEX
passed=0
failed=0

# check NAME OUTPUT PATTERN...: every extended regex must match the output.
check() {
  local name=$1 out=$2
  shift 2
  for pattern in "$@"; do
    if ! grep -qE -- "$pattern" <<<"$out"; then
      echo "FAIL $name: no match for /$pattern/"
      sed 's/^/    | /' <<<"$out"
      failed=$((failed + 1))
      return
    fi
  done
  echo "ok   $name"
  passed=$((passed + 1))
}

# refute NAME OUTPUT PATTERN: the pattern must not match.
refute() {
  if grep -qE -- "$3" <<<"$2"; then
    echo "FAIL $1: unexpected /$3/"
    sed 's/^/    | /' <<<"$2"
    failed=$((failed + 1))
  else
    echo "ok   $1"
    passed=$((passed + 1))
  fi
}

# Blanks are squeezed to one space, so patterns need not know dig's column layout.
dig_() { dig @"$SERVER" -p "$PORT" +norec +time=2 +tries=1 "$@" 2>&1 | tr -s '[:blank:]' ' '; }
kdig_() { kdig @"$SERVER" -p "$PORT" +norec +time=2 +retry=0 "$@" 2>&1 | tr -s '[:blank:]' ' '; }

# Answers.
out=$(dig_ "$ABC" TXT)
check "dig TXT: authoritative answer with the public values" "$out" \
  'status: NOERROR' 'flags: qr aa;' 'ANSWER: 3,' \
  'IN TXT "1" "URL" "https://example.com/products/ABC-123"' \
  '"2" "EMAIL" "quality@example.com"' '"3" "PRODUCT" '
refute "dig TXT: the private value is not served" "$out" 'INTERNAL'
check "dig TXT: EDNS answered with a 1232-byte payload" "$out" 'EDNS: version: 0, flags:; udp: 1232'
out=$(dig_ +tcp "$ABC" TXT)
check "dig +tcp TXT" "$out" 'status: NOERROR' 'ANSWER: 3,' '\(TCP\)'
out=$(dig_ ABC-123._ID.1.100.88.ID.EXAMPLE. TXT)
check "dig: names match case-insensitively, the question case is echoed" "$out" 'ANSWER: 3,' '^ABC-123\._ID\.1\.100\.88\.ID\.EXAMPLE\. '
out=$(dig_ "$ABC" URI)
check "dig URI (RFC 7553) for URL values" "$out" 'ANSWER: 1,' 'IN URI 1 1 "https://example.com/products/ABC-123"'
out=$(dig_ "$ABC" ANY)
check "dig ANY: TXT and URI" "$out" 'ANSWER: 4,' 'IN TXT' 'IN URI'
out=$(kdig_ "$ABC" TXT)
check "kdig TXT" "$out" 'status: NOERROR' 'Flags: qr aa;' '"1" "URL" "https://example.com/products/ABC-123"'
out=$(kdig_ +tcp "$ABC" URI)
check "kdig +tcp URI" "$out" 'status: NOERROR' 'URI 1 1 "https://example.com/products/ABC-123"'

out=$(dig_ "$("$IDNODE" dns-name '88.100.1/泵-001')" TXT)
check "dig with the name idnode dns-name prints for a UTF-8 suffix (decimal escapes)" "$out" \
  'status: NOERROR' 'ANSWER: 2,' '"2" "NAME" "\\230\\182\\178'

# Apex.
out=$(dig_ $APEX SOA)
check "dig SOA at the apex" "$out" 'flags: qr aa;' 'IN SOA ns1\.id\.example\. hostmaster\.id\.example\. [0-9]+ 3600 600 1209600 300'
out=$(dig_ $APEX NS)
check "dig NS at the apex, glue in additional" "$out" 'IN NS ns1\.id\.example\.' 'ADDITIONAL SECTION' 'ns1\.id\.example\. 3600 IN A 127\.0\.0\.1'
out=$(kdig_ ns1.$APEX A)
check "kdig A for the name server" "$out" 'status: NOERROR' 'ns1\.id\.example\. 3600 IN A 127\.0\.0\.1'

# Negative answers (RFC 2308).
out=$(dig_ nope._id.1.100.88.$APEX TXT)
check "dig NXDOMAIN with the SOA and the negative TTL" "$out" 'status: NXDOMAIN' 'flags: qr aa;' 'AUTHORITY: 1,' '^id\.example\. 300 IN SOA'
out=$(kdig_ nope._id.1.100.88.$APEX TXT)
check "kdig NXDOMAIN" "$out" 'status: NXDOMAIN' 'id\.example\. 300 IN SOA'
out=$(dig_ "$ABC" A)
check "dig NODATA: known name, type it lacks" "$out" 'status: NOERROR' 'ANSWER: 0,' 'AUTHORITY: 1,' 'IN SOA'
out=$(dig_ 1.100.88.$APEX TXT)
check "dig NODATA for a prefix name (empty non-terminal)" "$out" 'status: NOERROR' 'ANSWER: 0,'
out=$(dig_ 9.100.88.$APEX TXT)
check "dig NXDOMAIN for an unknown prefix" "$out" 'status: NXDOMAIN'

# Refusals and errors.
out=$(dig_ example.com A)
check "dig REFUSED outside the apex (no open resolver)" "$out" 'status: REFUSED'
refute "dig REFUSED is not authoritative" "$out" 'flags: qr aa'
out=$(dig_ +rec example.com A)
check "dig REFUSED with RD set, RA clear" "$out" 'status: REFUSED' 'flags: qr rd;'
out=$(dig_ -c CH version.bind TXT)
check "dig CHAOS class: REFUSED" "$out" 'status: REFUSED'
out=$(dig_ +opcode=notify "$ABC" SOA)
check "dig NOTIFY opcode: NOTIMP" "$out" 'status: NOTIMP'
out=$(dig_ +opcode=update "$ABC" SOA)
check "dig UPDATE opcode: NOTIMP" "$out" 'status: NOTIMP'
out=$(kdig_ +notcp $APEX AXFR)
check "kdig AXFR over UDP: NOTIMP" "$out" "server replied with error 'NOTIMPL'"

# EDNS (RFC 6891).
out=$(dig_ +noedns "$ABC" TXT)
refute "dig +noedns: no OPT in the answer" "$out" 'OPT PSEUDOSECTION'
out=$(dig_ +edns=1 +noednsnegotiation "$ABC" TXT)
check "dig EDNS version 1: BADVERS" "$out" 'status: BADVERS' 'EDNS: version: 0'
out=$(dig_ +dnssec "$ABC" TXT)
check "dig +dnssec: the DO bit is echoed" "$out" 'EDNS: version: 0, flags: do;'
out=$(kdig_ +bufsize=4096 "$ABC" TXT)
check "kdig +bufsize=4096: the node clamps to 1232" "$out" 'UDP size: 1232 B'

# Truncation and the TCP retry (RFC 7766).
out=$(dig_ +ignore "$BIG" TXT)
check "dig: an answer over 1232 bytes sets TC over UDP" "$out" 'flags: qr aa tc;' 'ANSWER: 0,'
out=$(dig_ +noedns +ignore "$BIG" TXT)
check "dig +noedns: TC at 512 bytes" "$out" 'flags: qr aa tc;'
out=$(dig_ "$BIG" TXT)
check "dig retries over TCP on TC and gets the whole answer" "$out" 'Truncated, retrying in TCP mode' 'ANSWER: 2,' 'line029: flow 42' '\(TCP\)'
out=$(kdig_ +notcp "$BIG" TXT)
check "kdig: TC over UDP" "$out" 'Flags: qr aa tc;'
out=$(kdig_ +tcp "$BIG" TXT)
check "kdig +tcp: whole answer" "$out" 'ANSWER: 2;' 'line029: flow 42'

# Several queries on one TCP connection.
out=$(kdig_ +tcp +keepopen "$ABC" TXT "$BIG" TXT nope._id.1.100.88.$APEX TXT)
check "kdig +keepopen: three queries on one TCP connection" "$out" 'line029' 'status: NXDOMAIN' '"1" "URL"'

echo "dig/kdig: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
