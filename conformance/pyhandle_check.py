"""Conformance with pyhandle's REST client (PyPI `pyhandle`), unchanged.

It creates an identifier, reads a value, modifies it, adds and removes values and deletes the
identifier, checking each step over DNS as well; and it fails cleanly with wrong credentials.
Expects $HTTP (the API, https://), $CA_BUNDLE (the CA of its certificate), $SERVER:$PORT (DNS)
and the top-level administrator 300:0.NA/88 with the secret $ADMIN_SECRET (conformance/run sets
this up).
"""

import os
import sys
import traceback
import warnings

import dns.message
import dns.query
import dns.rcode
import requests
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import GenericHandleError, HandleAlreadyExistsException, HandleNotFoundException

warnings.filterwarnings("ignore")
HTTP = os.environ["HTTP"]
SERVER = os.environ["SERVER"]
PORT = int(os.environ["PORT"])
SECRET = os.environ["ADMIN_SECRET"]
# The CA that signed the node's certificate: pyhandle verifies the server against it.
CA_BUNDLE = os.environ.get("CA_BUNDLE", True)
HANDLE = f"88.100.2/PY-{os.getpid()}"
QNAME = f"py-{os.getpid()}._id.2.100.88.id.example."

results = {"passed": 0, "failed": 0}


def step(name, fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - report every failure and go on
        results["failed"] += 1
        print(f"FAIL {name}")
        traceback.print_exc(file=sys.stdout)
    else:
        results["passed"] += 1
        print(f"ok   {name}")


def txt():
    """The identifier's text values over DNS, as {type: data}, or None for NXDOMAIN.
    (HS_ADMIN data is binary, in the Handle protocol's layout, and left out.)"""
    response = dns.query.udp(dns.message.make_query(QNAME, "TXT"), SERVER, port=PORT, timeout=2)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return None
    values = {rr.strings[1].decode(): b"".join(rr.strings[2:]) for rrset in response.answer for rr in rrset}
    assert "HS_ADMIN" in values, "pyhandle's HS_ADMIN value is public, as in Handle.Net"
    return {k: v.decode() for k, v in values.items() if k != "HS_ADMIN"}


def client(user="300:0.NA/88", password=SECRET, verify=CA_BUNDLE):
    return PyHandleClient("rest").instantiate_with_username_and_password(HTTP, user, password, HTTPS_verify=verify)


admin = client()


def create():
    assert admin.register_handle_kv(HANDLE, URL="https://example.com/py/1", CHECKSUM="sha256:abc") == HANDLE
    assert txt() == {"URL": "https://example.com/py/1", "CHECKSUM": "sha256:abc"}


def read():
    assert admin.get_value_from_handle(HANDLE, "URL") == "https://example.com/py/1"
    record = admin.retrieve_handle_record(HANDLE)
    assert record["CHECKSUM"] == "sha256:abc" and "HS_ADMIN" in record


def modify_and_add():
    admin.modify_handle_value(HANDLE, URL="https://example.com/py/2", EMAIL="ops@example.com")
    record = admin.retrieve_handle_record(HANDLE)
    assert record["URL"] == "https://example.com/py/2" and record["EMAIL"] == "ops@example.com"
    values = txt()
    assert values["URL"] == "https://example.com/py/2" and values["EMAIL"] == "ops@example.com"


def remove_value():
    admin.delete_handle_value(HANDLE, "EMAIL")
    assert "EMAIL" not in admin.retrieve_handle_record(HANDLE)
    assert "EMAIL" not in txt()


def refuse_overwrite():
    try:
        admin.register_handle(HANDLE, "https://example.com/other")
    except HandleAlreadyExistsException:
        return
    raise AssertionError("registering an existing identifier without overwrite must fail")


def generated_suffix():
    handle = admin.generate_and_register_handle("88.100.2", "https://example.com/generated")
    assert handle.startswith("88.100.2/")
    assert admin.get_value_from_handle(handle, "URL") == "https://example.com/generated"
    admin.delete_handle(handle)


def delete():
    admin.delete_handle(HANDLE)
    assert admin.retrieve_handle_record(HANDLE) is None
    assert txt() is None


def wrong_secret():
    # pyhandle 1.5 reports every refused write as GenericHandleError with the HTTP status and
    # the server's message; it never raises HandleAuthenticationError from the REST client.
    wrong = client(password="not-the-secret")
    try:
        wrong.register_handle_kv(HANDLE, URL="https://evil.example")
    except GenericHandleError as e:
        text = str(e)
        assert "HTTP Status Code: 403" in text and "the secret does not match" in text, text
        assert admin.retrieve_handle_record(HANDLE) is None, "nothing was written"
        return
    raise AssertionError("a wrong secret must be refused")


def unknown_user():
    try:
        client(user="300:88.100/NOBODY", password="x")
    except HandleNotFoundException:
        return
    raise AssertionError("an administrator that does not exist must be refused")


def untrusted_certificate():
    # Without the test CA the node's certificate is unknown: the secret is never sent.
    try:
        client(verify=True).register_handle_kv(HANDLE, URL="https://evil.example")
    except requests.exceptions.SSLError:
        return
    raise AssertionError("a client that does not trust the node's CA must refuse to talk to it")


for name, fn in [
    ("HTTPS: a client without the node's CA refuses the connection", untrusted_certificate),
    ("create an identifier (register_handle_kv), seen over DNS", create),
    ("read values (get_value_from_handle, retrieve_handle_record)", read),
    ("modify a value and add one (modify_handle_value), seen over DNS", modify_and_add),
    ("remove a value (delete_handle_value), seen over DNS", remove_value),
    ("refuse to overwrite (register_handle)", refuse_overwrite),
    ("generated suffix (generate_and_register_handle)", generated_suffix),
    ("delete the identifier (delete_handle), NXDOMAIN over DNS", delete),
    ("wrong secret fails cleanly: HTTP 403 with the reason, nothing written", wrong_secret),
    ("unknown administrator fails cleanly (HandleNotFoundException)", unknown_user),
]:
    step(name, fn)

print(f"pyhandle: {results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
