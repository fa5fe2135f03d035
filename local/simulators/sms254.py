"""254sms simulator, following the provider's document (shared/seeds/254sms-api.txt) to the letter.

Routes (the document leaves `$url` empty in both PHP samples, so these paths are our choice):

    POST /sendsms   send bulk SMS: JSON {username, api_key, sender_id, phone, message}
    POST /credits   SMS credits:   JSON {username, api_key}

plus the control routes of `common` (requests, faults). A fault `error` is one of X000-X003.

Kept from the document, quirks included:
- success: {"recipientsCount": 2, "statusMessage": "Success", "statusCode": 101, "Balance": 8823,
  "messageDetails": [{"recipient", "message", "statusCode": "Successfully Sent",
  "statusMessage": 2}]}: integers as in the sample (the field table says String), and in
  messageDetails `statusCode` holds the text while `statusMessage` holds the number;
- credits: {"credits": "345", "statusCode": 101}: credits is a string, statusCode an integer;
- error texts are the document's "Meaning" column, verbatim (typos included).

Assumptions, where the document is silent:
- errors answer HTTP 200 with {"statusCode": "X00n", "statusMessage": <meaning>}, as such PHP APIs do;
- X000 when username, api_key, phone or message is missing, empty or not a string (a body that
  is not a JSON object counts as all missing); sender_id defaults to "254sms";
- the api_key is checked before the username: a wrong key is X001, a right key with a wrong
  username is X003 (unknown user token); X002 (domain check) is only reachable through a fault;
- phone is split on commas, blanks trimmed, empty entries skipped; an entry that is not a Kenyan
  mobile number in digits (^254[17]\\d{8}$) gets {"statusCode": "Invalid Phone Number",
  "statusMessage": 0}, costs nothing and is not counted in recipientsCount; with no valid entry
  the answer is still statusCode 101 with recipientsCount 0;
- one credit per recipient per segment: 1 up to 160 characters, else ceil(length / 153);
- a recipient the remaining credits cannot pay for gets {"statusCode": "Insufficient Credits",
  "statusMessage": 0} and is not counted (the balance never goes negative).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import threading
from typing import Any

from local.simulators.common import Request, Response, Simulator, serve_until_signalled

ERRORS = {
    "X000": "Some parameters are missing. This error appears when you don't pass every mandatory"
            " parameters.",
    "X001": "Unknown or unvalid secret_key. This error appears if you use an unknow API key or if"
            " your API key expired.",
    "X002": "Unvalid secret_key for this domain. This error appears if you use an API key non"
            " specified for your domain. Developper or Universal API keys doesn't have domain"
            " checker.",
    "X003": "Unknown or unvalid user token. This error appears if you use an unknow user token or"
            " if the user token expired.",
}
SUCCESS = 101
KENYAN_MSISDN = re.compile(r"^254[17]\d{8}$")


def segments(message: str) -> int:
    return 1 if len(message) <= 160 else math.ceil(len(message) / 153)


class Sms254Simulator(Simulator):
    fault_errors = set(ERRORS)

    def __init__(self, username: str, api_key: str, credits: int = 10000) -> None:
        super().__init__()
        self.username = username
        self.api_key = api_key
        self._credits = credits
        self._lock = threading.Lock()

    def route(self, request: Request) -> Response:
        handler = {"/sendsms": self._send, "/credits": self._credits_balance}.get(request.route)
        if request.method != "POST" or handler is None:
            return Response(404, {"error": "not found"})
        body = request.body if isinstance(request.body, dict) else {}
        error = self._check_auth(body, ("phone", "message") if handler == self._send else ())
        return self.error_response(error) if error else handler(body)

    def error_response(self, error: str) -> Response:
        return Response(200, {"statusCode": error, "statusMessage": ERRORS[error]})

    def _check_auth(self, body: dict[str, Any], required: tuple[str, ...]) -> str | None:
        if not all(_text(body, name) for name in ("username", "api_key", *required)):
            return "X000"
        if body["api_key"] != self.api_key:
            return "X001"
        if body["username"] != self.username:
            return "X003"
        return None

    def _send(self, body: dict[str, Any]) -> Response:
        message = body["message"]
        phones = [p.strip() for p in body["phone"].split(",") if p.strip()]
        if not phones:
            return self.error_response("X000")
        cost = segments(message)
        details, sent = [], 0
        with self._lock:
            for phone in phones:
                if not KENYAN_MSISDN.match(phone):
                    status, code = "Invalid Phone Number", 0
                elif self._credits < cost:
                    status, code = "Insufficient Credits", 0
                else:
                    self._credits -= cost
                    sent += 1
                    status, code = "Successfully Sent", 2
                details.append(
                    {"recipient": phone, "message": message, "statusCode": status, "statusMessage": code}
                )
            balance = self._credits
        return Response(200, {
            "recipientsCount": sent,
            "statusMessage": "Success",
            "statusCode": SUCCESS,
            "Balance": balance,
            "messageDetails": details,
        })

    def _credits_balance(self, _: dict[str, Any]) -> Response:
        with self._lock:
            return Response(200, {"credits": str(self._credits), "statusCode": SUCCESS})


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="254sms provider simulator (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--username", default=os.environ.get("SIM_254SMS_USERNAME"))
    parser.add_argument("--api-key", default=os.environ.get("SIM_254SMS_API_KEY"))
    parser.add_argument("--credits", type=int, default=10000, help="starting SMS credits")
    args = parser.parse_args(argv)
    if not args.username or not args.api_key:
        parser.error("--username/--api-key (or SIM_254SMS_USERNAME/SIM_254SMS_API_KEY) are required")
    serve_until_signalled(Sms254Simulator(args.username, args.api_key, args.credits), args.port)


if __name__ == "__main__":
    main()
