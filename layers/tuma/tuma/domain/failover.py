"""Sending a job's messages through the routing policy's providers, one after the other.

For each message the policy gives a chain of providers (tuma.domain.routing). The first whose
circuit is not open is called; a 429/5xx is retried at once a few times (RETRY_PAUSES_S). The
messages it definitively did not take (refused connection, 429/5xx past those retries, account
errors) go to the next provider in the chain. A message the provider may have taken (no answer,
`unknown`) never goes to another: it could arrive twice. Every call's health feeds the breaker."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from tuma.domain.circuit import Breaker
from tuma.domain.jobs import JobRecipient
from tuma.domain.providers import (
    NOT_TAKEN, OutgoingMessage, Provider, ProviderError, RecipientOutcome, outcomes_of_failed_call)
from tuma.domain.routing import RoutingPolicy
from tuma.domain.status import FAILED, SENT, UNKNOWN

RETRY_PAUSES_S = (0.25, 1.0)  # a 429/5xx is retried after these pauses before the next provider
NO_ANSWER_CODES = {"read_timeout", "connection_closed"}  # the provider did not answer: unhealthy


@dataclass(frozen=True)
class Attempt:
    """The answer that stands for one message, and from which provider."""

    recipient: JobRecipient
    provider: str | None  # None: no provider could be called (every circuit open)
    answer: RecipientOutcome
    failover_from: str | None = None  # the first provider of the chain, when another one answered
    failover_reason: str | None = None  # why the first one did not send it


class Dispatcher:
    def __init__(self, providers: Mapping[str, Provider], policy: RoutingPolicy, breaker: Breaker,
                 clock: Callable[[], datetime], pause: Callable[[float], None] = time.sleep,
                 retry_pauses: tuple[float, ...] = RETRY_PAUSES_S):
        self.providers, self.policy, self.breaker = providers, policy, breaker
        self.clock, self.pause, self.retry_pauses = clock, pause, retry_pauses

    def send(self, sender: str, recipients: list[JobRecipient], pinned: str | None) -> list[Attempt]:
        """One Attempt per recipient, in order. Recipients with the same chain go in one call."""
        by_chain: dict[tuple[str, ...], list[JobRecipient]] = {}
        for recipient in recipients:
            by_chain.setdefault(self.policy.chain(recipient.number, pinned), []).append(recipient)
        with ThreadPoolExecutor(len(by_chain) or 1) as pool:
            groups = pool.map(lambda item: self._through(sender, item[1], item[0]), by_chain.items())
            attempts = {a.recipient.index: a for group in groups for a in group}
        return [attempts[r.index] for r in recipients]

    def _through(self, sender: str, recipients: list[JobRecipient], chain: tuple[str, ...]) -> list[Attempt]:
        settled: list[Attempt] = []
        remaining = recipients
        last: dict[int, tuple[str, RecipientOutcome]] = {}  # the latest answer of a message not yet sent
        first_failure: dict[int, str] = {}  # why the chain's first provider did not send it
        for name in chain:
            if not remaining:
                break
            gate = self.breaker.gate(name, self.clock())
            if not gate.allowed:
                for r in remaining:
                    first_failure.setdefault(r.index, f"{name}: circuit open")
                    last.setdefault(r.index, (name, RecipientOutcome(NOT_TAKEN, error_code="circuit_open",
                                                                     reason=f"{name}'s circuit is open")))
                continue
            answers = self._call(self.providers[name], sender, remaining)
            self.breaker.record(name, gate, _healthy(answers), self.clock())
            still = []
            for recipient, answer in zip(remaining, answers):
                if answer.may_go_elsewhere:
                    first_failure.setdefault(recipient.index, f"{name}: {answer.reason or answer.status}")
                    last[recipient.index] = (name, answer)
                    still.append(recipient)
                else:
                    moved = name != chain[0]
                    settled.append(Attempt(recipient, name, answer, chain[0] if moved else None,
                                           first_failure.get(recipient.index) if moved else None))
            remaining = still
        for recipient in remaining:
            name, answer = last[recipient.index]
            settled.append(Attempt(recipient, name if answer.error_code != "circuit_open" else None, answer))
        return settled

    def _call(self, provider: Provider, sender: str, recipients: list[JobRecipient]) -> list[RecipientOutcome]:
        """The provider's answers, with 429/5xx retried at once after each of `retry_pauses`."""
        answers = _call_once(provider, sender, recipients)
        for pause in self.retry_pauses:
            again = [i for i, a in enumerate(answers) if a.status == NOT_TAKEN and a.transient]
            if not again:
                break
            self.pause(pause)
            for i, answer in zip(again, _call_once(provider, sender, [recipients[i] for i in again])):
                answers[i] = answer
        return answers


def _call_once(provider: Provider, sender: str, recipients: list[JobRecipient]) -> list[RecipientOutcome]:
    try:
        answers = provider.send(sender, [OutgoingMessage(r.number, r.body) for r in recipients])
    except ProviderError as problem:
        return outcomes_of_failed_call(problem, len(recipients))
    if len(answers) != len(recipients):
        # An answer we cannot match to messages: the provider took the call, so nothing may be resent.
        reason = f"provider answered for {len(answers)} of {len(recipients)} messages"
        return [RecipientOutcome(UNKNOWN, reason=reason)] * len(recipients)
    known = (SENT, FAILED, UNKNOWN, NOT_TAKEN)
    return [a if a.status in known else RecipientOutcome(UNKNOWN, reason=f"unexpected status {a.status}")
            for a in answers]


def _healthy(answers: list[RecipientOutcome]) -> bool:
    """A call is unhealthy when the provider failed as a whole for any of its messages (as opposed
    to refusing one message, e.g. a number it cannot reach)."""
    return not any(a.may_go_elsewhere or a.error_code in NO_ANSWER_CODES for a in answers)
