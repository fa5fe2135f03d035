"""The POST of one client callback, to a destination checked where it is connected.

The URL's text is checked first (tuma.domain.callback_urls: the same rule as at accept time).
Then its host is resolved once; every address must be allowed (one bad address refuses the
URL: a rebinding name may answer a public address first and a private one next); and the
connection is made to that checked address, never to the name again, so a DNS answer that
changes between the check and the connection cannot move the POST. The Host header, TLS SNI
and certificate check still use the URL's host. No redirects, no retries (SQS retries).

Allowed addresses: on AWS (`public`) only globally routable ones, an IPv4 address embedded in
an IPv6 one (mapped, compatible, NAT64, 6to4, Teredo) included, so that a callback never
reaches the Lambda runtime API on loopback, the metadata address or a private network; on the
local stack (`loopback`) only loopback, with no DNS query but for `localhost`."""

from __future__ import annotations

import ipaddress
import socket
from http.client import HTTPException
from urllib.parse import urlsplit

import certifi
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.exceptions import HTTPError

from tuma.domain.callback_urls import refusal

PUBLIC, LOOPBACK = "public", "loopback"
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 3.05, 5.0
BUDGET_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + 1  # the longest one POST may take
# IPv6 ranges whose last 32 bits are an IPv4 address a gateway or the kernel may reach.
_EMBEDS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48"))


class Refused(Exception):
    """The destination is not allowed: the callback is dropped, never retried."""


class Failed(Exception):
    """No answer (DNS failure, connection refused or reset, timeout): retried later."""


def post(url: str, body: bytes, headers: dict[str, str], network: str) -> int:
    """The receiver's HTTP status. Raises Refused or Failed."""
    problem = refusal(url)
    if problem:
        raise Refused(f"callback_url {problem}")
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host, port = parts.hostname, parts.port or (443 if https else 80)
    address = _checked_address(host, port, network)
    timeout = Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
    if https:
        pool = HTTPSConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1, server_hostname=host,
                                   cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        # Only the status is read: a receiver cannot hold us by dripping a long body.
        answer = pool.urlopen("POST", target, body=body, headers={**headers, "Host": parts.netloc},
                              redirect=False, retries=False, preload_content=False, assert_same_host=False)
        return answer.status
    except (HTTPError, HTTPException, OSError) as problem:  # whatever the transport raises: no answer
        raise Failed(type(problem).__name__) from None
    finally:
        pool.close()


def allowed(address: str, network: str) -> bool:
    ip = ipaddress.ip_address(address)
    if network == LOOPBACK:
        return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)
    return all(a.is_global and not a.is_multicast for a in _with_embedded(ip))


def _with_embedded(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    yield ip
    if ip.version == 4:
        return
    if ip.ipv4_mapped:
        yield ip.ipv4_mapped
    if ip.sixtofour:
        yield ip.sixtofour
    if ip.teredo:
        yield from ip.teredo
    if any(ip in network for network in _EMBEDS_IPV4):
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _checked_address(host: str, port: int, network: str) -> str:
    """The one address to connect to, after every address of `host` was checked."""
    try:
        literal = str(ipaddress.ip_address(host))
    except ValueError:
        literal = None
    if literal is None and network == LOOPBACK and host != "localhost":
        raise Refused("the local stack only calls back loopback addresses")
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
        except (OSError, UnicodeError):
            raise Failed("the callback_url's host did not resolve") from None
    if not addresses:
        raise Failed("the callback_url's host did not resolve")
    if not all(allowed(a, network) for a in addresses):
        raise Refused("the callback_url resolves to an address callbacks may not reach")
    return addresses[0]
