"""Which callback_url Tuma will POST to, read from the text alone (no DNS).

The guard and the HTTP client must see the same host. `urlsplit` and urllib3 disagree on a few
inputs: urllib3 ends the authority at a backslash, so `http://127.0.0.1:9001\\@8.8.8.8/` is
8.8.8.8 to one and 127.0.0.1 to the other; `0177.0.0.1` and `2130706433` are 127.0.0.1 to the
system resolver but not to `ipaddress`. Rather than trust either parser, a callback_url must be
plain enough that both read it the same way: printable ASCII (RFC 3986 characters only), a
lower-case http(s) scheme, no userinfo, a host that is a DNS name, a canonical dotted IPv4 or a
bracketed IPv6 without zone, and a valid port. The address the host resolves to is checked
again before each POST (tuma.callback_http)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_LENGTH = 2048  # what browsers and most servers accept; also keeps a send job small
# RFC 3986's unreserved, reserved and percent characters: no space, control, backslash, quote,
# `<>^{}|` or non-ASCII, which parsers treat differently.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


def refusal(url: object) -> str | None:
    """Why `url` cannot be a callback_url, or None when it can."""
    if not isinstance(url, str):
        return "must be a string"
    if len(url) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if not _URL_CHARACTERS.fullmatch(url):
        return ("must be printable ASCII without spaces, backslashes or quotes "
                "(percent-encode the rest; an international domain in its xn-- form)")
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0–65535
    except ValueError:
        return "must be a well-formed URL"
    if "@" in parts.netloc:
        return "must not carry a user name or password"
    if port == 0:
        return "must have a port between 1 and 65535"
    return _host_refusal(parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc)


def _host_refusal(host: str) -> str | None:
    if host.startswith("["):
        if "%" in host:  # a zone id names one of the machine's own interfaces
            return "must have a valid IPv6 address between [ ] (no zone)"
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "?")
        except ValueError:
            return "must have a valid IPv6 address between [ ] (no zone)"
        return None
    host = host.lower().removesuffix(".")
    labels = host.split(".")
    if not host or not all(_LABEL.fullmatch(label) for label in labels):
        return "must have a host name of letters, digits, hyphens and dots"
    # A name ending in a number is an IPv4 address to resolvers (0177.0.0.1, 2130706433, 0x7f.1):
    # only the canonical dotted form is read the same way everywhere.
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "must write an IPv4 address as four decimal numbers (like 203.0.113.7)"
    return None
