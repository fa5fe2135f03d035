"""One pooled keep-alive session per process, and the mapping of transport failures onto the
domain's three failure kinds."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from tuma.domain.providers import ProviderAmbiguous, ProviderRejected, ProviderUnavailable
from tuma.providers.timeouts import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

POOL_SIZE = 32
# 429 Too Many Requests and 503 Service Unavailable say the request was not processed: safe to retry.
NOT_PROCESSED = {429, 503}

_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        # No automatic retries: a retried POST could send an SMS twice. SQS does the retrying.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        _session.mount("https://", adapter)
        _session.mount("http://", adapter)
    return _session


def call(provider: str, method: str, url: str, **kwargs) -> requests.Response:
    """An HTTP call whose failures come out as the domain's ProviderUnavailable/Ambiguous."""
    try:
        response = session().request(method, url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), **kwargs)
    except requests.exceptions.ConnectTimeout:
        raise ProviderUnavailable(provider, "connection timed out", code="connect_timeout") from None
    except requests.exceptions.ReadTimeout:
        raise ProviderAmbiguous(provider, f"no answer within {READ_TIMEOUT_S:g} s after the request was sent",
                                code="read_timeout") from None
    except requests.exceptions.ConnectionError as problem:
        if _never_connected(problem):
            raise ProviderUnavailable(provider, "connection failed: refused", code="connection_refused") from None
        # Closed or reset after the request went out: the provider may have taken it.
        raise ProviderAmbiguous(provider, "connection closed before an answer", code="connection_closed") from None
    if response.status_code in NOT_PROCESSED:
        raise ProviderUnavailable(provider, f"HTTP {response.status_code}", code=str(response.status_code),
                                  transient=True)
    if response.status_code >= 500:
        # A 500/502/504 may come after the provider (or the backend behind its gateway) took the
        # message: sending it again could deliver it twice.
        raise ProviderAmbiguous(provider, f"HTTP {response.status_code}: the provider may have taken it",
                                code=str(response.status_code))
    return response


def json_body(provider: str, response: requests.Response) -> dict:
    """The answer's JSON object. A 2xx we cannot read may still mean the message went out."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    if response.ok:
        raise ProviderAmbiguous(provider, f"unreadable answer (HTTP {response.status_code})")
    raise ProviderRejected(provider, f"HTTP {response.status_code}", code=str(response.status_code))


def _never_connected(problem: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made (refused, no route), so nothing was sent:
    requests wraps that as MaxRetryError(reason=NewConnectionError); a connection closed after
    sending comes as ProtocolError('Connection aborted.') instead."""
    cause = problem.args[0] if problem.args else None
    return isinstance(getattr(cause, "reason", None), NewConnectionError)
