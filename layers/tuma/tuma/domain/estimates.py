"""POST /v1/messages/estimate: what a POST /v1/messages with the same body would send and cost,
without storing, queueing or calling a provider. The request is checked by accept_send itself,
so an estimate refuses exactly what a send refuses, with the same errors."""

from __future__ import annotations

from decimal import Decimal

from tuma.domain.requests import AcceptedRequest
from tuma.domain.segments import estimated_cost, kes


def estimate_response(accepted: AcceptedRequest, rates: dict[str, Decimal]) -> dict:
    """The 200 answer: the body's measure, the sendable and rejected recipients, and the cost
    per provider (segments × rate per segment × sendable recipients)."""
    body, sendable = accepted.shared_measure, len(accepted.queued)
    return {
        "provider": accepted.provider,
        "encoding": body.encoding,
        "characters": body.characters,
        "units": body.units,
        "segments": body.segments,
        "recipients": len(accepted.entries),
        "sendable": sendable,
        "rejected": [{"index": e.index - 1, "number": e.number or e.given, "reason": e.reason}
                     for e in accepted.rejected],
        "cost_per_segment": {provider: kes(rate) for provider, rate in rates.items()},
        "estimated_cost": {provider: kes(estimated_cost(body, rate) * sendable) for provider, rate in rates.items()},
    }
