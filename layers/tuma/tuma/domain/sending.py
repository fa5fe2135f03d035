"""The sender's rule for one job: claim it, call the provider, record each message's outcome.

No message is sent twice, and the cost of that guarantee is per job, not per message:
- Before calling the provider the sender claims the job with one conditional write on its job
  item. The claim only succeeds for a job never tried, or one whose last attempt left messages the
  provider certainly did not take (`retry`: only those are sent again). A job already `done` is
  skipped, so a redelivery sends nothing twice.
- A claim still `in_flight` belongs to another invocation. Once older than `in_flight_grace` (the
  function's timeout) that invocation cannot finish: it died between the provider call and
  recording the answers, so the provider may have its messages. They become `unknown` and are
  never resent automatically.
- The answers are recorded (one item per message, written in batches), then the claim is closed."""

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
CLAIMED, BUSY, DONE = "claimed", "busy", "done"


class JobBusy(Exception):
    """Another invocation is sending this job right now: retry later."""


@dataclass(frozen=True)
class Outcome:
    """A status to record for one message, with what the provider said."""

    status: str
    provider: str
    provider_message_id: str | None = None
    cost: str | None = None
    error_code: str | None = None
    reason: str | None = None


@dataclass
class Claim:
    state: str  # claimed | busy | done
    token: str = ""
    to_send: list[JobRecipient] = field(default_factory=list)
    # Messages a dead invocation may have sent: to record as unknown, never to send.
    orphaned: list[JobRecipient] = field(default_factory=list)
    first_attempt: bool = False
    claimed_at: str = ""


class SendStore(Protocol):
    def register(self, job: SendJob, now: datetime) -> None:
        """Store a producer's job as a request, once, so that its messages can be looked up."""

    def claim(self, job: SendJob, now: datetime, in_flight_grace: timedelta) -> Claim: ...

    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Store each message's outcome."""

    def finish(self, job: SendJob, claim: Claim, not_taken: list[JobRecipient], reason: str, now: datetime) -> None:
        """Close the claim: `done`, or `retry` for the messages the provider did not take."""


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
    claim = store.claim(job, clock(), in_flight_grace)
    if claim.state == BUSY:
        raise JobBusy("another invocation is sending this job")
    report = JobReport(provider.name)
    if claim.state == DONE:
        return report
    outcomes = [(r, Outcome(UNKNOWN, provider.name, reason=DIED_MID_CALL)) for r in claim.orphaned]
    if claim.first_attempt:
        outcomes += [(r, Outcome(REJECTED, provider.name, reason=r.problem)) for r in job.recipients if r.problem]
    not_taken: list[tuple[JobRecipient, RecipientOutcome]] = []
    if claim.to_send:
        for recipient, answer in zip(claim.to_send, _call(provider, job.sender, claim.to_send)):
            if answer.status == NOT_TAKEN:
                not_taken.append((recipient, answer))
            else:
                outcomes.append((recipient, Outcome(answer.status, provider.name, answer.provider_message_id,
                                                    answer.cost, answer.error_code, answer.reason)))
    store.record(job, claim, outcomes, clock())
    reason = (not_taken[0][1].reason or "not taken") if not_taken else ""
    store.finish(job, claim, [r for r, _ in not_taken], reason, clock())
    for _, outcome in outcomes:
        report.add(outcome.status)
    if not_taken:
        raise ProviderUnavailable(provider.name, f"{len(not_taken)} message(s) not taken: {reason}")
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
