"""254sms (seeds/254sms-api.txt): JSON POSTs carrying `username` and `api_key` in the body.

Its quirks, as documented: success is `statusCode` 101 (a number), errors are `statusCode`
X000–X003; numbers go as digits without '+', comma-separated, one call per body; in
`messageDetails` the field `statusCode` holds the text ("Successfully Sent") and `statusMessage`
the number; credits come back as a string. It has no message ids, per-message cost or delivery
reports: a message it accepts ends `sent`. The document leaves its URLs blank: `/sendsms` and
`/credits` under the configured base URL are ours."""

from __future__ import annotations

from dataclasses import dataclass

from tuma.domain.providers import ProviderAmbiguous, ProviderRejected, RecipientOutcome
from tuma.domain.status import FAILED, SENT
from tuma.providers.http import call, json_body

NAME = "254sms"
SUCCESS = 101
ACCEPTED_TEXT = "Successfully Sent"
ERRORS = {
    "X000": "Some parameters are missing.",
    "X001": "Unknown or invalid API key.",
    "X002": "API key not valid for this domain.",
    "X003": "Unknown or invalid user token.",
}


@dataclass(frozen=True)
class Sms254:
    base_url: str
    username: str
    api_key: str
    name: str = NAME

    def send(self, sender: str, body: str, numbers: list[str]) -> list[RecipientOutcome]:
        digits = [n.lstrip("+") for n in numbers]
        answer = self._post("/sendsms", {"sender_id": sender, "phone": ",".join(digits), "message": body})
        details = {str(d.get("recipient")): d for d in answer.get("messageDetails") or [] if isinstance(d, dict)}
        return [_outcome(details.get(number)) for number in digits]

    def balance(self) -> dict:
        answer = self._post("/credits", {})
        return {"credits": int(str(answer.get("credits", "0")).strip() or 0)}

    def _post(self, path: str, fields: dict) -> dict:
        payload = {"username": self.username, "api_key": self.api_key, **fields}
        answer = json_body(NAME, call(NAME, "POST", self.base_url.rstrip("/") + path, json=payload))
        code = str(answer.get("statusCode", ""))
        if code == str(SUCCESS):
            return answer
        if code in ERRORS:
            raise ProviderRejected(NAME, str(answer.get("statusMessage") or ERRORS[code]), code=code)
        raise ProviderAmbiguous(NAME, f"unexpected statusCode {code or 'missing'}", code=code or None)


def _outcome(detail: dict | None) -> RecipientOutcome:
    if detail is None:
        return RecipientOutcome("unknown", reason="254sms did not report on this number")
    text = str(detail.get("statusCode", ""))
    if text == ACCEPTED_TEXT:
        return RecipientOutcome(SENT)
    return RecipientOutcome(FAILED, error_code=str(detail.get("statusMessage", "")) or None, reason=text)
