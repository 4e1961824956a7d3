"""The status page in a real browser: Debian's Chromium, headless, loads the operations listener's
page, runs its script (which fetches /status.json and draws it), and the RENDERED DOM is checked:
the role, the numbers the script put in, the chart SVG elements, the delegations with the health
the node's prober saw (one up, one down), and a site description holding `<script>` and an
`<img onerror>` shown as text, never run. Then a screenshot (1280x1600) is taken and its path
printed.

Expects a node at $OPS with [ops] enabled and `health_interval_secs` small (conformance/run
starts one), its API at $HTTP (HTTPS, CA in $CA_BUNDLE) with the top-level administrator
300:0.NA/88 holding $ADMIN_SECRET, and its DNS at $SERVER:$PORT. Installs Debian's chromium when
it is missing and this runs as root; otherwise says so and fails. $STATUS_SCREENSHOT names the
screenshot file (default: $TMPDIR/idnode-status-page.png).
"""

import base64
import html
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import checks
from checks import check, finish

OPS = os.environ["OPS"]
HTTP = os.environ["HTTP"]
SERVER, PORT = os.environ["SERVER"], int(os.environ["PORT"])
SECRET = os.environ["ADMIN_SECRET"]
SCREENSHOT = os.environ.get("STATUS_SCREENSHOT") or os.path.join(tempfile.gettempdir(), "idnode-status-page.png")
HOSTILE = 'child <script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'"> & co'
# 20 s: what one Chromium run may take (it starts in 1-3 s on these machines).
BROWSER_TIMEOUT = 20




def chromium():
    """Debian's chromium, installed when missing and root; None when it cannot be had."""
    found = shutil.which("chromium")
    if found or os.geteuid() != 0:
        return found
    print("== installing chromium (Debian's package)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:])
            return None
    return shutil.which("chromium")


def put(handle, values):
    """PUT a record through the HTTPS API as the top-level administrator."""
    context = ssl.create_default_context(cafile=os.environ.get("CA_BUNDLE"))
    auth = base64.b64encode(f"300%3A0.NA/88:{SECRET}".encode()).decode()
    request = urllib.request.Request(
        f"{HTTP}/api/handles/{handle}", method="PUT", data=json.dumps({"values": values}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status in (200, 201), response.status


def site(port, desc):
    return [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {
        "attributes": [{"name": "dns-port", "value": str(port)}, {"name": "desc", "value": desc}],
        "servers": [{"serverId": 1, "address": SERVER, "interfaces": [{"protocol": "TCP", "port": 2641}]}]}}}]


def status_json():
    with urllib.request.urlopen(OPS + "/status.json", timeout=10) as response:
        return json.loads(response.read())


def browser(binary, *args):
    """One headless Chromium run with a profile of its own; its stdout."""
    with tempfile.TemporaryDirectory(prefix="idnode-chromium-") as profile:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
                   # The page draws after its fetch of status.json: let the browser's clock run
                   # until the network is idle (at most 10 s of virtual time) before it dumps.
                   "--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw", *args, OPS + "/"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-3000:]}"
        return done.stdout


def version(binary):
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip() or "chromium"


binary = chromium()
if not binary:
    print("FAIL chromium is not installed and could not be: "
          + ("apt-get install chromium failed" if os.geteuid() == 0 else "sudo apt-get install -y chromium"))
    checks.results["failed"] += 1
    finish("status page")

# Two delegations below the node's zone: 88.105 at this node's own DNS address (it answers, with
# a referral: up) and 88.106 at a port nothing listens on (down). 88.105's site description is
# what a hostile operator would write.
closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
closed.bind((SERVER, 0))
closed_port = closed.getsockname()[1]
closed.close()
put("0.NA/88.105", site(PORT, HOSTILE))
put("0.NA/88.106", site(closed_port, "a node that is down"))

state = {}


@check
def the_prober_sees_one_child_up_and_one_down():
    deadline = time.monotonic() + 15
    while True:
        status = status_json()
        health = {d["prefix"]: (d["health"] or {}).get("state") for d in status["delegations"]}
        if health.get("88.105") == "up" and health.get("88.106") == "down":
            state["json"] = status
            return f"{health} (probed every {status['probe_every_secs']} s)"
        assert time.monotonic() < deadline, f"not probed yet: {health}"
        time.sleep(0.5)


@check
def chromium_renders_the_page_with_its_data():
    dom = browser(binary, "--dump-dom")
    state["dom"] = dom
    assert 'data-state="ready"' in dom, "the script did not finish: " + dom[:3000]
    role = re.search(r'id="role">([^<]*)<', dom)
    assert role and role.group(1) == "top-level", role
    total = re.search(r'id="today-total" data-value="(\d+)">([\d,]+)<', dom)
    assert total, "no lookup count: " + dom[:3000]
    expected = state["json"]["stats"]["today"]["lookups"]
    shown = int(total.group(2).replace(",", ""))
    assert shown == int(total.group(1)) and shown >= expected > 0, (shown, expected)
    return f"{version(binary)}; {len(dom)} bytes of DOM, {shown} lookups today"


@check
def the_charts_are_drawn_as_svg():
    dom = state["dom"]
    charts = re.findall(r'<svg[^>]*class="chart"[^>]*data-series="(\d+)"', dom)
    assert len(charts) >= 4, charts
    lines = dom.count('<polyline')
    assert lines >= 3 and 'class="bar"' in dom, (lines, dom[:2000])
    assert re.search(r'<polyline[^>]*class="series"[^>]*><title>88\.100</title>', dom), "no line for 88.100"
    ratio = re.search(r'data-cache="dns"><span class="name">dns</span>.*?<span class="value">([^<]+)</span>', dom)
    assert ratio, "no DNS cache ratio"
    return f"{len(charts)} charts, {lines} lines, DNS cache hit ratio {ratio.group(1)}"


@check
def the_delegations_show_the_childrens_health():
    dom = state["dom"]
    rows = re.findall(r'<tr data-state="(\w+)"><td class="prefix">([^<]*)</td>', dom)
    assert ("up", "88.105") in rows and ("down", "88.106") in rows, rows
    return ", ".join(f"{p} {s}" for s, p in rows)


@check
def what_operators_wrote_is_text_not_markup():
    dom = state["dom"]
    assert "<title>idnode status</title>" in dom and "pwned</title>" not in dom, "the injected script ran"
    assert not re.search(r"<img[^>]*onerror", dom, re.I), "an injected element was created"
    desc = re.search(r'<td class="desc">([^<]*)</td>', dom)
    assert desc and html.unescape(desc.group(1)) == HOSTILE, desc
    assert "&lt;script&gt;" in desc.group(1), desc.group(1)
    return desc.group(1)[:60] + "..."


@check
def a_screenshot_is_taken():
    if os.path.exists(SCREENSHOT):
        os.remove(SCREENSHOT)
    browser(binary, f"--screenshot={SCREENSHOT}", "--window-size=1280,1600")
    with open(SCREENSHOT, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:8]
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 1600), (width, height)
    # An empty or error page compresses to a few KB; the drawn page with its charts does not.
    assert len(png) > 40_000, len(png)
    return f"{SCREENSHOT} ({width}x{height}, {len(png)} bytes)"


finish("status page")
