"""Issue 10: a callback_url can never make Tuma POST into its own host or a private network —
refused at accept time with a 400 and again before each POST; the host is resolved once, every
address checked, and the connection made to the checked address with SNI and Host intact."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import api_event
from tuma import callback_http
from tuma.domain.callback_urls import refusal

RUNTIME_API = "http://127.0.0.1:9001\\@8.8.8.8/../2018-06-01/runtime/invocation/next"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


# --- the URL's text --------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    RUNTIME_API,                               # urllib3 ends the authority at the backslash
    "http://8.8.8.8\\@127.0.0.1/",
    "http://user:pass@example.com/cb",         # userinfo: one parser's host is another's password
    "http://example.com@127.0.0.1/cb",
    "http://0177.0.0.1/cb",                    # octal: 127.0.0.1 to the system resolver
    "http://2130706433/cb",                    # one number: 127.0.0.1 too
    "http://0x7f.1/cb",
    "file:///etc/passwd", "gopher://example.com/", "ftp://example.com/", "javascript:alert(1)",
    "HTTPS://example.com/cb",                  # the job schema's pattern is lower-case
    " https://example.com/cb", "https://example.com/cb\t", "https://exa mple.com/",
    "https://example.com/\r\nX-Injected: 1", "https://example.com/\x00", "https://example.com/\x7f",
    "http://[", "http://[::1", "http://a\u2100b/", "https://exämple.com/",
    "http://[fe80::1%25eth0]/cb",             # a zone id names one of the machine's interfaces
    "http://example.com:0/", "http://example.com:99999/", "http://example.com:port/",
    "https://" + "a" * 2100 + ".com/",
])
def test_a_callback_url_two_parsers_may_read_differently_is_refused(url):
    assert refusal(url) is not None


@pytest.mark.parametrize("url", [
    "https://yourapp.com/webhooks/sms", "https://api.example.co.ke:8443/tuma/cb?tenant=7&x=%20y",
    "http://127.0.0.1:9/cb", "http://localhost:8000/cb", "http://[2001:db8::1]:8080/cb", "https://example.com./cb",
])
def test_an_ordinary_callback_url_is_accepted(url):
    assert refusal(url) is None


@pytest.fixture
def send(functions, context, aws):
    module = functions("send")

    def post(body: dict) -> tuple[int, dict]:
        response = module.handler(api_event("POST", "/v1/messages", body=body), context)
        return response["statusCode"], json.loads(response["body"])
    return post


@pytest.mark.parametrize("url", [RUNTIME_API, "http://0177.0.0.1/", "http://u:p@example.com/", "http://[",
                                 "http://[::1", "http://a\u2100b/"])
def test_the_api_refuses_a_smuggling_callback_url_with_400_and_queues_nothing(send, aws, url):
    code, body = send({"to": ["0712345678"], "from": "TUMA", "body": "hi", "callback_url": url})

    assert code == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"][0]["field"] == "callback_url"
    assert aws.receive(aws.queue_url) == []


# --- the addresses ---------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a9fe:a9fe", "::ffff:169.254.169.254",
    "::ffff:127.0.0.1", "2002:7f00:1::1", "169.254.169.254", "169.254.0.1", "fe80::1", "fd00::1", "10.0.0.1",
    "172.16.0.1", "192.168.1.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
])
def test_no_private_loopback_link_local_cgnat_or_embedded_address_is_allowed_on_aws(address):
    assert not callback_http.allowed(address, callback_http.PUBLIC)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_allowed_on_aws(address):
    assert callback_http.allowed(address, callback_http.PUBLIC)


def fake_dns(monkeypatch, answers: list[list[str]]) -> list[str]:
    """getaddrinfo answering `answers` for names in turn (the last one again after), and as
    usual for address literals (urllib3 passes the address it connects to); the names asked."""
    asked, real = [], socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
            return real(host, port, *args, **kwargs)
        except ValueError:
            asked.append(host)
        addresses = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    monkeypatch.setattr(callback_http.socket, "getaddrinfo", getaddrinfo)
    return asked


def no_connection(monkeypatch):
    for pool in ("HTTPConnectionPool", "HTTPSConnectionPool"):
        monkeypatch.setattr(callback_http, pool, lambda *a, **k: pytest.fail("no connection may be made"))


@pytest.mark.parametrize("address", ["127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "::ffff:169.254.169.254",
                                     "169.254.169.254", "fe80::1", "100.64.0.1"])
def test_a_name_resolving_to_a_forbidden_address_is_refused_before_any_connection(monkeypatch, address):
    fake_dns(monkeypatch, [[address]])
    no_connection(monkeypatch)

    with pytest.raises(callback_http.Refused):
        callback_http.post("https://rebind.example/cb", b"{}", {}, callback_http.PUBLIC)


def test_one_forbidden_address_among_public_ones_refuses_the_name(monkeypatch):
    fake_dns(monkeypatch, [["93.184.216.34", "127.0.0.1"]])
    no_connection(monkeypatch)

    with pytest.raises(callback_http.Refused):
        callback_http.post("https://rebind.example/cb", b"{}", {}, callback_http.PUBLIC)


@pytest.mark.parametrize("url", ["http://[::ffff:169.254.169.254]/latest/meta-data/", "http://169.254.169.254/",
                                 "http://[::127.0.0.1]:9001/", "http://[64:ff9b::7f00:1]/"])
def test_a_forbidden_address_literal_is_refused_without_dns(monkeypatch, url):
    monkeypatch.setattr(callback_http.socket, "getaddrinfo", lambda *a, **k: pytest.fail("a literal needs no DNS"))
    no_connection(monkeypatch)

    with pytest.raises(callback_http.Refused):
        callback_http.post(url, b"{}", {}, callback_http.PUBLIC)


def test_a_resolution_failure_refuses_the_post_and_is_retried(monkeypatch):
    def broken(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(callback_http.socket, "getaddrinfo", broken)
    no_connection(monkeypatch)

    with pytest.raises(callback_http.Failed):
        callback_http.post("https://yourapp.example/cb", b"{}", {}, callback_http.PUBLIC)


def test_the_smuggling_url_is_refused_before_each_post_too(monkeypatch):
    monkeypatch.setattr(callback_http.socket, "getaddrinfo", lambda *a, **k: pytest.fail("no DNS for a refused URL"))
    no_connection(monkeypatch)

    with pytest.raises(callback_http.Refused):
        callback_http.post(RUNTIME_API, b"{}", {}, callback_http.PUBLIC)


# --- connecting to the checked address -------------------------------------------------------

class Receiver:
    """A loopback HTTP(S) server recording each request's Host header, path and TLS SNI."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.got: list[dict] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append({"host": self.headers["Host"], "path": self.path})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_post_goes_to_the_address_checked_not_to_a_second_resolution(monkeypatch):
    receiver = Receiver()
    # A rebinding name: the checked answer is loopback (allowed locally), any later one is not.
    asked = fake_dns(monkeypatch, [["127.0.0.1"], ["10.0.0.1"]])
    try:
        status = callback_http.post(f"http://localhost:{receiver.port}/cb?x=1", b"{}", {}, callback_http.LOOPBACK)
    finally:
        receiver.close()

    assert status == 204
    assert asked == ["localhost"]  # resolved once
    assert receiver.got == [{"host": f"localhost:{receiver.port}", "path": "/cb?x=1"}]


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for `localhost` and the client's trust in it alone."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    return tls, str(cert_file)


