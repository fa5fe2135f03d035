"""What both provider simulators share: the HTTP server, request recording and fault injection.

A simulator is a `Simulator` subclass that answers provider routes (`route`) and may add its own
control routes (`controls`). Everything under `/_sim/` is a control route: it is never recorded and
never subject to faults, so tests can always inspect and steer the simulator.

Control routes common to both simulators:

    GET    /_sim/requests   {"requests": [{method, path, headers, body, received_at[, fault]
                                          [, status, response]}]}
    DELETE /_sim/requests   forget them
    GET    /_sim/faults     {"faults": <current fault set or {}>}
    POST   /_sim/faults     replace the fault set; {} clears it

A fault set is one JSON object applied to each following provider call until its `count` runs out
(no `count`: until replaced or cleared). With `rate` (0 to 1) it applies only to that random share
of calls (`count` then counts the calls it applied to); `seed` (an integer) makes the draw
repeatable. Several fault sets share the calls as `{"mix": [fault set, ...], "seed": n}`: each
call draws once and gets at most one of them, so their rates must add up to at most 1.
Its keys combine; on one call they act in this order:

    latency_ms  sleep this long first
    hang        hold the connection without answering until the client gives up (its read
                timeout), the faults change, the server stops, or 60 s pass; then close it
    reset       close the connection with a TCP RST, without answering
    drop        close the connection cleanly (FIN), without answering
    error       answer with this provider error (each simulator maps it to its own response)
    status      answer with this HTTP status; with `error`, overrides the error's own status;
                alone, the body is {"error": {"code": "simulated_fault", "message": ...}}

A call answered (or not answered) by a fault is still recorded, with "fault" naming what applied,
so tests can count attempts; a call that got an answer also records its `status` and `response`
body, so a checker can tell "answered 503" (certainly not sent) from "no answer" (ambiguous).
"""

from __future__ import annotations

import json
import random
import select
import signal
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HANG_LIMIT_S = 60


def iso_ms(moment: datetime | None = None) -> str:
    """UTC timestamp with millisecond precision and a Z, as both seed documents write them."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_type(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """Raise ValueError unless value is of kind; bool never passes for int (JSON true is not 1)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(f"{name} must be {names}")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as received, query included
    headers: dict[str, str]
    body: Any  # parsed JSON, else the raw text, None when empty

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    after: Callable[[], None] | None = None  # runs once the response has been written


class RequestLog:
    """Every provider call received, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, request: Request, fault: str | None) -> dict[str, Any]:
        """Record a call; the returned entry takes the answer's status and body once answered."""
        entry = {
            "method": request.method,
            "path": request.path,
            "headers": request.headers,
            "body": request.body,
            "received_at": iso_ms(),
        }
        if fault:
            entry["fault"] = fault
        with self._lock:
            self._entries.append(entry)
        return entry

    def answered(self, entry: dict[str, Any], response: Response) -> None:
        with self._lock:
            entry["status"], entry["response"] = response.status, response.body

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class FaultPlan:
    """The faults to apply to one call."""

    latency_ms: int = 0
    hang: bool = False
    reset: bool = False
    drop: bool = False
    error: str | None = None
    status: int | None = None

    def describe(self) -> str:
        parts = [f"latency_ms:{self.latency_ms}"] if self.latency_ms else []
        parts += [name for name in ("hang", "reset", "drop") if getattr(self, name)]
        parts += [f"error:{self.error}"] if self.error else []
        parts += [f"status:{self.status}"] if self.status else []
        return "+".join(parts)


@dataclass
class _FaultEntry:
    """One fault set of the current faults: its plan, its share of calls and its count left."""

    plan: FaultPlan
    rate: float | None  # None: every call
    remaining: int | None  # None: until replaced

    def shown(self) -> dict[str, Any]:
        shown = {k: v for k, v in vars(self.plan).items() if v not in (None, False, 0)}
        if self.rate is not None:
            shown["rate"] = self.rate
        if self.remaining is not None:
            shown["count"] = self.remaining
        return shown


