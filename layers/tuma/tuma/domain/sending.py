"""The sender's rule for one job: claim its recipients, call the provider once, record outcomes.

No recipient is sent twice. Before the provider call each recipient is claimed (status
`sending`, attempt `in_flight`) with a conditional write that only succeeds for a recipient never
tried or whose last attempt the provider certainly did not take. A redelivered job therefore skips
recipients already sent or failed; and one found `in_flight` from an invocation that died between
the provider call and the status write is marked `unknown`, never resent, because the provider
may have taken it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.providers import (
    Provider, ProviderAmbiguous, ProviderRejected, ProviderUnavailable, RecipientOutcome)
from tuma.domain.status import FAILED, SENT, UNKNOWN


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
    def claim(self, job: SendJob, recipients: list[JobRecipient], now: datetime) -> Claims: ...

    def release(self, job: SendJob, recipients: list[JobRecipient], now: datetime, reason: str) -> None:
        """The provider did not take these: a later delivery of the job may claim them again."""

    def record(self, job: SendJob, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Store each outcome, forward only."""


@dataclass
class JobReport:
    provider: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, count: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + count


def send_job(job: SendJob, store: SendStore, provider: Provider, clock: Callable[[], datetime],
             in_flight_grace: timedelta) -> JobReport:
    """Raises ProviderUnavailable (nothing sent, retry the job) or JobBusy (retry later)."""
    report = JobReport(provider.name)
    claims = store.claim(job, list(job.recipients), clock())
    stale = [r for r, claimed_at in claims.in_flight if clock() - claimed_at > in_flight_grace]
    if stale:
        reason = "an earlier attempt ended between the provider call and recording its answer"
        store.record(job, [(r, Outcome(UNKNOWN, provider.name, reason=reason)) for r in stale], clock())
        report.add(UNKNOWN, len(stale))
    if claims.claimed:
        outcomes = _call_provider(job, claims.claimed, provider, store, clock)
        store.record(job, outcomes, clock())
        for _, outcome in outcomes:
            report.add(outcome.status)
    if len(claims.in_flight) > len(stale):
        raise JobBusy(f"{len(claims.in_flight) - len(stale)} recipient(s) are being sent by another invocation")
    return report


def _call_provider(job: SendJob, recipients: list[JobRecipient], provider: Provider,
                   store: SendStore, clock) -> list[tuple[JobRecipient, Outcome]]:
    try:
        answers = provider.send(job.sender, job.body, [r.number for r in recipients])
    except ProviderUnavailable as problem:
        store.release(job, recipients, clock(), problem.reason)
        raise
    except ProviderRejected as problem:
        answers = [RecipientOutcome(FAILED, error_code=problem.code, reason=problem.reason)] * len(recipients)
    except ProviderAmbiguous as problem:
        answers = [RecipientOutcome(UNKNOWN, error_code=problem.code, reason=problem.reason)] * len(recipients)
    if len(answers) != len(recipients):
        # A provider answer we cannot match to numbers: it took the call, so nothing may be resent.
        reason = f"provider answered for {len(answers)} of {len(recipients)} numbers"
        answers = [RecipientOutcome(UNKNOWN, reason=reason)] * len(recipients)
    return [(r, Outcome(a.status if a.status in (SENT, FAILED, UNKNOWN) else UNKNOWN, provider.name,
                        a.provider_message_id, a.cost, a.error_code, a.reason))
            for r, a in zip(recipients, answers)]
