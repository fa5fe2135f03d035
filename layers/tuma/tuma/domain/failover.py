"""Sending a job's messages through the routing policy's providers, one after the other.

For each message the policy gives a chain of providers (tuma.domain.routing). The first whose
circuit is not open is called; a 429/503 is retried at once a few times (RETRY_PAUSES_S). The
messages it definitively did not take (refused connection, 429/503 past those retries, account
errors) go to the next provider in the chain. A message the provider may have taken (no answer,
`unknown`) never goes to another: it could arrive twice. Every call's health feeds the breaker:
any failure of the call as a whole (not taken, no usable answer, an account refusal) counts
against it; a call cut short for time does not count at all.

Before each HTTP request a provider makes, `before_call` is given the messages it carries (the
sender records them on the job: tuma.domain.sending); when it says no, or there is no time left
for the call, the request is not made and its messages stay not taken. A request `before_call` was
asked about and that is not made after all is told to `not_made`: the sender withdraws the names,
so that if it dies before closing its claim, the takeover sends those messages instead of calling
them unknown."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from tuma.domain.circuit import Breaker
from tuma.domain.jobs import JobRecipient
from tuma.domain.providers import (
    NO_TIME, NOT_TAKEN, OutgoingMessage, Provider, ProviderError, RecipientOutcome, outcomes_of_failed_call,
    outcomes_of_unexpected)
from tuma.domain.routing import RoutingPolicy
from tuma.domain.status import FAILED, SENT, UNKNOWN

RETRY_PAUSES_S = (0.25, 1.0)  # a 429/503 is retried after these pauses before the next provider
CIRCUIT_OPEN = "circuit_open"  # not called: its circuit is open (NO_TIME: no time was left)
# Told the messages of each provider request before it is made; False: do not make it.
BeforeCall = Callable[[list[JobRecipient]], bool]
# Told the messages of a request `before_call` was asked about and that was not made after all.
NotMade = Callable[[list[JobRecipient]], None]


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
                 retry_pauses: tuple[float, ...] = RETRY_PAUSES_S,
                 time_left: Callable[[], float] = lambda: math.inf, call_budget_s: float = 0.0):
        self.providers, self.policy, self.breaker = providers, policy, breaker
        self.clock, self.pause, self.retry_pauses = clock, pause, retry_pauses
        # Seconds left in the invocation, and what one provider call may take at most (connect,
        # read, and recording the answer).
        self.time_left, self.call_budget_s = time_left, call_budget_s

    def send(self, sender: str, recipients: list[JobRecipient], pinned: str | None,
             before_call: BeforeCall = lambda recipients: True,
             not_made: NotMade = lambda recipients: None) -> list[Attempt]:
        """One Attempt per recipient, in order. Recipients with the same chain go in one call."""
        by_chain: dict[tuple[str, ...], list[JobRecipient]] = {}
        for recipient in recipients:
            by_chain.setdefault(self.policy.chain(recipient.number, pinned), []).append(recipient)
        if len(by_chain) == 1:
            groups = [self._through(sender, recipients, next(iter(by_chain)), before_call, not_made)]
        else:  # e.g. Safaricom numbers through one provider, Airtel through the other: at once
            with ThreadPoolExecutor(len(by_chain)) as pool:
                groups = list(pool.map(lambda item: self._through(sender, item[1], item[0], before_call, not_made),
                                       by_chain.items()))
        attempts = {a.recipient.index: a for group in groups for a in group}
        return [attempts[r.index] for r in recipients]

    def _through(self, sender: str, recipients: list[JobRecipient], chain: tuple[str, ...],
                 before_call: BeforeCall, not_made: NotMade) -> list[Attempt]:
        settled: list[Attempt] = []
        remaining = recipients
        last: dict[int, tuple[str | None, RecipientOutcome]] = {}  # the latest answer of a message not yet sent
        waiting: dict[int, tuple[str | None, RecipientOutcome]] = {}  # a `not taken` (worth retrying later)
        first_failure: dict[int, str] = {}  # why the chain's first provider did not send it
        for name in chain:
            if not remaining:
                break
            gate = self.breaker.gate(name, self.clock())
            if not gate.allowed:
                answers = [RecipientOutcome(NOT_TAKEN, error_code=CIRCUIT_OPEN, reason="circuit open")] * len(remaining)
            else:
                answers = self._call(self.providers[name], sender, remaining, before_call, not_made)
                tried = [a for a in answers if a.error_code != NO_TIME]
                if tried:
                    self.breaker.record(name, gate, _healthy(tried), self.clock())
            still = []
            for recipient, answer in zip(remaining, answers):
                if answer.may_go_elsewhere:
                    why = answer.reason or answer.status
                    first_failure.setdefault(recipient.index, f"{name}: {why}")
                    called = None if answer.error_code in (CIRCUIT_OPEN, NO_TIME) else name
                    last[recipient.index] = (called, answer)
                    if answer.status == NOT_TAKEN:
                        waiting.setdefault(recipient.index, (called, answer))
                    still.append(recipient)
                else:
                    moved = name != chain[0]
                    settled.append(Attempt(recipient, name, answer, chain[0] if moved else None,
                                           first_failure.get(recipient.index) if moved else None))
            remaining = still
        for recipient in remaining:
            # No provider took it. If any of them may take it later (down, busy, circuit open),
            # the job is retried; only refusals by every provider (account errors) end `failed`.
            called, answer = waiting.get(recipient.index) or last[recipient.index]
            settled.append(Attempt(recipient, called, answer))
        return settled

    def _call(self, provider: Provider, sender: str, recipients: list[JobRecipient],
              before_call: BeforeCall, not_made: NotMade) -> list[RecipientOutcome]:
        """The provider's answers, with 429/503 retried at once after each of `retry_pauses`. No
        call starts without `call_budget_s` left in the invocation: a call cut off by the
        function's timeout would leave its messages `unknown`; not called, they are retried.
        The provider asks (`may_call`) before each of its requests."""
        answers = _call_once(provider, sender, recipients, self._may_call(recipients, before_call, not_made))
        for pause in self.retry_pauses:
            again = [i for i, a in enumerate(answers) if a.status == NOT_TAKEN and a.transient]
            if not again or self.time_left() < pause + self.call_budget_s:
                break
            self.pause(pause)
            retried = [recipients[i] for i in again]
            for i, answer in zip(again, _call_once(provider, sender, retried,
                                                   self._may_call(retried, before_call, not_made))):
                answers[i] = answer
        return answers

    def _may_call(self, recipients: list[JobRecipient], before_call: BeforeCall,
                  not_made: NotMade) -> Callable[[list[int]], bool]:
        """What a provider asks before each of its HTTP requests, naming the messages it carries
        by their place in `recipients`: whether the request fits in what is left of the
        invocation, and whether `before_call` lets it go. The time is asked again after
        `before_call`, which writes: the request must still fit when it starts. Refused once
        `before_call` was asked (whose write may have been applied even when it says no), the
        request is told to `not_made`."""
        def may_call(positions: list[int]) -> bool:
            if self.time_left() < self.call_budget_s:
                return False
            carried = [recipients[p] for p in positions]
            try:
                allowed = before_call(carried)
            except Exception:  # noqa: BLE001 - whatever stopped the record, the request is not made
                allowed = False
            if allowed and self.time_left() >= self.call_budget_s:
                return True
            not_made(carried)
            return False
        return may_call


def _call_once(provider: Provider, sender: str, recipients: list[JobRecipient],
               may_call: Callable[[list[int]], bool]) -> list[RecipientOutcome]:
    try:
        answers = provider.send(sender, [OutgoingMessage(r.number, r.body) for r in recipients], may_call)
    except ProviderError as problem:
        return outcomes_of_failed_call(problem, len(recipients))
    except Exception as problem:  # noqa: BLE001 - a bug or a surprise: the request may have gone out
        return outcomes_of_unexpected(provider.name, problem, len(recipients))
    if len(answers) != len(recipients):
        # An answer we cannot match to messages: the provider took the call, so nothing may be resent.
        reason = f"provider answered for {len(answers)} of {len(recipients)} messages"
        return [RecipientOutcome(UNKNOWN, reason=reason, provider_failed=True)] * len(recipients)
    known = (SENT, FAILED, UNKNOWN, NOT_TAKEN)
    return [a if a.status in known else RecipientOutcome(UNKNOWN, reason=f"unexpected status {a.status}")
            for a in answers]


def _healthy(answers: list[RecipientOutcome]) -> bool:
    """A call is unhealthy when the provider failed as a whole for any of its messages (not taken,
    no usable answer, our account refused), as opposed to refusing one message or one request."""
    return not any(a.may_go_elsewhere or a.provider_failed for a in answers)
