"""The counted fault suite: Tuma's promise, tried end to end under faults (docs/reliability.md).

    make faults                                   10,000 recipients, 3 kills; prints ONE table,
                                                  writes bench/faults.json, exits 1 on any failure
    .venv/bin/python bench/faults.py --recipients 500 --kills 1 --retries 1   a smaller run

The promise: every accepted recipient reaches a provider at most once, and ends in a state the
caller can see (a final one, or `unknown` when a provider may have taken it).

The scenario, against the local stack (template.yaml on MiniStack, the two simulators):
- both simulators answer a seeded random share of provider calls with a fault (FAULT_MIX: 503,
  hang until the sender's read timeout, TCP reset after reading the request, close without an
  answer); SayaSMS duplicates and reorders a share of its delivery reports (REPORT_SHARES);
- traffic of `recipients` distinct numbers: personalised bulks (unpinned and pinned to SayaSMS),
  a template bulk pinned to 254sms, single sends of 10 numbers (unpinned and pinned to each
  provider) and producer jobs put straight on the send queue (docs/queue-jobs.md: with and without
  their own request_id, pinned and not, one body or personalised);
- client retries with the same Idempotency-Key after a forced 5xx (the send queue's
  MaximumMessageSize set below one job's size while the first POST runs, so that storing succeeds
  and queueing fails), if the API honours the header (probed first; noted when it does not);
- the sender's execution killed mid-batch `kills` times (SIGKILL to a MiniStack worker process
  running the sender while it is busy: LocalStack.function_workers).

Then it waits (bounded) for the system to settle and checks, from the simulators' records and GET:
- lost: an accepted recipient not in a final or `unknown` state (still queued/sending/scheduled);
- duplicates: a recipient in a provider request after an earlier one that took it or left it
  ambiguous (only a 429/503 answer, a per-number refusal or a refused connection allow another);
- regressions: a status history going backwards, a status seen earlier (while polling) above the
  final one, or a final SayaSMS report the webhook acknowledged while the message shows less;
- untraced unknowns: an `unknown` recipient no provider call could have taken (no call without an
  answer, none whose answer the killed/timed-out sender never recorded), unless the evidence says
  the sender was killed between its intent write and the request: the takeover's reason, no call,
  and one of our kills inside the dead attempt's window (unknown_kind).
Each failure kind is listed with examples (message id, what happened).

The queue's VisibilityTimeout is set to SCENARIO_VISIBILITY_S for the run (restored after): with
the template's 180 s, each killed batch would take three minutes to come back."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "tuma")]

from local.stack import TENANT, LocalStack, Ports, free_port  # noqa: E402
from tuma.domain.sending import DIED_MID_CALL  # noqa: E402

FAULT_MIX = {"status:503": 0.20, "hang": 0.05, "reset": 0.02, "drop": 0.02}
REPORT_SHARES = {"duplicate": 0.10, "reorder": 0.10}
# Report POSTs in flight at once: MiniStack runs each as a webhook invocation, and on a loaded
# machine an unbounded flood times them out (the simulator retries, the flood grows) and stalls it.
REPORT_CONCURRENCY = 4
REPORT_GRACE_S = 120  # the longest wait for delivery reports once nothing is queued or sending
FAILING_SHARE = 0.01  # numbers SayaSMS reports as failed (absent subscriber)
SCENARIO_VISIBILITY_S = 35  # above the sender's 30 s timeout: a live invocation never loses its jobs
RANK = {"scheduled": 0, "queued": 1, "sending": 2, "unknown": 3, "sent": 4, "expired": 5,
        "delivered": 6, "failed": 6, "rejected": 6, "cancelled": 6}  # tuma.domain.status.RANK
WAITING = {"queued", "sending", "scheduled"}
NO_ANSWER = {"hang", "reset", "drop"}
# How far a kill's time may fall outside a dead attempt's window and still count as its cause. The
# stack's Lambdas are MiniStack worker processes on this machine, so kill times (ours) and history
# times (theirs) read one system clock; what still separates them is small: history times are cut
# to the millisecond, and a kill's time is read just after os.kill returns, on a loaded machine.
KILL_MARGIN_S = 1.0
JSON_PATH = ROOT / "bench" / "faults.json"


@dataclass
class Scenario:
    recipients: int = 10_000
    kills: int = 3
    retries: int = 4  # sends retried with the same Idempotency-Key after a forced 5xx
    seed: int = 20261202
    settle_s: float = 900  # the longest wait for every recipient to settle after the traffic
    threads: int = 2  # concurrent clients


@dataclass
class Accepted:
    """A recipient Tuma accepted: its message id and the number (9 national digits) it goes to."""

    message_id: str
    key: str
    kind: str
    provider: str | None


@dataclass
class Run:
    scenario: Scenario
    accepted: list[Accepted] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)  # bat_ ids
    requests: list[str] = field(default_factory=list)  # msg_ ids (single sends, producer jobs)
    excluded: set[str] = field(default_factory=set)  # probe numbers, outside the checks
    kills: list[dict] = field(default_factory=list)
    idempotency: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unanswered: int = 0  # recipients of POSTs that got no answer
    observed: dict[str, int] = field(default_factory=dict)  # message id -> highest rank seen while polling
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, items: list[Accepted]) -> None:
        with self.lock:
            self.accepted += items


def key_of(number: str) -> str:
    """A Kenyan number in any form, as its 9 national digits."""
    return "".join(c for c in number if c.isdigit())[-9:]


def local_number(n: int) -> str:
    return f"0711{n:06d}"


# --- the traffic -----------------------------------------------------------------------------

@dataclass
class Send:
    kind: str  # bulk | template | single | job
    provider: str | None
    numbers: list[str]
    personalised: bool = True
    own_id: bool = False  # a producer job with its own request_id


def plan(scenario: Scenario, first: int) -> list[Send]:
    """The sends, with numbers first.. onward, each number used once."""
    total = scenario.recipients - 40 * scenario.retries
    shares = {"bulk": 0.40, "bulk_saya": 0.05, "template_254": 0.05, "single": 0.30}
    counter = iter(range(first, first + total))
    take = lambda n: [local_number(next(counter)) for _ in range(n)]  # noqa: E731
    sends: list[Send] = []
    left = int(total * shares["bulk"])
    while left > 0:
        size = min(2000, left)
        sends.append(Send("bulk", None, take(size)))
        left -= size
    sends.append(Send("bulk", "sayasms", take(int(total * shares["bulk_saya"]))))
    sends.append(Send("template", "254sms", take(int(total * shares["template_254"]))))
    pins = [None, None, "sayasms", "254sms"]
    for i in range(int(total * shares["single"]) // 10):
        sends.append(Send("single", pins[i % 4], take(10), personalised=False))
    used = sum(len(s.numbers) for s in sends)
    jobs = [None, "sayasms", "254sms"]
    i = 0
    while used < total:
        size = min(100, total - used)
        sends.append(Send("job", jobs[i % 3], take(size), personalised=i % 2 == 0, own_id=i % 4 < 2))
        used += size
        i += 1
    random.Random(scenario.seed).shuffle(sends)
    return sends


class Client:
    def __init__(self, stack: LocalStack):
        self.base = stack.api_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {stack.api_key}"

    def post(self, path: str, body: dict, key: str | None = None, timeout: float = 180) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.session.post(self.base + path, json=body, headers=headers, timeout=timeout)

    def get(self, path: str) -> dict:
        for attempt in range(5):
            try:
                answer = self.session.get(self.base + path, timeout=60)
                if answer.status_code < 500:
                    return answer.json()
            except requests.RequestException:
                pass
            time.sleep(1 + attempt)
        return {"error": {"code": "unreachable", "message": f"GET {path} kept failing"}}


def submit(stack: LocalStack, client: Client, run: Run, send: Send) -> None:
    """One send; a POST without an answer leaves its numbers out of the lost check (the client
    never learnt their ids) but not out of the duplicate check (numbers are never reused)."""
    try:
        _submit(stack, client, run, send)
    except (requests.RequestException, OSError) as problem:
        with run.lock:
            run.unanswered += len(send.numbers)
        run.notes.append(f"a {send.kind} POST of {len(send.numbers)} got no answer ({type(problem).__name__})")


def _submit(stack: LocalStack, client: Client, run: Run, send: Send) -> None:
    keys = [key_of(n) for n in send.numbers]
    if send.kind == "job":
        submit_job(stack, run, send)
        return
    if send.kind == "single":
        body = {"from": "MYSHOP", "to": send.numbers, "body": "Your order is ready for pick-up at Westlands."}
        answer = client.post("/v1/messages", {**body, **({"provider": send.provider} if send.provider else {})})
        if answer.status_code != 202:
            run.notes.append(f"single send answered {answer.status_code}: {answer.text[:200]}")
            return
        view = answer.json()
        run.requests.append(view["message_id"])
        run.add([Accepted(r["message_id"], key_of(r["number"]), "single", send.provider)
                 for r in view["recipients"] if r["status"] == "queued"])
        return
    if send.kind == "template":
        names = ["Grace", "Peter", "Wanjiru", "Otieno", "Amina"]
        body = {"from": "MYSHOP", "provider": send.provider, "template": "Habari {name}, karibu tena!",
                "recipients": [{"to": n, "vars": {"name": names[i % 5]}} for i, n in enumerate(send.numbers)]}
    else:
        body = {"from": "MYSHOP", "messages": [{"to": n, "body": f"Hi customer {k}, order #KE{k} is ready!"}
                                               for n, k in zip(send.numbers, keys)]}
        if send.provider:
            body["provider"] = send.provider
    answer = client.post("/v1/messages/bulk", body)
    if answer.status_code != 202:
        run.notes.append(f"bulk answered {answer.status_code}: {answer.text[:200]}")
        return
    batch_id = answer.json()["batch_id"]
    run.batches.append(batch_id)
    run.add([Accepted(f"{batch_id}_{i}", k, send.kind, send.provider) for i, k in enumerate(keys, start=1)])


def submit_job(stack: LocalStack, run: Run, send: Send) -> None:
    from ulid import ULID

    from tuma.domain.jobs import producer_request_id

    job = {"version": 1, "tenant_id": TENANT, "from": "PRODUCER"}
    if send.provider:
        job["provider"] = send.provider
    if send.personalised:
        job["recipients"] = [{"number": n, "body": f"Producer note for {key_of(n)}"} for n in send.numbers]
    else:
        job["body"] = "A producer's message to many."
        job["recipients"] = [{"number": n} for n in send.numbers]
    if send.own_id:
        job["request_id"] = f"msg_{ULID()}"
    aws(stack, "sqs").send_message(QueueUrl=stack.outputs["SendQueueUrl"], MessageBody=json.dumps(job))
    # The id the sender gives a job without one: from its content, never from the SQS message id.
    request_id = job.get("request_id") or producer_request_id(job)
    run.requests.append(request_id)
    run.add([Accepted(f"{request_id}_{i}", key_of(n), "job", send.provider)
             for i, n in enumerate(send.numbers, start=1)])


# --- client retries with the same Idempotency-Key after a forced 5xx -------------------------

def idempotent_retries(stack: LocalStack, client: Client, run: Run, first: int) -> int:
    """Returns how many numbers it used. A probe first: the same key twice must give one answer."""
    probe = [local_number(first)]
    run.excluded.update(key_of(n) for n in probe)
    body = {"from": "MYSHOP", "to": probe, "body": "probe"}
    key = str(uuid.uuid4())
    answers = [client.post("/v1/messages", body, key) for _ in range(2)]
    ids = [a.json().get("message_id") if a.status_code == 202 else None for a in answers]
    supported = ids[0] is not None and ids[0] == ids[1]
    stats = {"supported": supported, "forced_5xx": 0, "retried_202": 0, "repeat_same_answer": 0, "sends": 0,
             "probe": [f"{a.status_code} {a.text[:160]}" for a in answers]}
    run.idempotency = stats
    used = 1
    if not supported:
        run.notes.append("Idempotency-Key is not honoured by this build (the same key twice did not give one "
                         f"answer: {stats['probe']}): retries were made without it, as plain new sends.")
    sqs, queue_url = aws(stack, "sqs"), stack.outputs["SendQueueUrl"]
    original = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])["Attributes"]
    for _ in range(run.scenario.retries):
        numbers = [local_number(first + used + i) for i in range(40)]
        used += 40
        body = {"from": "MYSHOP", "to": numbers, "body": "Retry-safe notice: " + "your statement is ready. " * 5}
        key = str(uuid.uuid4()) if supported else None
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"MaximumMessageSize": "1024"})
        try:
            failed = client.post("/v1/messages", body, key)
        finally:
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=original)
        stats["sends"] += 1
        if failed.status_code >= 500:
            stats["forced_5xx"] += 1
        else:
            run.notes.append(f"the forced-5xx send answered {failed.status_code}: {failed.text[:200]}")
        retried = client.post("/v1/messages", body, key)
        if retried.status_code != 202:
            run.notes.append(f"the retry answered {retried.status_code}: {retried.text[:200]}")
            continue
        stats["retried_202"] += 1
        view = retried.json()
        if key:
            again = client.post("/v1/messages", body, key)
            stats["repeat_same_answer"] += again.status_code == 202 and again.json().get("message_id") == view["message_id"]
        run.requests.append(view["message_id"])
        run.add([Accepted(r["message_id"], key_of(r["number"]), "retry", None)
                 for r in view["recipients"] if r["status"] == "queued"])
    return used


# --- the sender killed mid-batch ----------------------------------------------------------------

def _cpu_ticks(pid: int) -> int:
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields_[11]) + int(fields_[12])  # utime + stime


def killer(stack: LocalStack, run: Run, stop: threading.Event, gap_s: float = 8.0) -> None:
    """SIGKILL a sender worker that is busy (using CPU), `kills` times, at least gap_s apart."""
    sqs, queue_url = aws(stack, "sqs"), stack.outputs["SendQueueUrl"]
    while len(run.kills) < run.scenario.kills and not stop.wait(0.5):
        try:
            pids = stack.function_workers("SenderFunction")
            before = {pid: _cpu_ticks(pid) for pid in pids}
            time.sleep(0.3)
            busy = [pid for pid in pids if _cpu_ticks(pid) > before[pid]]
        except (OSError, ValueError):
            continue
        if not busy:
            continue
        in_flight = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
        if int(in_flight) == 0:
            continue
        try:
            os.kill(busy[0], signal.SIGKILL)
        except ProcessLookupError:
            continue
        # The epoch time is the evidence the check compares with message histories (unknown_kind).
        killed_at = time.time()
        run.kills.append({"pid": busy[0], "at": time.strftime("%H:%M:%S", time.localtime(killed_at)),
                          "at_epoch": round(killed_at, 3), "jobs_in_flight": int(in_flight)})
        stop.wait(gap_s)


# --- settling and collecting -------------------------------------------------------------------

def observe(run: Run, view: dict) -> None:
    for recipient in view.get("recipients", []):
        rank = RANK.get(recipient["status"], 0)
        if rank > run.observed.get(recipient["message_id"], -1):
            run.observed[recipient["message_id"]] = rank


def settle(client: Client, run: Run, sayasms_url: str, deadline: float) -> dict:
    """Poll until nothing is waiting (or the deadline), then until SayaSMS's reports have stopped
    for a few seconds, at most REPORT_GRACE_S more: reports arriving after that are simply not
    counted (a message they would move stays `sent`, which the checks accept)."""
    waiting, reports, quiet_since, settled_at = None, -1, 0.0, None
    while time.monotonic() < (settled_at + REPORT_GRACE_S if settled_at else deadline):
        if settled_at is None:
            with ThreadPoolExecutor(4) as pool:
                batches = list(pool.map(lambda b: client.get(f"/v1/batches/{b}"), run.batches))
                views = list(pool.map(lambda r: client.get(f"/v1/messages/{r}"), run.requests))
            for view in views:
                observe(run, view)
            waiting = sum(n for b in batches for s, n in b.get("counts", {}).items() if s in WAITING)
            waiting += sum(1 for v in views for r in v.get("recipients", []) if r["status"] in WAITING)
            waiting += sum(1 for v in views if "recipients" not in v)  # a producer job not registered yet
            if waiting == 0:
                settled_at = time.monotonic()
        if settled_at is not None:
            count = len(requests.get(f"{sayasms_url}/_sim/callbacks/log", timeout=60).json()["callbacks"])
            if count != reports:
                reports, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since >= 6:
                break
        time.sleep(5)
    return {"settled": settled_at is not None, "waiting": waiting,
            "reports_quiet": settled_at is not None and time.monotonic() < settled_at + REPORT_GRACE_S}


def final_views(client: Client, run: Run) -> dict[str, dict]:
    views: dict[str, dict] = {}
    with ThreadPoolExecutor(4) as pool:
        for view in pool.map(lambda r: client.get(f"/v1/messages/{r}"), run.requests):
            for recipient in view.get("recipients", []):
                views[recipient["message_id"]] = recipient
        bulk_ids = [a.message_id for a in run.accepted if a.message_id.startswith("bat_")]
        for message_id, view in zip(bulk_ids, pool.map(lambda m: client.get(f"/v1/messages/{m}"), bulk_ids)):
            views[message_id] = view
    return views


# --- the checks --------------------------------------------------------------------------------

def call_outcomes(sim: str, record: dict) -> list[tuple[str, str]]:
    """[(number key, taken | not_taken | no_answer)] for one recorded provider call."""
    body, fault = record.get("body"), record.get("fault") or ""
    if not isinstance(body, dict):
        return []
    if sim == "254sms":
        if record["path"] != "/sendsms":
            return []
        numbers = [p for p in str(body.get("phone", "")).split(",") if p.strip()]
    elif record["path"] == "/v1/messages":
        numbers = body.get("to") or []
    elif record["path"] == "/v1/messages/bulk":
        numbers = [m.get("to", "") for m in body.get("messages") or []]
    else:
        return []
    if any(kind in fault.split("+") for kind in NO_ANSWER) or "status" not in record:
        return [(key_of(n), "no_answer") for n in numbers]
    status, answer = record["status"], record.get("response") or {}
    if sim == "254sms":
        if status != 200 or answer.get("statusCode") != 101:
            return [(key_of(n), "not_taken") for n in numbers]
        taken = {key_of(d["recipient"]) for d in answer.get("messageDetails", []) if d.get("statusMessage") == 2}
        return [(key_of(n), "taken" if key_of(n) in taken else "not_taken") for n in numbers]
    if status == 200:
        return [(key_of(n), "taken") for n in numbers]
    # Only what proves the message was not taken allows another send (429, 503, 4xx refusals).
    outcome = "not_taken" if status in (429, 503) or 400 <= status < 500 else "no_answer"
    return [(key_of(n), outcome) for n in numbers]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()  # Tuma's times are UTC with a Z (tuma.domain.times)


def dead_attempt_window(view: dict) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of the span that holds the attempt that died, from the
    message's history as GET shows it: from the entry before the takeover's `unknown` to that
    `unknown`. The entry before is the attempt's `sending` where GET shows one; for a message
    the dead attempt named and never recorded there is none (the takeover's claim replaced the
    dead one's time on the job item), so it is the message's `queued`, which no attempt precedes:
    a wider window, never one that misses the attempt. None when the history has no such entry."""
    history = [entry for entry in view.get("history", []) if "note" not in entry]
    for before, entry in zip(history, history[1:]):
        if entry.get("status") == "unknown" and entry.get("reason") == DIED_MID_CALL:
            try:
                return _epoch(before["at"]), _epoch(entry["at"])
            except (KeyError, TypeError, ValueError):
                return None
    return None


