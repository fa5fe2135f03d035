"""What a request's messages cost, for the status routes: `total_cost`, the sum of the costs the
sender recorded (SayaSMS's own figure, or segments × rate for 254sms, which reports none), and
`estimated_cost`, segments × rate for the accepted messages not sent yet.

Unsent messages are estimated at the rate of the provider the request is pinned to, else at the
default provider's (the one tried first for every number no routing rule sends elsewhere).
`estimator` prices what a provider took without a figure of its own (254sms, always), for the
sender's `cost` with `cost_estimated: true`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from tuma.domain.records import Chunk
from tuma.domain.segments import estimated_cost, kes, measure, parse_kes
from tuma.domain.status import QUEUED, SENDING

# Not sent yet, so not charged yet. "scheduled" is a status of scheduled sends (when present).
UNSENT = frozenset({QUEUED, SENDING, "scheduled"})


def amount(cost: object) -> Decimal | None:
    """A cost as a number: "KES 0.90" as SayaSMS writes it, or a plain number (DynamoDB's Decimal,
    or a provider's JSON number); None if it is neither, or not finite."""
    if isinstance(cost, bool):
        return None
    if isinstance(cost, (Decimal, int, float)):
        value = Decimal(str(cost)) if isinstance(cost, float) else Decimal(cost)
    else:
        value = parse_kes(cost) if isinstance(cost, str) else None
    return value if value is not None and value.is_finite() else None


def rate_for(provider: str | None, rates: dict[str, Decimal], default_provider: str) -> Decimal:
    return rates.get(provider, rates[default_provider])


def estimator(rates: dict[str, Decimal]) -> Callable[[str, str], str | None]:
    """(provider, body) -> "KES x": segments of the body × the provider's rate (None: no rate)."""
    def estimate(provider: str, body: str) -> str | None:
        rate = rates.get(provider)
        return kes(estimated_cost(measure(body), rate)) if rate is not None else None
    return estimate


def totals(messages: Iterable[tuple[str, object, int]], rate: Decimal) -> dict:
    """{"total_cost", "estimated_cost"} over (status, cost or None, segments) of each message."""
    spent, unsent_segments = Decimal(0), 0
    for status, cost, segments in messages:
        value = amount(cost)
        if value is not None:
            spent += value
        elif status in UNSENT:
            unsent_segments += segments
    return {"total_cost": kes(spent), "estimated_cost": kes(unsent_segments * rate)}


def request_totals(view: dict, rates: dict[str, Decimal], default_provider: str) -> dict:
    """Totals of a multi-recipient GET /v1/messages/{id} answer (tuma.domain.views.request_view)."""
    return totals(((r["status"], r.get("cost"), r.get("segments", 0)) for r in view["recipients"]),
                  rate_for(view["provider"], rates, default_provider))


def batch_totals(request: dict, touched: dict[int, dict], chunks: list[Chunk], rates: dict[str, Decimal],
                 default_provider: str) -> dict:
    """Totals of a batch from the messages the sender has touched (index -> {status, cost}) and
    the chunks (their `segments` and `rejected`) for those it has not."""

    def messages():
        for item in touched.values():
            if item.get("cost") is not None:
                yield item.get("status"), item["cost"], 0
        for chunk in chunks:
            for index, segments in enumerate(chunk.segments, start=chunk.start):
                item = touched.get(index, {})
                if str(index) not in chunk.rejected and item.get("cost") is None:
                    yield item.get("status", QUEUED), None, segments

    return totals(messages(), rate_for(request.get("provider"), rates, default_provider))


def progress_totals(request: dict, spent: Decimal, touched_segments: int, rates: dict[str, Decimal],
                    default_provider: str) -> dict:
    """Totals of a batch from its counters (tuma.store.progress): what the recorded messages cost,
    and the sendable segments not recorded yet at the rate."""
    unsent = max(0, int(request.get("segments", 0)) - touched_segments)
    return {"total_cost": kes(spent), "estimated_cost": kes(unsent * rate_for(request.get("provider"), rates,
                                                                                default_provider))}
