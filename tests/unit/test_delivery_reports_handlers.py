"""The webhook, callback-dispatch and callback handlers, called with built events (moto)."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from conftest import create_table
from tuma.domain.callbacks import verify
from tuma.store import table as table_module
from tuma.store import tenants
from tuma.store.table import recipient_pk

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok_" + "x" * 40


class Context:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load(function: str):
    """functions/<function>/app.py as its own module (every handler file is called app.py)."""
    spec = importlib.util.spec_from_file_location(f"{function}_app", ROOT / "functions" / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "TABLE_NAME": "tuma-test", "CONFIG_PATH": "/tuma/test", "POWERTOOLS_TRACE_DISABLED": "true",
                        "POWERTOOLS_METRICS_NAMESPACE": "Tuma", "CALLBACK_NETWORK": "loopback",
                        "CALLBACK_BACKOFF_S": "7"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        create_table(boto3.client("dynamodb"))  # the table as conftest makes it for every unit test
        boto3.client("ssm").put_parameter(Name="/tuma/test/webhook/sayasms_token", Value=TOKEN, Type="SecureString")
        queue_url = boto3.client("sqs").create_queue(QueueName="callbacks")["QueueUrl"]
        monkeypatch.setenv("CALLBACK_QUEUE_URL", queue_url)
        table_module.forget_clients()
        tenants._cache.clear()
        from aws_lambda_powertools.utilities import parameters
        parameters.clear_caches()
        yield queue_url
        table_module.forget_clients()


# --- the webhook -----------------------------------------------------------------------------------

def url_event(body: str | None, token: str | None, path: str = "/v1/webhooks/sayasms", method: str = "POST") -> dict:
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
             "headers": {"content-type": "application/json"},
             "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
                                "requestId": "r", "stage": "$default", "domainName": "x.lambda-url.us-east-1.on.aws"},
             "isBase64Encoded": False}
    if token is not None:
        event["rawQueryString"] = f"token={token}"
        event["queryStringParameters"] = {"token": token}
    if body is not None:
        event["body"] = body
    return event


REPORT = json.dumps({"event": "message.delivered", "message_id": "msg_SAYA_1", "to": "+254712345678",
                     "status": "delivered", "network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z",
                     "latency_ms": 2489})


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN[:-1]])
def test_the_webhook_answers_401_without_its_token(aws, token):
    answer = load("webhook").handler(url_event(REPORT, token), Context())

    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("body, code", [("{", "invalid_json"), (None, "invalid_request"),
                                        ('{"event": "message.lost", "message_id": "m"}', "invalid_report"),
                                        # Found by test_fuzz_doors.py: an unhashable `event` was a 500.
                                        ('{"event": ["message.delivered"], "message_id": "m"}', "invalid_report"),
                                        ('{"event": {"a": 1}, "message_id": "m"}', "invalid_report")])
def test_the_webhook_answers_400_to_a_malformed_body(aws, body, code):
    answer = load("webhook").handler(url_event(body, TOKEN), Context())

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == code


def test_the_webhook_keeps_a_report_for_an_unknown_id_and_answers_200(aws):
    webhook = load("webhook")

    first = webhook.handler(url_event(REPORT, TOKEN), Context())
    again = webhook.handler(url_event(REPORT, TOKEN), Context())

    assert first["statusCode"] == 200 and json.loads(first["body"]) == {"received": True, "outcome": "parked"}
    assert again["statusCode"] == 200
    parked = table_module.table().query(KeyConditionExpression="pk = :pk",
                                        ExpressionAttributeValues={":pk": "PMSG#sayasms#msg_SAYA_1"})["Items"]
    assert [p["sk"] for p in parked] == ["EVT#final"] and parked[0]["event"] == "message.delivered"


@pytest.mark.parametrize("message_id", ["msg_SAYA_²", "msg_SAYA_١٢", "msg_SAYA_" + "9" * 150, "_1", "msg_"])
def test_the_webhook_parks_a_report_whatever_its_id_looks_like(aws, message_id):
    """Whatever its shape, an id is an id: looked up, then parked."""
    body = json.dumps({**json.loads(REPORT), "message_id": message_id})

    answer = load("webhook").handler(url_event(body, TOKEN), Context())

    assert answer["statusCode"] == 200 and json.loads(answer["body"])["outcome"] == "parked"


def with_ref(event: dict, ref: str) -> dict:
    """The event as a Function URL gives it for ...?token=<t>&ref=<ref> (values decoded)."""
    from urllib.parse import quote

    event["rawQueryString"] += f"&ref={quote(ref, safe='')}"
    event["queryStringParameters"]["ref"] = ref
    return event


CALL_REF = "01HX4ZQ9GKD2VP7C9XR3MNBVA0.1"


@pytest.mark.parametrize("ref", ["", "x", ".", "..", CALL_REF + ".1", CALL_REF.lower(), CALL_REF[:-1] + "0",
                                 CALL_REF[:-1] + "-1", CALL_REF[:-1] + "99999", CALL_REF + "\n", " " + CALL_REF,
                                 "01HX4ZQ9GKD2VP7C9XR3MNBVA١.1", "0" * 26 + ".١", "A" * 10_000 + ".1",
                                 CALL_REF + "," + CALL_REF, "' OR 1=1 --", "{\"S\": \"x\"}", "%00", CALL_REF])
def test_the_webhook_answers_200_whatever_the_ref_and_never_500(aws, ref):
    """`ref` only narrows the look-up: a malformed one is ignored, a well-formed unknown one misses."""
    answer = load("webhook").handler(with_ref(url_event(REPORT, TOKEN), ref), Context())

    assert answer["statusCode"] == 200 and json.loads(answer["body"])["outcome"] == "parked"


@pytest.mark.parametrize("message_id", ["parked", "kind", "expires_at", "tenant_id", "request_id", "pk", "sk"])
def test_an_id_spelled_like_a_block_attribute_is_parked_not_a_500(aws, message_id):
    """A parked report leaves a block holding only its marks; an id named like one of the block's
    own attributes must not be read as a link from it."""
    webhook = load("webhook")
    assert webhook.handler(with_ref(url_event(REPORT, TOKEN), CALL_REF), Context())["statusCode"] == 200
    body = json.dumps({**json.loads(REPORT), "message_id": message_id})

    answer = webhook.handler(with_ref(url_event(body, TOKEN), CALL_REF), Context())

    assert answer["statusCode"] == 200 and json.loads(answer["body"])["outcome"] == "parked"


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_other_routes_are_json_404(aws):
    answer = load("webhook").handler(url_event(REPORT, TOKEN, path="/"), Context())
    assert answer["statusCode"] == 404 and json.loads(answer["body"])["error"]["code"] == "not_found"


# --- stream → callback queue -------------------------------------------------------------------------

MESSAGE_PK = recipient_pk("acme", "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4", 1)


def stream_record(old_status: str | None, new_status: str, callback_url: str | None = "http://127.0.0.1:9/cb") -> dict:
    def image(status):
        item = {"pk": {"S": MESSAGE_PK}, "sk": {"S": "R#000001"},
                "status": {"S": status}, "message_id": {"S": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1"},
                "number": {"S": "+254712345678"}, "updated_at": {"S": "2026-03-13T14:30:00.000Z"},
                "latency_ms": {"N": "2489"}}
        if callback_url:
            item["callback_url"] = {"S": callback_url}
        return item

    dynamodb = {"Keys": {"pk": {"S": MESSAGE_PK}, "sk": {"S": "R#000001"}},
                "NewImage": image(new_status), "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if old_status:
        dynamodb["OldImage"] = image(old_status)
    return {"eventID": "1", "eventName": "MODIFY" if old_status else "INSERT", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": dynamodb,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"}


def queued(queue_url: str) -> list[dict]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_status_changes_with_a_callback_url_become_jobs(aws):
    event = {"Records": [stream_record("sent", "delivered"), stream_record(None, "sending"),
                         stream_record("sent", "sent"), stream_record("sent", "failed", callback_url=None)]}

    answer = load("callback_dispatch").handler(event, Context())

    assert answer == {"batchItemFailures": []}
    jobs = queued(aws)
    assert len(jobs) == 1
    assert jobs[0]["payload"]["status"] == "delivered" and jobs[0]["payload"]["latency_ms"] == 2489
    assert "+254712345678" not in json.dumps(jobs[0])


# --- the callback sender ----------------------------------------------------------------------------

class Receiver:
    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.got: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.got.append({"body": body, "headers": dict(self.headers)})
                self.send_response(receiver.statuses[min(len(receiver.got), len(receiver.statuses)) - 1])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


def sqs_event(queue_url: str, job: dict, receive_count: int = 1) -> dict:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(job))
    message = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"][0]
    return {"Records": [{"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                         "body": message["Body"], "attributes": {"ApproximateReceiveCount": str(receive_count)},
                         "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:callbacks"}]}


def job_for(url: str) -> dict:
    return {"tenant_id": "acme", "callback_url": url,
            "payload": {"id": "msg_X_1:delivered", "message_id": "msg_X_1", "status": "delivered"}}


@pytest.fixture
def receiver_ok():
    receiver = Receiver([200])
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def receiver_down():
    receiver = Receiver([503])
    yield receiver
    receiver.server.shutdown()


def test_a_callback_is_signed_with_the_tenants_secret(aws, receiver_ok):
    secret, _ = tenants.ensure_signing_secret("acme")

    answer = load("callback").handler(sqs_event(aws, job_for(receiver_ok.url)), Context())

    assert answer == {"batchItemFailures": []}
    [got] = receiver_ok.got
    assert got["headers"]["Tuma-Event-Id"] == "msg_X_1:delivered"
    timestamp = int(got["headers"]["Tuma-Signature"].split(",")[0][2:])
    assert verify(secret, got["headers"]["Tuma-Signature"], got["body"], now=timestamp)
    assert json.loads(got["body"])["status"] == "delivered"


def test_a_failed_callback_is_retried_later_with_backoff(aws, receiver_down, monkeypatch):
    tenants.ensure_signing_secret("acme")
    callback = load("callback")
    delays = []
    monkeypatch.setattr(callback.callbacks, "delay_retry", lambda handle, seconds: delays.append(seconds))
    event = sqs_event(aws, job_for(receiver_down.url), receive_count=3)

    answer = callback.handler(event, Context())

    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert delays == [28]  # CALLBACK_BACKOFF_S 7, third attempt: 7 · 2²


def test_an_unreachable_endpoint_is_retried_too(aws):
    tenants.ensure_signing_secret("acme")
    callback = load("callback")

    answer = callback.handler(sqs_event(aws, job_for("http://127.0.0.1:9/nothing-listens")), Context())

    assert len(answer["batchItemFailures"]) == 1


def test_callbacks_to_private_addresses_are_dropped_on_aws(aws, receiver_ok, monkeypatch):
    monkeypatch.setenv("CALLBACK_NETWORK", "public")
    tenants.ensure_signing_secret("acme")

    answer = load("callback").handler(sqs_event(aws, job_for(receiver_ok.url)), Context())

    assert answer == {"batchItemFailures": []} and receiver_ok.got == []


def test_the_local_stack_calls_back_loopback_only_without_resolving_other_hosts(aws, monkeypatch):
    tenants.ensure_signing_secret("acme")
    callback = load("callback")
    monkeypatch.setattr(callback.callback_http.socket, "getaddrinfo", lambda *a, **k: pytest.fail("no DNS query locally"))
    monkeypatch.setattr(callback.callback_http, "HTTPSConnectionPool", lambda *a, **k: pytest.fail("no call out of loopback"))

    answer = callback.handler(sqs_event(aws, job_for("https://yourapp.com/webhooks/sms")), Context())

    assert answer == {"batchItemFailures": []}
