"""What the sender needs of a provider, and the ways a provider call can end.

The failure kinds decide what happens to a message:
- ProviderUnavailable: the provider certainly did not take it (connection refused, 503, 429).
  `transient` (429, 503) failures are retried a few times at once; then, or straight away for
  a refused connection, the other provider is tried, and failing that the job goes back to SQS.
- ProviderAccountProblem: the provider refuses our account, not the message (254sms X001–X003,
  SayaSMS 401/402): the other provider is tried; with no other, the messages are `failed`.
- ProviderRejected: the provider refused the call for good (254sms X000, other SayaSMS 4xx): the
  recipients are `failed` with the provider's code and reason, and not retried.
- ProviderAmbiguous: the request went out and no usable answer came (read timeout, a connection
  closed mid-answer, a 5xx or 3xx that does not prove the opposite, an unreadable 2xx, any
  unexpected exception): the provider may have sent it, so it is never resent automatically, by
  either provider; the recipients become `unknown`.
Every kind but ProviderRejected counts against the provider's circuit breaker (`provider_failed`)."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Protocol


class ProviderError(Exception):
    def __init__(self, provider: str, reason: str, code: str | None = None):
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.code = code


class ProviderUnavailable(ProviderError):
    def __init__(self, provider: str, reason: str, code: str | None = None, transient: bool = False):
        super().__init__(provider, reason, code)
        self.transient = transient  # 429/503: worth an immediate retry; a refused connection is not


class ProviderRejected(ProviderError):
    pass


class ProviderAccountProblem(ProviderRejected):
    """Credentials or credit: the provider would refuse any message of ours, so another may take it."""


class ProviderAmbiguous(ProviderError):
    pass


NOT_TAKEN = "not_taken"  # not a status: the provider certainly did not take it, so it may be retried
NO_TIME = "no_time"  # a not_taken's error code: not called, no time was left in the invocation


@dataclass(frozen=True)
class OutgoingMessage:
    number: str  # E.164
    body: str


@dataclass(frozen=True)
class RecipientOutcome:
    """What the provider said of one message, in the order the messages were given."""

    status: str  # sent | failed | unknown | not_taken
    provider_message_id: str | None = None
    cost: str | None = None
    error_code: str | None = None
    reason: str | None = None
    transient: bool = False  # not_taken by a 429/503: worth retrying at once
    account_problem: bool = False  # failed for our account, not the message: another provider may take it
    provider_failed: bool = False  # the call failed as a whole at the provider: counts against its circuit
    report_ref: str | None = None  # the call's reference in its callback URL (tuma.domain.reports.ReportRef)

    @property
    def may_go_elsewhere(self) -> bool:
        """The provider certainly did not take it, so another provider may send it."""
        return self.status == NOT_TAKEN or self.account_problem


# A request the provider did not make because `may_call` said no: nothing went out.
NOT_CALLED = RecipientOutcome(NOT_TAKEN, error_code=NO_TIME,
                              reason="not called: no time left in this invocation, or the job's claim was lost")


@dataclass(frozen=True)
class Balance:
    provider: str
    available: bool
    details: dict


class Provider(Protocol):
    name: str

    def send(self, sender: str, messages: list[OutgoingMessage],
             may_call: Callable[[list[int]], bool] = lambda positions: True) -> list[RecipientOutcome]:
        """Send `messages`; one outcome per message, in order. A failure of the whole call may
        also be raised as a ProviderError. Before each HTTP request it asks `may_call` with the
        positions (in `messages`) of the messages the request carries; a request it may not make
        leaves its messages NOT_CALLED."""

    def balance(self) -> dict:
        """The provider's balance fields; raises ProviderError when it cannot be had."""


def outcomes_of_failed_call(problem: ProviderError, count: int) -> list[RecipientOutcome]:
    """Per-message outcomes of a call that failed as a whole."""
    if isinstance(problem, ProviderUnavailable):
        outcome = RecipientOutcome(NOT_TAKEN, error_code=problem.code, reason=problem.reason,
                                   transient=problem.transient, provider_failed=True)
    elif isinstance(problem, ProviderRejected):
        account = isinstance(problem, ProviderAccountProblem)
        outcome = RecipientOutcome("failed", error_code=problem.code, reason=problem.reason,
                                   account_problem=account, provider_failed=account)
    else:
        outcome = RecipientOutcome("unknown", error_code=problem.code, reason=problem.reason, provider_failed=True)
    return [outcome] * count


def outcomes_of_unexpected(provider: str, problem: Exception, count: int) -> list[RecipientOutcome]:
    """Per-message outcomes of a call that raised something no adapter expected: the request may
    have gone out, so they are `unknown`, and the provider is counted as failing."""
    reason = f"unexpected {type(problem).__name__} during the call"
    return outcomes_of_failed_call(ProviderAmbiguous(provider, reason, code="unexpected_error"), count)
