#!/usr/bin/env bash
# The Handle.Net JSON API with curl: every response code and its HTTP status (docs/http-api.md, "Response codes"),
# authorization by prefix, batches, and DNS answers right after each write.
# Expects a node with the demo namespace at $HTTP (API, http:// or https:// with $CURL_CA_BUNDLE
# set) and $SERVER:$PORT (DNS) whose top-level
# administrator 300:0.NA/88 has the secret $ADMIN_SECRET (conformance/run sets this up).
set -uo pipefail

: "${HTTP:?}" "${SERVER:?}" "${PORT:?}" "${ADMIN_SECRET:?}"
API=$HTTP/api/handles
TOP="300%3A0.NA/88:$ADMIN_SECRET"
OPS="300%3A0.NA/88.100:operator-secret"
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# expect NAME HTTP-STATUS RESPONSE-CODE CURL-ARGS...: the status and "responseCode" must match.
expect() {
  local name=$1 status=$2 code=$3
  shift 3
  local got
  got=$(curl -s -o "$out" -w '%{http_code}' "$@")
  if [ "$got" = "$status" ] && grep -qE "\"responseCode\": ?$code(,|}|$)" "$out"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: expected HTTP $status responseCode $code, got HTTP $got: $(head -c 400 "$out")"
    failed=$((failed + 1))
  fi
}

# holds NAME PATTERN: the last response body matches (extended regex).
holds() {
  if grep -qE -- "$2" "$out"; then
    echo "ok   $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1: no /$2/ in $(head -c 400 "$out")"
    failed=$((failed + 1))
  fi
}

lacks() {
  if grep -qE -- "$2" "$out"; then
    echo "FAIL $1: unexpected /$2/ in $(head -c 400 "$out")"
    failed=$((failed + 1))
  else
    echo "ok   $1"
    passed=$((passed + 1))
  fi
}

# dns NAME QNAME PATTERN: a DNS query right after a write shows the change.
dns() {
  local answer
  answer=$(dig @"$SERVER" -p "$PORT" +norec +time=2 +tries=1 "$2" TXT 2>&1 | tr -s '[:blank:]' ' ')
  if grep -qE -- "$3" <<<"$answer"; then
    echo "ok   $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1: no /$3/ in DNS answer:"
    sed 's/^/    | /' <<<"$answer"
    failed=$((failed + 1))
  fi
}

json=(-H 'Content-Type: application/json')

# Over HTTPS (conformance/run), plain HTTP on the same port gets no HTTP answer, and the
# certificate verifies against the test CA only (curl reads $CURL_CA_BUNDLE).
if [[ $HTTP == https://* ]]; then
  plain=${HTTP/https:/http:}
  if got=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$plain/api/handles/88.100.1/ABC-123"); [ "$got" = 000 ]; then
    echo "ok   HTTPS only: plain HTTP on the API port gets no HTTP response"
    passed=$((passed + 1))
  else
    echo "FAIL HTTPS only: plain HTTP got HTTP $got"
    failed=$((failed + 1))
  fi
  if CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt curl -s -m 5 -o /dev/null "$API/88.100.1/ABC-123"; then
    echo "FAIL HTTPS: the node's certificate verified against the system CAs"
    failed=$((failed + 1))
  else
    echo "ok   HTTPS: the certificate is refused without the node's CA"
    passed=$((passed + 1))
  fi
fi

# The top-level administrator registers a secondary node's prefix with its operator.
expect "top-level admin registers prefix 88.100 with an operator" 201 1 -u "$TOP" -X PUT "$API/0.NA/88.100" "${json[@]}" -d '{"values":[
  {"index":100,"type":"HS_ADMIN","data":{"format":"admin","value":{"handle":"0.NA/88.100","index":300,"permissions":"111111111111"}}},
  {"index":300,"type":"HS_SECKEY","data":"operator-secret","publicRead":false}]}'

