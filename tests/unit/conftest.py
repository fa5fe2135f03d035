"""Shared fixtures of the unit tests: environment, moto-backed AWS, the provider simulators, handlers.

Nothing here leaves this machine: AWS is moto in-process (`mock_aws`), the providers are the
simulators of local/simulators served on free loopback ports.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_NAME = "tuma-test"
CONFIG_PATH = "/tuma/test"
SEND_QUEUE = "tuma-test-send"
SEND_DLQ = "tuma-test-send-dlq"

SMS254_USERNAME = "tuma"
SMS254_API_KEY = "key254-test"
SAYASMS_API_KEY = "sk_test_tuma"

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"

# Powertools' Logger, Tracer and Metrics read their settings when tuma.observability is first
# imported, and boto3 reads credentials when a client is made: these must hold before any test
# module (or handler) is imported, so they are set here once, and again per test below.
STATIC_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "tuma-test",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Tuma",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
os.environ.update(STATIC_ENV)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _clear_caches() -> None:
    # Imported here so that STATIC_ENV is in place first.
    from tuma.domain import jobs
    from tuma.store import queue, table

    table.forget_clients()
    queue._sqs.cache_clear()
    jobs.schema.cache_clear()
    parameters.clear_caches()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment template.yaml gives the functions; provider URLs come with the simulators."""
    for name, value in {
        **STATIC_ENV,
        "TABLE_NAME": TABLE_NAME,
        "CONFIG_PATH": CONFIG_PATH,
        "DEFAULT_PROVIDER": "sayasms",
        "SEND_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{SEND_QUEUE}",
        "SEND_DLQ_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{SEND_DLQ}",
        "SENDER_TIMEOUT_S": "30",
        "NO_PROXY": "127.0.0.1,localhost,::1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (*PROXY_VARIABLES, "SMS254_BASE_URL", "SAYASMS_BASE_URL", "SAYASMS_CALLBACK_URL",
                 "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    from tuma.providers import http

    # A fresh provider session per test: no keep-alive connection outlives its simulator.
    monkeypatch.setattr(http, "_session", None)
    _clear_caches()
    yield
    _clear_caches()


# --- AWS (moto) ------------------------------------------------------------------------------


@dataclass
class Aws:
    table: Any  # boto3 DynamoDB Table resource
    sqs: Any
    ssm: Any
    queue_url: str
    dlq_url: str

    def receive(self, queue_url: str) -> list[dict]:
        """Every message now on a queue (bodies and message attributes), removing them."""
        messages: list[dict] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return messages
            messages += batch
            for message in batch:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def items(self) -> list[dict]:
        found, start = [], None
        while True:
            page = self.table.scan(**({"ExclusiveStartKey": start} if start else {}))
            found += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def item(self, pk: str, sk: str) -> dict | None:
        return self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")


def create_table(client) -> None:
    """The table exactly as template.yaml's `Table` defines it."""
    client.create_table(
        TableName=TABLE_NAME,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        SSESpecification={"Enabled": True},
    )
    client.update_time_to_live(TableName=TABLE_NAME,
                               TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True})


@pytest.fixture(scope="session")
def _one_kms_key_per_spec() -> Iterator[None]:
    """The SSM SecureStrings make moto create SSM's default KMS key, a fresh 2048-bit RSA key in
    every test (about 40 ms of CPU each); one key per key spec serves every test as well."""
    from moto.kms import models as kms_models

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kms_models, "generate_private_key", functools.cache(kms_models.generate_private_key))
        yield


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, _one_kms_key_per_spec: None) -> Iterator[Aws]:
    """moto with the table, the send queue and its DLQ, and the providers' SSM SecureStrings."""
    # Keep boto3's default session between tests: its service models stay loaded (moto would
    # otherwise drop it, and every test would pay ~30 ms per client to load them again).
    from local import moto_partiql, moto_threads

    moto_partiql.install()  # the sender's batched INSERTs, as DynamoDB and MiniStack answer them
    moto_threads.install()  # each request atomic, as DynamoDB's are (the expirer's threads share counters)
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName=SEND_DLQ, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(QueueName=SEND_QUEUE, Attributes={
            "VisibilityTimeout": "180",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        })["QueueUrl"]
        monkeypatch.setenv("SEND_QUEUE_URL", queue_url)
        monkeypatch.setenv("SEND_DLQ_URL", dlq_url)
        ssm = boto3.client("ssm", region_name=REGION)
        for name, value in {"254sms/username": SMS254_USERNAME, "254sms/api_key": SMS254_API_KEY,
                            "sayasms/api_key": SAYASMS_API_KEY}.items():
            ssm.put_parameter(Name=f"{CONFIG_PATH}/providers/{name}", Value=value, Type="SecureString")
        yield Aws(table=boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME), sqs=sqs, ssm=ssm,
                  queue_url=queue_url, dlq_url=dlq_url)