def kill_within(window: tuple[float, float], kills: list[dict]) -> dict | None:
    """The first kill (with its epoch time) inside the window, KILL_MARGIN_S either side."""
    start, end = window
    return next((kill for kill in kills if isinstance(kill.get("at_epoch"), (int, float))
                 and start - KILL_MARGIN_S <= kill["at_epoch"] <= end + KILL_MARGIN_S), None)


def unknown_kind(view: dict, outcomes: set[str], kills: list[dict]) -> str:
    """What an `unknown` recipient is traced to, from its view, the outcomes of the provider calls
    its number got (call_outcomes) and the suite's kills; `unknown_untraced` when nothing explains
    it."""
    died = view.get("reason") == DIED_MID_CALL
    if "no_answer" in outcomes:
        return "unknown_no_answer"
    if "taken" in outcomes or (outcomes and died):
        # A request reached the provider and the sender died (killed, timed out) before
        # recording its answer, even a 503's: the takeover only knows a request named it.
        return "unknown_answer_unrecorded"
    if died and not outcomes:
        # Named by a request no provider saw: the sender died between its intent write and the
        # request. Traced only when one of our kills fell in the dead attempt's window; a death
        # with no kill to show for it (a timeout, a crash) hides a message that should have gone out.
        window = dead_attempt_window(view)
        if window and kill_within(window, kills):
            return "unknown_killed_before_call"
    # No request reached a provider: a killed sender's takeover resends what no request named, so
    # an unknown here hides a message that should have gone out.
    return "unknown_untraced"


