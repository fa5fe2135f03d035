"""The sender's rule for one job: claim it, call the provider, record each message's outcome.

No message is sent twice, and the cost of that guarantee is per job and per provider request,
not per message:
- A producer's job is registered as a request first; a job whose request id already names
  another job is refused (tuma.domain.jobs.JobConflict), never sent.
- Before calling the provider the sender claims the job with one conditional write on its job
  item, keyed on the job's identity. The claim only succeeds for a job never tried, or one whose
  last attempt left messages the provider certainly did not take (`retry`: only those are sent
  again). A job already `done` is skipped, so a redelivery sends nothing twice. A claim write
  whose answer was lost (the retried write finds the job holding our own token) is ours.
- Before each provider request (each SayaSMS call, each 254sms call of each round, each retry or
  failover call) the sender names the request's messages on the job item, with one conditional
  write guarded by its claim token (`mark_calling`): the cost is one write per request, not per
  message. If that write fails, the request is not made and its messages stay pending; a request
  named and then not made (the write's answer lost, or no time left after it) has its names
  withdrawn at once, so that a takeover after a death sends those messages, never having called
  them.
- A claim still `in_flight` belongs to another invocation. Once older than `in_flight_grace` (the
  function's timeout, and a clock margin) that invocation cannot finish. Of its pending messages, those a request
  named may have reached the provider with no answer recorded: they become `unknown` and are
  never resent automatically. Those no request named never left: the takeover sends them. (The
  token guard orders the two: a named request's write came before the takeover, which sees it; a
  write after the takeover fails, so that request is never made.)
- The messages go through the routing policy's providers, failing over where the first
  definitively did not take them (tuma.domain.failover).
- The answers are recorded (one item per message, where it moves the message forward), then the
  claim is closed, its named requests with it. A producer job's rejected numbers are recorded by its first claim, and again by
  any takeover (the dead first attempt may not have got that far)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from tuma.domain.failover import Attempt, Dispatcher
from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.providers import NOT_TAKEN, ProviderUnavailable
from tuma.domain.status import REJECTED, SENT, UNKNOWN

DIED_MID_CALL = "an earlier attempt ended between the provider call and recording its answer"
# Added to the sender's timeout before its claim is deemed dead: the clocks of two hosts may disagree.
CLOCK_MARGIN = timedelta(seconds=5)
CLAIMED, BUSY, DONE = "claimed", "busy", "done"


def in_flight_grace(sender_timeout: timedelta) -> timedelta:
    """How old a claim must be before another invocation may take it over: the sender's
    timeout (it cannot still be running after it), and the clocks' margin."""
    return sender_timeout + CLOCK_MARGIN


class JobBusy(Exception):
    """Another invocation is sending this job right now: retry later."""


@dataclass(frozen=True)
class Outcome:
    """A status to record for one message, with what the provider said."""

    status: str
    provider: str | None  # None: no provider was called (a rejected number, an orphan of a dead call)
    provider_message_id: str | None = None
    cost: str | None = None
    error_code: str | None = None
    reason: str | None = None
    failover_from: str | None = None  # the provider tried first, when another one sent it
    failover_reason: str | None = None
    cost_estimated: bool = False  # `cost` is our rate × segments, not the provider's figure
    report_ref: str | None = None  # the provider call's reference for its delivery reports (tuma.domain.reports)

    @classmethod
    def of(cls, attempt: Attempt, estimate: str | None = None) -> "Outcome":
        """The attempt's answer, priced by the provider or, failing that, by `estimate`."""
        answer = attempt.answer
        return cls(answer.status, attempt.provider, answer.provider_message_id, answer.cost or estimate,
                   answer.error_code, answer.reason, attempt.failover_from, attempt.failover_reason,
                   cost_estimated=not answer.cost and estimate is not None, report_ref=answer.report_ref)


@dataclass
class Claim:
    state: str  # claimed | busy | done
    token: str = ""
    to_send: list[JobRecipient] = field(default_factory=list)
    # Messages a dead invocation named in a provider request and left unrecorded: may have been
    # sent, so to record as unknown, never to send.
    orphaned: list[JobRecipient] = field(default_factory=list)
    first_attempt: bool = False
    taken_over: bool = False  # the claim took over from an invocation that died in flight
    claimed_at: str = ""
    named: set[int] = field(default_factory=set)  # positions this claim's provider calls were recorded as carrying


