"""The accept path never loses or doubles, and a client can retry safely (issue 9 items 8 and 9,
Idempotency-Key). Each test is an interleaving that broke on 79cde19: a failure part way through
storing or queueing, then the client's retry."""

from __future__ import annotations

import importlib
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from conftest import api_event
from tuma.domain.scheduling import job_start

SEND = {"to": ["0712345678", "0722111222"], "from": "TUMA", "body": "Habari"}


def bulk(n: int, text: str = "Order {i} is ready") -> dict:
    # Long bodies, so that 10,000 messages make many jobs and many SendMessageBatch calls.
    return {"from": "TUMA", "messages": [{"to": f"07{12000000 + i}", "body": text.format(i=i) + " " + "x" * 400}
                                         for i in range(n)]}


@pytest.fixture(autouse=True)
def fresh_idempotency_client():
    # Its DynamoDB client is cached like the table's: one per test's moto.
    try:
        records = importlib.import_module("tuma.store.idempotency")
    except ImportError:  # (only on code from before Idempotency-Key, to see these tests fail there)
        yield
        return
    records._records.cache_clear()
    yield
    records._records.cache_clear()


@pytest.fixture
def post(functions, context, aws):
    def call(path: str, body, key: str | None = None, tenant: str = "tenant-a") -> tuple[int, dict, dict]:
        name = "bulk" if path.endswith("/bulk") else "send"
        headers = {"Idempotency-Key": key} if key is not None else None
        response = functions(name).handler(api_event("POST", path, body=body, tenant=tenant, headers=headers), context)
        headers = {**(response.get("headers") or {}),
                   **{name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}}
        return response["statusCode"], json.loads(response["body"]), headers
    return call


def queued_jobs(aws) -> list[dict]:
    return [json.loads(m["Body"]) for m in aws.receive(aws.queue_url)]


def message_ids(jobs: list[dict]) -> Counter:
    return Counter(r["message_id"] for job in jobs for r in job["recipients"])


class Flaky:
    """SendMessageBatch that fails its `fail_on`-th call (1-based) with `problem`, once."""

    def __init__(self, monkeypatch, fail_on: int, problem: Exception):
        from tuma.store import queue
        self.real, self.calls, self.fail_on, self.problem = queue._send_batch, 0, fail_on, problem
        monkeypatch.setattr(queue, "_send_batch", self)

    def __call__(self, bodies, delay_seconds=0):
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.problem
        return self.real(bodies, delay_seconds)


THROTTLED = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendMessageBatch")
TIMED_OUT = ReadTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com")


# --- item 9: stored but not (fully) queued -----------------------------------------------------

@pytest.mark.parametrize("problem", [THROTTLED, TIMED_OUT], ids=["throttle", "timeout"])
def test_a_bulk_failing_mid_queueing_is_finished_by_a_retry_with_the_same_key_with_no_new_ids_and_nothing_twice(
        post, aws, monkeypatch, problem):
    flaky = Flaky(monkeypatch, fail_on=3, problem=problem)
    body = bulk(10_000)

    status, first, _ = post("/v1/messages/bulk", body, key="order-batch-42")

    assert status == 503 and first["error"]["code"] == "accept_incomplete"
    assert flaky.calls == 3
    before = queued_jobs(aws)
    assert before and message_ids(before).most_common(1)[0][1] == 1

    status, retried, _ = post("/v1/messages/bulk", body, key="order-batch-42")

    assert status == 202, retried
    after = queued_jobs(aws)
    ids = message_ids(before + after)
    # Every accepted message on the queue exactly once, under the id the retry answered with.
    assert len(ids) == 10_000 and set(ids.values()) == {1}
    assert {i.rsplit("_", 1)[0] for i in ids} == {retried["batch_id"]}
    assert not {job_start(j) for j in before} & {job_start(j) for j in after}
    request = aws.item(f"T#tenant-a#M#{retried['batch_id']}", "REQ")
    assert {int(s) for s in request["queued_jobs"]} == {job_start(j) for j in before + after}


