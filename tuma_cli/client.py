"""The gateway's HTTP API, as the CLI uses it: Bearer auth, JSON, Tuma's error shape, and retries
where they are safe (reads, and POSTs that carry an Idempotency-Key)."""

from __future__ import annotations

import time

import requests

from tuma_cli.config import Config
from tuma_cli.errors import EXIT_UNREACHABLE, ApiRefused, CliError

TIMEOUT_S = 30  # a 10,000-message bulk is validated and stored in one request (API Gateway allows 29 s)
ATTEMPTS = 4
RETRIED_STATUSES = {429, 500, 502, 503, 504}


class Client:
    def __init__(self, config: Config, session: requests.Session | None = None, pause_s: float = 1.0):
        self.base_url = config.url
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {config.key}", "User-Agent": "tuma-cli"})
        self.pause_s = pause_s

    def get(self, path: str) -> dict:
        return self._call("GET", path, retry=True)

    def post(self, path: str, body: dict, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # Without a key a retried POST could send twice: retry only with one.
        return self._call("POST", path, json=body, headers=headers, retry=idempotency_key is not None)

    def delete(self, path: str) -> dict:
        return self._call("DELETE", path, retry=False)

    def _call(self, method: str, path: str, retry: bool, **kwargs) -> dict:
        url = self.base_url + path
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS or not retry
            try:
                response = self.session.request(method, url, timeout=TIMEOUT_S, **kwargs)
            except requests.RequestException as problem:
                if last:
                    raise CliError(f"Cannot reach {self.base_url}: {problem.__class__.__name__}: {problem}",
                                   EXIT_UNREACHABLE) from None
            else:
                if response.status_code not in RETRIED_STATUSES or last:
                    return _answer(response)
            time.sleep(self.pause_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def _answer(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500 or (response.status_code >= 400 and body is None):
        raise CliError(f"The gateway answered {response.status_code} to {response.request.method} "
                       f"{response.request.path_url}: {response.text[:300]}", EXIT_UNREACHABLE)
    if response.status_code >= 400:
        raise ApiRefused(response.status_code, body)
    if not isinstance(body, dict):
        raise CliError(f"The gateway answered {response.status_code} without a JSON object.", EXIT_UNREACHABLE)
    return body
