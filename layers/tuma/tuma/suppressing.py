"""Where an accepted request or a producer's job meets the tenant's opt-out list (one BatchGetItem
per 100 numbers: tuma.store.suppressions)."""

from __future__ import annotations

from tuma.domain import suppressions
from tuma.domain.jobs import SendJob
from tuma.domain.requests import AcceptedRequest
from tuma.store import suppressions as suppression_list


def screen(accepted: AcceptedRequest) -> AcceptedRequest:
    found = suppression_list.suppressed(accepted.tenant_id, (e.number for e in accepted.queued))
    return suppressions.screen(accepted, found)


def screen_job(job: SendJob) -> SendJob:
    found = suppression_list.suppressed(job.tenant_id, (r.number for r in job.sendable))
    return suppressions.screen_job(job, found)
