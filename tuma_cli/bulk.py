"""`tuma bulk`: a contacts CSV and a template → estimate, requests of up to 10,000 messages, a
watched batch, and a results CSV.

The estimate is made here with the gateway's own rules (tuma.domain.segments and .phones, the same
code the Lambdas run) and the gateway's rates (from POST /v1/messages/estimate), so a 10,000-row
file costs one estimate call, not 10,000."""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.segments import kes, length_problem, measure, parse_kes

from tuma_cli.client import Client
from tuma_cli.contacts import Contact, render

MAX_PER_REQUEST = 10_000  # POST /v1/messages/bulk's bound (tuma.domain.bulk.MAX_MESSAGES)
WAITING = {"scheduled", "queued", "sending"}  # not yet final: the gateway still has work to do
RESULT_COLUMNS = ("number", "message_id", "status", "cost", "reason")
READERS = 8  # GETs in flight while collecting results


@dataclass
class Estimate:
    rows: int
    sendable: int
    rejected: list[tuple[int, str]]  # (CSV line, reason)
    segments: int
    cost: dict[str, str]  # provider -> "KES …"
    requests: int


def estimate(client: Client, contacts: list[Contact], template: str, sender: str) -> Estimate:
    seen, rejected, segments, sendable_sample = set(), [], 0, None
    for contact in contacts:
        body = render(template, contact.variables)
        problem = length_problem(measure(body)) if body.strip() else "is empty"
        try:
            number = normalise(contact.number).e164
        except InvalidNumber as invalid:
            rejected.append((contact.row, f"number {invalid}"))
            continue
        if problem:
            rejected.append((contact.row, f"body {problem}"))
        elif (number, body) in seen:
            rejected.append((contact.row, "duplicate of an earlier row"))
        else:
            seen.add((number, body))
            segments += measure(body).segments
            sendable_sample = sendable_sample or (number, body)
    cost = {}
    if sendable_sample:
        rates = client.post("/v1/messages/estimate", {"to": [sendable_sample[0]], "from": sender,
                                                      "body": sendable_sample[1]})["cost_per_segment"]
        cost = {provider: kes(parse_kes(rate) * segments) for provider, rate in rates.items()}
    return Estimate(rows=len(contacts), sendable=len(seen), rejected=rejected, segments=segments, cost=cost,
                    requests=-(-len(contacts) // MAX_PER_REQUEST))


@dataclass
class Batch:
    batch_id: str
    contacts: list[Contact]  # in the order sent: the i-th (0-based) is <batch_id>_<i+1>
    rejected: dict[int, str] = field(default_factory=dict)  # 0-based index -> reason, at accept
    counts: dict[str, int] = field(default_factory=dict)
    done: bool = False

    @property
    def final(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in WAITING)


def send(client: Client, contacts: list[Contact], template: str, sender: str, options: dict,
         run_id: str | None = None) -> list[Batch]:
    """POST the contacts in requests of MAX_PER_REQUEST, each with its own Idempotency-Key (the run's
    id and the part's number), so that a retried request is not accepted twice."""
    run_id = run_id or uuid.uuid4().hex
    batches = []
    for part, start in enumerate(range(0, len(contacts), MAX_PER_REQUEST), start=1):
        chunk = contacts[start:start + MAX_PER_REQUEST]
        body = {"from": sender, "template": template, **options,
                "recipients": [{"to": c.number, "vars": c.variables} for c in chunk]}
        answer = client.post("/v1/messages/bulk", body, idempotency_key=f"tuma-cli-{run_id}-{part}")
        batches.append(Batch(batch_id=answer["batch_id"], contacts=chunk,
                             rejected={r["index"]: r["reason"] for r in answer.get("rejected", [])}))
    return batches


def watch(client: Client, batches: list[Batch], on_progress: Callable[[int], None], timeout_s: float,
          pause_s: float = 1.0) -> bool:
    """Poll GET /v1/batches/{id} until every batch is done; whether they all were before the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        for batch in batches:
            if not batch.done:
                view = client.get(f"/v1/batches/{batch.batch_id}")
                batch.counts, batch.done = view.get("counts", {}), bool(view.get("done"))
        on_progress(sum(b.final for b in batches))
        if all(b.done for b in batches):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(pause_s)


def results(client: Client, batches: list[Batch]) -> list[dict]:
    """One row per contact: its message id, status, cost and reason, as GET /v1/messages/{id} says
    (rejected at accept: from the bulk answer, no GET needed)."""
    def row(batch: Batch, index: int) -> dict:
        contact, message_id = batch.contacts[index], f"{batch.batch_id}_{index + 1}"
        if index in batch.rejected:
            return {"number": contact.number, "message_id": message_id, "status": "rejected", "cost": "",
                    "reason": batch.rejected[index]}
        view = client.get(f"/v1/messages/{message_id}")
        return {"number": contact.number, "message_id": message_id, "status": view.get("status", ""),
                "cost": view.get("cost", ""), "reason": view.get("reason") or ""}

    with ThreadPoolExecutor(READERS) as pool:
        return list(pool.map(lambda job: row(*job), [(b, i) for b in batches for i in range(len(b.contacts))]))


def write_results(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def total_cost(rows: list[dict]) -> str:
    return kes(sum((parse_kes(str(r["cost"])) or Decimal(0) for r in rows if r["cost"]), Decimal(0)))


def default_results_path(contacts_path: Path) -> Path:
    return contacts_path.with_name(contacts_path.stem + ".results.csv")