class Faults:
    """The current fault sets, consumed one call at a time; thread-safe."""

    _KINDS: dict[str, type | tuple[type, ...]] = {
        "latency_ms": int, "hang": bool, "reset": bool, "drop": bool, "error": str, "status": int,
        "count": int, "rate": (int, float),
    }

    def __init__(self, valid_errors: set[str]) -> None:
        self._valid_errors = valid_errors
        self._lock = threading.Lock()
        self._entries: list[_FaultEntry] = []
        self._mixed = False  # shown as {"mix": [...]} rather than one fault set
        self._seed: int | None = None
        self._random = random.Random()
        self._released = threading.Event()  # set when hanging calls must let go

    def set(self, spec: Any) -> None:
        """Replace the fault sets (ValueError on a bad spec) and release any hanging call."""
        check_type("faults", spec, dict)
        seed = spec.get("seed")
        if seed is not None:
            check_type("seed", seed, int)
        mixed = "mix" in spec
        if mixed:
            if set(spec) - {"mix", "seed"}:
                raise ValueError("a mix holds only `mix` and `seed`")
            check_type("mix", spec["mix"], list)
            entries = [self._entry(item, mixed=True) for item in spec["mix"]]
            if sum(entry.rate or 0 for entry in entries) > 1:
                raise ValueError("the rates of a mix must add up to at most 1")
        else:
            entries = [self._entry({k: v for k, v in spec.items() if k != "seed"}, mixed=False)]
        with self._lock:
            self._entries = [entry for entry in entries if entry.plan.describe()]
            self._mixed, self._seed = mixed, seed
            self._random = random.Random(seed)
            self._released.set()
            self._released = threading.Event()

    def _entry(self, spec: Any, mixed: bool) -> _FaultEntry:
        check_type("fault set", spec, dict)
        unknown = set(spec) - set(self._KINDS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for name, value in spec.items():
            check_type(name, value, self._KINDS[name])
        if spec.get("error") is not None and spec["error"] not in self._valid_errors:
            raise ValueError(f"error must be one of {sorted(self._valid_errors)}")
        if "status" in spec and not 100 <= spec["status"] <= 599:
            raise ValueError("status must be an HTTP status (100-599)")
        if spec.get("count", 1) < 1 or spec.get("latency_ms", 0) < 0:
            raise ValueError("count must be >= 1 and latency_ms >= 0")
        if not 0 <= spec.get("rate", 0) <= 1 or (mixed and "rate" not in spec):
            raise ValueError("rate must be between 0 and 1 (and is required in a mix)")
        plan = FaultPlan(**{k: v for k, v in spec.items() if k not in ("count", "rate")})
        return _FaultEntry(plan, spec.get("rate"), spec.get("count"))

    def take(self) -> FaultPlan | None:
        """The plan for the next call (one random draw picks it), counting it against its `count`."""
        with self._lock:
            if not self._entries:
                return None
            draw, share = self._random.random(), 0.0
            for entry in self._entries:
                share += 1.0 if entry.rate is None else entry.rate
                if draw < share:
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining == 0:
                            self._entries.remove(entry)
                    return entry.plan
            return None

    def hang(self, client_gone: Callable[[], bool] = lambda: False) -> None:
        """Block until the client gives up, the faults change (the server clears them when it
        stops) or HANG_LIMIT_S pass."""
        with self._lock:
            released = self._released
        for _ in range(int(HANG_LIMIT_S / 0.1)):
            if released.wait(0.1) or client_gone():
                return

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            seed = {"seed": self._seed} if self._seed is not None else {}
            if self._mixed:
                return {"mix": [entry.shown() for entry in self._entries], **seed} if self._entries else {}
            return {**self._entries[0].shown(), **seed} if self._entries else {}


class Simulator:
    """Base of a provider simulator: state, provider routes and control routes."""

    #: provider error names a fault may use; set by subclasses
    fault_errors: set[str] = set()

    def __init__(self) -> None:
        self.requests = RequestLog()
        self.faults = Faults(self.fault_errors)
        self.stopping = threading.Event()

    def route(self, request: Request) -> Response:
        """Answer a provider call."""
        raise NotImplementedError

    def error_response(self, error: str) -> Response:
        """The provider's own answer for a fault `error`."""
        raise NotImplementedError

    def controls(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        """Control routes as {(method, path): handler}; subclasses extend."""
        return {
            ("GET", "/_sim/requests"): lambda _: Response(200, {"requests": self.requests.snapshot()}),
            ("DELETE", "/_sim/requests"): self._clear_requests,
            ("GET", "/_sim/faults"): lambda _: Response(200, {"faults": self.faults.snapshot()}),
            ("POST", "/_sim/faults"): self._set_faults,
        }

    def close(self) -> None:
        """Let go of anything waiting: hanging calls, latency, background work."""
        self.stopping.set()
        self.faults.set({})

    def _clear_requests(self, _: Request) -> Response:
        self.requests.clear()
        return Response(200, {"requests": []})

    def _set_faults(self, request: Request) -> Response:
        try:
            self.faults.set(request.body if request.body is not None else {})
        except ValueError as exc:
            return Response(400, {"error": str(exc)})
        return Response(200, {"faults": self.faults.snapshot()})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider front end
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def _handle(self) -> None:
        sim = self.server.sim
        self._record: dict[str, Any] | None = None  # this call's entry in the request log
        request = self._read_request()
        if request.route.startswith("/_sim/"):
            handler = sim.controls().get((request.method, request.route))
            self._answer(handler(request) if handler else Response(404, {"error": "no such control route"}))
            return
        plan = sim.faults.take()
        self._record = sim.requests.record(request, plan.describe() if plan else None)
        if plan:
            self._apply(plan, request)
        else:
            self._answer(sim.route(request))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _apply(self, plan: FaultPlan, request: Request) -> None:
        sim = self.server.sim
        if plan.latency_ms:
            sim.stopping.wait(plan.latency_ms / 1000)
        if plan.hang:
            sim.faults.hang(self._client_gone)
        if plan.reset:
            # Linger 0 makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if plan.hang or plan.reset or plan.drop:
            self.close_connection = True
            return
        if plan.error:
            response = sim.error_response(plan.error)
            self._answer(Response(plan.status or response.status, response.body))
        elif plan.status:
            self._answer(Response(plan.status, {"error": {
                "code": "simulated_fault",
                "message": f"HTTP {plan.status} {HTTPStatus(plan.status).phrase} (simulated)",
            }}))
        else:
            self._answer(sim.route(request))

    def _client_gone(self) -> bool:
        """Whether the client closed its end (a hung call's client gave up waiting)."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _read_request(self) -> Request:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        return Request(self.command, self.path, dict(self.headers), body)

    def _answer(self, response: Response) -> None:
        if self._record is not None:  # a provider call: its record says what it was answered
            self.server.sim.requests.answered(self._record, response)
            self._record = None
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if response.after:
            response.after()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: GET /_sim/requests is the log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread; also a context manager that stops it."""

    sim: Simulator
    _server: _Server
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.sim.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve sim on (host, port) in a daemon thread; port 0 picks a free port."""
    server = _Server((host, port), sim)
    # A short poll interval makes stop() quick (shutdown waits for the serving loop to notice).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=type(sim).__name__, daemon=True)
    thread.start()
    return RunningSimulator(sim, server, thread)


def serve_until_signalled(sim: Simulator, port: int) -> None:
    """The command-line life cycle: announce the URL on stdout, serve until SIGINT or SIGTERM."""
    running = start(sim, "127.0.0.1", port)
    print(f"listening on {running.url}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    running.stop()