def check(run: Run, views: dict[str, dict], records: dict[str, list[dict]], callbacks: list[dict]) -> dict:
    calls: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # key -> [(sim, outcome, at)]
    for sim, entries in records.items():
        for record in entries:
            for key, outcome in call_outcomes(sim, record):
                calls[key].append((sim, outcome, record["received_at"]))
    by_key = {a.key: a for a in run.accepted}
    failures: dict[str, list[str]] = defaultdict(list)
    traced: dict[str, list[str]] = defaultdict(list)  # evidence for the unknowns traced to a kill
    counts = Counter()

    # duplicates: a call after one that took the number or left it ambiguous
    for key, seen in calls.items():
        if key in run.excluded:
            continue
        seen.sort(key=lambda c: c[2])
        settled_by = None
        for sim, outcome, at in seen:
            if settled_by:
                counts["duplicate_calls"] += 1
                who = by_key[key].message_id if key in by_key else f"number 0{key}"
                failures["duplicate"].append(f"{who}: sent to {sim} at {at} after {settled_by}")
                break
            if outcome != "not_taken":
                settled_by = f"{sim} {'took it' if outcome == 'taken' else 'got no answer'} at {at}"
    counts["duplicates"] = len(failures["duplicate"])

    # lost, unknown traced, statuses
    statuses = Counter()
    for accepted in run.accepted:
        view = views.get(accepted.message_id) or {}
        status = view.get("status", "missing")
        statuses[status] += 1
        if status in WAITING or status == "missing":
            tried = ", ".join(f"{s}:{o}" for s, o, _ in calls.get(accepted.key, [])) or "no provider call"
            failures["lost"].append(f"{accepted.message_id} ({accepted.kind}, pinned {accepted.provider}): "
                                    f"{status}; provider calls: {tried}")
        elif status == "unknown":
            kind = unknown_kind(view, {o for _, o, _ in calls.get(accepted.key, [])}, run.kills)
            if kind == "unknown_untraced":
                tried = ", ".join(f"{s}:{o}" for s, o, _ in calls.get(accepted.key, [])) or "no provider call"
                failures["unknown_untraced"].append(
                    f"{accepted.message_id} ({accepted.kind}, pinned {accepted.provider}): unknown, reason "
                    f"{view.get('reason')!r}; provider calls: {tried}; {_window_text(view)}")
            else:
                counts[kind] += 1
                if kind == "unknown_killed_before_call":
                    kill = kill_within(dead_attempt_window(view), run.kills)
                    traced["unknown_killed_before_call"].append(
                        f"{accepted.message_id} ({accepted.kind}, pinned {accepted.provider}): "
                        f"{_window_text(view)}; kill of pid {kill['pid']} at {kill['at_epoch']}")
        elif status in ("sent", "delivered") and "taken" not in {o for _, o, _ in calls.get(accepted.key, [])}:
            failures["sent_without_provider_call"].append(f"{accepted.message_id}: {status} but no provider took it")
    counts["lost"] = len(failures["lost"])
    counts["unknown_untraced"] = len(failures["unknown_untraced"])

    # regressions
    acknowledged = {}
    for entry in callbacks:
        payload = entry.get("payload") or {}
        if entry.get("response_status") == 200 and payload.get("status") in ("delivered", "failed"):
            acknowledged[payload.get("message_id")] = payload["status"]
    for accepted in run.accepted:
        view = views.get(accepted.message_id)
        if not view:
            continue
        ranks = [(RANK.get(h["status"], 0), h["status"]) for h in view.get("history", []) if "note" not in h]
        backwards = [f"{a[1]} -> {b[1]}" for a, b in zip(ranks, ranks[1:]) if b[0] < a[0]]
        final = RANK.get(view["status"], 0)
        problem = None
        if backwards:
            problem = f"history goes backwards: {', '.join(backwards)}"
        elif ranks and final < max(ranks)[0]:
            problem = f"status {view['status']} below its history's {max(ranks)[1]}"
        elif run.observed.get(accepted.message_id, -1) > final:
            problem = f"status {view['status']} after being seen at rank {run.observed[accepted.message_id]}"
        elif acknowledged.get(view.get("provider_message_id")) and final < RANK["delivered"]:
            # Not a step backwards in what GET showed, but the provider's final word lost: a late
            # `sent` written over it (the sender's unconditional write) or a report never applied.
            trail = " > ".join(h["status"] + ("(late)" if "note" in h else "") for h in view.get("history", []))
            failures["final_report_not_shown"].append(
                f"{accepted.message_id} ({accepted.kind}, {view.get('provider_message_id')}): {view['status']} though "
                f"the webhook acknowledged message.{acknowledged[view['provider_message_id']]}; history {trail}")
        if problem:
            trail = " > ".join(h["status"] + ("(late)" if "note" in h else "") for h in view.get("history", []))
            failures["regression"].append(f"{accepted.message_id} ({accepted.kind}, {view.get('provider')} "
                                          f"{view.get('provider_message_id')}): {problem}; history {trail}")
    counts["regressions"] = len(failures["regression"])
    counts["final_report_not_shown"] = len(failures["final_report_not_shown"])
    return {"counts": counts, "statuses": statuses, "failures": failures, "traced": traced}


