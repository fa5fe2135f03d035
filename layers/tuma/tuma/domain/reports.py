"""SayaSMS delivery reports (seeds/sayasms-api.txt, "Webhooks & Delivery Reports").

A report names SayaSMS's per-recipient message id, not Tuma's. The sender stores the mapping
(SayaSMS id → Tuma message) when it records the send; a report can arrive before that (SayaSMS
may call back before its send response reaches the sender). Such a report is parked under the
same SayaSMS id and applied by whichever side comes second:

  webhook: read mapping → found: apply.  Not found: park the report, read the mapping again
           (strongly consistent) → found now: apply the parked report.
  sender:  write mapping → read parked reports (strongly consistent) → apply each.

Each side writes before its strongly consistent read, so at least one side sees the other's
write: no report is lost. (The store may make the sender's read cheaper, as long as that holds:
tuma.store.reports has parking leave a mark where the sender's mapping write sees it.) Both may apply the same report; applying is idempotent and forward
only (one conditional write that succeeds only if the report moves the status on,
tuma.domain.status), so the outcome is the same under any order or repetition.

A report that changes nothing costs no write: a repeated or late one fails the conditional write
and is not added to the history. `queued` and `sent` never change anything: the sender records
every SayaSMS message that has an id as `sent` or `failed` (tuma.providers.sayasms), and both
reports mean `sent`. So they are answered without a read or a write, and never parked; only
`delivered` and `failed` are looked up, applied and parked.

254sms has no delivery reports: its messages end at the send response's `sent` or `failed`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tuma.domain.status import DELIVERED, FAILED, FINAL, SENT, may_move

PROVIDER = "sayasms"
# SayaSMS's four events and the Tuma status each one means. `queued` (SayaSMS took it) and
# `sent` (handed to the carrier) both mean Tuma's `sent`: the provider has the message.
EVENTS = {"message.queued": SENT, "message.sent": SENT, "message.delivered": DELIVERED, "message.failed": FAILED}
# The statuses the sender records a SayaSMS message in when SayaSMS gave it an id (the only
# messages a report can find): an event matters only if it can move one of them on.
LINKED_STATUSES = (SENT, FAILED)
MATTERING_EVENTS = tuple(e for e, s in EVENTS.items() if any(may_move(linked, s) for linked in LINKED_STATUSES))


def parking_slot(event: str) -> str:
    """Where a report waits for its mapping: one slot for the final events (of two final reports
    only the first can ever apply, so a second need not be kept), the event's own otherwise. One
    slot is one strongly consistent read per message for the sender's look-up."""
    return "final" if EVENTS[event] in FINAL else event


PARKING_SLOTS = tuple(sorted({parking_slot(e) for e in MATTERING_EVENTS}))
_MAX_ID = 200
_MAX_TEXT = 500


class MalformedReport(ValueError):
    """The body is not a SayaSMS delivery report; the message says why (never echoes numbers)."""


@dataclass(frozen=True)
class Report:
    event: str  # message.queued | message.sent | message.delivered | message.failed
    provider_message_id: str
    received_at: str  # ISO 8601, when Tuma received it
    details: dict = field(default_factory=dict)  # network, delivery_time, latency_ms | reason

    @property
    def status(self) -> str:
        return EVENTS[self.event]

    @property
    def key(self) -> str:
        """What makes a report the same report again: each event happens once per message."""
        return self.event

    def history_entry(self) -> dict:
        return {"status": self.status, "event": self.event, "at": self.received_at, "provider": PROVIDER,
                **self.details}

    def to_item(self) -> dict:
        return {"event": self.event, "provider_message_id": self.provider_message_id,
                "received_at": self.received_at, "details": dict(self.details)}

    @classmethod
    def from_item(cls, item: dict) -> Report:
        details = {k: int(v) if k == "latency_ms" else v for k, v in (item.get("details") or {}).items()}
        return cls(item["event"], item["provider_message_id"], item["received_at"], details)


