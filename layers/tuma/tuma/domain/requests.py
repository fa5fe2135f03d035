"""An accepted request, single or bulk: its messages, how they are stored, and the jobs to queue.

Storage and queueing grow with the number of jobs, not of messages: the messages are kept in
chunk items of up to CHUNK_SIZE consecutive positions, and queued in jobs of up to
MAX_JOB_MESSAGES messages and MAX_JOB_BYTES of JSON (under SQS's 256 KiB message size)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property

from tuma.domain import ids, jobs
from tuma.domain.ids import CHUNK_SIZE
from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.records import Chunk
from tuma.domain.segments import GSM7, Measure, length_problem, measure
from tuma.domain.status import QUEUED, REJECTED

MAX_JOB_MESSAGES = 1000  # also the bound of one 254sms comma-list call
MAX_JOB_BYTES = 200_000  # the recipients' share: with the rest of a job at its largest (a 918-character
# body, a 2,048-character callback_url, ids) a job stays under SQS's 256 KiB per message and per batch
MAX_REASON_CHARS = 200  # a rejection's reason is stored per position: junk keys must not swell a chunk
# What SQS can carry: XML 1.0's characters (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
# Written as the few characters outside them: the negated class over those wide ranges took about
# 9 ms of every cold start to compile, this one well under 1 ms.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Entry:
    """One message of a request: position, number and, for personalised sends, its own body."""

    index: int  # 1-based
    message_id: str
    given: str  # the number as the caller wrote it
    number: str | None  # E.164 when sendable
    status: str  # queued | rejected
    reason: str | None = None
    body: str | None = None  # None: the request's shared body

    @cached_property
    def own_measure(self) -> Measure | None:
        return measure(self.body) if self.body is not None else None


def encoding_letter(m: Measure | None) -> str:
    return "-" if m is None else "G" if m.encoding == GSM7 else "U"


@dataclass(frozen=True)
class AcceptedRequest:
    request_id: str
    tenant_id: str
    sender: str
    body: str | None  # the shared body; None when every entry has its own
    provider: str | None  # the request's pin; None: the routing policy picks per number
    callback_url: str | None
    created_at: str
    entries: list[Entry] = field(default_factory=list)
    scheduled_at: str | None = None  # iso_millis (UTC); None: send now

    @property
    def queued(self) -> list[Entry]:
        return [e for e in self.entries if e.status == QUEUED]

    @property
    def rejected(self) -> list[Entry]:
        return [e for e in self.entries if e.status == REJECTED]

    @cached_property
    def shared_measure(self) -> Measure | None:
        return measure(self.body) if self.body is not None else None

    def measure_of(self, entry: Entry) -> Measure | None:
        """The measure of a message's body: its own, or the shared one (None: no valid body)."""
        return entry.own_measure if entry.body is not None else self.shared_measure

    @property
    def segments(self) -> int:
        """Segments of all the sendable messages together."""
        return sum(self.measure_of(e).segments for e in self.queued)

    def chunks(self) -> list[Chunk]:
        chunks = []
        for i in range(0, len(self.entries), CHUNK_SIZE):
            entries = self.entries[i:i + CHUNK_SIZE]
            measures = [self.measure_of(e) for e in entries]
            chunks.append(Chunk(start=entries[0].index, numbers=[e.number or e.given for e in entries],
                                rejected={str(e.index): e.reason for e in entries if e.reason},
                                segments=[m.segments if m else 0 for m in measures],
                                encodings="".join(map(encoding_letter, measures))))
        return chunks

    def jobs(self) -> list[dict]:
        """The queue jobs (format: tuma/schemas/send_job.v1.json) for the sendable messages."""
        packed, current, size = [], [], 0
        for entry in self.queued:
            recipient = {"message_id": entry.message_id, "number": entry.number}
            if entry.body is not None:
                recipient["body"] = entry.body
            cost = len(json.dumps(recipient, ensure_ascii=False).encode()) + 1
            if current and (len(current) == MAX_JOB_MESSAGES or size + cost > MAX_JOB_BYTES):
                packed.append(current)
                current, size = [], 0
            current.append(recipient)
            size += cost
        if current:
            packed.append(current)
        return [jobs.new_job(tenant_id=self.tenant_id, request_id=self.request_id, provider=self.provider,
                             sender=self.sender, body=self.body, callback_url=self.callback_url, recipients=r)
                for r in packed]


def entry_for(request_id: str, index: int, raw: object, body: str | None,
              seen: dict[tuple[str, str | None], int]) -> Entry:
    """Validate one recipient; `seen` maps (number, body) to the first position that used it."""
    message_id = ids.recipient_id(request_id, index)
    given = _shown(raw)
    try:
        number = normalise(raw).e164
    except InvalidNumber as problem:
        return Entry(index, message_id, given, None, REJECTED, f"number {problem}", body)
    if (number, body) in seen:
        # The same text to the same number twice in one request would be a doubled message.
        return Entry(index, message_id, given, number, REJECTED, f"duplicate of message {seen[number, body]}", body)
    seen[number, body] = index
    return Entry(index, message_id, given, number, QUEUED, None, body)


MAX_GIVEN_CHARS = 32  # a rejected number is stored and shown as given, cut to this length


def _shown(raw: object) -> str:
    """A number as the caller wrote it, bounded: junk must not swell the stored chunk."""
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return text if len(text) <= MAX_GIVEN_CHARS else text[:MAX_GIVEN_CHARS - 1] + "…"


def body_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    return text_problem(value) or length_problem(measure(value))  # at most MAX_SEGMENTS parts (tuma.domain.segments)


def text_problem(value: str) -> str | None:
    """Why SQS could not carry `value` (a control character, U+FFFE, U+FFFF...), or None."""
    bad = _NOT_XML.search(value)
    if bad is None:
        return None
    return f"holds character U+{ord(bad.group()):04X} at position {bad.start()}, which cannot be sent"


def keyed_request_id(prefix: str, tenant_id: str, idempotency_key: str, payload: object) -> str:
    """The id of a request sent with an Idempotency-Key: the same for the same tenant, key and
    body, so a retry of a request that failed part way finds what the first attempt stored and
    queued instead of making new ids (tuma.accepting)."""
    seed = json.dumps([tenant_id, idempotency_key, payload], sort_keys=True, ensure_ascii=False)
    return prefix + ids.derived_request_id(seed).partition("_")[2]


def bounded(reason: str) -> str:
    """A rejection's reason cut to MAX_REASON_CHARS: it is stored per position and answered."""
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"