def test_a_bulk_without_a_key_failing_mid_queueing_leaves_no_message_queued_forever(post, aws, monkeypatch):
    """Nobody can finish it (a retry without a key is a new request): what SQS did not take is
    cancelled, so each message is either on the queue or `cancelled`, never stuck `queued`."""
    Flaky(monkeypatch, fail_on=2, problem=TIMED_OUT)

    status, first, _ = post("/v1/messages/bulk", bulk(10_000))

    assert status == 503 and first["error"]["code"] == "accept_incomplete"
    on_queue = message_ids(queued_jobs(aws))
    batch = next(iter(on_queue)).rsplit("_", 1)[0]
    # The request's items, and its message items under their shards (tuma.store.table.recipient_pk).
    items = [i for i in aws.items() if i["pk"].startswith(f"T#tenant-a#M#{batch}")]
    cancelled = {f"{batch}_{int(i['sk'][2:])}" for i in items
                 if i["sk"].startswith("R#") and i["status"] == "cancelled"}
    assert cancelled and not cancelled & set(on_queue)
    assert len(cancelled) + len(on_queue) == 10_000
    # A copy of a cancelled job that SQS took despite the timeout finds its job item cancelled.
    assert {i["state"] for i in items if i["sk"].startswith("J#")} == {"cancelled"}


def test_a_send_whose_store_failed_is_a_503_in_tuma_shape_and_a_retry_sends_once(post, aws, monkeypatch):
    from tuma.store import messages
    real, calls = messages.put_request, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "PutItem")
        return real(*args, **kwargs)
    monkeypatch.setattr(messages, "put_request", failing_once)

    status, first, _ = post("/v1/messages", SEND, key="k-1")
    assert status == 503 and set(first) == {"error"} and first["error"]["code"] == "unavailable"
    assert queued_jobs(aws) == []

    status, retried, _ = post("/v1/messages", SEND, key="k-1")
    assert status == 202
    assert message_ids(queued_jobs(aws)) == Counter({f"{retried['message_id']}_1": 1, f"{retried['message_id']}_2": 1})


def test_an_invocation_killed_after_storing_is_finished_by_a_retry_under_the_same_ids(post, aws, monkeypatch):
    """The function died between put_request and SendMessageBatch (no exception to catch: the
    key's record stays in progress until the invocation's deadline, then the retry takes over)."""
    from tuma.store import queue
    from tuma.store import idempotency

    class Killed(BaseException):  # not an Exception: nothing in the handler can see it
        pass

    def killed(jobs, delay_seconds=0):
        raise Killed
    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(queue, "enqueue", killed)
        post("/v1/messages", SEND, key="k-killed")
    assert queued_jobs(aws) == []
    stored = [i for i in aws.items() if i["sk"] == "REQ"]
    assert len(stored) == 1
    # Until the killed invocation's deadline, the key is in progress: 409, nothing done.
    status, busy, _ = post("/v1/messages", SEND, key="k-killed")
    assert status == 409 and busy["error"]["code"] == "request_in_progress"
    # After it, the retry finishes the queueing under the stored id.
    record = next(i for i in aws.items() if i["pk"] == "T#tenant-a#IDEM")
    aws.table.update_item(Key={"pk": record["pk"], "sk": record["sk"]},
                          UpdateExpression="SET in_progress_expiration = :past", ExpressionAttributeValues={":past": 1})
    assert idempotency.EXPIRES_S == 24 * 3600

    status, retried, _ = post("/v1/messages", SEND, key="k-killed")

    assert status == 202 and retried["message_id"] == stored[0]["request_id"]
    assert retried["created_at"] == stored[0]["created_at"]
    assert len(message_ids(queued_jobs(aws))) == 2


# --- Idempotency-Key: Stripe's semantics ------------------------------------------------------

@pytest.mark.parametrize("path,body,id_field", [("/v1/messages", SEND, "message_id"),
                                                ("/v1/messages/bulk", bulk(3), "batch_id")])