# --- the provider simulators -------------------------------------------------------------------


@dataclass
class Sim:
    """A running simulator with its control routes, reached over HTTP as any test client would."""

    running: Any  # local.simulators.common.RunningSimulator
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False

    @property
    def url(self) -> str:
        return self.running.url

    def requests(self) -> list[dict]:
        """Provider calls received (control routes excluded), faulted ones included."""
        answer = self.http.get(f"{self.url}/_sim/requests", timeout=5)
        answer.raise_for_status()
        return answer.json()["requests"]

    def answered(self) -> list[dict]:
        """Provider calls the simulator really handled (no fault applied)."""
        return [r for r in self.requests() if "fault" not in r]

    def faults(self, spec: dict) -> None:
        answer = self.http.post(f"{self.url}/_sim/faults", json=spec, timeout=5)
        assert answer.status_code == 200, answer.text

    def messages(self) -> list[dict]:
        """SayaSMS only: every message it accepted, one per recipient."""
        answer = self.http.get(f"{self.url}/_sim/messages", timeout=5)
        answer.raise_for_status()
        return answer.json()["messages"]


@pytest.fixture
def sim254(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    from local.simulators.common import start
    from local.simulators.sms254 import Sms254Simulator

    with start(Sms254Simulator(username=SMS254_USERNAME, api_key=SMS254_API_KEY, credits=1000)) as running:
        monkeypatch.setenv("SMS254_BASE_URL", running.url)
        sim = Sim(running)
        yield sim
        sim.http.close()


@pytest.fixture
def simsaya(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    from local.simulators.common import start
    from local.simulators.sayasms import SayaSmsSimulator

    simulator = SayaSmsSimulator(api_key=SAYASMS_API_KEY, balance="1000.00")
    simulator.callbacks.configure({"enabled": False})  # no delivery reports: nobody listens in unit tests
    with start(simulator) as running:
        monkeypatch.setenv("SAYASMS_BASE_URL", running.url)
        sim = Sim(running)
        yield sim
        sim.http.close()


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback URL whose port refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def short_read_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    """Providers' read timeout cut to half a second, so that a hanging simulator is quick to spot."""
    from tuma.providers import http

    monkeypatch.setattr(http, "READ_TIMEOUT_S", 0.5)
    return 0.5


# --- Lambda handlers and their events ---------------------------------------------------------


@dataclass
class LambdaContext:
    """What Powertools' decorators read from the Lambda context."""

    function_name: str = "tuma-test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tuma-test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/tuma-test-function"
    log_stream_name: str = "2026/03/13/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


_HANDLERS: dict[str, ModuleType] = {}


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as module `tuma_fn_<name>` (every handler file is called app.py)."""
    if name not in _HANDLERS:
        module_name = f"tuma_fn_{name}"
        spec = importlib.util.spec_from_file_location(module_name, REPO / "functions" / name / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        _HANDLERS[name] = module
    return _HANDLERS[name]


@pytest.fixture
def functions() -> Callable[[str], ModuleType]:
    return load_function


def api_event(method: str, path: str, *, body: str | dict | list | None = None, tenant: str | None = "tenant-a",
              resource: str | None = None, path_parameters: dict | None = None,
              headers: dict | None = None) -> dict:
    """An API Gateway REST (v1) proxy event, as it reaches a function behind the TOKEN authorizer."""
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer tuma_test", **(headers or {})}
    authorizer = {"principalId": tenant, "tenant_id": tenant, "integrationLatency": 12} if tenant else None
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource or path,
            "httpMethod": method,
            "extendedRequestId": "extended-id",
            "requestTime": "13/Mar/2026:14:30:00 +0000",
            "path": f"/test{path}",
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "test",
            "domainPrefix": "abcdef1234",
            "requestTimeEpoch": 1773412200000,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "apiId": "abcdef1234",
            "authorizer": authorizer,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def sqs_event(bodies: list[str], queue: str = SEND_QUEUE) -> dict:
    """An SQS event as the event source mapping delivers it; message ids are `m<n>`."""
    return {"Records": [{
        "messageId": f"m{n}",
        "receiptHandle": f"receipt-{n}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1773412200000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1773412200001"},
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    } for n, body in enumerate(bodies, start=1)]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Clock:
    """A test's clock: a callable giving `now`, moved on by hand."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@contextmanager
def table_hook(event: str, handler: Callable) -> Iterator[None]:
    """`handler` on the table clients' botocore `event` (e.g. "before-call.dynamodb") inside the
    block only: the clients outlive the test (the default session is kept). Both clients: the
    usual one and the one that never retries (tuma.store.table.single_attempt_table)."""
    from tuma.store import table as table_module

    clients = [table_module.table().meta.client, table_module.single_attempt_table().meta.client]
    for client in clients:
        client.meta.events.register(event, handler)
    try:
        yield
    finally:
        for client in clients:
            client.meta.events.unregister(event, handler)
