"""The AWS cost of the whole life of a message, from counted requests (bench/run.py's cost figures).

Each scenario runs the real handlers in this process against moto (AWS) and the two provider
simulators (100 ms latency), as the deployed stack would run them: the API request (and the
authorizer at its cache rate), the sender per SQS batch, every delivery report SayaSMS's simulator
really posts (each one webhook invocation), the table's stream records that pass the dispatch
function's FilterCriteria (read from template.yaml), each callback job, and one expirer run.
Every AWS request is counted with a botocore hook and billed as AWS bills it (DynamoDB units from
item sizes, SQS per 64 KiB); Lambda GB-s from each invocation's measured duration and the memory
and architecture template.yaml configures; log bytes as the handlers write them (plus Lambda's
platform lines unless the system log level drops them), and the API's access log line per request
(the template's format, filled in); X-Ray traces at the configured sampling; DynamoDB storage of
what a message leaves in the table (bytes scanned after the run, kept until each item's TTL; with
point-in-time recovery when the template turns it on). Prices are in bench/prices.py.

Durations are measured here, against moto in the same process (its DynamoDB work is counted in
the handler's time, about what a network round trip to DynamoDB costs on AWS)."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "tuma"), str(ROOT / "bench")]

from prices import ASSUMPTIONS, PRICES_USD  # noqa: E402

REGION, ACCOUNT, TENANT = "us-east-1", "123456789012", "bench"
TABLE, CONFIG_PATH, TOKEN = "tuma-bench", "/tuma/bench", "tok_bench_" + "x" * 30
FUNCTIONS = {"authorizer": "AuthorizerFunction", "send": "SendFunction", "bulk": "BulkFunction",
             "status": "StatusFunction", "sender": "SenderFunction", "webhook": "WebhookFunction",
             "expirer": "ExpirerFunction", "callback_dispatch": "CallbackDispatchFunction",
             "callback": "CallbackFunction"}
API_FUNCTIONS = {"send", "bulk", "status"}


# --- template.yaml: what each function is configured with ---------------------------------------

class _Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


def template() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)


def _resolve(value, parameters: dict):
    """A property's value with `!Ref Parameter` as the parameter's default, `!If` as its false
    branch (the AWS side of IsLocal)."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    if isinstance(value, dict) and set(value) == {"If"}:
        return _resolve(value["If"][2], parameters)
    if isinstance(value, dict):
        return {k: _resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, parameters) for v in value]
    return value


def configuration() -> dict:
    """Per function: memory (MB), architecture, tracing, log level, whether platform lines are
    logged, log retention (days or None), and the dispatch function's filter patterns."""
    doc = template()
    parameters, globals_ = doc["Parameters"], doc["Globals"]["Function"]
    config = {}
    for name, resource in FUNCTIONS.items():
        props = {**globals_, **doc["Resources"][resource]["Properties"]}
        props = _resolve(props, parameters)
        logging_config = props.get("LoggingConfig") or {}
        env = {**_resolve((globals_.get("Environment") or {}).get("Variables") or {}, parameters),
               **((props.get("Environment") or {}).get("Variables") or {})}  # SAM merges these
        retention = None
        group = logging_config.get("LogGroup")
        if isinstance(group, dict) and "Ref" in group:
            retention = _resolve(doc["Resources"][group["Ref"]]["Properties"].get("RetentionInDays"), parameters)
        config[name] = {
            "memory_mb": int(props.get("MemorySize", 128)),
            "architecture": (props.get("Architectures") or ["x86_64"])[0],
            "tracing": props.get("Tracing") or "PassThrough",
            "log_level": env.get("POWERTOOLS_LOG_LEVEL") or "INFO",  # what Powertools filters by
            "platform_logs": (logging_config.get("SystemLogLevel") or "INFO") in ("DEBUG", "INFO"),
            "log_retention_days": int(retention) if retention else None,
        }
    events = doc["Resources"]["CallbackDispatchFunction"]["Properties"]["Events"]
    filters = next(iter(events.values()))["Properties"].get("FilterCriteria", {}).get("Filters", [])
    config["_dispatch_filters"] = [json.loads(f["Pattern"]) for f in filters]
    api = _resolve(doc["Resources"]["Api"]["Properties"], parameters)
    config["_api_tracing"] = bool(api.get("TracingEnabled"))
    config["_access_log_format"] = (api.get("AccessLogSetting") or {}).get("Format")
    config["_access_log_retention_days"] = int(_resolve(
        doc["Resources"]["ApiAccessLogGroup"]["Properties"]["RetentionInDays"], parameters))
    table_props = doc["Resources"]["Table"]["Properties"]
    backups = table_props.get("PointInTimeRecoverySpecification") or {}
    config["_pitr"] = bool(backups.get("PointInTimeRecoveryEnabled"))
    config["_retention_days"] = int(parameters["RetentionDays"]["Default"])
    return config