def _window_text(view: dict) -> str:
    window = dead_attempt_window(view)
    return f"dead attempt within {window[0]:.3f}..{window[1]:.3f}" if window else "no dead attempt in its history"


def injected(records: dict[str, list[dict]], callbacks: list[dict]) -> dict:
    faults = {sim: Counter(r["fault"] for r in entries if r.get("fault")) for sim, entries in records.items()}
    calls = {sim: len(entries) for sim, entries in records.items()}
    firsts, per_event = {}, Counter()
    for entry in callbacks:
        payload = entry.get("payload") or {}
        if entry.get("attempt") == 1:
            per_event[(payload.get("message_id"), payload.get("event"))] += 1
            firsts.setdefault(payload.get("message_id"), payload.get("event"))
    return {"provider_calls": calls, "faults": {sim: dict(c) for sim, c in faults.items()},
            "reports_sent": sum(per_event.values()),
            "reports_duplicated": sum(1 for n in per_event.values() if n > 1),
            "reports_reordered": sum(1 for e in firsts.values() if e in ("message.delivered", "message.failed"))}


# --- the run -----------------------------------------------------------------------------------

def configure(stack: LocalStack, scenario: Scenario, failing: list[str]) -> None:
    for offset, url in enumerate((stack.sms254_url, stack.sayasms_url)):
        requests.delete(f"{url}/_sim/requests", timeout=30).raise_for_status()
        mix = [{"status": 503, "rate": FAULT_MIX["status:503"]}, {"hang": True, "rate": FAULT_MIX["hang"]},
               {"reset": True, "rate": FAULT_MIX["reset"]}, {"drop": True, "rate": FAULT_MIX["drop"]}]
        requests.post(f"{url}/_sim/faults", json={"mix": mix, "seed": scenario.seed + offset},
                      timeout=30).raise_for_status()
    requests.delete(f"{stack.sayasms_url}/_sim/callbacks/log", timeout=30).raise_for_status()
    requests.delete(f"{stack.sayasms_url}/_sim/messages", timeout=30).raise_for_status()
    requests.post(f"{stack.sayasms_url}/_sim/callbacks", timeout=30, json={
        **REPORT_SHARES, "seed": scenario.seed, "fail_numbers": failing,
        "concurrency": REPORT_CONCURRENCY}).raise_for_status()


