"""The sender's rule for one job: claim its recipients, call the provider, record outcomes.

No message is sent twice. Before the provider call each recipient is claimed (status `sending`,
attempt `in_flight`) with a conditional write that succeeds only for a recipient never tried, or
whose last attempt the provider certainly did not take. So a redelivered job skips recipients
already sent or failed; and a recipient still `in_flight` from an invocation that died between
the provider call and the status write is marked `unknown` once that invocation must be over
(`in_flight_grace`, the function's timeout), never resent, because the provider may have it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.providers import (
    NOT_TAKEN, OutgoingMessage, Provider, ProviderError, ProviderUnavailable, RecipientOutcome,
    outcomes_of_failed_call)
from tuma.domain.status import FAILED, REJECTED, SENT, UNKNOWN

DIED_MID_CALL = "an earlier attempt ended between the provider call and recording its answer"


class JobBusy(Exception):
    """Another invocation is sending some of this job's recipients right now: retry later."""


@dataclass(frozen=True)
class Outcome:
    """A status to record for one recipient, with what the provider said."""

    status: str
    provider: str
    provider_message_id: str | None = None
    cost: str | None = None
    error_code: str | None = None
    reason: str | None = None


@dataclass
class Claims:
    claimed: list[JobRecipient] = field(default_factory=list)
    # Recipients another invocation claimed and has not finished, with the time of its claim.
    in_flight: list[tuple[JobRecipient, datetime]] = field(default_factory=list)
    # Recipients with nothing left to do (sent, failed, unknown...).
    settled: list[JobRecipient] = field(default_factory=list)


class SendStore(Protocol):
    def register(self, job: SendJob, now: datetime) -> None:
        """Store a producer's job as a request, once, so that its messages can be looked up."""

    def claim(self, job: SendJob, recipients: list[JobRecipient], now: datetime) -> Claims: ...

    def release(self, job: SendJob, recipients: list[JobRecipient], now: datetime, reason: str) -> None:
        """The provider did not take these: a later delivery of the job may claim them again."""

    def record(self, job: SendJob, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Store each outcome, forward only; the same outcome twice is stored once."""


@dataclass
class JobReport:
    provider: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, count: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + count


def send_job(job: SendJob, store: SendStore, provider: Provider, clock: Callable[[], datetime],
             in_flight_grace: timedelta) -> JobReport:
    """Raises ProviderUnavailable (some messages not taken: retry the job) or JobBusy (retry later)."""
    if not job.from_api:
        store.register(job, clock())
    outcomes = [(r, Outcome(REJECTED, provider.name, reason=r.problem)) for r in job.recipients if r.problem]
    claims = store.claim(job, job.sendable, clock())
    stale = [r for r, claimed_at in claims.in_flight if clock() - claimed_at > in_flight_grace]
    outcomes += [(r, Outcome(UNKNOWN, provider.name, reason=DIED_MID_CALL)) for r in stale]
    not_taken: list[tuple[JobRecipient, RecipientOutcome]] = []
    if claims.claimed:
        for recipient, answer in zip(claims.claimed, _call(provider, job.sender, claims.claimed)):
            if answer.status == NOT_TAKEN:
                not_taken.append((recipient, answer))
            else:
                outcomes.append((recipient, Outcome(answer.status, provider.name, answer.provider_message_id,
                                                    answer.cost, answer.error_code, answer.reason)))
    store.record(job, outcomes, clock())
    report = JobReport(provider.name)
    for _, outcome in outcomes:
        report.add(outcome.status)
    if not_taken:
        reason = not_taken[0][1].reason or "not taken"
        store.release(job, [r for r, _ in not_taken], clock(), reason)
        raise ProviderUnavailable(provider.name, f"{len(not_taken)} message(s) not taken: {reason}")
    if len(claims.in_flight) > len(stale):
        raise JobBusy(f"{len(claims.in_flight) - len(stale)} recipient(s) are being sent by another invocation")
    return report


def _call(provider: Provider, sender: str, recipients: list[JobRecipient]) -> list[RecipientOutcome]:
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
