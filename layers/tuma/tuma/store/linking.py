"""The sender's store for SayaSMS messages: records outcomes (tuma.store.sending), then links
SayaSMS's ids to Tuma's messages so that delivery reports find them (the keys are in
tuma.store.reports).

Its own module so that the webhook and the expirer, which need only tuma.store.reports, do not
load the sender's store (and through it phonenumbers and the job schema) on their cold starts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from tuma.domain import reports
from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.reports import MessageRef, ReportRef
from tuma.domain.sending import Claim, Outcome
from tuma.domain.status import SENT
from tuma.observability import logger
from tuma.store.reports import (
    PARKED_PREFIX, DynamoReportStore, due_item, in_block, link_block, mapping_item, mapping_pk)
from tuma.store.sending import MessageStore
from tuma.store.table import batch_write, position, recipient_key, table


# (message, SayaSMS id, status recorded, the call's reference or None)
Link = tuple[MessageRef, str, str, ReportRef | None]


class ReportingMessageStore(MessageStore):
    """The sender's store, which also links SayaSMS ids to messages once the outcomes are recorded:
    writes the mappings, applies reports that came early, and schedules the expiry of `sent`.

    The message items are written first, so reports normally land after `sent`; a report that
    comes sooner is parked and applied here. If an invocation died after recording but before
    linking, the one that takes its job over links the messages it finds recorded."""

    _LINKERS = 16  # concurrent look-ups of parked reports

    def __init__(self, expire_after: timedelta):
        self.expire_after = expire_after
        self.reports = DynamoReportStore()

    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        super().record(job, claim, outcomes, now)
        links = [(MessageRef(job.tenant_id, job.request_id, recipient.index), outcome.provider_message_id,
                  outcome.status, ReportRef.parse(outcome.report_ref)) for recipient, outcome in outcomes
                 if outcome.provider == reports.PROVIDER and outcome.provider_message_id]
        links += self._recorded_before(job, claim.orphaned)
        links = _one_per_id(links)
        if not links:
            return
        # The ids of a call with a reference go into its block items, whose answers name the ids
        # whose reports came first; the others (a takeover's relinks, and those of a block another
        # request holds) keep a MAP item each, and their parking slots are read. Either way each
        # mapping is written before its parked reports are read, as tuma.domain.reports needs.
        early, loose = self._link_blocks(job, links, now)
        items = [mapping_item(provider_message_id, ref, now) for ref, provider_message_id, _, _ in loose]
        sent = [ref for ref, _, status, _ in links if status == SENT]
        if sent:
            items.append(due_item(sent, now + self.expire_after, now))
        batch_write(items)
        parked_loose = _with_parked_reports([provider_message_id for _, provider_message_id, _, _ in loose])
        early += [link for link in loose if link[1] in parked_loose]
        with ThreadPoolExecutor(self._LINKERS) as pool:
            list(pool.map(lambda link: reports.apply_parked(link[1], link[0], self.reports, now), early))

    def _link_blocks(self, job: SendJob, links: list[Link], now: datetime) -> tuple[list[Link], list[Link]]:
        """One UpdateItem per block of a call (tuma.store.reports.link_block): the links whose
        reports may have been parked first, and the links left for a MAP item each."""
        blocks: dict[tuple[ReportRef, int], dict[str, Link]] = {}
        loose = []
        for link in links:
            pid, report_ref = link[1], link[3]
            if report_ref is not None and in_block(pid):
                blocks.setdefault((report_ref, report_ref.block_of(pid)), {})[pid] = link
            else:
                loose.append(link)
        def link(block: tuple[tuple[ReportRef, int], dict[str, Link]]) -> set[str] | None:
            (report_ref, k), members = block
            indices = {pid: member[0].index for pid, member in members.items()}
            return link_block(report_ref, k, indices, job.tenant_id, job.request_id, now)

        with ThreadPoolExecutor(self._LINKERS) as pool:
            answers = list(pool.map(link, blocks.items()))
        early = []
        for ((report_ref, _), block), parked in zip(blocks.items(), answers):
            if parked is None:
                logger.warning("a SayaSMS call's block is another request's: its ids are mapped one by one",
                               extra={"request_id": job.request_id, "report_ref": str(report_ref)})
                loose += block.values()
            else:
                early += [link for pid, link in block.items() if pid in parked]
        return early, loose

    @staticmethod
    def _recorded_before(job: SendJob, orphans: list[JobRecipient]) -> list[Link]:
        """Links for orphans whose dead invocation had recorded a SayaSMS id (the item keeps no
        call reference: they are linked by MAP items)."""
        links = []
        for i in range(0, len(orphans), 100):  # BatchGetItem's limit
            keys = [recipient_key(job.tenant_id, job.request_id, r.index) for r in orphans[i:i + 100]]
            answer = table().meta.client.batch_get_item(
                RequestItems={table().name: {"Keys": keys, "ConsistentRead": True}})
            for item in answer["Responses"].get(table().name, []):
                if item.get("provider") == reports.PROVIDER and item.get("provider_message_id"):
                    ref = MessageRef(job.tenant_id, job.request_id, position(item))
                    links.append((ref, item["provider_message_id"], item["status"], None))
        return links


def _one_per_id(links: list[Link]) -> list[Link]:
    """One link per SayaSMS id: a BatchWriteItem holding one key twice is refused whole. Two of our
    messages under one id cannot both be told apart by its reports; the first keeps the id."""
    kept: dict[str, Link] = {}
    for link in links:
        if kept.setdefault(link[1], link) is not link:
            logger.warning("a SayaSMS id came for two messages: its reports go to the first",
                           extra={"request_id": link[0].request_id, "index": link[0].index})
    return list(kept.values())


def _with_parked_reports(provider_message_ids: list[str]) -> set[str]:
    """Which of these ids have reports parked: one BatchGetItem per 100 ids (one parking slot
    each), instead of a query per message."""
    found = set()
    keys = [{"pk": mapping_pk(pid), "sk": PARKED_PREFIX + slot} for pid in provider_message_ids
            for slot in reports.PARKING_SLOTS]  # only these are ever parked
    for i in range(0, len(keys), 100):  # BatchGetItem's limit
        pending = {table().name: {"Keys": keys[i:i + 100], "ConsistentRead": True,
                                  "ProjectionExpression": "pk"}}
        while pending:
            answer = table().meta.client.batch_get_item(RequestItems=pending)
            found |= {item["pk"] for item in answer["Responses"].get(table().name, [])}
            pending = answer.get("UnprocessedKeys") or None
    prefix = len(mapping_pk(""))
    return {pk[prefix:] for pk in found}
