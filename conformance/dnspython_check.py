"""Conformance with dnspython, a third-party DNS library.

Expects a node serving the demo namespace at $SERVER:$PORT (conformance/run starts one). Every
demo value is read back over DNS and compared with src/demo.jsonl, so the TXT layout of
docs/dns-mapping.md is checked end to end.
"""

import json
import os
import pathlib
import socket
import struct
import sys
import traceback

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update

SERVER = os.environ["SERVER"]
PORT = int(os.environ["PORT"])
APEX = "id.example."
ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 2.0

results = {"passed": 0, "failed": 0}


def check(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - report every failure and go on
        results["failed"] += 1
        print(f"FAIL {fn.__name__}")
        traceback.print_exc(file=sys.stdout)
    else:
        results["passed"] += 1
        print(f"ok   {fn.__name__}")
    return fn


def name_of(identifier):
    """The mapping of docs/dns-mapping.md, written independently of the server's code."""
    prefix, suffix = identifier.split("/", 1)
    raw = suffix.encode().lower()  # bytes.lower() folds ASCII letters only, as idnode does
    chunks = [raw[i : i + 63] for i in range(0, len(raw), 63)]
    labels = list(reversed(chunks)) + [b"_id"] + [s.lower().encode() for s in reversed(prefix.split("."))]
    return dns.name.Name(labels + list(dns.name.from_text(APEX).labels))


def query(qname, rdtype="TXT", tcp=False, **kw):
    q = dns.message.make_query(qname, rdtype, **kw)
    q.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(q, SERVER, port=PORT, timeout=TIMEOUT)
    return dns.query.udp(q, SERVER, port=PORT, timeout=TIMEOUT)


def values_of(response):
    out = {}
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.TXT:
            continue
        for rr in rrset:
            index, kind, *data = rr.strings
            out[int(index)] = (kind.decode(), b"".join(data))
    return out


def demo_records():
    for line in (ROOT / "src" / "demo.jsonl").read_text().splitlines():
        yield json.loads(line)


@check
def every_public_demo_value_round_trips_through_txt():
    for record in demo_records():
        if record["handle"].startswith("0.NA/"):
            continue
        expected = {
            v["index"]: (v["type"], v["data"]["value"].encode())
            for v in record["values"]
            if v.get("publicRead", True)
        }
        response = query(name_of(record["handle"]), tcp=True)
        assert response.rcode() == dns.rcode.NOERROR, record["handle"]
        assert response.flags & dns.flags.AA
        assert values_of(response) == expected, (record["handle"], values_of(response), expected)


@check
def uri_records_carry_url_values():
    response = query(name_of("88.100.1/VALVE-7"), "URI")
    [rrset] = response.answer
    [uri] = list(rrset)
    assert (uri.priority, uri.weight, uri.target) == (1, 1, b"https://example.com/products/VALVE-7")


@check
def any_returns_txt_and_uri():
    response = query(name_of("88.100.1/SENSOR-42"), "ANY")
    types = sorted(dns.rdatatype.to_text(r.rdtype) for r in response.answer)
    assert types == ["TXT", "URI"], types


@check
def question_case_is_echoed_and_matching_ignores_case():
    mixed = dns.name.from_text("PuMp-0001._iD.1.100.88.Id.ExAmPlE.")
    response = query(mixed)
    assert response.question[0].name.to_text() == mixed.to_text()
    assert values_of(response)[1] == ("URL", b"https://example.com/products/PUMP-0001")


@check
def nxdomain_has_soa_with_negative_ttl():
    response = query(name_of("88.100.1/NOT-THERE"))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 300 and soa[0].minimum == 300


@check
def nodata_for_names_that_exist():
    for qname, rdtype in [(name_of("88.100.1/ABC-123"), "AAAA"), ("1.100.88." + APEX, "TXT"), ("_id.1.100.88." + APEX, "TXT")]:
        response = query(qname, rdtype)
        assert response.rcode() == dns.rcode.NOERROR, qname
        assert not response.answer and response.authority[0].rdtype == dns.rdatatype.SOA, qname


@check
def refused_outside_apex_and_for_chaos():
    assert query("www.example.org.", "A").rcode() == dns.rcode.REFUSED
    q = dns.message.make_query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
    assert dns.query.udp(q, SERVER, port=PORT, timeout=TIMEOUT).rcode() == dns.rcode.REFUSED


@check
def update_opcode_is_not_implemented():
    update = dns.update.UpdateMessage(APEX)
    update.add("x._id.1.100.88." + APEX, 300, "TXT", '"1" "URL" "https://evil"')
    response = dns.query.udp(update, SERVER, port=PORT, timeout=TIMEOUT)
    assert response.rcode() == dns.rcode.NOTIMP
    assert response.opcode() == dns.opcode.UPDATE
    assert query(name_of("88.100.1/x")).rcode() == dns.rcode.NXDOMAIN


def raw_udp(payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(payload, (SERVER, PORT))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


@check
def malformed_queries_get_formerr_or_silence():
    wire = dns.message.make_query(name_of("88.100.1/ABC-123"), "TXT").to_wire()
    two_questions = wire[:4] + struct.pack("!H", 2) + wire[6:]
    answer = raw_udp(two_questions)
    assert answer[:2] == wire[:2] and answer[3] & 0xF == dns.rcode.FORMERR
    truncated = raw_udp(wire[:-3])
    assert truncated[3] & 0xF == dns.rcode.FORMERR
    as_response = wire[:2] + bytes([wire[2] | 0x80]) + wire[3:]
    assert raw_udp(as_response) is None, "responses are dropped"
    assert raw_udp(b"\x00\x01") is None, "runts are dropped"
    assert query(name_of("88.100.1/ABC-123")).rcode() == dns.rcode.NOERROR, "still serving"


@check
def edns_payload_badvers_and_do_bit():
    response = query(name_of("88.100.1/ABC-123"), use_edns=0, payload=4096, want_dnssec=True)
    assert response.edns == 0 and response.payload == 1232
    assert response.ednsflags & dns.flags.DO
    assert query(name_of("88.100.1/ABC-123"), use_edns=False).edns == -1
    bad = query(name_of("88.100.1/ABC-123"), use_edns=1)
    assert bad.rcode() == dns.rcode.BADVERS and bad.edns == 0


@check
def truncation_over_udp_and_full_answer_over_tcp():
    big = name_of("88.100.1/DATASHEET-9")
    for kw in ({"use_edns": False}, {"use_edns": 0, "payload": 1232}, {"use_edns": 0, "payload": 65000}):
        response = query(big, **kw)
        assert response.flags & dns.flags.TC and not response.answer, kw
    full = query(big, tcp=True)
    assert not full.flags & dns.flags.TC
    assert len(values_of(full)[2][1]) > 1232


@check
def several_queries_on_one_tcp_connection():
    names = [name_of(i) for i in ("88.100.1/ABC-123", "88.100.1/DATASHEET-9", "88.100.1/NOPE")]
    with socket.create_connection((SERVER, PORT), timeout=TIMEOUT) as s:
        queries = [dns.message.make_query(n, "TXT") for n in names]
        for q in queries:
            dns.query.send_tcp(s, q)
        answers = [dns.query.receive_tcp(s)[0] for _ in queries]
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


@check
def apex_soa_and_ns():
    soa = query(APEX, "SOA")
    assert soa.answer[0][0].mname.to_text() == "ns1." + APEX
    ns = query(APEX, "NS")
    assert ns.answer[0][0].target.to_text() == "ns1." + APEX
    assert ns.additional[0][0].address == "127.0.0.1"


print(f"dnspython: {results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