def aws(stack: LocalStack, service: str):
    """A client of the stack's emulator that gives up within a minute (a stalled emulator must not
    hang the run, nor its clean-up, for long)."""
    from botocore.config import Config

    return stack._session().client(service, endpoint_url=stack.endpoint, config=Config(
        connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}))


def close_circuits(stack: LocalStack) -> None:
    from tuma.store.circuit import circuit_key

    dynamodb = aws(stack, "dynamodb")
    for provider in ("254sms", "sayasms"):
        key = {name: {"S": value} for name, value in circuit_key(provider).items()}
        dynamodb.delete_item(TableName=stack.outputs["TableName"], Key=key)


def run_scenario(stack: LocalStack, scenario: Scenario) -> dict:
    """The scenario against a running stack; restores the simulators and the queue afterwards."""
    started = time.monotonic()
    run = Run(scenario)
    client = Client(stack)
    sends = plan(scenario, first=scenario.recipients + 1000)
    failing = [f"+254{key_of(n)}" for s in sends for n in s.numbers][:: int(1 / FAILING_SHARE)]
    sqs, queue_url = aws(stack, "sqs"), stack.outputs["SendQueueUrl"]
    visibility = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    stop = threading.Event()
    try:
        close_circuits(stack)
        configure(stack, scenario, failing)
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(SCENARIO_VISIBILITY_S)})
        idempotent_retries(stack, client, run, first=1)
        kill_thread = threading.Thread(target=killer, args=(stack, run, stop), daemon=True)
        kill_thread.start()
        with ThreadPoolExecutor(scenario.threads) as pool:
            for future in [pool.submit(submit, stack, client, run, send) for send in sends]:
                future.result()
        submitted_s = time.monotonic() - started
        outcome = settle(client, run, stack.sayasms_url, time.monotonic() + scenario.settle_s)
        stop.set()
        kill_thread.join()
        if len(run.kills) < scenario.kills:
            run.notes.append(f"only {len(run.kills)} of {scenario.kills} kills found a busy sender worker")
        # The reports acknowledged before the views are read: GET must show each one. (Reading
        # 10,000 views takes minutes while SayaSMS keeps reporting; a report acknowledged after its
        # message's view was read is no failure.)
        acknowledged_first = requests.get(f"{stack.sayasms_url}/_sim/callbacks/log", timeout=120).json()["callbacks"]
        views = final_views(client, run)
        records = {"254sms": requests.get(f"{stack.sms254_url}/_sim/requests", timeout=120).json()["requests"],
                   "sayasms": requests.get(f"{stack.sayasms_url}/_sim/requests", timeout=120).json()["requests"]}
        callbacks = requests.get(f"{stack.sayasms_url}/_sim/callbacks/log", timeout=120).json()["callbacks"]
        dlq = sqs.get_queue_attributes(QueueUrl=stack.outputs["SendDeadLetterQueueUrl"],
                                                       AttributeNames=["ApproximateNumberOfMessages"])
    finally:
        stop.set()
        for url in (stack.sms254_url, stack.sayasms_url):
            requests.post(f"{url}/_sim/faults", json={}, timeout=30)
        requests.post(f"{stack.sayasms_url}/_sim/callbacks", json={}, timeout=30)
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=visibility)
        close_circuits(stack)
    checked = check(run, views, records, acknowledged_first)
    counts = checked["counts"]
    return {
        "scenario": asdict(scenario), "fault_mix": FAULT_MIX, "report_shares": REPORT_SHARES,
        "accepted": len(run.accepted), "unanswered_posts_recipients": run.unanswered, "settled": outcome["settled"], "still_waiting": outcome["waiting"],
        "reports_quiet": outcome["reports_quiet"],
        "lost": counts["lost"], "duplicates": counts["duplicates"], "regressions": counts["regressions"],
        "unknown": checked["statuses"].get("unknown", 0), "unknown_untraced": counts["unknown_untraced"],
        "unknown_no_answer": counts["unknown_no_answer"],
        "unknown_answer_unrecorded": counts["unknown_answer_unrecorded"],
        "unknown_killed_before_call": counts["unknown_killed_before_call"],
        "sent_without_provider_call": len(checked["failures"]["sent_without_provider_call"]),
        "final_report_not_shown": counts["final_report_not_shown"],
        "statuses": dict(checked["statuses"]), "injected": injected(records, callbacks),
        "sender_kills": run.kills, "idempotency": run.idempotency,
        "jobs_in_send_dlq": int(dlq["Attributes"]["ApproximateNumberOfMessages"]),
        "submitted_seconds": round(submitted_s, 1), "total_seconds": round(time.monotonic() - started, 1),
        "failures": {kind: {"count": len(items), "examples": items[:5]} for kind, items in checked["failures"].items()},
        "traced_to_kills": {kind: {"count": len(items), "examples": items[:5]}
                            for kind, items in checked["traced"].items()},
        "notes": run.notes,
    }


