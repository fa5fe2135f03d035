"""254sms (seeds/254sms-api.txt): JSON POSTs carrying `username` and `api_key` in the body.

Its quirks, as documented: success is `statusCode` 101 (a number), errors are `statusCode`
X000–X003; numbers go as digits without '+', comma-separated, one call per body; in
`messageDetails` the field `statusCode` holds the text ("Successfully Sent") and `statusMessage`
the number; credits come back as a string. It has no message ids, per-message cost or delivery
reports: a message it accepts ends `sent`. The document leaves its URLs blank: `/sendsms` and
`/credits` under the configured base URL are ours."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tuma.domain.providers import (
    NOT_CALLED, OutgoingMessage, ProviderAccountProblem, ProviderAmbiguous, ProviderError, ProviderRejected,
    RecipientOutcome, outcomes_of_failed_call, outcomes_of_unexpected)
from tuma.domain.status import FAILED, SENT, UNKNOWN
from tuma.providers.http import POOL_SIZE, call, json_body

NAME = "254sms"
SUCCESS = 101
ACCEPTED_TEXT = "Successfully Sent"
MAX_NUMBERS_PER_CALL = 1000
ERRORS = {
    "X000": "Some parameters are missing.",
    "X001": "Unknown or invalid API key.",
    "X002": "API key not valid for this domain.",
    "X003": "Unknown or invalid user token.",
}
ACCOUNT_ERRORS = {"X001", "X002", "X003"}  # our key or token, not the message: another provider may send it


@dataclass(frozen=True)
class Sms254:
    base_url: str
    username: str
    api_key: str
    name: str = NAME

    def send(self, sender: str, messages: list[OutgoingMessage],
             may_call: Callable[[list[int]], bool] = lambda positions: True) -> list[RecipientOutcome]:
        """One comma-list call per distinct body (and per MAX_NUMBERS_PER_CALL numbers), the calls
        made concurrently, POOL_SIZE at a time: personalised bodies take ceil(bodies / POOL_SIZE)
        rounds, so each call asks `may_call(its messages' positions)` just before it starts; a
        call it may not make leaves its messages not taken, for the job's next delivery. A call
        that fails, however it fails, fails only its own messages."""
        positions: dict[str, list[int]] = defaultdict(list)
        for position, message in enumerate(messages):
            positions[message.body].append(position)
        calls = [(body, group[i:i + MAX_NUMBERS_PER_CALL])
                 for body, group in positions.items() for i in range(0, len(group), MAX_NUMBERS_PER_CALL)]
        outcomes: list[RecipientOutcome | None] = [None] * len(messages)
        with ThreadPoolExecutor(min(len(calls), POOL_SIZE) or 1) as pool:
            answers = pool.map(
                lambda c: self._send_one_body(sender, c[0], [messages[i].number for i in c[1]],
                                              lambda: may_call(c[1])), calls)
            for (_, group), answer in zip(calls, answers):
                for position, outcome in zip(group, answer):
                    outcomes[position] = outcome
        return outcomes

    def _send_one_body(self, sender: str, body: str, numbers: list[str],
                       may_call: Callable[[], bool]) -> list[RecipientOutcome]:
        if not may_call():
            return [NOT_CALLED] * len(numbers)
        digits = [n.lstrip("+") for n in numbers]
        try:
            answer = self._post("/sendsms", {"sender_id": sender, "phone": ",".join(digits), "message": body})
            details = {str(d.get("recipient")): d for d in answer.get("messageDetails") or [] if isinstance(d, dict)}
            return [_outcome(details.get(number)) for number in digits]
        except ProviderError as problem:
            return outcomes_of_failed_call(problem, len(numbers))
        except Exception as problem:  # noqa: BLE001 - one call's surprise must not lose its siblings' answers
            return outcomes_of_unexpected(NAME, problem, len(numbers))

    def balance(self) -> dict:
        answer = self._post("/credits", {})
        credits = str(answer.get("credits", "0")).strip() or "0"
        try:
            return {"credits": int(credits) if credits.isdigit() else float(credits)}
        except ValueError:
            raise ProviderAmbiguous(NAME, f"unreadable credits {credits[:20]!r}") from None

    def _post(self, path: str, fields: dict) -> dict:
        payload = {"username": self.username, "api_key": self.api_key, **fields}
        response = call(NAME, "POST", self.base_url.rstrip("/") + path, json=payload)
        answer = json_body(NAME, response)
        code = str(answer.get("statusCode", ""))
        if code == str(SUCCESS):
            return answer
        if code in ACCOUNT_ERRORS:
            raise ProviderAccountProblem(NAME, str(answer.get("statusMessage") or ERRORS[code]), code=code)
        if code in ERRORS:
            raise ProviderRejected(NAME, str(answer.get("statusMessage") or ERRORS[code]), code=code)
        if not response.ok:  # a 4xx without 254sms's own code (e.g. a wrong URL): certainly not taken
            raise ProviderRejected(NAME, f"HTTP {response.status_code}", code=str(response.status_code))
        raise ProviderAmbiguous(NAME, f"unexpected statusCode {code or 'missing'}", code=code or None)


def _outcome(detail: dict | None) -> RecipientOutcome:
    if detail is None:
        return RecipientOutcome(UNKNOWN, reason="254sms did not report on this number")
    text = str(detail.get("statusCode", ""))
    if text == ACCEPTED_TEXT:
        return RecipientOutcome(SENT)
    return RecipientOutcome(FAILED, error_code=str(detail.get("statusMessage", "")) or None, reason=text)
