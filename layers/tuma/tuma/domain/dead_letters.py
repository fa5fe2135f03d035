"""A send job that ran out of retries (the send queue's redrive policy moved it to the DLQ): its
messages no provider took end `failed` with reason `retries_exhausted`, so none stays `queued`.

It goes through the job's claim exactly as the sender does (tuma.domain.sending), so it can
never race a sender still holding the job, and nothing already recorded changes: a message
sent, unknown, cancelled or final keeps its status. A claim left `in_flight` by a dead
invocation makes `unknown` the messages it named in a provider request, as the sender's takeover
would (the provider may have them); those it never named end `failed` like the rest. Once done
the job is `done`: a later redrive of the same job sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tuma.domain.jobs import SendJob
from tuma.domain.sending import JobReport, Outcome, SendStore, claim_job
from tuma.domain.status import FAILED

RETRIES_EXHAUSTED = "retries_exhausted"


def end_job(job: SendJob, store: SendStore, clock: Callable[[], datetime], in_flight_grace: timedelta) -> JobReport:
    """The statuses recorded. Raises JobBusy while another invocation holds the job."""
    report = JobReport()
    claimed = claim_job(job, store, clock, in_flight_grace)
    if claimed is None:
        return report
    claim, outcomes = claimed
    outcomes += [(r, Outcome(FAILED, None, reason=RETRIES_EXHAUSTED)) for r in claim.to_send]
    store.record(job, claim, outcomes, clock())
    store.finish(job, claim, [], RETRIES_EXHAUSTED, clock())
    for _, outcome in outcomes:
        report.add(outcome)
    return report