def failed(result: dict) -> bool:
    return any(result[name] for name in ("lost", "duplicates", "regressions", "unknown_untraced",
                                         "final_report_not_shown"))


def table(result: dict) -> str:
    faults = result["injected"]["faults"]
    kinds = ("status:503", "hang", "reset", "drop")
    rows = [
        ("recipients accepted", result["accepted"], "", ""),
        ("lost (queued/sending at the end)", result["lost"], "0", result["lost"] == 0),
        ("duplicates (a 2nd provider call)", result["duplicates"], "0", result["duplicates"] == 0),
        ("regressions (status backwards)", result["regressions"], "0", result["regressions"] == 0),
        ("unknown, untraced", result["unknown_untraced"], "0", result["unknown_untraced"] == 0),
        ("unknown, no answer (hang/reset/drop)", result["unknown_no_answer"], "", ""),
        ("unknown, called, sender died unrecorded", result["unknown_answer_unrecorded"], "", ""),
        ("unknown, killed before its request left", result["unknown_killed_before_call"], "", ""),
        ("sent without a provider call", result["sent_without_provider_call"], "0",
         result["sent_without_provider_call"] == 0),
        ("final report acknowledged, not shown", result["final_report_not_shown"], "0",
         result["final_report_not_shown"] == 0),
        *[(f"faults injected: {kind}", " / ".join(str(faults.get(s, {}).get(kind, 0)) for s in ("254sms", "sayasms")),
           "254sms / SayaSMS", "") for kind in kinds],
        ("provider calls", " / ".join(str(result["injected"]["provider_calls"][s]) for s in ("254sms", "sayasms")),
         "254sms / SayaSMS", ""),
        ("delivery reports duplicated / reordered",
         f"{result['injected']['reports_duplicated']} / {result['injected']['reports_reordered']}",
         f"of {result['injected']['reports_sent']}", ""),
        ("sender killed mid-batch", len(result["sender_kills"]), f">={result['scenario']['kills']}",
         len(result["sender_kills"]) >= result["scenario"]["kills"]),
        ("Idempotency-Key retries after a 5xx",
         f"{result['idempotency'].get('retried_202', 0)}/{result['idempotency'].get('forced_5xx', 0)}",
         "honoured" if result["idempotency"].get("supported") else "NOT honoured", ""),
        ("jobs in the send DLQ", result["jobs_in_send_dlq"], "", ""),
    ]
    lines = [f"{'figure':<42}{'value':>14}  {'goal':<18}ok", "-" * 78]
    for name, value, goal, ok in rows:
        mark = "" if ok == "" else ("yes" if ok else "NO")
        lines.append(f"{name:<42}{value!s:>14}  {goal:<18}{mark}")
    lines.append("-" * 78)
    lines.append("final statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(result["statuses"].items())))
    lines.append(f"settled: {result['settled']} (still waiting {result['still_waiting']}; reports quiet "
                 f"{result['reports_quiet']}); traffic "
                 f"{result['submitted_seconds']} s, whole run {result['total_seconds']} s")
    for kind, found in result["failures"].items():
        lines.append(f"{kind}: {found['count']}, e.g.")
        lines += [f"  {example}" for example in found["examples"][:3]]
    for kind, found in result.get("traced_to_kills", {}).items():
        lines.append(f"traced to a kill, {kind}: {found['count']}, e.g.")
        lines += [f"  {example}" for example in found["examples"][:3]]
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Scenario()
    parser.add_argument("--recipients", type=int, default=defaults.recipients)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--retries", type=int, default=defaults.retries)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--settle-seconds", type=float, default=defaults.settle_s)
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    args = parser.parse_args(argv)
    scenario = Scenario(args.recipients, args.kills, args.retries, args.seed, args.settle_seconds)
    from tests.e2e.conftest import E2E_PARAMETERS

    stack = LocalStack(ports=Ports(free_port(), free_port(), free_port()), log_dir=ROOT / ".tuma" / "faults-logs",
                       # As deployed: a job out of retries ends `failed` (retries_exhausted), not
                       # kept in the DLQ for an operator as the e2e stack keeps it for test_bulk.
                       parameters={**E2E_PARAMETERS, "SendDeadLetterAction": "fail"})
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # stop the stack too
    with stack:
        result = run_scenario(stack, scenario)
    print(table(result), flush=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed(result) else 0


if __name__ == "__main__":
    sys.exit(main())
