"""Issue 9 items 6 and 13: every message with a callback_url gets its callbacks (bulk batches
too), and one slow receiver cannot make the others wait, time out or be called twice."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from tuma.domain.callbacks import callback_job
from tuma.domain.ids import new_batch_id, new_request_id
from tuma.store import tenants
from tuma.store.callbacks import message_change
from tuma.store.table import message_pk, recipient_pk

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def image(request_id: str, status: str, index: int = 1) -> dict:
    return {"pk": recipient_pk("acme", request_id, index), "sk": f"R#{index:06d}", "status": status,
            "message_id": f"{request_id}_{index}", "callback_url": "https://yourapp.example/cb",
            "updated_at": "2026-12-02T10:00:00.000Z"}


@pytest.mark.parametrize("request_id", [new_batch_id(), new_request_id()])
def test_bulk_and_single_sends_both_get_their_callbacks(request_id):
    job = callback_job(message_change(image(request_id, "queued"), image(request_id, "sent", 7)))

    assert job is not None
    assert job["tenant_id"] == "acme"
    assert job["payload"]["request_id"] == request_id
    assert job["payload"]["message_id"] == f"{request_id}_7"


@pytest.mark.parametrize("pk", ["T#acme#M#bat_NOTAULID#1", "X#acme#M#" + new_batch_id() + "#1",
                                "T#acme#M#" + new_batch_id() + "_3#1", "T#acme#M#" + new_batch_id() + "#10",
                                message_pk("acme", new_batch_id())])  # the last two: no message's shard
def test_a_key_that_is_not_a_request_gets_no_callback(pk):
    new = {**image(new_batch_id(), "sent"), "pk": pk}
    assert message_change(None, new) is None


def test_the_dispatcher_queues_a_bulk_batchs_status_change(functions, context, aws, monkeypatch):
    queue_url = aws.sqs.create_queue(QueueName="callbacks")["QueueUrl"]
    monkeypatch.setenv("CALLBACK_QUEUE_URL", queue_url)
    batch = new_batch_id()
    serialise = boto3.dynamodb.types.TypeSerializer().serialize
    record = {"eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
              "dynamodb": {"Keys": {}, "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES",
                           "OldImage": {k: serialise(v) for k, v in image(batch, "sent", 2).items()},
                           "NewImage": {k: serialise(v) for k, v in image(batch, "delivered", 2).items()}}}

    answer = functions("callback_dispatch").handler({"Records": [record]}, context)

    assert answer == {"batchItemFailures": []}
    [queued] = aws.receive(queue_url)
    assert json.loads(queued["Body"])["payload"]["id"] == f"{batch}_2:delivered"


# --- the callback function: concurrent, time-checked, only the undelivered fail ---------------

class Receiver:
    """A loopback receiver. With `together`, every POST waits (up to 4 s, less than the read
    timeout) until that many are in flight at once, and answers 200 only if they were."""

    def __init__(self, status: int = 200, together: int = 0):
        self.got: list[str] = []
        barrier = threading.Barrier(together, timeout=4) if together else None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                receiver.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["id"])
                code = status
                if barrier:
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        code = 599
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def record(n: int, url: str) -> dict:
    job = {"tenant_id": "acme", "callback_url": url,
           "payload": {"id": f"msg_X_{n}:sent", "message_id": f"msg_X_{n}", "status": "sent"}}
    return {"messageId": f"m{n}", "receiptHandle": f"r{n}", "body": json.dumps(job),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:callbacks", "awsRegion": "us-east-1"}


@pytest.fixture
def callback(functions, aws, monkeypatch):
    module = functions("callback")
    monkeypatch.setattr(module, "NETWORK", "loopback")
    delays: dict[str, int] = {}
    monkeypatch.setattr(module.callbacks, "delay_retry", lambda handle, seconds: delays.__setitem__(handle, seconds))
    tenants._cache.clear()
    tenants.ensure_signing_secret("acme")
    module.delays = delays
    return module


class Remaining:
    def __init__(self, context, ms: int):
        self._context, self._ms = context, ms

    def __getattr__(self, name):
        return getattr(self._context, name)

    def get_remaining_time_in_millis(self) -> int:
        return self._ms


def test_the_callbacks_of_a_batch_are_posted_at_once(callback, context):
    slow = Receiver(together=5)  # sequential POSTs would each wait alone, then fail
    try:
        answer = callback.handler({"Records": [record(n, slow.url) for n in range(1, 6)]}, context)
    finally:
        slow.close()

    assert answer == {"batchItemFailures": []}
    assert sorted(slow.got) == [f"msg_X_{n}:sent" for n in range(1, 6)]


def test_only_the_undelivered_callbacks_are_reported_as_failures(callback, context):
    ok, down = Receiver(200), Receiver(503)
    try:
        records = [record(1, ok.url), record(2, down.url), record(3, ok.url), record(4, down.url)]
        answer = callback.handler({"Records": records}, context)
    finally:
        ok.close()
        down.close()

    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["m2", "m4"]
    assert sorted(ok.got) == ["msg_X_1:sent", "msg_X_3:sent"]  # delivered once, not to be POSTed again
    assert set(callback.delays) == {"r2", "r4"}


def test_no_post_is_started_without_time_to_finish_it(callback, context):
    receiver = Receiver(200)
    try:
        short = Remaining(context, int((callback.callback_http.BUDGET_S - 1) * 1000))
        answer = callback.handler({"Records": [record(1, receiver.url), record(2, receiver.url)]}, short)
    finally:
        receiver.close()

    assert receiver.got == []
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["m1", "m2"]
    assert callback.delays == {"r1": callback.SKIPPED_RETRY_S, "r2": callback.SKIPPED_RETRY_S}


# --- the SayaSMS webhook (issue 10): token rotation, hostile bodies ----------------------------

from test_delivery_reports_handlers import REPORT, url_event  # noqa: E402  (the webhook's event shape)

CURRENT, PREVIOUS = "tok_current_" + "c" * 32, "tok_previous_" + "p" * 32


@pytest.fixture
def webhook(functions, context, aws):
    from aws_lambda_powertools.utilities import parameters

    aws.ssm.put_parameter(Name="/tuma/test/webhook/sayasms_token", Value=CURRENT, Type="SecureString")
    module = functions("webhook")

    def call(token: str, body: str | None = REPORT, base64: bool = False, content_type: str = "application/json"):
        event = url_event(body, token)
        event["headers"]["content-type"] = content_type
        event["isBase64Encoded"] = base64
        parameters.clear_caches()
        answer = module.handler(event, context)
        return answer["statusCode"], json.loads(answer["body"])
    return call


def test_during_a_rotation_the_webhook_takes_the_current_and_the_previous_token(webhook, aws):
    from tuma import settings

    assert settings.env("CONFIG_PATH") == "/tuma/test"
    aws.ssm.put_parameter(Name="/tuma/test/webhook/sayasms_token_previous", Value=PREVIOUS, Type="SecureString")

    assert webhook(CURRENT)[0] == 200
    assert webhook(PREVIOUS)[0] == 200  # a report for a message sent before the rotation
    assert webhook("tok_other")[0] == 401

    aws.ssm.delete_parameter(Name="/tuma/test/webhook/sayasms_token_previous")  # the window closes

    assert webhook(PREVIOUS)[0] == 401
    assert webhook(CURRENT)[0] == 200


def test_a_non_utf8_octet_stream_body_with_a_valid_token_is_a_400(webhook):
    import base64

    body = base64.b64encode(b'{"event": "message.delivered", "message_id": "\xff\xfe"}').decode()

    code, answer = webhook(CURRENT, body, base64=True, content_type="application/octet-stream")

    assert code == 400
    assert answer["error"]["code"] == "invalid_report" and set(answer["error"]) == {"code", "message", "details"}


def test_a_body_over_64_kib_is_a_413_in_tumas_error_shape(webhook):
    body = json.dumps({**json.loads(REPORT), "padding": "x" * (64 * 1024)})

    code, answer = webhook(CURRENT, body)

    assert code == 413
    assert answer["error"]["code"] == "payload_too_large" and answer["error"]["details"] == []