def matches(pattern, value) -> bool:
    """EventBridge-style pattern matching, the subset Lambda filter criteria use here."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(matches(sub, value.get(key, _MISSING)) for key, sub in pattern.items())
    return any(_match_one(rule, value) for rule in pattern)


_MISSING = object()


def _match_one(rule, value) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return (value is not _MISSING) == rule["exists"]
        if value is _MISSING:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            return value not in (banned if isinstance(banned, list) else [banned])
        raise ValueError(f"pattern rule not supported by the bench: {rule}")
    return value == rule


# --- metering -----------------------------------------------------------------------------------

def _size(value) -> int:
    """Bytes of an item (or attribute) as DynamoDB counts them, close enough: names and values."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"):
            kind, inner = next(iter(value.items()))
            if kind in ("S", "N", "B"):
                return len(str(inner).encode())
            if kind in ("BOOL", "NULL"):
                return 1
            if kind == "L":
                return 3 + sum(_size(v) + 1 for v in inner)
            if kind == "M":
                return 3 + sum(len(k.encode()) + _size(v) + 1 for k, v in inner.items())
            return sum(len(str(v).encode()) for v in inner)
        return sum(len(k.encode()) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return 3 + sum(_size(v) + 1 for v in value)
    return len(str(value).encode())


class Meter:
    """Every AWS request the handlers make, by function and operation, and what DynamoDB and SQS
    bill for it. Write units come from the item's size before and after the write (read with a
    client this meter does not count), read units from the items a read returns."""

    def __init__(self, raw_dynamodb):
        self.raw = raw_dynamodb  # uncounted
        self.function: str | None = None
        self.calls: dict[str, Counter] = defaultdict(Counter)
        self.units: dict[str, Counter] = defaultdict(Counter)  # function -> wru, rru, sqs, items_read
        self._before = threading.local()
        self.pending: list[tuple[str, dict]] = []
        self.main_thread = threading.get_ident()
        self.emulator_s, self.main_requests = 0.0, 0

    def install(self, session) -> None:
        session.events.register("before-call", self._before_call)
        session.events.register("after-call", self._after_call)

    def settle(self) -> None:
        """Write units of the single-item writes of the last invocation: one per KB of the item
        as it is now (the larger side of each write here; a failed conditional write bills the
        item it found)."""
        for function, key in self.pending:
            item = self.raw.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")
            self.units[function]["wru"] += max(1, math.ceil(_size(item) / 1024)) if item else 1
        self.pending.clear()

    def _before_call(self, params, model, **_):
        if self.function is not None:
            self._before.request = params.get("body") if isinstance(params, dict) else None
            self._before.started = time.perf_counter()

    def _after_call(self, http_response, parsed, model, **_):
        if self.function is None:
            return
        if threading.get_ident() == self.main_thread:
            # moto's time is not AWS's: the invocation is billed a modelled round trip instead.
            self.emulator_s += time.perf_counter() - self._before.started
            self.main_requests += 1
        service, name = model.service_model.service_name, model.name
        calls, units = self.calls[self.function], self.units[self.function]
        calls[f"{service}:{name}"] += 1
        body = getattr(self._before, "request", None)
        request = json.loads(body) if body and service == "dynamodb" else {}
        if service == "sqs":
            sent = json.loads(body) if body else {}
            payload = sum(len(e.get("MessageBody", "").encode()) for e in [sent, *sent.get("Entries", [])])
            units["sqs"] += max(1, math.ceil(payload / 65536))
        elif service == "dynamodb":
            failed = http_response.status_code >= 400
            if name in ("UpdateItem", "DeleteItem", "PutItem"):
                key = request.get("Key") or {k: request["Item"][k] for k in ("pk", "sk")}
                self.pending.append((self.function, key))  # sized after the invocation, off its clock
                units["failed_conditional_writes"] += int(failed)
            elif name == "BatchWriteItem":
                for writes in request.get("RequestItems", {}).values():
                    for write in writes:
                        item = (write.get("PutRequest") or {}).get("Item")
                        units["wru"] += max(1, math.ceil(_size(item) / 1024)) if item else 1
            elif name == "GetItem":
                item = parsed.get("Item")
                self._read(units, [item] if item else [], request.get("ConsistentRead", False), per_item=True)
            elif name == "BatchGetItem":
                for table_name, spec in request.get("RequestItems", {}).items():
                    items = parsed.get("Responses", {}).get(table_name, [])
                    self._read(units, items, spec.get("ConsistentRead", False), per_item=True,
                               asked=len(spec.get("Keys", [])))
            elif name == "Query":
                self._read(units, parsed.get("Items", []), request.get("ConsistentRead", False), per_item=False)
            elif name == "TransactWriteItems":
                for entry in request.get("TransactItems", []):
                    units["wru"] += 2  # transactional writes bill double (items here are < 1 KB)
            elif name in ("BatchExecuteStatement", "ExecuteStatement"):
                # PartiQL INSERTs (the sender's): 1 write unit per KB of the item; one refused as a
                # DuplicateItem is a failed conditional write (billed the item it found); a
                # throttled or failed statement is not billed.
                from local.moto_partiql import parse_insert

                batch = name == "BatchExecuteStatement"
                statements = request.get("Statements", []) if batch else [request]
                error = (parsed.get("Error") or {}).get("Code", "").removesuffix("Exception")
                answers = parsed.get("Responses", []) if batch else [{"Error": {"Code": error}} if failed else {}]
                for statement, answer in zip(statements, answers, strict=True):
                    _, item = parse_insert(statement) or (None, None)
                    if item is None:
                        raise ValueError(f"a PartiQL statement the bench does not bill: {statement['Statement']}")
                    code = (answer.get("Error") or {}).get("Code")
                    if code == "DuplicateItem":
                        self.pending.append((self.function, {k: item[k] for k in ("pk", "sk")}))
                        units["failed_conditional_writes"] += 1
                    elif not code:
                        units["wru"] += max(1, math.ceil(_size(item) / 1024))

    @staticmethod
    def _read(units, items, consistent, per_item, asked=None):
        factor = 1 if consistent else 0.5
        if per_item:
            found = sum(max(1, math.ceil(_size(i) / 4096)) for i in items)
            missing = max(0, (asked or len(items)) - len(items))  # a key not found costs a unit too
            units["rru"] += factor * (found + missing)
        else:
            units["rru"] += factor * max(1, math.ceil(sum(_size(i) for i in items) / 4096))
        units["items_read"] += len(items)


class LogCounter(io.TextIOBase):
    """Counts the bytes written to it (what CloudWatch Logs would ingest)."""

    def __init__(self):
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)