# Resolution.
expect "GET an identifier: 200, responseCode 1" 200 1 "$API/88.100.1/ABC-123"
holds "GET returns the Handle.Net value shape" '"data":\{"format":"string","value":"https://example.com/products/ABC-123"\}'
lacks "GET hides values without public read from anonymous clients" 'INTERNAL'
expect "GET with an operator's credentials (auth=true)" 200 1 -u "$OPS" "$API/88.100.1/ABC-123?auth=true"
holds "the operator of 88.100 reads the non-public values under it" '"type":"INTERNAL"'
expect "GET ?publicOnly=true hides them again" 200 1 -u "$OPS" "$API/88.100.1/ABC-123?publicOnly=true"
lacks "publicOnly" 'INTERNAL'
expect "GET ?type=EMAIL filters" 200 1 "$API/88.100.1/ABC-123?type=EMAIL"
holds "type filter keeps only EMAIL" '^\{"handle":"88.100.1/ABC-123","responseCode":1,"values":\[\{[^]]*"type":"EMAIL"\}\]\}$'
expect "GET ?index=2&index=3 filters" 200 1 "$API/88.100.1/ABC-123?index=2&index=3"
expect "GET with filters matching nothing: 200, VALUES_NOT_FOUND (200)" 200 200 "$API/88.100.1/ABC-123?type=NOPE"
expect "GET an unknown identifier: 404, HANDLE_NOT_FOUND (100)" 404 100 "$API/88.100.1/NOT-THERE"
expect "GET a malformed identifier: 400, INVALID_HANDLE (102)" 400 102 "$API/88..1/X"
expect "GET a prefix record" 200 1 -u "$OPS" "$API/0.NA/88.100"
lacks "HS_SECKEY is never returned, not even to its administrator" 'HS_SECKEY|operator-secret|argon2'
expect "GET ?pretty indents" 200 1 "$API/88.100.1/ABC-123?pretty"
holds "pretty output" '^  "handle"'

# Authentication.
curl -s -D "$out.h" -o /dev/null -X PUT "$API/88.100.7/A" "${json[@]}" -d '[]'
if grep -qi '^WWW-Authenticate: Basic realm="handle"' "$out.h"; then echo "ok   401 carries WWW-Authenticate"; passed=$((passed + 1)); else echo "FAIL 401 carries WWW-Authenticate"; failed=$((failed + 1)); fi
rm -f "$out.h"
expect "PUT without credentials: 401, AUTHENTICATION_NEEDED (402)" 401 402 -X PUT "$API/88.100.7/A" "${json[@]}" -d '[]'
expect "DELETE without credentials: 401" 401 402 -X DELETE "$API/88.100.1/ABC-123"
expect "PUT with a wrong secret: 403, AUTHENTICATION_FAILED (403)" 403 403 -u "300%3A0.NA/88.100:wrong" -X PUT "$API/88.100.7/A" "${json[@]}" -d '[]'
expect "PUT as an unknown administrator: 403" 403 403 -u "300%3A0.NA/77:x" -X PUT "$API/88.100.7/A" "${json[@]}" -d '[]'
expect "PUT with a malformed user: 403, INVALID_ADMIN (400)" 403 400 -u "nobody:x" -X PUT "$API/88.100.7/A" "${json[@]}" -d '[]'

