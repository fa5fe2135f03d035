"""SayaSMS (seeds/sayasms-api.txt): REST under /v1 with `Authorization: Bearer <key>`.

One body for every message goes to `POST /v1/messages` with `to[]`; personalised bodies go to
`POST /v1/messages/bulk` with `messages[{to, body}]`, one call either way. A 200 with `status:
queued` means SayaSMS took the message: Tuma records it `sent`, with SayaSMS's message id and
cost; delivery reports move it on from there. The document shows no error bodies and no bulk
response: a 4xx other than 429 is final (its `error.code`/`message` used when present).

Answers are matched to messages by position, never by number alone (a number may come twice): in
a send's `recipients[]` the n-th recipient's id is `<message_id>_<n>` (SayaSMS's rule), else its
place in a list that names every recipient; the bulk answer's `messages[]` by place. Either way
the answer's number must be the message's, or the message is `unknown`.

Each call's callback URL gets a new reference, `&ref=<ULID>.<blocks>` beside its `token`
(tuma.domain.reports.ReportRef), and every outcome of the call carries it: SayaSMS posts the call's
reports to that URL, so the store links a call's ids in a few block items, whatever ids SayaSMS
gives (the bulk endpoint's are unrelated to each other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tuma.domain.providers import (
    NOT_CALLED, OutgoingMessage, ProviderAccountProblem, ProviderRejected, RecipientOutcome)
from tuma.domain.costs import amount
from tuma.domain.reports import ReportRef
from tuma.domain.segments import kes
from tuma.domain.status import FAILED, SENT, UNKNOWN
from tuma.providers.http import call, json_body

NAME = "sayasms"
ACCOUNT_STATUSES = {401, 402}  # our key or our credit, not the message: another provider may send it


@dataclass(frozen=True)
class SayaSms:
    base_url: str  # without /v1, e.g. https://api.sms.sayaradius.co.ke
    api_key: str
    callback_url: str | None = None  # where SayaSMS posts delivery reports (Tuma's webhook)
    name: str = NAME

    def send(self, sender: str, messages: list[OutgoingMessage],
             may_call: Callable[[list[int]], bool] = lambda positions: True) -> list[RecipientOutcome]:
        # One call whatever the messages, asked for once.
        if not may_call(list(range(len(messages)))):
            return [NOT_CALLED] * len(messages)
        report_ref = str(ReportRef.new(len(messages))) if self.callback_url else None
        return [replace(outcome, report_ref=report_ref) if outcome.provider_message_id else outcome
                for outcome in self._call(sender, messages, report_ref)]

    def _call(self, sender: str, messages: list[OutgoingMessage], report_ref: str | None) -> list[RecipientOutcome]:
        callback = partial(self._with_callback, report_ref=report_ref)
        bodies = {m.body for m in messages}
        if len(bodies) == 1:
            payload = {"to": [m.number for m in messages], "from": sender, "body": bodies.pop()}
            answers = self._request("POST", "/v1/messages", json=callback(payload)).get("recipients")
            placed = _by_position(answers, len(messages))
            return [_outcome(a if a is not None and a.get("number") == m.number else None)
                    for m, a in zip(messages, placed)]
        payload = {"from": sender, "messages": [{"to": m.number, "body": m.body} for m in messages]}
        answers = self._request("POST", "/v1/messages/bulk", json=callback(payload)).get("messages")
        if not isinstance(answers, list) or len(answers) != len(messages):
            return [RecipientOutcome(UNKNOWN, reason="SayaSMS's bulk answer does not list every message")] * len(messages)
        return [_outcome(a if isinstance(a, dict) and a.get("to") == m.number else None)
                for m, a in zip(messages, answers)]

    def balance(self) -> dict:
        answer = self._request("GET", "/v1/account/balance")
        return {key: answer.get(key) for key in ("balance", "currency", "sms_credits")}

    def _with_callback(self, payload: dict, report_ref: str | None) -> dict:
        if not self.callback_url:
            return payload
        return {**payload, "callback_url": _with_query(self.callback_url, ref=report_ref)}

    def _request(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = call(NAME, method, self.base_url.rstrip("/") + path, headers=headers, **kwargs)
        answer = json_body(NAME, response)
        if not response.ok:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            code = str(error.get("code") or response.status_code)
            message = str(error.get("message") or f"HTTP {response.status_code}")
            kind = ProviderAccountProblem if response.status_code in ACCOUNT_STATUSES else ProviderRejected
            raise kind(NAME, f"HTTP {response.status_code}: {message}", code=code)
        return answer


def _with_query(url: str, **parameters: str | None) -> str:
    """The URL with these query parameters added (or replaced), its others (the token) kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in parameters]
    query += [(k, v) for k, v in parameters.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _by_position(answers: object, count: int) -> list[dict | None]:
    """The answer for each of `count` recipients, in order (see the module's note)."""
    listed = [a for a in answers if isinstance(a, dict)] if isinstance(answers, list) else []
    by_place: dict[int, dict] = {}
    for answer in listed:
        place = _place(answer.get("message_id"))
        if place is None or place in by_place:
            break  # ids that do not number the recipients: fall back to the list's order
        by_place[place] = answer
    else:
        if by_place:
            return [by_place.get(n) for n in range(1, count + 1)]
    return listed if len(listed) == count else [None] * count


def _place(message_id: object) -> int | None:
    """n of a recipient id `msg_<ULID>_<n>`."""
    head, _, tail = str(message_id or "").rpartition("_")
    # ASCII digits only (str.isdigit() takes "²", which int() refuses), and few of them.
    digits = head and tail.isascii() and tail.isdigit() and len(tail) <= 6 and not tail.startswith("0")
    return int(tail) if digits else None


def _outcome(answer: dict | None) -> RecipientOutcome:
    if answer is None:
        return RecipientOutcome(UNKNOWN, reason="SayaSMS did not report on this number")
    if answer.get("status") in ("failed", "rejected"):
        return RecipientOutcome(FAILED, provider_message_id=answer.get("message_id"),
                                reason=str(answer.get("reason") or answer.get("status")))
    return RecipientOutcome(SENT, provider_message_id=answer.get("message_id"), cost=_cost(answer.get("cost")))


def _cost(value: object) -> str | None:
    """SayaSMS's cost as "KES 0.90"; None (the sender then estimates it) when it is not an amount."""
    figure = amount(value)
    return kes(figure) if figure is not None else None