def _moto_fit_for_concurrent_transactions() -> None:
    """moto (5.2) deep-copies a table, its stream records included, once per item of a
    TransactWriteItems, to roll the transaction back if it fails: 100 copies of the whole table for
    a transaction of 100, so the run's memory and time grew with the square of its size (19.8 GB
    at 2,000 messages). One copy per table per transaction rolls back just the same."""
    import copy

    import moto.dynamodb.models as models

    if getattr(models.DynamoDBBackend.transact_write_items, "one_copy", False):
        return
    local = threading.local()

    class _Copy:
        @staticmethod
        def deepcopy(value, memo=None):
            tables = getattr(local, "tables", None)
            if tables is None or not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in tables:
                tables[id(value)] = copy.deepcopy(value)
            return tables[id(value)]

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        local.tables = {}
        try:
            return original(self, transact_items)
        finally:
            local.tables = None

    transact_write_items.one_copy = True
    models.copy = _Copy
    models.DynamoDBBackend.transact_write_items = transact_write_items

    # moto's DynamoDB is not safe across threads (the sender runs a batch's jobs at once).
    from local import moto_threads

    moto_threads.install()


def _clear_caches() -> None:
    """The layer's cached clients and secrets belong to the previous scenario's moto."""
    from aws_lambda_powertools.utilities import parameters

    from tuma.domain import jobs
    from tuma.store import callbacks, queue, table, tenants

    table.forget_clients()
    queue._sqs.cache_clear()
    callbacks._sqs.cache_clear()
    jobs.schema.cache_clear()
    tenants._cache.clear()
    parameters.clear_caches()


# --- the harness ---------------------------------------------------------------------------------

class Context:
    def __init__(self, name: str, memory: int):
        self.function_name, self.memory_limit_in_mb = name, memory
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        # Lambda's longest timeout, not the sender's 30 s: moto is far slower than DynamoDB (a
        # 1,000-body 254sms job took 17 s here against 9-12 s on the local stack), and a job that
        # ran out of time only here would price a retry AWS never makes. Whether a job fits the
        # real timeout is make bench's sms254_personalised_job_s, measured on the stack.
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