def test_the_same_key_and_body_gets_the_first_answer_again_and_nothing_new_is_queued(post, aws, path, body, id_field):
    status, first, headers = post(path, body, key="same-key")
    assert status == 202 and "Idempotent-Replayed" not in headers
    jobs = queued_jobs(aws)
    assert jobs

    status, again, headers = post(path, body, key="same-key")

    assert status == 202 and again == first and again[id_field] == first[id_field]
    assert headers.get("Idempotent-Replayed") == "true"
    assert queued_jobs(aws) == []


def test_without_a_key_each_post_is_a_new_request(post, aws):
    _, first, _ = post("/v1/messages", SEND)
    _, second, _ = post("/v1/messages", SEND)
    assert first["message_id"] != second["message_id"]


def test_the_same_key_with_another_body_is_a_422(post, aws):
    post("/v1/messages", SEND, key="reused")
    queued_jobs(aws)

    status, body, _ = post("/v1/messages", {**SEND, "body": "Something else"}, key="reused")

    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["details"] == [{"field": "Idempotency-Key", "reason": "already used with another body"}]
    assert queued_jobs(aws) == []


def test_a_request_still_in_progress_is_a_409(post, aws, monkeypatch):
    from tuma.store import queue
    real, inner = queue.enqueue, []

    def enqueue_while_the_client_retries(jobs, delay_seconds=0):
        if not inner:
            inner.append(post("/v1/messages", SEND, key="slow"))
        return real(jobs, delay_seconds)
    monkeypatch.setattr(queue, "enqueue", enqueue_while_the_client_retries)

    status, _, _ = post("/v1/messages", SEND, key="slow")

    assert status == 202
    (retry_status, retry_body, _), = inner
    assert retry_status == 409 and retry_body["error"]["code"] == "request_in_progress"
    assert len(message_ids(queued_jobs(aws))) == 2


def test_keys_are_per_tenant(post, aws):
    _, a, _ = post("/v1/messages", SEND, key="shared", tenant="tenant-a")
    status, b, headers = post("/v1/messages", SEND, key="shared", tenant="tenant-b")

    assert status == 202 and "Idempotent-Replayed" not in headers
    assert a["message_id"] != b["message_id"]
    assert {j["tenant_id"] for j in queued_jobs(aws)} == {"tenant-a", "tenant-b"}


def test_a_refused_request_leaves_no_record_so_the_corrected_retry_is_not_a_422(post, aws):
    status, _, _ = post("/v1/messages", {**SEND, "from": "not a sender id!"}, key="fix-me")
    assert status == 400

    status, _, _ = post("/v1/messages", {**SEND, "from": "not a sender id!"}, key="fix-me")
    assert status == 400  # the same answer again, not a replayed 202 nor a 409


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "a\nb"])
def test_an_unusable_idempotency_key_is_a_400(post, aws, key):
    status, body, _ = post("/v1/messages", SEND, key=key)
    assert status == 400 and body["error"]["code"] == "invalid_idempotency_key"
    assert queued_jobs(aws) == []


def test_a_scheduled_send_retried_with_its_key_after_its_time_answers_as_the_first_did(post, aws):
    """A retry is checked as of the first attempt: a scheduled_at that has passed since is not a 400."""
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    status, first, _ = post("/v1/messages", {**SEND, "scheduled_at": at.isoformat()}, key="sched")
    assert status == 202
    time.sleep(max((at - datetime.now(UTC)).total_seconds() + 0.1, 0))

    status, again, _ = post("/v1/messages", {**SEND, "scheduled_at": at.isoformat()}, key="sched")

    assert status == 202 and again == first


def test_a_key_record_that_cannot_be_written_is_a_503_in_tuma_shape_and_nothing_is_queued(post, aws, monkeypatch):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    def unavailable(self, data_record):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                          "PutItem")
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_put_record", unavailable)

    status, body, _ = post("/v1/messages", SEND, key="k-store-down")

    assert status == 503 and body["error"]["code"] == "unavailable"
    assert queued_jobs(aws) == []
