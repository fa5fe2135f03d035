"""One pooled keep-alive session per process, and the mapping of every way an HTTP call can end
onto the domain's three failure kinds.

What decides between "certainly not taken" and "may have been taken" is whether the request was
written out in full: a connection tracks that (a thread-local flag set once its request() returns),
so a refused connection, a failed TLS handshake and a stale keep-alive connection that breaks while
the request is being written are all `not taken`, whatever exception they surface as; any failure
after that (a timeout, a reset, a broken chunked or gzip body, an exception we never met) may come
after the provider acted, so it is ambiguous.

Statuses are read for what they prove (tuma.providers.http.NOT_PROCESSED / NOT_REACHED): no
redirect is ever followed, since a 307/308 would re-POST the message, and 254sms's credentials in
its body, to another host."""

from __future__ import annotations

import threading

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from tuma.domain.providers import ProviderAmbiguous, ProviderRejected, ProviderUnavailable
from tuma.providers.timeouts import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

POOL_SIZE = 32
# Answers that say the request was not processed: 429 and 503 are worth an immediate retry.
NOT_PROCESSED = {429, 503}
# Answers that prove nothing was processed, so another provider may be tried at once: the server
# does not support the method (501) or the HTTP version (505); Cloudflare could not reach the
# origin (521 down, 522 connect timeout, 523 unreachable, 525/526 TLS handshake); the redirects
# that ask for the same request elsewhere (301, 307, 308), which Tuma never follows.
NOT_REACHED = {301, 307, 308, 501, 505, 521, 522, 523, 525, 526}
# Every other 5xx and 3xx may come after the provider acted: 500/502/504, 507 (a proxy or backend
# out of storage says nothing of what the gateway behind it did), 520 (the origin answered
# something unreadable) and 524 (the origin took the request, then timed out); 302/303 are what a
# web application answers after handling a POST.

_session: requests.Session | None = None
_progress = threading.local()  # .written: the current call's request went out in full


class _Tracked:
    """A connection that says whether its request was written out in full."""

    def request(self, *args, **kwargs):
        _progress.written = False
        super().request(*args, **kwargs)  # connects first if needed, then writes headers and body
        _progress.written = True


class _HTTPConnection(_Tracked, HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        # A new dict: urllib3's default is a module-level one shared by every PoolManager.
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        # No automatic retries: a retried POST could send an SMS twice. SQS does the retrying.
        adapter = _Adapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        _session.mount("https://", adapter)
        _session.mount("http://", adapter)
    return _session


def call(provider: str, method: str, url: str, **kwargs) -> requests.Response:
    """An HTTP call whose every failure comes out as the domain's ProviderUnavailable/Ambiguous."""
    _progress.written = False
    try:
        response = session().request(method, url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                                     allow_redirects=False, **kwargs)
    except Exception as problem:  # noqa: BLE001 - every exception is classified, none escapes
        raise _classified(provider, problem) from None
    status = response.status_code
    if status in NOT_PROCESSED:
        raise ProviderUnavailable(provider, f"HTTP {status}", code=str(status), transient=True)
    if status in NOT_REACHED:
        raise ProviderUnavailable(provider, f"HTTP {status}: the provider did not process the request",
                                  code=str(status))
    if status >= 500 or 300 <= status < 400:
        raise ProviderAmbiguous(provider, f"HTTP {status}: the provider may have taken it", code=str(status))
    return response


def _classified(provider: str, problem: Exception) -> ProviderUnavailable | ProviderAmbiguous:
    if isinstance(problem, requests.exceptions.ConnectTimeout):
        return ProviderUnavailable(provider, "connection timed out", code="connect_timeout")
    if not getattr(_progress, "written", False):
        if _never_connected(problem):
            return ProviderUnavailable(provider, "connection failed: refused", code="connection_refused")
        # E.g. a stale keep-alive connection closed by the provider while the request was written,
        # or a request that could not be prepared: the provider cannot have acted on it.
        return ProviderUnavailable(provider, f"request not sent: {type(problem).__name__}", code="not_sent")
    if isinstance(problem, requests.exceptions.ReadTimeout):
        return ProviderAmbiguous(provider, f"no answer within {READ_TIMEOUT_S:g} s after the request was sent",
                                 code="read_timeout")
    if isinstance(problem, requests.exceptions.ConnectionError):
        return ProviderAmbiguous(provider, "connection closed before an answer", code="connection_closed")
    # A broken chunked or compressed body, a bad header, anything else: after the request went out.
    return ProviderAmbiguous(provider, f"unreadable answer: {type(problem).__name__}", code="broken_answer")


def json_body(provider: str, response: requests.Response) -> dict:
    """The answer's JSON object. A 2xx we cannot read (an HTML maintenance page) may still mean the
    message went out: ambiguous, and a failure of the provider for its circuit breaker."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    if response.ok:
        raise ProviderAmbiguous(provider, f"unreadable answer (HTTP {response.status_code})",
                                code="unreadable_answer")
    raise ProviderRejected(provider, f"HTTP {response.status_code}", code=str(response.status_code))


def _never_connected(problem: Exception) -> bool:
    """True when the connection was never made (refused, no route): requests wraps that as
    MaxRetryError(reason=NewConnectionError)."""
    cause = problem.args[0] if problem.args else None
    return isinstance(getattr(cause, "reason", None), NewConnectionError)