def test_https_to_the_checked_address_keeps_sni_host_and_certificate_check(monkeypatch, certificate):
    tls, trusted = certificate
    monkeypatch.setattr(callback_http.certifi, "where", lambda: trusted)
    receiver = Receiver(tls)
    asked = fake_dns(monkeypatch, [["127.0.0.1"], ["10.0.0.1"]])
    try:
        status = callback_http.post(f"https://localhost:{receiver.port}/cb", b"{}", {}, callback_http.LOOPBACK)
    finally:
        receiver.close()

    assert status == 204 and asked == ["localhost"]
    assert receiver.sni == ["localhost"]  # SNI names the host, not the address connected to
    assert receiver.got[0]["host"] == f"localhost:{receiver.port}"


def test_https_refuses_a_certificate_for_another_name(monkeypatch, certificate):
    tls, trusted = certificate
    monkeypatch.setattr(callback_http.certifi, "where", lambda: trusted)
    receiver = Receiver(tls)
    try:
        # 127.0.0.1 is not in the certificate (only `localhost`): the check is against the URL's host.
        with pytest.raises(callback_http.Failed):
            callback_http.post(f"https://127.0.0.1:{receiver.port}/cb", b"{}", {}, callback_http.LOOPBACK)
    finally:
        receiver.close()
    assert receiver.got == []


def test_redirects_are_not_followed(monkeypatch):
    hits = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        status = callback_http.post(f"http://127.0.0.1:{server.server_address[1]}/cb", b"{}", {}, callback_http.LOOPBACK)
    finally:
        server.shutdown()
        server.server_close()
    assert status == 307 and hits == ["/cb"]


# --- the callback function -------------------------------------------------------------------

def test_the_callback_function_drops_the_runtime_api_url_without_posting(functions, context, aws, monkeypatch):
    from tuma.store import tenants

    monkeypatch.setenv("CALLBACK_QUEUE_URL", aws.queue_url)
    tenants.ensure_signing_secret("acme")
    no_connection(monkeypatch)
    monkeypatch.setattr(callback_http.socket, "getaddrinfo", lambda *a, **k: pytest.fail("no DNS"))
    job = {"tenant_id": "acme", "callback_url": RUNTIME_API,
           "payload": {"id": "msg_X_1:sent", "message_id": "msg_X_1", "status": "sent"}}
    event = {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": json.dumps(job),
                          "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                          "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:callbacks",
                          "awsRegion": "us-east-1"}]}

    assert functions("callback").handler(event, context) == {"batchItemFailures": []}
