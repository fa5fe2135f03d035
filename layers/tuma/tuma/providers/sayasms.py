"""SayaSMS (seeds/sayasms-api.txt): REST under /v1 with `Authorization: Bearer <key>`.

A 200 with `status: queued` means SayaSMS took the message: Tuma records it `sent`, with
SayaSMS's per-recipient `message_id` and `cost`; delivery reports move it on from there. Its
document shows no error bodies: a 4xx other than 429 is final, and its `error.code`/`message`
are used when present."""

from __future__ import annotations

from dataclasses import dataclass

from tuma.domain.providers import ProviderRejected, RecipientOutcome
from tuma.domain.status import FAILED, SENT
from tuma.providers.http import call, json_body

NAME = "sayasms"


@dataclass(frozen=True)
class SayaSms:
    base_url: str  # without /v1, e.g. https://api.sms.sayaradius.co.ke
    api_key: str
    callback_url: str | None = None  # where SayaSMS posts delivery reports (Tuma's webhook)
    name: str = NAME

    def send(self, sender: str, body: str, numbers: list[str]) -> list[RecipientOutcome]:
        payload = {"to": numbers, "from": sender, "body": body}
        if self.callback_url:
            payload["callback_url"] = self.callback_url
        answer = self._request("POST", "/v1/messages", json=payload)
        by_number = {r.get("number"): r for r in answer.get("recipients") or [] if isinstance(r, dict)}
        return [_outcome(by_number.get(number)) for number in numbers]

    def balance(self) -> dict:
        answer = self._request("GET", "/v1/account/balance")
        return {key: answer.get(key) for key in ("balance", "currency", "sms_credits")}

    def _request(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = call(NAME, method, self.base_url.rstrip("/") + path, headers=headers, **kwargs)
        answer = json_body(NAME, response)
        if not response.ok:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            code = str(error.get("code") or response.status_code)
            message = str(error.get("message") or f"HTTP {response.status_code}")
            raise ProviderRejected(NAME, f"HTTP {response.status_code}: {message}", code=code)
        return answer


def _outcome(recipient: dict | None) -> RecipientOutcome:
    if recipient is None:
        return RecipientOutcome("unknown", reason="SayaSMS did not report on this number")
    if recipient.get("status") in ("failed", "rejected"):
        return RecipientOutcome(FAILED, provider_message_id=recipient.get("message_id"),
                                reason=str(recipient.get("reason") or recipient.get("status")))
    return RecipientOutcome(SENT, provider_message_id=recipient.get("message_id"), cost=recipient.get("cost"))