class _Receiver:
    """A loopback HTTP endpoint that answers 200 and keeps what it was sent (SayaSMS's reports,
    clients' callbacks)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> list:
        taken, self.received[:] = list(self.received), []
        return taken


class Harness:
    def __init__(self, config: dict, latency_ms: int):
        self.config, self.latency_ms = config, latency_ms
        self.invocations: Counter = Counter()
        self.billed_ms: Counter = Counter()
        self.log_bytes: Counter = Counter()
        self.api_requests = 0
        self.access_log_bytes = 0
        self.esm_sqs_requests: Counter = Counter()  # receive + delete around each SQS-triggered invocation
        self.handlers = {}
        self.stored: dict = {}  # {"byte_months": ..., "bytes": ..., "unexpiring_bytes": ...} of the counted run

    @contextmanager
    def running(self):
        import boto3
        from moto import mock_aws

        from local import moto_partiql
        from local.simulators.common import start
        from local.simulators.sayasms import SayaSmsSimulator
        from local.simulators.sms254 import Sms254Simulator

        moto_partiql.install()  # the sender's batched INSERTs, as DynamoDB answers them
        level = self.config["webhook"]["log_level"]
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
                           "AWS_REGION": REGION, "TABLE_NAME": TABLE, "CONFIG_PATH": CONFIG_PATH,
                           "POWERTOOLS_SERVICE_NAME": "tuma", "POWERTOOLS_LOG_LEVEL": level,
                           "POWERTOOLS_METRICS_NAMESPACE": "Tuma", "POWERTOOLS_TRACE_DISABLED": "true",
                           "CALLBACK_NETWORK": "loopback", "DEFAULT_PROVIDER": "sayasms", "NO_PROXY": "127.0.0.1",
                           "POWERTOOLS_METRICS_DISABLED": "false"})
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            os.environ.pop(name, None)
        self.reports, self.clients = _Receiver(), _Receiver()
        saya = SayaSmsSimulator(api_key="sk_bench", balance="100000000.00")
        sms254 = Sms254Simulator(username="bench", api_key="key254", credits=100_000_000)
        _moto_fit_for_concurrent_transactions()
        with mock_aws(), start(saya) as saya_running, start(sms254) as sms254_running:
            for sim in (saya, sms254):
                sim.faults.set({"latency_ms": self.latency_ms})
            _clear_caches()
            self._setup_aws(boto3, saya_running.url, sms254_running.url)
            self.meter = Meter(boto3.client("dynamodb"))
            boto3.setup_default_session()
            self.meter.install(boto3.DEFAULT_SESSION)
            self.log_sink = LogCounter()
            self._load_handlers()
            yield self
        self.reports.server.shutdown()
        self.clients.server.shutdown()

    def _setup_aws(self, boto3, saya_url: str, sms254_url: str) -> None:
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        self.stream_arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        streams = boto3.client("dynamodbstreams")
        shard = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.streams = streams
        self.iterator = streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        sqs = boto3.client("sqs")
        urls = {name: sqs.create_queue(QueueName=f"bench-{name}")["QueueUrl"] for name in ("send", "dlq", "callbacks")}
        self.sqs, self.queues = sqs, urls
        ssm = boto3.client("ssm")
        for name, value in {"providers/254sms/username": "bench", "providers/254sms/api_key": "key254",
                            "providers/sayasms/api_key": "sk_bench", "webhook/sayasms_token": TOKEN}.items():
            ssm.put_parameter(Name=f"{CONFIG_PATH}/{name}", Value=value, Type="SecureString")
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": f"TENANT#{TENANT}"}, "sk": {"S": "SECRET"},
                                                 "secret": {"S": "whsec_bench"}, "tenant_id": {"S": TENANT}})
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "KEY#" + "0" * 64}, "sk": {"S": "KEY"},
                                                 "tenant_id": {"S": TENANT}})
        os.environ.update({"SEND_QUEUE_URL": urls["send"], "SEND_DLQ_URL": urls["dlq"],
                           "CALLBACK_QUEUE_URL": urls["callbacks"], "SAYASMS_BASE_URL": saya_url,
                           "SMS254_BASE_URL": sms254_url,
                           "SAYASMS_CALLBACK_URL": self.reports.url + "/v1/webhooks/sayasms",
                           "EXPIRE_AFTER_S": "1", "SENDER_TIMEOUT_S": "30"})

    def _load_handlers(self) -> None:
        for name in FUNCTIONS:
            spec = importlib.util.spec_from_file_location(f"bench_cost_{name}", ROOT / "functions" / name / "app.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.handlers[name] = module
        for handler in logging.getLogger("tuma").handlers:
            handler.setStream(self.log_sink)

    def invoke(self, name: str, event: dict):
        config = self.config[name]
        before = self.log_sink.bytes
        self.meter.function = name
        self.meter.emulator_s, self.meter.main_requests = 0.0, 0
        started, cpu_started = time.perf_counter(), time.thread_time()
        answer, failure = None, None
        try:
            with redirect_stdout(self.log_sink):
                answer = self.handlers[name].handler(event, Context(name, config["memory_mb"]))
        except Exception as problem:  # noqa: BLE001 - billed like any invocation, then raised
            failure = problem
        finally:
            self.meter.function = None
        # The handler's own CPU (moto's taken out) runs slower below a full vCPU (1,769 MB).
        cpu = max(0.0, time.thread_time() - cpu_started - self.meter.emulator_s)
        seconds = (time.perf_counter() - started - self.meter.emulator_s
                   + self.meter.main_requests * ASSUMPTIONS["aws_request_ms"] / 1000
                   + cpu * (max(1.0, ASSUMPTIONS["full_vcpu_mb"] / config["memory_mb"]) - 1))
        self.billed_ms[name] += math.ceil(seconds * 1000)
        self.meter.settle()
        self.invocations[name] += 1
        self.log_bytes[name] += self.log_sink.bytes - before
        if config["platform_logs"]:
            self.log_bytes[name] += ASSUMPTIONS["platform_log_bytes_per_invocation"]
        if failure is not None:
            raise failure
        return answer

    # --- the paths a message takes ---

    def api(self, name: str, path: str, body: dict) -> dict:
        self.api_requests += 1
        event = {"resource": path, "path": path, "httpMethod": "POST", "headers": {"Content-Type": "application/json"},
                 "requestContext": {"resourcePath": path, "httpMethod": "POST", "stage": "prod",
                                    "authorizer": {"principalId": TENANT, "tenant_id": TENANT}},
                 "body": json.dumps(body), "isBase64Encoded": False}
        started = time.perf_counter()
        answer = self.invoke(name, event)
        assert answer["statusCode"] == 202, answer
        self.access_log_bytes += len(access_log_line(self.config["_access_log_format"], path, answer,
                                                     round((time.perf_counter() - started) * 1000)).encode())
        return json.loads(answer["body"])

    def authorize_once(self) -> None:
        """One authorizer invocation (its key unknown here: the lookup is the same)."""
        self.invoke("authorizer", {"type": "TOKEN", "authorizationToken": "Bearer tuma_bench",
                                   "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc/prod/POST/v1/messages"})

    def drain_sqs(self, queue: str, function: str, batch_size: int) -> int:
        """Every message on `queue` through `function`, `batch_size` to an invocation, as the event
        source mapping does (its receive and delete are billed SQS requests too)."""
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        handled = 0
        while True:
            messages = []
            while len(messages) < batch_size:
                got = self.sqs.receive_message(QueueUrl=self.queues[queue], MaxNumberOfMessages=min(10, batch_size),
                                               AttributeNames=["All"]).get("Messages", [])
                if not got:
                    break
                messages += got
            if not messages:
                return handled
            records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:bench-{queue}"}
                       for m in messages]
            # A job the invocation had no time left for is reported failed and comes back in another
            # invocation, as SQS would redeliver it (billed: the invocation and its receive/delete).
            for _ in range(5):
                try:
                    result = self.invoke(function, {"Records": records})
                    failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
                except BatchProcessingError:  # Powertools raises when every record failed: all come back
                    result, failed = None, {r["messageId"] for r in records}
                self.esm_sqs_requests[function] += 2
                records = [r for r in records if r["messageId"] in failed]
                if not records:
                    break
            assert not records, result
            self.sqs.delete_message_batch(QueueUrl=self.queues[queue], Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            handled += len(messages)

    def wait_reports(self, expected: int, seconds: float = 120) -> list[dict]:
        deadline = time.monotonic() + seconds
        while len(self.reports.received) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        return [(path, json.loads(body)) for path, body in self.reports.take()]

    def deliver_reports(self, reports: list) -> None:
        for path, payload in reports:
            query = path.split("?", 1)[1] if "?" in path else ""
            event = {"version": "2.0", "routeKey": "$default", "rawPath": "/v1/webhooks/sayasms",
                     "rawQueryString": query,
                     "queryStringParameters": dict(p.split("=", 1) for p in query.split("&") if p),
                     "headers": {"content-type": "application/json"},
                     "requestContext": {"http": {"method": "POST", "path": "/v1/webhooks/sayasms",
                                                 "sourceIp": "127.0.0.1"},
                                        "requestId": "r", "stage": "$default", "domainName": "x.lambda-url.on.aws"},
                     "body": json.dumps(payload), "isBase64Encoded": False}
            answer = self.invoke("webhook", event)
            assert answer["statusCode"] == 200, answer

    def stream_to_dispatch(self, batch: int) -> int:
        """The stream records since the last call, filtered as the event source mapping filters
        them, into the dispatch function `batch` at a time. Returns the records that passed."""
        records = []
        while True:
            page = self.streams.get_records(ShardIterator=self.iterator)
            self.iterator = page["NextShardIterator"]
            if not page["Records"]:
                break
            records += page["Records"]
        passed = [r for r in records
                  if any(matches(p, json.loads(json.dumps(r, default=str))) for p in self.config["_dispatch_filters"])]
        for i in range(0, len(passed), batch):
            events = [{**r, "eventSourceARN": self.stream_arn} for r in passed[i:i + batch]]
            self.invoke("callback_dispatch", {"Records": json.loads(json.dumps(events, default=str))})
        return len(passed)

    def expire(self) -> None:
        self.invoke("expirer", {"source": "aws.scheduler"})

    def table_items(self) -> dict:
        """Every item's storage size (with DynamoDB's per-item overhead) and TTL, read uncounted."""
        items, start = {}, None
        while True:
            page = self.meter.raw.scan(TableName=TABLE, **({"ExclusiveStartKey": start} if start else {}))
            for item in page["Items"]:
                expires = item.get("expires_at", {}).get("N")
                items[(item["pk"]["S"], item["sk"]["S"])] = (
                    _size(item) + ASSUMPTIONS["dynamodb_item_overhead_bytes"], int(expires) if expires else None)
            start = page.get("LastEvaluatedKey")
            if not start:
                return items


def storage_left(before: dict, after: dict, now: float, retention_days: int) -> dict:
    """What a run left stored, from two of Harness.table_items: the items it added, and what it
    added to items there before (a batch's counters, the circuit), each for the months until its
    TTL. An item with no TTL stays until someone deletes it: priced a year, and shown apart.
    `retention_byte_months`: the part kept for `RetentionDays` (TTL within a day of it), which
    another retention would scale; a parked report's 7 days or a year without TTL would not."""
    byte_months, retention_byte_months, stored, unexpiring = 0.0, 0.0, 0, 0
    for key, (size, expires) in after.items():
        added = size - before.get(key, (0, None))[0]
        if added <= 0:
            continue
        stored += added
        if expires is None:
            unexpiring += added
        months = max(0, expires - now) / (30 * 86400) if expires else 12
        byte_months += added * months
        if expires and abs(expires - now - retention_days * 86400) < 86400:
            retention_byte_months += added * months
    return {"bytes": stored, "byte_months": byte_months, "retention_byte_months": retention_byte_months,
            "unexpiring_bytes": unexpiring}


def access_log_line(log_format: str, path: str, answer: dict, latency_ms: int) -> str:
    """The API's access log line for one request: the template's format with each $context
    variable as API Gateway fills it (a documentation IPv4 address, "-" where there is none)."""
    values = {"requestId": str(uuid.uuid4()), "requestTimeEpoch": str(int(time.time() * 1000)),
              "identity.sourceIp": "203.0.113.45", "authorizer.principalId": TENANT, "httpMethod": "POST",
              "resourcePath": path, "status": str(answer["statusCode"]), "error.responseType": "-",
              "responseLength": str(len(answer.get("body") or "")), "responseLatency": str(latency_ms),
              "integrationLatency": str(latency_ms)}
    return re.sub(r"\$context\.([A-Za-z.]+)", lambda m: values[m.group(1)], log_format) + "\n"


# --- scenarios -----------------------------------------------------------------------------------

def _numbers(n: int, offset: int) -> list[str]:
    return [f"07{13000000 + offset + i}" for i in range(n)]


def scenario_single_with_callback(h: Harness, sends: int = 20) -> int:
    """`sends` single sends with a callback_url, each on its own (one invocation per event)."""
    for i, number in enumerate(_numbers(sends, 0)):
        h.api("send", "/v1/messages", {"to": [number], "from": "MYSHOP", "body": f"Your code is {1000 + i}",
                                       "callback_url": h.clients.url + "/hooks/tuma"})
        h.stream_to_dispatch(batch=1)
        h.drain_sqs("send", "sender", batch_size=1)
        h.stream_to_dispatch(batch=1)
        for report in h.wait_reports(3):
            h.deliver_reports([report])
            h.stream_to_dispatch(batch=1)
        h.drain_sqs("callbacks", "callback", batch_size=1)
    time.sleep(1.1)  # EXPIRE_AFTER_S=1: every message is now due; the expirer checks them
    h.expire()
    h.stream_to_dispatch(batch=1)
    h.drain_sqs("callbacks", "callback", batch_size=1)
    return sends


def scenario_bulk(h: Harness, n: int, provider: str | None, reports: bool) -> int:
    body = {"from": "MYSHOP", "messages": [{"to": number, "body": f"Hi customer {i}, your order #KE{i:05d} is ready!"}
                                           for i, number in enumerate(_numbers(n, 100_000))]}
    if provider:
        body["provider"] = provider
    h.api("bulk", "/v1/messages/bulk", body)
    h.drain_sqs("send", "sender", batch_size=10)  # the template's SenderBatchSize
    if reports:
        h.deliver_reports(h.wait_reports(3 * n, seconds=600))
    h.stream_to_dispatch(batch=100)
    h.drain_sqs("callbacks", "callback", batch_size=10)
    time.sleep(1.1)
    h.expire()
    return n


def price(h: Harness, messages: int) -> dict:
    """USD per million messages, by service, from what the harness counted."""
    per = 1e6 / messages
    c = h.config
    lambda_requests = sum(h.invocations.values())
    authorizer_share = (h.api_requests * ASSUMPTIONS["authorizer_calls_per_api_request"]
                        / max(1, h.invocations["authorizer"]))
    gb_s = {name: h.billed_ms[name] / 1000 * c[name]["memory_mb"] / 1024 for name in h.invocations}
    requests_usd = 0.0
    compute_usd = 0.0
    for name in h.invocations:
        share = authorizer_share if name == "authorizer" else 1
        requests_usd += h.invocations[name] * share * PRICES_USD["lambda_per_million_requests"] / 1e6
        compute_usd += gb_s[name] * share * PRICES_USD["lambda_per_gb_second"][c[name]["architecture"]]
    units = Counter()
    for name, counted in h.meter.units.items():
        share = authorizer_share if name == "authorizer" else 1
        for unit, value in counted.items():
            units[unit] += value * share
    sqs_requests = units["sqs"] + sum(h.esm_sqs_requests.values())
    log_usd = 0.0
    for name, written in h.log_bytes.items():
        share = authorizer_share if name == "authorizer" else 1
        days = c[name]["log_retention_days"]
        months = days / 30 if days else 12  # never expiring: a year of it
        gb = written * share / 1e9
        log_usd += gb * (PRICES_USD["cloudwatch_logs_ingest_per_gb"]
                         + PRICES_USD["cloudwatch_logs_storage_per_gb_month"] * months)
    access_log_gb = (h.access_log_bytes + h.api_requests * ASSUMPTIONS["log_event_overhead_bytes"]) / 1e9
    log_usd += access_log_gb * (PRICES_USD["cloudwatch_logs_ingest_per_gb"] + PRICES_USD[
        "cloudwatch_logs_storage_per_gb_month"] * c["_access_log_retention_days"] / 30)
    storage_price = PRICES_USD["dynamodb_storage_per_gb_month"] + (
        PRICES_USD["dynamodb_pitr_per_gb_month"] if c["_pitr"] else 0)
    rate = ASSUMPTIONS["xray_default_sample_rate"]
    traces = (h.api_requests * rate if c["_api_tracing"] else 0) + sum(
        n * rate for name, n in h.invocations.items() if c[name]["tracing"] == "Active" and name not in API_FUNCTIONS)
    usd = {
        "api_gateway": h.api_requests * PRICES_USD["api_gateway_rest_per_million"] / 1e6,
        "lambda_requests": requests_usd,
        "lambda_compute": compute_usd,
        "sqs": sqs_requests * PRICES_USD["sqs_per_million_requests"] / 1e6,
        "dynamodb_writes": units["wru"] * PRICES_USD["dynamodb_per_million_write_units"] / 1e6,
        "dynamodb_reads": units["rru"] * PRICES_USD["dynamodb_per_million_read_units"] / 1e6,
        "dynamodb_storage": h.stored["byte_months"] / 1e9 * storage_price,
        "cloudwatch_logs": log_usd,
        "xray": traces * PRICES_USD["xray_per_million_traces_recorded"] / 1e6,
    }
    breakdown = {k: v * per for k, v in usd.items()}
    total = sum(breakdown.values())
    # The same counts behind another front door, only the API request's price changed: an HTTP API
    # (its Lambda authorizer caches as the REST API's does), or a Function URL (no per-request
    # charge; the key check would move into the function, and is still priced as the authorizer).
    api_share = h.api_requests * per / 1e6
    front_doors = {"rest_api": total,
                   "http_api": total + api_share * (PRICES_USD["api_gateway_http_per_million"]
                                                    - PRICES_USD["api_gateway_rest_per_million"]),
                   "function_url": total - breakdown["api_gateway"]}
    # The same counts at other record retentions (`RetentionDays`), with and without point-in-time
    # recovery: only storage moves, and only what is kept for RetentionDays scales with it.
    kept_per_day = h.stored["retention_byte_months"] / 1e9 * per / c["_retention_days"]
    other = (h.stored["byte_months"] - h.stored["retention_byte_months"]) / 1e9 * per
    retentions = {f"{days}d{'' if pitr else '_no_pitr'}": total - breakdown["dynamodb_storage"]
                  + (kept_per_day * days + other) * (PRICES_USD["dynamodb_storage_per_gb_month"]
                                                     + (PRICES_USD["dynamodb_pitr_per_gb_month"] if pitr else 0))
                  for days in (c["_retention_days"], 30, 14) for pitr in (True, False)}
    return {"usd_per_million": total, "by_service": breakdown, "usd_per_million_by_front_door": front_doors,
            "usd_per_million_by_retention": retentions,
            "per_message": {"lambda_invocations": {n: v / messages for n, v in h.invocations.items()},
                            "billed_ms": {n: v / messages for n, v in h.billed_ms.items()},
                            "log_bytes": {n: v / messages for n, v in h.log_bytes.items()},
                            "dynamodb_write_units": units["wru"] / messages,
                            "dynamodb_read_units": units["rru"] / messages,
                            "failed_conditional_writes": units["failed_conditional_writes"] / messages,
                            "sqs_requests": sqs_requests / messages,
                            "stored_bytes": h.stored["bytes"] / messages,
                            "stored_bytes_without_ttl": h.stored["unexpiring_bytes"] / messages,
                            "access_log_bytes": h.access_log_bytes / messages},
            "requests": {n: dict(v) for n, v in h.meter.calls.items()},
            "mean_ms": {n: h.billed_ms[n] / h.invocations[n] for n in h.invocations},
            "lambda_requests_total": lambda_requests}


def run(bulk_messages: int = 10_000, latency_ms: int = 100) -> dict:
    """The three scenarios, each in a fresh harness (its own moto and simulators)."""
    config = configuration()
    results = {}
    plans = {"single_with_callback": lambda h, warm: scenario_single_with_callback(h, 1 if warm else 20),
             "sayasms_bulk_with_reports":
                 lambda h, warm: scenario_bulk(h, 10 if warm else bulk_messages, "sayasms", True),
             "sms254_bulk": lambda h, warm: scenario_bulk(h, 10 if warm else bulk_messages, "254sms", False)}
    for name, plan in plans.items():
        harness = Harness(config, latency_ms)
        with harness.running():
            # A small run first, uncounted: the figure is warm functions (a cold start is a
            # per-instance cost, not a per-message one), and the expirer's cursor is set.
            harness.authorize_once()
            plan(harness, True)
            harness.meter.calls.clear(), harness.meter.units.clear(), harness.invocations.clear()
            harness.billed_ms.clear(), harness.log_bytes.clear(), harness.esm_sqs_requests.clear()
            harness.api_requests, harness.access_log_bytes = 0, 0
            before = harness.table_items()
            harness.authorize_once()
            messages = plan(harness, False)
            harness.stored = storage_left(before, harness.table_items(), time.time(), config["_retention_days"])
            results[name] = price(harness, messages)
    return results


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    out = run(n, int(sys.argv[2])) if len(sys.argv) > 2 else run(n)
    print(json.dumps({k: {"usd_per_million": v["usd_per_million"], "by_service": v["by_service"],
                          "usd_per_million_by_front_door": v["usd_per_million_by_front_door"],
                          "usd_per_million_by_retention": v["usd_per_million_by_retention"],
                          "per_message": v["per_message"], "requests": v["requests"], "mean_ms": v["mean_ms"]}
                      for k, v in out.items()}, indent=1, default=str))
