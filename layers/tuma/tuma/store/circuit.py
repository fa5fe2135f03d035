"""The providers' circuit breakers in DynamoDB (rules in tuma.domain.circuit), one item per
provider, shared by every sender instance:

  PROVIDER#<name> / CIRCUIT    state (closed | open | half_open), since, failed_calls (one id per
                               failed call: the count is its size)

A closed circuit costs one read per provider call, and a write only when a call fails or the
first healthy call after failures resets the count. A failure is counted by adding its own id to
a set, not by adding 1: botocore sends a write again when its answer is lost, and a set takes
the same id once, where a number would count the failure twice and open the circuit early."""

from __future__ import annotations

import uuid
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from tuma.domain.circuit import CLOSED, HALF_OPEN, OPEN, CircuitSettings, Gate, probe_due
from tuma.observability import logger
from tuma.store.table import is_conditional_failure, provider_key, table

CIRCUIT_SK = "CIRCUIT"


def circuit_key(provider: str) -> dict:
    return provider_key(provider, CIRCUIT_SK)


def read_circuit(provider: str) -> dict:
    """The circuit as stored: {"state", "since", "failures"} (closed with no failures if never written)."""
    item = table().get_item(Key=circuit_key(provider), ConsistentRead=True).get("Item") or {}
    return {"state": item.get("state", CLOSED), "since": item.get("since"), "failures": _failures(item)}


def _failures(item: dict) -> int:
    # `failures`: the number an item written before failed_calls may still hold.
    return len(item.get("failed_calls") or ()) + int(item.get("failures", 0))


class DynamoBreaker:
    """tuma.domain.circuit.Breaker with its state in the table."""

    def __init__(self, settings: CircuitSettings):
        self.settings = settings

    def gate(self, provider: str, now: datetime) -> Gate:
        try:
            return self._gate(provider, now)
        except (ClientError, BotoCoreError) as problem:
            # The breaker protects the providers; it must not stop sending when the table errs.
            logger.warning("circuit unreadable: calling the provider", extra={"provider": provider,
                                                                              "reason": str(problem)})
            return Gate(True)

    def record(self, provider: str, gate: Gate, healthy: bool, now: datetime) -> None:
        try:
            self._record(provider, gate, healthy, now)
        except (ClientError, BotoCoreError) as problem:
            # Losing one count is better than losing the provider's answers recorded after this.
            logger.warning("circuit not updated", extra={"provider": provider, "reason": str(problem)})

    def _gate(self, provider: str, now: datetime) -> Gate:
        circuit = read_circuit(provider)
        state, since, failures = circuit["state"], circuit["since"], circuit["failures"]
        if state == CLOSED:
            return Gate(True, failures=failures)
        if not probe_due(state, datetime.fromisoformat(since), now, self.settings):
            return Gate(False, failures=failures, state=state, since=since)
        try:  # one sender wins the probe: the write is conditioned on the state it read
            table().update_item(
                Key=circuit_key(provider), UpdateExpression="SET #state = :half_open, since = :now",
                ConditionExpression="#state = :state AND since = :since",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":half_open": HALF_OPEN, ":now": now.isoformat(), ":state": state,
                                           ":since": since})
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            return Gate(False, failures=failures, state=state, since=since)
        logger.info("circuit half-open: one probe call", extra={"provider": provider})
        return Gate(True, probe=True, failures=failures, state=HALF_OPEN, since=now.isoformat())

    def _record(self, provider: str, gate: Gate, healthy: bool, now: datetime) -> None:
        if healthy:
            if gate.probe:
                self._set(provider, CLOSED, now, reset=True)
                logger.info("circuit closed", extra={"provider": provider})
            elif gate.failures:
                self._reset_if_closed(provider)
            return
        if gate.probe:
            # Not counted: the count only decides when a closed circuit opens, and a set that took
            # an id per failed probe would grow through a long outage.
            self._set(provider, OPEN, now)
            logger.warning("circuit opened again: the probe failed", extra={"provider": provider})
            return
        failures = _failures(table().update_item(
            Key=circuit_key(provider), UpdateExpression="ADD failed_calls :call SET last_failure_at = :now",
            ExpressionAttributeValues={":call": {uuid.uuid4().hex}, ":now": now.isoformat()},
            ReturnValues="ALL_NEW")["Attributes"])
        if failures >= self.settings.threshold and self._open_if_closed(provider, now):
            logger.warning("circuit opened", extra={"provider": provider, "failures": failures})

    def _reset_if_closed(self, provider: str) -> None:
        """A healthy call zeroes the count, but never closes a circuit others opened meanwhile:
        only its probe may do that."""
        try:
            table().update_item(
                Key=circuit_key(provider), UpdateExpression="REMOVE failed_calls, failures",
                ConditionExpression="attribute_not_exists(#state) OR #state = :closed",
                ExpressionAttributeNames={"#state": "state"}, ExpressionAttributeValues={":closed": CLOSED})
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise

    def _set(self, provider: str, state: str, now: datetime, reset: bool = False) -> None:
        table().update_item(
            Key=circuit_key(provider),
            UpdateExpression="SET #state = :state, since = :now" + (" REMOVE failed_calls, failures" if reset else ""),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": state, ":now": now.isoformat()})

    def _open_if_closed(self, provider: str, now: datetime) -> bool:
        try:
            table().update_item(
                Key=circuit_key(provider), UpdateExpression="SET #state = :open, since = :now",
                ConditionExpression="attribute_not_exists(#state) OR #state = :closed",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":open": OPEN, ":now": now.isoformat(), ":closed": CLOSED})
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            return False
        return True
