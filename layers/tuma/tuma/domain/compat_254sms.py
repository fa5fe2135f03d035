"""A drop-in for apps written against 254sms: its send request and answer, mapped onto Tuma's.

The request is 254sms's own JSON, `{username, api_key, sender_id?, phone: "2547…,2547…", message}`,
where `api_key` is a Tuma API key (the route has no Bearer authorizer: the key is in the body).
The answer is 254sms's success shape (statusCode 101, recipientsCount, messageDetails) or its error
shape `{"statusCode": "X00n", "statusMessage": <meaning>}`, so such an app changes only its URL and
key, and its messages gain routing, failover, status and reports. Each detail also carries Tuma's
`messageId`, for GET /v1/messages/{id}.

Where 254sms's document is silent, Tuma answers as the local simulator assumes (no HTTP status is
documented, so errors use a 4xx status, which such clients read the body of anyway):
- X000 (400): username, api_key, phone or message missing, empty or not a string, or a request
  Tuma refuses as a whole (e.g. a bad sender_id, a message over 6 segments, no valid number);
- X001 (401): the api_key is not a valid Tuma key;
- X002 and X003 are never answered: Tuma keys are bound to no domain, and `username` is kept
  only as 254sms's own field (any non-empty text), not checked against the tenant;
- `Balance` is null: a Tuma tenant has no SMS credits (see GET /v1/account/balance)."""

from __future__ import annotations

from dataclasses import dataclass

from tuma.domain import contract, fields
from tuma.domain.errors import ApiError
from tuma.domain.requests import AcceptedRequest
from tuma.domain.status import QUEUED

SUCCESS = 101
DEFAULT_SENDER = "254sms"  # 254sms: "Your senderId. Default is 254sms"
SCHEMA = "compat_254sms_request.v1.json"  # 254sms's request, as declared (tuma.domain.contract checks it)
MEANINGS = {  # the document's "Meaning" column, verbatim
    "X000": "Some parameters are missing. This error appears when you don't pass every mandatory parameters.",
    "X001": "Unknown or unvalid secret_key. This error appears if you use an unknow API key or if your API key "
            "expired.",
}
STATUS = {"X000": 400, "X001": 401}


class Compat254Error(Exception):
    def __init__(self, code: str, details: list | None = None):
        super().__init__(code)
        self.code = code
        self.details = details or []

    @property
    def http_status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict:
        answer = {"statusCode": self.code, "statusMessage": MEANINGS[self.code]}
        if self.details:
            answer["details"] = self.details  # Tuma's {"field", "reason"}: what exactly was wrong
        return answer


@dataclass(frozen=True)
class CompatRequest:
    api_key: str
    send: dict  # the equivalent POST /v1/messages body


def parse_request(payload: object) -> CompatRequest:
    """The equivalent POST /v1/messages body of a 254sms request; X000 naming each parameter that
    is missing or not a non-empty string (the shape declared in compat_254sms_request.v1.json), or
    a `phone` that lists no number."""
    body = payload if isinstance(payload, dict) else {}  # not an object: every parameter is missing
    problems = contract.problems(SCHEMA, body)
    phones = [p.strip() for p in body["phone"].split(",") if p.strip()] if "phone" in fields.shaped(body, problems) else []
    if not problems and not phones:
        problems.append({"field": "phone", "reason": "must list at least one number"})
    if problems:
        raise Compat254Error("X000", problems)
    return CompatRequest(api_key=body["api_key"].strip(),
                         send={"to": phones, "from": (body.get("sender_id") or "").strip() or DEFAULT_SENDER,
                               "body": body["message"]})


def refused(problem: ApiError) -> Compat254Error:
    """Tuma refused the request as a whole: 254sms has one code for a bad request."""
    details = problem.details if isinstance(problem.details, list) else []
    return Compat254Error("X000", details or [{"field": "request", "reason": problem.message}])


def response(accepted: AcceptedRequest) -> dict:
    """254sms's success answer: every number given, in order, with what became of it."""
    details = []
    for entry in accepted.entries:
        detail = {"recipient": (entry.number or entry.given).lstrip("+"), "message": accepted.body,
                  "statusCode": "Successfully Sent" if entry.status == QUEUED else _refusal(entry.reason),
                  "statusMessage": 2 if entry.status == QUEUED else 0, "messageId": entry.message_id}
        if entry.reason:
            detail["reason"] = entry.reason
        details.append(detail)
    return {"recipientsCount": len(accepted.queued), "statusMessage": "Success", "statusCode": SUCCESS,
            "Balance": None, "messageId": accepted.request_id, "messageDetails": details}


def _refusal(reason: str | None) -> str:
    return "Invalid Phone Number" if (reason or "").startswith("number") else "Rejected"