# Writes and their DNS answers.
expect "operator creates under 88.100.*: 201" 201 1 -u "$OPS" -X PUT "$API/88.100.7/WIDGET-1" "${json[@]}" -d '{"values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/w/1"}}]}'
dns "DNS sees the new identifier at once" widget-1._id.7.100.88.id.example '"1" "URL" "https://example.com/w/1"'
expect "replace: 200" 200 1 -u "$OPS" -X PUT "$API/88.100.7/WIDGET-1" "${json[@]}" -d '[{"index":1,"type":"URL","data":"https://example.com/w/1b"}]'
dns "DNS sees the replacement" widget-1._id.7.100.88.id.example '"https://example.com/w/1b"'
expect "PUT ?index=2 adds one value, keeps the rest" 200 1 -u "$OPS" -X PUT "$API/88.100.7/WIDGET-1?index=2" "${json[@]}" -d '[{"index":2,"type":"EMAIL","data":"w@example.com"}]'
dns "DNS sees both values" widget-1._id.7.100.88.id.example '"2" "EMAIL" "w@example.com"'
expect "case-insensitive: the same identifier in other case is the same record" 200 1 "$API/88.100.7/widget-1"
expect "PUT ?overwrite=false on an existing identifier: 409, ALREADY_EXISTS (101)" 409 101 -u "$OPS" -X PUT "$API/88.100.7/WIDGET-1?overwrite=false" "${json[@]}" -d '[]'
expect "operator of 88.100 writing under 88.101: 403, INSUFFICIENT_PERMISSIONS (401)" 403 401 -u "$OPS" -X PUT "$API/88.101.1/X" "${json[@]}" -d '[]'
expect "operator creating prefix 88.101: 403" 403 401 -u "$OPS" -X PUT "$API/0.NA/88.101" "${json[@]}" -d '[]'
expect "operator creating sub-prefix 88.100.9: 201" 201 1 -u "$OPS" -X PUT "$API/0.NA/88.100.9" "${json[@]}" -d '[]'
expect "an unknown data format: 400, INVALID_VALUE (202)" 400 202 -u "$OPS" -X PUT "$API/88.100.7/W2" "${json[@]}" -d '[{"index":1,"type":"URL","data":{"format":"morse","value":"..."}}]'
expect "a body that is not JSON: 400, INVALID_VALUE (202)" 400 202 -u "$OPS" -X PUT "$API/88.100.7/W2" "${json[@]}" -d 'values=1'
expect "duplicate indexes: 400, INVALID_VALUE (202)" 400 202 -u "$OPS" -X PUT "$API/88.100.7/W2" "${json[@]}" -d '[{"index":1,"type":"A","data":"a"},{"index":1,"type":"B","data":"b"}]'
expect "mintNewSuffix=true: 201, the server picks the suffix" 201 1 -u "$OPS" -X PUT "$API/88.100.7?mintNewSuffix=true" "${json[@]}" -d '[{"index":1,"type":"URL","data":"https://example.com/minted"}]'
holds "the minted identifier is under the prefix" '"handle":"88.100.7/[0-9a-f-]{36}"'
expect "DELETE ?index= of a missing value: 400, VALUES_NOT_FOUND (200)" 400 200 -u "$OPS" -X DELETE "$API/88.100.7/WIDGET-1?index=9"
expect "DELETE ?index=2 removes one value" 200 1 -u "$OPS" -X DELETE "$API/88.100.7/WIDGET-1?index=2"
dns "DNS no longer shows the removed value" widget-1._id.7.100.88.id.example 'ANSWER: 1,'
expect "DELETE the identifier: 200" 200 1 -u "$OPS" -X DELETE "$API/88.100.7/WIDGET-1"
dns "DNS answers NXDOMAIN right after the delete" widget-1._id.7.100.88.id.example 'status: NXDOMAIN'
expect "DELETE it again: 404, HANDLE_NOT_FOUND (100)" 404 100 -u "$OPS" -X DELETE "$API/88.100.7/WIDGET-1"

# Listing.
expect "list ?prefix=88.100.1 as the operator" 200 1 -u "$OPS" "$API?prefix=88.100.1&page=0&pageSize=2"
holds "a page of two, with the total" '"handles":\["88.100.1/ABC-123","88.100.1/DATASHEET-9"\].*"totalCount":"6"'
expect "list anonymously: 401" 401 402 "$API?prefix=88.100.1"
expect "list outside the operator's prefixes: 403" 403 401 -u "$OPS" "$API?prefix=88.101"

# Batches.
python3 - "$out.batch" <<'EOF'
import json, sys
ops = [{"op": "put", "handle": f"88.100.8/B-{i:04d}", "values": [{"index": 1, "type": "URL", "data": f"https://example.com/b/{i}"}]} for i in range(2000)]
json.dump({"operations": ops}, open(sys.argv[1], "w"))
ops.append({"op": "put", "handle": "88.100.8/B-2000", "values": []})
json.dump({"operations": ops}, open(sys.argv[1] + ".2001", "w"))
json.dump({"operations": [{"op": "put", "handle": "88.100.8/OK-1", "values": []}, {"op": "delete", "handle": "88.100.8/NOT-THERE"}]}, open(sys.argv[1] + ".bad", "w"))
EOF
expect "a batch of 2001: 413, nothing applied" 413 4 -u "$OPS" -X POST "$HTTP/api/batch" "${json[@]}" --data-binary "@$out.batch.2001"
expect "... so 88.100.8/B-0000 does not exist" 404 100 "$API/88.100.8/B-0000"
expect "a batch of 2000 puts in one transaction: 200" 200 1 -u "$OPS" -X POST "$HTTP/api/batch" "${json[@]}" --data-binary "@$out.batch"
holds "one result per item" '"handle":"88.100.8/B-1999","responseCode":1,"status":"created"'
dns "DNS serves a batched identifier" b-1234._id.8.100.88.id.example '"https://example.com/b/1234"'
expect "a batch with a failing item: the item's status, nothing applied" 404 100 -u "$OPS" -X POST "$HTTP/api/batch" "${json[@]}" --data-binary "@$out.batch.bad"
holds "the failing item is named" '"failedOperation":1'
expect "... so 88.100.8/OK-1 was not created" 404 100 "$API/88.100.8/OK-1"
rm -f "$out.batch" "$out.batch.2001" "$out.batch.bad"

echo "http: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