def parse_report(payload: object, received_at: str) -> Report:
    """A well-formed report, or MalformedReport. `to` is not needed (the id says which message)."""
    if not isinstance(payload, dict):
        raise MalformedReport("the body must be a JSON object")
    event = payload.get("event")
    if event not in EVENTS:
        raise MalformedReport(f"`event` must be one of {', '.join(EVENTS)}")
    message_id = payload.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > _MAX_ID:
        raise MalformedReport("`message_id` must be a non-empty string")
    status = payload.get("status")
    if status is not None and status != event.removeprefix("message."):
        raise MalformedReport("`status` does not match `event`")
    details: dict = {}
    if event == "message.delivered":
        for name in ("network", "delivery_time"):
            value = payload.get(name)
            if value is not None:
                if not isinstance(value, str) or len(value) > _MAX_TEXT:
                    raise MalformedReport(f"`{name}` must be a string")
                details[name] = value
        latency = payload.get("latency_ms")
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
                raise MalformedReport("`latency_ms` must be a non-negative integer")
            details["latency_ms"] = latency
    elif event == "message.failed":
        reason = payload.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_TEXT):
            raise MalformedReport("`reason` must be a string")
        details["reason"] = reason or "failed (SayaSMS gave no reason)"
    return Report(event, message_id.strip(), received_at, details)


@dataclass(frozen=True)
class MessageRef:
    """Which Tuma message a SayaSMS id belongs to."""

    tenant_id: str
    request_id: str
    index: int


class ReportStore(Protocol):
    def mapping(self, provider_message_id: str, consistent: bool = True) -> MessageRef | None:
        """Read of the SayaSMS id's mapping, strongly consistent unless told otherwise."""

    def park(self, report: Report, now: datetime) -> None:
        """Keep a report whose message is not known yet."""

    def parked(self, provider_message_id: str) -> list[Report]:
        """Strongly consistent read of the reports parked under this id, in arrival order."""

    def unpark(self, report: Report) -> None: ...

    def apply(self, ref: MessageRef, report: Report, now: datetime) -> str:
        """Apply to the message if it moves its status on (one conditional write, nothing else
        otherwise): "applied", "late", "duplicate" or "no_message"."""

    def map(self, provider_message_id: str, ref: MessageRef, now: datetime) -> None: ...


def receive(report: Report, store: ReportStore, now: datetime) -> str:
    """The webhook's side: apply the report now, or park it for the sender to apply; "unchanged"
    for an event that cannot change any message (no read, no write)."""
    if report.event not in MATTERING_EVENTS:
        return "unchanged"
    # An eventually consistent look first (half the price): a mapping it misses is found by the
    # strongly consistent read after parking.
    ref = store.mapping(report.provider_message_id, consistent=False)
    if ref is not None:
        return store.apply(ref, report, now)
    store.park(report, now)
    ref = store.mapping(report.provider_message_id)
    if ref is None:
        return "parked"
    outcome = store.apply(ref, report, now)
    store.unpark(report)
    return outcome


def link(provider_message_id: str, ref: MessageRef, store: ReportStore, now: datetime) -> list[tuple[Report, str]]:
    """The sender's side, once it has recorded the send: map the id, then apply what was parked."""
    store.map(provider_message_id, ref, now)
    return apply_parked(provider_message_id, ref, store, now)


def apply_parked(provider_message_id: str, ref: MessageRef, store: ReportStore,
                 now: datetime) -> list[tuple[Report, str]]:
    """The second half of `link`, for a store that wrote many mappings at once beforehand."""
    outcomes = []
    for report in store.parked(provider_message_id):
        outcomes.append((report, store.apply(ref, report, now)))
        store.unpark(report)
    return outcomes


def by_arrival(reports: Iterable[Report]) -> list[Report]:
    return sorted(reports, key=lambda r: r.received_at)
