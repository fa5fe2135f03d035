"""Issue 9 item 10: a job that ran out of retries never leaves its messages `queued` forever —
they end `failed` (`retries_exhausted`), without touching what was already recorded; a
malformed job stays in the DLQ with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tuma.domain.ids import new_batch_id
from tuma.domain.jobs import parse_job
from tuma.domain.sending import CLAIMED, DONE, Outcome
from tuma.domain.status import CANCELLED, DELIVERED, FAILED, QUEUED, REJECTED, SENT, UNKNOWN
from tuma.store.sending import MessageStore
from tuma.store.table import job_sk, message_pk, recipient_key, recipient_pk, recipient_sk

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
NUMBERS = ["+254712000001", "+254712000002", "+254712000003", "+254712000004"]
CALLBACK = "https://yourapp.example/cb"


def api_job(request_id: str) -> str:
    return json.dumps({"version": 1, "origin": "api", "tenant_id": "acme", "request_id": request_id, "from": "TUMA",
                       "body": "hi", "callback_url": CALLBACK,
                       "recipients": [{"message_id": f"{request_id}_{n}", "number": number}
                                      for n, number in enumerate(NUMBERS, start=1)]})


def dlq_record(body: str, message_id: str = "dlq-1", attributes: dict | None = None) -> dict:
    return {"messageId": message_id, "receiptHandle": f"handle-{message_id}", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {name: {"stringValue": value, "dataType": "String"}
                                  for name, value in (attributes or {}).items()},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tuma-test-send-dlq",
            "awsRegion": "us-east-1"}


def status_of(aws, request_id: str, index: int, tenant: str = "acme") -> dict | None:
    return aws.item(recipient_pk(tenant, request_id, index), recipient_sk(index))


@pytest.fixture
def dead_letters(functions, context, aws, monkeypatch):
    module = functions("dead_letters")
    parked = []
    monkeypatch.setattr(module.dead_letters, "park", parked.append)
    module.parked = parked
    module.run = lambda *records: module.handler({"Records": list(records)}, context)
    return module


def after_five_failed_attempts(body: str) -> tuple:
    """The sender's state after its attempts: message 1 sent, the others left for a retry."""
    job = parse_job(body, "sqs-1")
    store, now = MessageStore(), datetime.now(UTC)
    claim = store.claim(job, now, timedelta(seconds=30))
    assert claim.state == CLAIMED
    store.record(job, claim, [(job.recipients[0], Outcome(SENT, "sayasms", provider_message_id="saya-1"))], now)
    store.finish(job, claim, list(job.recipients[1:]), "HTTP 503", now)
    return job, store


def test_a_job_out_of_retries_ends_its_untaken_messages_failed_retries_exhausted(dead_letters, aws):
    request_id = new_batch_id()
    body = api_job(request_id)
    after_five_failed_attempts(body)

    assert dead_letters.run(dlq_record(body)) == {"batchItemFailures": []}

    assert status_of(aws, request_id, 1)["status"] == SENT  # what went out stays as it was
    for index in (2, 3, 4):
        item = status_of(aws, request_id, index)
        assert item["status"] == FAILED and item["reason"] == "retries_exhausted"
        assert item["history"][-1]["status"] == FAILED
        assert item["callback_url"] == CALLBACK  # so the client's callback tells it too
    assert aws.item(message_pk("acme", request_id), job_sk(1))["state"] == DONE


def test_a_message_already_cancelled_delivered_or_unknown_is_never_moved(dead_letters, aws):
    request_id = new_batch_id()
    body = api_job(request_id)
    after_five_failed_attempts(body)
    # Written behind the job's back, as a late report or a race would: the consumer must not overwrite.
    for index, status in ((2, CANCELLED), (3, DELIVERED), (4, UNKNOWN)):
        aws.table.put_item(Item={**recipient_key("acme", request_id, index), "status": status})

    assert dead_letters.run(dlq_record(body)) == {"batchItemFailures": []}

    assert [status_of(aws, request_id, i)["status"] for i in (2, 3, 4)] == [CANCELLED, DELIVERED, UNKNOWN]


def test_a_second_delivery_of_the_dead_letter_changes_nothing_and_a_redrive_sends_nothing(dead_letters, aws):
    request_id = new_batch_id()
    body = api_job(request_id)
    job, store = after_five_failed_attempts(body)
    dead_letters.run(dlq_record(body))
    before = status_of(aws, request_id, 2)

    assert dead_letters.run(dlq_record(body)) == {"batchItemFailures": []}

    assert status_of(aws, request_id, 2) == before
    assert store.claim(job, datetime.now(UTC), timedelta(seconds=30)).state == DONE  # the sender would skip it


def test_a_producer_job_never_claimed_gets_its_messages_failed_and_its_bad_numbers_rejected(dead_letters, aws):
    body = json.dumps({"version": 1, "tenant_id": "acme", "from": "TUMA", "body": "hi",
                       "recipients": [{"number": "0712000001"}, {"number": "12345"}]})
    job = parse_job(body, "dlq-9")

    assert dead_letters.run(dlq_record(body, "dlq-9")) == {"batchItemFailures": []}

    assert status_of(aws, job.request_id, 1)["status"] == FAILED
    assert status_of(aws, job.request_id, 2)["status"] == REJECTED
    assert aws.item(message_pk("acme", job.request_id), "REQ") is not None  # GET can find it


