"""How a message item keeps its status history without repeating itself.

Storage is priced for every day of `RetentionDays` (90 by default, with point-in-time recovery), and
a message item is most of what a message leaves in the table (issue 12). So a history entry does
not store what the item holds at its top level already, and `shown` puts it back for the reader:

- a delivery report's entry is {status, event, at}: its provider is SayaSMS (the only provider that
  reports) and its details (network, delivery_time, latency_ms | reason) are the item's own, which
  the same write sets (tuma.store.reports);
- the sender's `sent` entry leaves out provider_message_id and cost, the item's own.

Entries written before this (full) are shown as they are: `shown` only fills what is missing. A
late note (the sender's outcome for a message already further on) keeps every field: it tells
what the item does not."""

from __future__ import annotations

from tuma.domain.reports import PROVIDER, Report
from tuma.domain.status import DELIVERED, FAILED, SENT

# The item's fields each kind of entry shares with it.
_REPORT_DETAILS = {DELIVERED: ("network", "delivery_time", "latency_ms"), FAILED: ("reason",)}
_OUTCOME_FIELDS = ("provider_message_id", "cost")


def report_entry(report: Report) -> dict:
    """The entry a report's status write appends; its details go onto the item in the same write."""
    return {"status": report.status, "event": report.event, "at": report.received_at}


def outcome_entry(entry: dict) -> dict:
    """The sender's outcome entry as stored: a `sent` entry without the item's own fields."""
    if entry.get("status") != SENT:
        return entry
    return {name: value for name, value in entry.items() if name not in _OUTCOME_FIELDS}


def shown(item: dict | None) -> dict | None:
    """The item with each entry's shared fields put back, as the status routes show it."""
    if not item or not item.get("history"):
        return item
    return {**item, "history": [_whole(entry, item) for entry in item["history"]]}


def _whole(entry: dict, item: dict) -> dict:
    if "note" in entry:
        return entry
    if "event" in entry:
        shared = {"provider": PROVIDER, **{name: item[name] for name in _REPORT_DETAILS.get(entry["status"], ())
                                           if name in item}}
    elif entry.get("status") == SENT:
        shared = {name: item[name] for name in _OUTCOME_FIELDS if name in item}
    else:
        return entry
    return {**entry, **{name: value for name, value in shared.items() if name not in entry}}
