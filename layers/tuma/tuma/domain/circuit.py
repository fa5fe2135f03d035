"""The circuit breaker's rules: one per provider, its state shared by every sender instance
(tuma.store.circuit keeps it in DynamoDB).

- closed: calls go through. Each call that fails at the provider level (refused, 429/503 past
  the retry budget, account errors, no answer) adds one to a count of consecutive failures; a
  healthy call sets it back to zero. At `threshold` failures the circuit opens.
- open: no calls; messages go straight to the other provider (or wait in the queue when pinned).
  After `cooloff` one sender wins a conditional write and sends one probe call.
- half-open: that probe's result closes the circuit or opens it again for another cool-off. A
  probe whose sender died is replaced after `probe_grace` (the sender's timeout)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class CircuitSettings:
    threshold: int = 5
    cooloff: timedelta = timedelta(seconds=60)
    probe_grace: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Gate:
    """What one read of a provider's circuit allows."""

    allowed: bool
    probe: bool = False  # this call is the single probe after a cool-off
    failures: int = 0  # consecutive failures when read
    state: str = CLOSED
    since: str = ""  # when the state began (ISO 8601): the version a probe claim is conditioned on


class Breaker(Protocol):
    def gate(self, provider: str, now: datetime) -> Gate: ...

    def record(self, provider: str, gate: Gate, healthy: bool, now: datetime) -> None: ...


def probe_due(state: str, since: datetime, now: datetime, settings: CircuitSettings) -> bool:
    """Whether a call may claim the probe of a circuit that is not closed."""
    if state == OPEN:
        return now - since >= settings.cooloff
    return now - since >= settings.probe_grace  # half-open: the probe's sender is gone


def circuit_view(circuit: dict) -> dict:
    """A circuit as the balance route shows it: {"state", "since"?, "failures"}."""
    return {"state": circuit["state"], **({"since": circuit["since"]} if circuit.get("since") else {}),
            "failures": circuit["failures"]}


class NoBreaker:
    """Every call allowed and nothing recorded (for tests of other rules)."""

    def gate(self, provider: str, now: datetime) -> Gate:
        return Gate(True)

    def record(self, provider: str, gate: Gate, healthy: bool, now: datetime) -> None:
        pass
