"""SayaSMS simulator, following the provider's document (shared/seeds/sayasms-api.txt) to the letter.

Provider routes, all requiring `Authorization: Bearer <api key>` (else 401 `unauthorized`):

    POST /v1/messages          {to: [E.164], from, body, callback_url?, scheduled_at?}
    POST /v1/messages/bulk     {from, messages: [{to, body}], callback_url?}
    GET  /v1/account/balance

Control routes, besides those of `common` (requests, faults):

    GET    /_sim/messages        {"messages": [{message_id, parent_id, to, from, body,
                                  callback_url, scheduled_at}]}, one per recipient
    DELETE /_sim/messages        forget them
    GET    /_sim/callbacks       the delivery-report settings
    POST   /_sim/callbacks       replace them ({} restores the defaults), keys:
        enabled (true)        send delivery reports at all
        delay_ms (20)         pause between the stages of a send (queued -> sent -> final)
        fail_numbers ([])     E.164 numbers that get message.failed instead of message.delivered
        fail_reason ("absent subscriber")   the `reason` of message.failed
        duplicate (false)     send every event twice; a number from 0 to 1: that random share of events
        reorder (false)       send the stages in reverse: final, sent, queued; a number from 0 to 1:
                              that random share of recipients get theirs in reverse
        seed (null)           makes the random shares repeatable
        concurrency (null)    at most this many report POSTs in flight at once, across sends (null:
                              no limit); keeps a slow webhook from being flooded
        early (false)         send all events before answering the send (synchronously)
        backoff_ms (200)      first retry pause; doubles for each of the (at most 3) retries
        default_url (--callback-url)   where to report when a send has no callback_url
    GET    /_sim/callbacks/log   {"callbacks": [{url, payload, attempt, response_status | error}]}
    DELETE /_sim/callbacks/log   forget it

Fault `error` names and their statuses: unauthorized 401, invalid_request 400,
insufficient_balance 402, rate_limited 429.

As documented: the send response shape (message_id msg_<ULID>, per-recipient ids msg_<ULID>_<n>,
costs as "KES 0.90" strings, created_at in UTC with milliseconds), the `from` and `body` limits,
the balance shape, the delivery payload and its four events, a webhook must answer 200 within
10 s, and up to 3 retries with exponential backoff.

Assumptions, where the document is silent:
- error bodies are {"error": {"code", "message"}} (the document shows none);
- the bulk response (the document shows none) is {"status": "queued", "batch_id": "bat_<ULID>",
  "messages": [{"to", "status": "queued", "cost", "message_id": "msg_<ULID>"}], "total_cost",
  "created_at"}; each bulk entry is validated like a single send, errors name the index;
- price KES 0.90 per recipient per segment; segments are GSM-7 (160, or 153 per part; extension
  characters take two septets) unless any character is outside GSM-7, then UCS-2 (70, or 67 per
  part, counted in UTF-16 units); `body` max 918 characters;
- a send that costs more than the balance is refused whole with 402 `insufficient_balance`;
- `from`: 1-11 ASCII letters/digits, or 1-15 digits; `scheduled_at` must be ISO 8601 and is
  stored, but delivery reports are not held back until then;
- sms_credits in the balance is floor(balance / 0.90): the single-segment SMS the balance buys;
- delivery reports: every recipient gets message.queued, message.sent, then message.delivered
  (network from the prefix, delivery_time, latency_ms since created_at) or message.failed
  (reason); a report counts as received only on HTTP 200;
- reports go to loopback hosts only (this is a local tool): another host is logged as refused.
"""

from __future__ import annotations

import argparse
import hmac
import http.client
import ipaddress
import json
import math
import os
import random
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import urlsplit

from ulid import ULID

from local.simulators.common import (
    Request,
    Response,
    Simulator,
    check_type,
    iso_ms,
    serve_until_signalled,
)

ERROR_STATUS = {"invalid_request": 400, "unauthorized": 401, "insufficient_balance": 402, "rate_limited": 429}
PRICE = Decimal("0.90")
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
SENDER_ID = re.compile(r"^(?:[A-Za-z0-9]{1,11}|\d{1,15})$")
MAX_BODY = 918
WEBHOOK_TIMEOUT_S = 10
MAX_RETRIES = 3

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")

# Kenyan mobile prefixes after +254; any other number is on an "Unknown" network.
NETWORKS = (("70", "Safaricom"), ("71", "Safaricom"), ("72", "Safaricom"), ("74", "Safaricom"),
            ("11", "Safaricom"), ("73", "Airtel"), ("10", "Airtel"), ("77", "Telkom"))


class ApiError(Exception):
    """An error answer: {"error": {"code", "message"}} with the code's status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidRequest(ApiError):
    """A 400 whose message names the offending field."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_request", message)