def test_a_job_a_live_sender_holds_is_left_for_later(dead_letters, aws):
    request_id = new_batch_id()
    body = api_job(request_id)
    job = parse_job(body, "sqs-1")
    MessageStore().claim(job, datetime.now(UTC), timedelta(seconds=30))  # in flight, just now

    answer = dead_letters.run(dlq_record(body))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "dlq-1"}]}
    assert status_of(aws, request_id, 1) is None


def test_a_dead_senders_called_messages_become_unknown_and_its_never_called_ones_failed(dead_letters, aws):
    """The sender died in flight after naming messages 1 and 2 in a provider call: those may have
    gone out (unknown, never failed); 3 and 4 were never in a call, so no provider took them."""
    request_id = new_batch_id()
    body = api_job(request_id)
    job = parse_job(body, "sqs-1")
    store = MessageStore()
    claim = store.claim(job, datetime.now(UTC) - timedelta(minutes=5), timedelta(seconds=30))
    assert store.mark_calling(job, claim, job.recipients[:2])  # then it died in flight

    assert dead_letters.run(dlq_record(body)) == {"batchItemFailures": []}

    assert [status_of(aws, request_id, i)["status"] for i in range(1, 5)] == [UNKNOWN, UNKNOWN, FAILED, FAILED]
    assert status_of(aws, request_id, 3)["reason"] == "retries_exhausted"


def test_a_producer_jobs_bad_numbers_are_rejected_when_the_consumer_takes_over_a_dead_sender(dead_letters, aws):
    # The sibling of issue 9 item 7: the sender died in flight on its first attempt, before any
    # call, so the takeover (here the DLQ consumer's) must record the rejections, and the number
    # no call named is not taken (failed), not unknown.
    body = json.dumps({"version": 1, "tenant_id": "acme", "from": "TUMA", "body": "hi",
                       "recipients": [{"number": "0712000001"}, {"number": "12345"}]})
    job = parse_job(body, "dlq-10")
    store = MessageStore()
    store.register(job, datetime.now(UTC))
    store.claim(job, datetime.now(UTC) - timedelta(minutes=5), timedelta(seconds=30))  # died in flight

    assert dead_letters.run(dlq_record(body, "dlq-10")) == {"batchItemFailures": []}

    assert status_of(aws, job.request_id, 1)["status"] == FAILED
    assert status_of(aws, job.request_id, 2)["status"] == REJECTED


def test_a_malformed_job_stays_in_the_dlq_with_its_reason_and_is_logged(dead_letters, aws, monkeypatch):
    warnings = []
    monkeypatch.setattr(dead_letters.logger, "warning", lambda message, extra: warnings.append((message, extra)))
    record = dlq_record('{"version": 1, "tenant_id": "acme"}', "dlq-7",
                        {"reason": "does not match send_job.v1: 'from' is a required property",
                         "source_message_id": "sqs-7"})

    answer = dead_letters.run(record)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "dlq-7"}]}  # not deleted
    assert dead_letters.parked == ["handle-dlq-7"]  # out of sight, not spinning
    [(message, extra)] = warnings
    assert message == "malformed job kept in the DLQ" and "'from' is a required property" in extra["reason"]
    assert extra["source_message_id"] == "sqs-7"
    assert QUEUED not in {i.get("status") for i in aws.items()}


def test_parking_keeps_the_message_and_its_reason_in_the_dlq(aws):
    from tuma.store import dead_letters, queue

    queue.dead_letter('{"not": "a job"}', "not JSON", "sqs-8")
    [message] = aws.sqs.receive_message(QueueUrl=aws.dlq_url, MessageAttributeNames=["All"])["Messages"]

    dead_letters.park(message["ReceiptHandle"])

    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.dlq_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert message["MessageAttributes"]["reason"]["StringValue"] == "not JSON"


# --- the template's wiring -------------------------------------------------------------------

@pytest.fixture(scope="module")
def resources():
    from pathlib import Path

    from cfnlint.decode import decode

    template, problems = decode(str(Path(__file__).resolve().parents[2] / "template.yaml"))
    assert not problems
    return template["Resources"]


def test_the_send_dlq_has_a_consumer_and_keeps_jobs_longer_than_the_send_queue(resources):
    dlq = resources["SendDeadLetterQueue"]["Properties"]
    send = resources["SendQueue"]["Properties"]
    consumer = resources["DeadLettersFunction"]["Properties"]

    [event] = consumer["Events"].values()
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["SendDeadLetterQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A message moved to a DLQ keeps its first enqueue time: the DLQ must outlive the source's 4 days.
    assert dlq["MessageRetentionPeriod"] > send.get("MessageRetentionPeriod", 345_600)
    assert dlq["VisibilityTimeout"] >= consumer["Timeout"]


def test_the_consumers_sender_timeout_is_the_senders_timeout(resources):
    """The consumer takes a claim over once it is older than the sender's Timeout: its copy of
    that Timeout (template.yaml says why a copy) must be the sender's."""
    sender = resources["SenderFunction"]["Properties"]
    consumer = resources["DeadLettersFunction"]["Properties"]
    assert consumer["Environment"]["Variables"]["SENDER_TIMEOUT_S"] == str(sender["Timeout"])


@pytest.mark.parametrize("queue", ["SendDeadLetterQueue", "CallbackDeadLetterQueue"])
def test_an_alarm_fires_on_any_message_waiting_in_either_dlq(resources, queue):
    watching = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
                and r["Properties"].get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]]
    visible = [a for a in watching if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert visible and visible[0]["Threshold"] == 0 and visible[0]["ComparisonOperator"] == "GreaterThanThreshold"
    assert "AlarmTopicArn" in json.dumps(visible[0]["AlarmActions"])