class SendStore(Protocol):
    def register(self, job: SendJob, now: datetime) -> None:
        """Store a producer's job as a request, once, so that its messages can be looked up."""

    def claim(self, job: SendJob, now: datetime, in_flight_grace: timedelta) -> Claim: ...

    def mark_calling(self, job: SendJob, claim: Claim, recipients: list[JobRecipient]) -> bool:
        """Name the messages of the provider request about to be made while `claim` holds the
        job; False (the request must not be made) when it does not, or the write failed."""

    def unmark_calling(self, job: SendJob, claim: Claim, recipients: list[JobRecipient]) -> None:
        """The request `mark_calling` was asked about was not made: withdraw its messages' names
        (best effort: names left standing only make a takeover call them unknown)."""

    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Store each message's outcome."""

    def finish(self, job: SendJob, claim: Claim, not_taken: list[JobRecipient], reason: str, now: datetime) -> None:
        """Close the claim: `done`, or `retry` for the messages the provider did not take."""


@dataclass
class JobReport:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (provider, status) -> messages
    failovers: dict[tuple[str, str], int] = field(default_factory=dict)  # (from, to) -> messages

    @property
    def by_status(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, status), count in self.counts.items():
            totals[status] = totals.get(status, 0) + count
        return totals

    def add(self, outcome: Outcome) -> None:
        key = (outcome.provider or "none", outcome.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        if outcome.failover_from and outcome.provider:
            route = (outcome.failover_from, outcome.provider)
            self.failovers[route] = self.failovers.get(route, 0) + 1


# The cost of a message the provider did not price (254sms never does): (provider, body) -> "KES x".
CostEstimator = Callable[[str, str], str | None]


def claim_job(job: SendJob, store: SendStore, clock: Callable[[], datetime], in_flight_grace: timedelta
              ) -> tuple[Claim, list[tuple[JobRecipient, Outcome]]] | None:
    """The job's claim and what it settles before any provider call: a dead invocation's named
    messages (unknown) and, on a first attempt or a takeover, the job's rejected numbers. None: the job is
    done already. Raises JobBusy while another invocation holds it. Shared by the sender and the
    dead-letter consumer, so that both settle a job alike."""
    if not job.from_api:
        store.register(job, clock())
    claim = store.claim(job, clock(), in_flight_grace)
    if claim.state == BUSY:
        raise JobBusy("another invocation is sending this job")
    if claim.state == DONE:
        return None
    outcomes = [(r, Outcome(UNKNOWN, job.provider, reason=DIED_MID_CALL)) for r in claim.orphaned]
    if claim.first_attempt or claim.taken_over:
        outcomes += [(r, Outcome(REJECTED, None, reason=r.problem)) for r in job.recipients if r.problem]
    return claim, outcomes


def send_job(job: SendJob, store: SendStore, dispatcher: Dispatcher, clock: Callable[[], datetime],
             in_flight_grace: timedelta, estimate_cost: CostEstimator = lambda provider, body: None) -> JobReport:
    """Raises ProviderUnavailable (some messages not taken by any provider: retry the job) or
    JobBusy (retry later)."""
    report = JobReport()
    claimed = claim_job(job, store, clock, in_flight_grace)
    if claimed is None:
        return report
    claim, outcomes = claimed
    not_taken: list[Attempt] = []
    if claim.to_send:
        before_call, not_made = partial(store.mark_calling, job, claim), partial(store.unmark_calling, job, claim)
        for attempt in dispatcher.send(job.sender, claim.to_send, job.provider, before_call, not_made):
            if attempt.answer.status == NOT_TAKEN:
                not_taken.append(attempt)
            else:
                # Only a message the provider took is charged; one it took without a price (254sms) is estimated.
                unpriced = attempt.answer.status == SENT and not attempt.answer.cost and attempt.provider
                estimate = estimate_cost(attempt.provider, attempt.recipient.body) if unpriced else None
                outcomes.append((attempt.recipient, Outcome.of(attempt, estimate)))
    store.record(job, claim, outcomes, clock())
    reason = (not_taken[0].answer.reason or "not taken") if not_taken else ""
    store.finish(job, claim, [a.recipient for a in not_taken], reason, clock())
    for _, outcome in outcomes:
        report.add(outcome)
    if not_taken:
        raise ProviderUnavailable(not_taken[0].provider or "every provider",
                                  f"{len(not_taken)} message(s) not taken: {reason}")
    return report
