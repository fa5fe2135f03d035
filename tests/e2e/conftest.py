"""End-to-end fixtures: the real template.yaml deployed into MiniStack with the two provider
simulators, started once per test session on free ports, and driven over HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from local.stack import ROOT, LocalStack, Ports, free_port

pytestmark = pytest.mark.e2e
FINAL_OR_SENT = {"sent", "delivered", "failed", "rejected", "unknown"}


class Client:
    """A user of the gateway: an API base URL and a key."""

    def __init__(self, base_url: str, api_key: str | None):
        self.base_url = base_url
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def post(self, path: str, body) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=30)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.base_url + path, timeout=30)

    def wait_for(self, message_id: str, done=lambda m: m["status"] in FINAL_OR_SENT, seconds: float = 60) -> dict:
        """Poll GET /v1/messages/{id} until `done(view)` or the deadline; the view either way."""
        deadline = time.monotonic() + seconds
        while True:
            view = self.get(f"/v1/messages/{message_id}").json()
            if done(view) or time.monotonic() > deadline:
                return view
            time.sleep(0.25)


class Simulator:
    def __init__(self, url: str):
        self.url = url

    def requests(self, path: str | None = None) -> list[dict]:
        recorded = requests.get(self.url + "/_sim/requests", timeout=10).json()["requests"]
        return [r for r in recorded if path is None or r["path"] == path]

    def reset(self) -> None:
        requests.delete(self.url + "/_sim/requests", timeout=10).raise_for_status()
        requests.post(self.url + "/_sim/faults", json={}, timeout=10).raise_for_status()

    def fault(self, **fault) -> None:
        requests.post(self.url + "/_sim/faults", json=fault, timeout=10).raise_for_status()

    def callbacks(self, **settings) -> None:
        """SayaSMS simulator only: its delivery-report settings ({} restores the defaults)."""
        requests.post(self.url + "/_sim/callbacks", json=settings, timeout=10).raise_for_status()

    def callback_log(self) -> list[dict]:
        return requests.get(self.url + "/_sim/callbacks/log", timeout=10).json()["callbacks"]


# Short enough to watch a message expire, a callback be retried, a circuit open and close, and a
# provider's silence become `unknown` within a test. The balance monitor's schedule is pushed out
# of the session: tests invoke it and count provider calls. SchedulerMinLeadSeconds=0: a send
# scheduled seconds ahead still goes through the one-time schedule.
E2E_PARAMETERS = {"ExpireAfterSeconds": "3", "CallbackBackoffSeconds": "1", "CallbackMaxAttempts": "4",
                  "ExpiryCheckMinutes": "60", "BalanceCheckMinutes": "60", "CircuitFailureThreshold": "2",
                  "CircuitCooloffSeconds": "8", "ProviderReadTimeoutSeconds": "5", "SchedulerMinLeadSeconds": "0",
                  # The malformed-job test reads the send DLQ itself: its consumer would hide the job.
                  "SendDeadLetterAction": "keep"}


@pytest.fixture(scope="session")
def stack():
    local = LocalStack(ports=Ports(free_port(), free_port(), free_port()), log_dir=ROOT / ".tuma" / "e2e-logs",
                       parameters=E2E_PARAMETERS)
    with local:
        yield local


@pytest.fixture
def client(stack) -> Client:
    return Client(stack.api_url, stack.api_key)


def close_circuits(stack) -> None:
    """The providers' circuit breakers back to closed (tuma.store.circuit), so that one test's
    outage does not keep the next test's messages away from a provider."""
    from tuma.store.circuit import circuit_key

    dynamodb, table_name = stack.client("dynamodb"), stack.outputs["TableName"]
    for provider in ("254sms", "sayasms"):
        key = {name: {"S": value} for name, value in circuit_key(provider).items()}
        dynamodb.delete_item(TableName=table_name, Key=key)


@pytest.fixture
def sayasms(stack) -> Simulator:
    """The SayaSMS simulator with delivery reports off: a test that wants them turns them on
    (`sayasms.callbacks()`), so that others see their messages stay `sent`."""
    sim = Simulator(stack.sayasms_url)
    sim.reset()
    sim.callbacks(enabled=False)
    requests.delete(sim.url + "/_sim/callbacks/log", timeout=10).raise_for_status()
    close_circuits(stack)
    yield sim
    sim.reset()
    sim.callbacks(enabled=False)
    close_circuits(stack)


@pytest.fixture
def sms254(stack) -> Simulator:
    sim = Simulator(stack.sms254_url)
    sim.reset()
    close_circuits(stack)
    yield sim
    sim.reset()
    close_circuits(stack)


@pytest.fixture
def sayasms_down(stack, sayasms, sms254):
    """SayaSMS's simulator stopped (connections refused) for the test, then started again."""
    stack.stop_simulator("sayasms")
    try:
        yield
    finally:
        stack.start_simulator("sayasms")
        sayasms.callbacks(enabled=False)


@pytest.fixture
def balance_cache(stack):
    """The deployed table's provider-balance cache items (tuma.store.balances), deleted before
    and after the test so that its first GET /v1/account/balance asks the providers."""
    from tuma.store.balances import balance_key

    dynamodb, table_name = stack.client("dynamodb"), stack.outputs["TableName"]

    def clear() -> None:
        for provider in ("254sms", "sayasms"):
            key = {name: {"S": value} for name, value in balance_key(provider).items()}
            dynamodb.delete_item(TableName=table_name, Key=key)
    clear()
    yield
    clear()