def segments(body: str) -> int:
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        units, single, part = sum(2 if c in GSM7_EXTENSION else 1 for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


def network(number: str) -> str:
    if number.startswith("+254"):
        return next((name for prefix, name in NETWORKS if number[4:].startswith(prefix)), "Unknown")
    return "Unknown"


def kes(amount: Decimal) -> str:
    return f"KES {amount:.2f}"


def error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


@dataclass(frozen=True)
class Recipient:
    """One message to one number, as delivery reports see it."""

    message_id: str
    to: str
    created_at: datetime


@dataclass(frozen=True)
class CallbackSettings:
    enabled: bool = True
    delay_ms: int = 20
    fail_numbers: tuple[str, ...] = ()
    fail_reason: str = "absent subscriber"
    duplicate: bool | float = False  # a number: the share of events sent twice
    reorder: bool | float = False  # a number: the share of recipients whose stages come in reverse
    early: bool = False
    backoff_ms: int = 200
    default_url: str | None = None
    seed: int | None = None
    concurrency: int | None = None

    def updated(self, spec: Any) -> CallbackSettings:
        """These settings with spec's keys applied (ValueError on a bad spec)."""
        check_type("callbacks", spec, dict)
        unknown = set(spec) - set(_SETTING_KINDS)
        if unknown:
            raise ValueError(f"unknown callback keys: {sorted(unknown)}")
        for name, value in spec.items():
            check_type(name, value, _SETTING_KINDS[name])
        if any(spec.get(name, 0) < 0 for name in ("delay_ms", "backoff_ms")):
            raise ValueError("delay_ms and backoff_ms must be >= 0")
        if (spec.get("concurrency") or 1) < 1:
            raise ValueError("concurrency must be >= 1 (or null)")
        if any(not 0 <= spec.get(name, 0) <= 1 for name in ("duplicate", "reorder")):
            raise ValueError("duplicate and reorder are true/false or a share between 0 and 1")
        if "fail_numbers" in spec:
            if not all(isinstance(number, str) for number in spec["fail_numbers"]):
                raise ValueError("fail_numbers must be a list of E.164 numbers")
            spec = {**spec, "fail_numbers": tuple(spec["fail_numbers"])}
        return replace(self, **spec)


# JSON types of the settings (fail_numbers arrives as a list).
_SETTING_KINDS: dict[str, type | tuple[type, ...]] = {
    "enabled": bool, "delay_ms": int, "fail_numbers": list, "fail_reason": str, "duplicate": (bool, int, float),
    "reorder": (bool, int, float), "early": bool, "backoff_ms": int, "default_url": (str, type(None)),
    "seed": (int, type(None)), "concurrency": (int, type(None)),
}


class Callbacks:
    """Delivery reports: settings, the sender (with retries) and the log of attempts."""

    def __init__(self, default_url: str | None, stopping: threading.Event) -> None:
        self._defaults = CallbackSettings(default_url=default_url)
        self.settings = self._defaults
        self._stopping = stopping
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._random = random.Random()
        self._slots: threading.Semaphore | None = None

    def configure(self, spec: Any) -> None:
        self.settings = self._defaults.updated(spec)
        self._random = random.Random(self.settings.seed)
        self._slots = threading.Semaphore(self.settings.concurrency) if self.settings.concurrency else None

    def _share(self, share: bool | float) -> bool:
        """One draw: whether this event (or recipient) is among `share` of them."""
        if isinstance(share, bool):
            return share
        with self._lock:
            return self._random.random() < share

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def report(self, url: str | None, recipients: list[Recipient]) -> Callable[[], None] | None:
        """Report on recipients now if `early`, else return what starts reporting after the answer."""
        settings = self.settings
        url = url or settings.default_url
        if not url or not settings.enabled:
            return None
        if settings.early:
            self._run(url, recipients, settings)
            return None
        return threading.Thread(target=self._run, args=(url, recipients, settings), daemon=True).start

    def _run(self, url: str, recipients: list[Recipient], settings: CallbackSettings) -> None:
        stages = ["queued", "sent", "final"]
        orders = [stages[::-1] if self._share(settings.reorder) else stages for _ in recipients]
        for index in range(len(stages)):
            if index and self._stopping.wait(settings.delay_ms / 1000):
                return
            for recipient, order in zip(recipients, orders, strict=True):
                payload = self._event(order[index], recipient, settings)
                for _ in range(2 if self._share(settings.duplicate) else 1):
                    self._post(url, payload, settings.backoff_ms)

    @staticmethod
    def _event(stage: str, recipient: Recipient, settings: CallbackSettings) -> dict[str, Any]:
        if stage == "final":
            stage = "failed" if recipient.to in settings.fail_numbers else "delivered"
        payload: dict[str, Any] = {
            "event": f"message.{stage}", "message_id": recipient.message_id, "to": recipient.to,
            "status": stage,
        }
        if stage == "delivered":
            now = datetime.now(UTC)
            payload |= {
                "network": network(recipient.to),
                "delivery_time": iso_ms(now),
                "latency_ms": int((now - recipient.created_at).total_seconds() * 1000),
            }
        elif stage == "failed":
            payload["reason"] = settings.fail_reason
        return payload

    def _post(self, url: str, payload: dict[str, Any], backoff_ms: int) -> None:
        """POST one event, retrying up to MAX_RETRIES times with exponential backoff."""
        if not _is_loopback(url):
            self._record(url, payload, 1, {"error": "refused: the simulator only reports to loopback URLs"})
            return
        for attempt in range(1, MAX_RETRIES + 2):
            slots = self._slots
            if slots:
                with slots:
                    outcome = _deliver(url, payload)
            else:
                outcome = _deliver(url, payload)
            self._record(url, payload, attempt, outcome)
            if outcome.get("response_status") == 200 or attempt > MAX_RETRIES:
                return
            if self._stopping.wait(backoff_ms * 2 ** (attempt - 1) / 1000):
                return

    def _record(self, url: str, payload: dict[str, Any], attempt: int, outcome: dict[str, Any]) -> None:
        with self._lock:
            self._log.append({"url": url, "payload": payload, "attempt": attempt, **outcome})


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _deliver(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST payload to url once: {"response_status": n} or {"error": text}."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT_S)
    try:
        target = parts.path or "/"
        connection.request("POST", f"{target}?{parts.query}" if parts.query else target,
                           body=json.dumps(payload), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return {"response_status": response.status}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        connection.close()


class SayaSmsSimulator(Simulator):
    fault_errors = set(ERROR_STATUS)

    def __init__(self, api_key: str, balance: Decimal | str | float = "100000.00",
                 callback_url: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.account_id = f"acc_{ULID()}"
        self.callbacks = Callbacks(callback_url, self.stopping)
        self._balance = Decimal(str(balance))
        self._updated_at = datetime.now(UTC)
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def route(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.api_key.encode()):
            return error(401, "unauthorized", "missing or invalid API key (Authorization: Bearer <key>)")
        handler = {
            ("POST", "/v1/messages"): self._send,
            ("POST", "/v1/messages/bulk"): self._bulk,
            ("GET", "/v1/account/balance"): self._balance_route,
        }.get((request.method, request.route))
        if handler is None:
            return error(404, "not_found", f"no route {request.method} {request.route}")
        try:
            return handler(request.body)
        except ApiError as exc:
            return error(ERROR_STATUS[exc.code], exc.code, str(exc))

    def error_response(self, code: str) -> Response:
        return error(ERROR_STATUS[code], code, f"simulated {code}")

    def controls(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        return super().controls() | {
            ("GET", "/_sim/messages"): self._list_messages,
            ("DELETE", "/_sim/messages"): self._clear_messages,
            ("GET", "/_sim/callbacks"): lambda _: Response(200, {"callbacks": asdict(self.callbacks.settings)}),
            ("POST", "/_sim/callbacks"): self._configure_callbacks,
            ("GET", "/_sim/callbacks/log"): lambda _: Response(200, {"callbacks": self.callbacks.log()}),
            ("DELETE", "/_sim/callbacks/log"): self._clear_callback_log,
        }

    def _list_messages(self, _: Request) -> Response:
        with self._lock:
            return Response(200, {"messages": list(self._messages)})

    def _clear_messages(self, _: Request) -> Response:
        with self._lock:
            self._messages.clear()
        return Response(200, {"messages": []})

    def _configure_callbacks(self, request: Request) -> Response:
        try:
            self.callbacks.configure(request.body if request.body is not None else {})
        except ValueError as exc:
            return Response(400, {"error": str(exc)})
        return Response(200, {"callbacks": asdict(self.callbacks.settings)})

    def _clear_callback_log(self, _: Request) -> Response:
        self.callbacks.clear_log()
        return Response(200, {"callbacks": []})

    def _send(self, body: Any) -> Response:
        body = _object(body)
        to = body.get("to")
        if not isinstance(to, list) or not to:
            raise InvalidRequest("to must be a non-empty array of E.164 phone numbers")
        for index, number in enumerate(to):
            _check_number(f"to[{index}]", number)
        sender, text = _check_from(body), _check_body("body", body)
        callback_url = _check_optional_url(body)
        scheduled_at = body.get("scheduled_at")
        if scheduled_at is not None and not _is_iso8601(scheduled_at):
            raise InvalidRequest("scheduled_at must be an ISO 8601 datetime")
        message_id = f"msg_{ULID()}"
        entries = [(f"{message_id}_{n}", number, text) for n, number in enumerate(to, start=1)]
        cost = PRICE * segments(text)
        created = self._charge(cost * len(to), entries, message_id, sender, callback_url, scheduled_at)
        answer = {
            "status": "queued",
            "message_id": message_id,
            "recipients": [
                {"number": number, "status": "queued", "cost": kes(cost), "message_id": i} for i, number, _ in entries
            ],
            "total_cost": kes(cost * len(to)),
            "created_at": iso_ms(created),
        }
        return self._answer(answer, callback_url, entries, created)

    def _bulk(self, body: Any) -> Response:
        body = _object(body)
        sender = _check_from(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages must be a non-empty array of {to, body}")
        for index, item in enumerate(messages):
            if not isinstance(item, dict):
                raise InvalidRequest(f"messages[{index}] must be an object {{to, body}}")
            _check_number(f"messages[{index}].to", item.get("to"))
            _check_body(f"messages[{index}].body", item)
        callback_url = _check_optional_url(body)
        batch_id = f"bat_{ULID()}"
        entries = [(f"msg_{ULID()}", item["to"], item["body"]) for item in messages]
        costs = [PRICE * segments(text) for _, _, text in entries]
        created = self._charge(sum(costs), entries, batch_id, sender, callback_url, None)
        answer = {
            "status": "queued",
            "batch_id": batch_id,
            "messages": [
                {"to": number, "status": "queued", "cost": kes(cost), "message_id": i}
                for (i, number, _), cost in zip(entries, costs, strict=True)
            ],
            "total_cost": kes(sum(costs)),
            "created_at": iso_ms(created),
        }
        return self._answer(answer, callback_url, entries, created)

    def _charge(self, total: Decimal, entries: list[tuple[str, str, str]], parent_id: str, sender: str,
                callback_url: str | None, scheduled_at: str | None) -> datetime:
        """Deduct total and store the messages, or refuse the whole send (402); returns created_at."""
        with self._lock:
            if total > self._balance:
                raise ApiError("insufficient_balance",
                               f"the send costs {kes(total)}, the balance is {kes(self._balance)}")
            self._balance -= total
            self._updated_at = created = datetime.now(UTC)
            self._messages += [
                {"message_id": i, "parent_id": parent_id, "to": number, "from": sender, "body": text,
                 "callback_url": callback_url, "scheduled_at": scheduled_at}
                for i, number, text in entries
            ]
        return created

    def _answer(self, answer: dict[str, Any], callback_url: str | None, entries: list[tuple[str, str, str]],
                created: datetime) -> Response:
        later = self.callbacks.report(callback_url, [Recipient(i, number, created) for i, number, _ in entries])
        return Response(200, answer, after=later)

    def _balance_route(self, _: Any) -> Response:
        with self._lock:
            balance, updated_at = self._balance, self._updated_at
        return Response(200, {
            "balance": int(balance) if balance == balance.to_integral_value() else float(balance),
            "currency": "KES",
            "sms_credits": int((balance / PRICE).to_integral_value(ROUND_FLOOR)),
            "account_id": self.account_id,
            "updated_at": iso_ms(updated_at),
        })


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _check_number(name: str, number: Any) -> None:
    if not isinstance(number, str) or not E164.match(number):
        raise InvalidRequest(f"{name} must be an E.164 phone number like +254712345678, got {number!r}")


def _check_from(body: dict[str, Any]) -> str:
    sender = body.get("from")
    if not isinstance(sender, str) or not SENDER_ID.match(sender):
        raise InvalidRequest("from must be a sender ID of at most 11 letters/digits or 15 digits")
    return sender


def _check_body(name: str, holder: dict[str, Any]) -> str:
    text = holder.get("body")
    if not isinstance(text, str) or not text or len(text) > MAX_BODY:
        raise InvalidRequest(f"{name} must be a non-empty string of at most {MAX_BODY} characters")
    return text


def _check_optional_url(body: dict[str, Any]) -> str | None:
    url = body.get("callback_url")
    if url is not None and not (isinstance(url, str) and urlsplit(url).scheme in ("http", "https")):
        raise InvalidRequest("callback_url must be an http(s) URL")
    return url


def _is_iso8601(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SayaSMS provider simulator (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=os.environ.get("SIM_SAYASMS_API_KEY"))
    parser.add_argument("--balance", default="100000.00", help="starting balance in KES")
    parser.add_argument("--callback-url", help="where to send delivery reports when a send names none")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or SIM_SAYASMS_API_KEY) is required")
    serve_until_signalled(SayaSmsSimulator(args.api_key, args.balance, args.callback_url), args.port)


if __name__ == "__main__":
    main()
