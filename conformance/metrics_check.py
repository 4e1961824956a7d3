"""The operations listener read by real clients: /metrics (OpenMetrics text, as Prometheus scrapes
it) parsed by the Prometheus project's own Python parser (prometheus_client), /stats as JSON, and
`idnode stats`.

Expects a node at $OPS with [ops] enabled and a lookup target set (conformance/run starts one),
after the other checks sent it lookups over DNS (UDP and TCP) and HTTP.
"""

import json
import os
import subprocess
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from checks import check, finish

OPS = os.environ["OPS"]
IDNODE = os.environ["IDNODE"]



def fetch(path):
    with urllib.request.urlopen(OPS + path, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def families():
    status, content_type, text = fetch("/metrics")
    assert status == 200 and content_type.startswith("application/openmetrics-text"), (status, content_type)
    return {f.name: f for f in text_string_to_metric_families(text)}


@check
def metrics_parse_with_the_prometheus_parser():
    found = families()
    for name, kind in [("idnode_lookups", "counter"), ("idnode_cache_hits", "counter"),
                       ("idnode_identifiers", "gauge"), ("idnode_lookups_today", "gauge"),
                       ("idnode_target_share", "gauge"), ("idnode_dns_responses", "counter"),
                       ("idnode_dns_questions", "counter"), ("idnode_dns_answer_seconds", "histogram"),
                       ("idnode_answer_seconds", "histogram"), ("idnode_cache_evictions", "counter"),
                       ("idnode_write_sequence", "gauge")]:
        assert name in found, f"{name} missing from {sorted(found)}"
        assert found[name].type == kind, (name, found[name].type)
    return f"{len(found)} families"


@check
def lookups_are_counted_by_protocol_and_outcome():
    lookups = families()["idnode_lookups"]
    by = {}
    for sample in lookups.samples:
        if sample.name == "idnode_lookups_total":
            key = (sample.labels["protocol"], sample.labels["outcome"])
            by[key] = by.get(key, 0) + sample.value
    for protocol in ["dns-udp", "dns-tcp", "http"]:
        assert sum(v for (p, _), v in by.items() if p == protocol) > 0, f"no {protocol} lookups: {by}"
    assert by[("dns-udp", "answer")] > 0 and by[("dns-udp", "not-found")] > 0, by
    return ", ".join(f"{p}/{o} {int(v)}" for (p, o), v in sorted(by.items()) if v)


@check
def writes_and_failed_authentications_are_counted():
    found = families()
    writes = {s.labels["result"]: s.value for s in found["idnode_writes"].samples if s.name == "idnode_writes_total"}
    failures = [s.value for s in found["idnode_auth_failures"].samples if s.name == "idnode_auth_failures_total"]
    # http.sh and pyhandle_check.py wrote, and sent wrong secrets, before this check.
    assert writes.get("applied", 0) > 0 and writes.get("refused", 0) > 0, writes
    assert failures and failures[0] > 0, failures
    return f"writes {writes}, failed authentications {int(failures[0])}"


@check
def the_registry_size_is_the_demo_namespace_s():
    value = families()["idnode_identifiers"].samples[0].value
    assert value >= 5, value
    return f"{int(value)} records"


@check
def stats_json_agrees_with_the_metrics():
    _, _, text = fetch("/stats")
    stats = json.loads(text)
    today = stats["today"]["lookups"]
    assert today > 0 and stats["total"] >= today, stats
    assert stats["target"]["lookups"] == 2000000000, stats["target"]
    assert stats["top_prefixes"][0]["prefix"].startswith("88."), stats["top_prefixes"]
    return f"{today} lookups today; busiest prefix {stats['top_prefixes'][0]}"


@check
def idnode_stats_prints_the_report():
    out = subprocess.run([IDNODE, "stats", "--ops", OPS], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "lookups today" in out.stdout and "target: 2000000000 lookups in 365 days" in out.stdout, out.stdout
    return out.stdout.splitlines()[0]


finish("metrics")
