"""Scheduled sends through the handlers under moto (EventBridge Scheduler, DynamoDB, SQS) with the
SayaSMS simulator: accepting holds the request and creates its schedule, the release function
queues it once, and DELETE /v1/messages/{id} cancels what the sender has not claimed, never more."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from conftest import ACCOUNT, REGION, api_event
from tuma.store.table import job_sk, message_pk, recipient_pk, recipient_sk

GROUP = "tuma-test-scheduled-sends"
RELEASE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tuma-test-release"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/tuma-test-scheduler"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:tuma-test-release-dlq"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def answer(response: dict) -> tuple[int, dict]:
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def scheduler(aws, monkeypatch):
    from tuma.store import schedules

    schedules._scheduler.cache_clear()
    client = boto3.client("scheduler", region_name=REGION)
    client.create_schedule_group(Name=GROUP)
    for name, value in {"SCHEDULE_GROUP": GROUP, "RELEASE_FUNCTION_ARN": RELEASE_ARN, "SCHEDULER_ROLE_ARN": ROLE_ARN,
                        "RELEASE_DLQ_ARN": DLQ_ARN}.items():
        monkeypatch.setenv(name, value)
    yield client
    schedules._scheduler.cache_clear()


@pytest.fixture
def post(functions, context, scheduler):
    def call(path: str, body: dict, tenant: str = "tenant-a") -> tuple[int, dict]:
        name = "bulk" if path.endswith("bulk") else "send"
        return answer(functions(name).handler(api_event("POST", path, body=body, tenant=tenant), context))
    return call


@pytest.fixture
def delete(functions, context, scheduler):
    def call(message_id: str, tenant: str = "tenant-a") -> tuple[int, dict]:
        event = api_event("DELETE", f"/v1/messages/{message_id}", tenant=tenant, resource="/v1/messages/{message_id}",
                          path_parameters={"message_id": message_id})
        return answer(functions("cancel").handler(event, context))
    return call


@pytest.fixture
def get(functions, context, aws):
    def call(message_id: str, tenant: str = "tenant-a") -> tuple[int, dict]:
        is_batch = message_id.startswith("bat_") and message_id.count("_") == 1
        key = "batch_id" if is_batch else "message_id"
        path = f"/v1/{'batches' if is_batch else 'messages'}/{message_id}"
        resource = f"/v1/{'batches' if is_batch else 'messages'}/{{{key}}}"
        event = api_event("GET", path, tenant=tenant, resource=resource, path_parameters={key: message_id})
        return answer(functions("status").handler(event, context))
    return call


@pytest.fixture
def release(scheduler, aws):
    """The release as the schedule fires it: a moment after the request's time."""
    from tuma import releasing

    def call(request_id: str, tenant: str = "tenant-a") -> str:
        request = aws.item(message_pk(tenant, request_id), "REQ") or {}
        at = datetime.fromisoformat(request.get("scheduled_at", "2026-03-13T14:30:00Z")) + timedelta(seconds=1)
        return releasing.release(tenant, request_id, at)
    return call


@pytest.fixture
def sender(functions, context, aws, simsaya, sim254):
    from conftest import sqs_event

    return lambda bodies: functions("sender").handler(sqs_event(bodies), context)


def ahead(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def scheduled_send(post, numbers=("0712345678", "0722111222"), **extra) -> dict:
    code, body = post("/v1/messages", {"to": list(numbers), "from": "TUMA", "body": "Habari",
                                       "scheduled_at": ahead(hours=2), **extra})
    assert code == 202, body
    return body


def delayed_count(aws) -> int:
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


# --- accepting ---------------------------------------------------------------------------------


def test_a_scheduled_send_queues_nothing_and_creates_one_schedule_for_its_time(post, aws, scheduler):
    scheduled_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=600000)
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari",
                                       "scheduled_at": scheduled_at.isoformat()})

    assert code == 202 and body["status"] == "scheduled"
    assert body["scheduled_at"] == scheduled_at.strftime("%Y-%m-%dT%H:%M:%S.600Z")
    assert aws.receive(aws.queue_url) == [] and delayed_count(aws) == 0
    schedule = scheduler.get_schedule(Name=body["message_id"], GroupName=GROUP)
    assert schedule["ScheduleExpression"] == f"at({scheduled_at.strftime('%Y-%m-%dT%H:%M:%S')})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == RELEASE_ARN and schedule["Target"]["RoleArn"] == ROLE_ARN
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": DLQ_ARN}
    assert json.loads(schedule["Target"]["Input"]) == {"tenant_id": "tenant-a", "request_id": body["message_id"]}

    pk = message_pk("tenant-a", body["message_id"])
    request = aws.item(pk, "REQ")
    assert request["scheduled_at"] == body["scheduled_at"] and request["job_starts"] == [1]
    held = json.loads(aws.item(pk, "S#000001")["job"])
    assert held["recipients"] == [{"message_id": f"{body['message_id']}_1", "number": "+254712345678"}]


def test_a_scheduled_bulk_is_held_the_same_way(post, get, aws, scheduler):
    code, body = post("/v1/messages/bulk", {"from": "TUMA", "scheduled_at": ahead(days=29),
                                            "messages": [{"to": "0712345678", "body": "A"},
                                                         {"to": "0712", "body": "B"}]})

    assert code == 202 and body["status"] == "scheduled"
    assert aws.receive(aws.queue_url) == []
    assert scheduler.get_schedule(Name=body["batch_id"], GroupName=GROUP)
    code, batch = get(body["batch_id"])
    assert batch["counts"] == {"scheduled": 1, "rejected": 1} and batch["scheduled_at"] == body["scheduled_at"]


def test_a_time_closer_than_the_scheduler_precision_waits_on_the_queue_instead(post, aws, scheduler, get):
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari",
                                       "scheduled_at": ahead(seconds=30)})

    assert code == 202 and body["status"] == "scheduled"
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
    assert aws.receive(aws.queue_url) == [] and delayed_count(aws) == 1  # hidden until its time
    assert get(f"{body['message_id']}_1")[1]["status"] == "scheduled"


def test_an_unscheduled_send_creates_no_schedule_and_records_its_job_starts(post, aws, scheduler):
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari"})

    assert code == 202 and body["status"] == "queued"
    assert len(aws.receive(aws.queue_url)) == 1
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
    assert aws.item(message_pk("tenant-a", body["message_id"]), "REQ")["job_starts"] == [1]


def test_a_naive_scheduled_at_is_a_400_naming_the_field_and_nothing_is_held(post, aws, scheduler):
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "x",
                                       "scheduled_at": "2030-01-01T09:00:00"})

    assert code == 400 and body["error"]["details"][0]["field"] == "scheduled_at"
    assert "no UTC offset" in body["error"]["message"]
    assert aws.items() == [] and scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []


# --- releasing ---------------------------------------------------------------------------------


def test_release_queues_the_held_jobs_once_even_when_delivered_twice(post, release, get, aws):
    body = scheduled_send(post)
    request_id = body["message_id"]
    held = aws.item(message_pk("tenant-a", request_id), "S#000001")["job"]

    assert release(request_id) == "released"
    assert release(request_id) == "already_released"

    (queued,) = aws.receive(aws.queue_url)
    assert json.loads(queued["Body"]) == json.loads(held)
    view = get(f"{request_id}_1")[1]
    assert view["status"] == "queued"
    assert [h["status"] for h in view["history"]] == ["scheduled", "queued"]


def test_the_release_function_woken_before_the_time_lets_the_queue_hold_the_rest(post, functions, context, aws):
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari",
                                       "scheduled_at": ahead(seconds=70)})
    event = {"tenant_id": "tenant-a", "request_id": body["message_id"]}  # the schedule's input

    assert functions("release").handler(event, context) == {"outcome": "released"}
    assert aws.receive(aws.queue_url) == [] and delayed_count(aws) == 1
    assert aws.item(message_pk("tenant-a", body["message_id"]), "REQ")["released_at"]


def test_a_release_that_died_before_recording_is_completed_by_the_next_delivery(post, release, aws, monkeypatch):
    from tuma.store import schedules

    body = scheduled_send(post)
    with monkeypatch.context() as patch:
        patch.setattr(schedules, "mark_released", lambda *a: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError):
            release(body["message_id"])
    assert release(body["message_id"]) == "released"  # queued again: the sender's claim sends it once
    assert len(aws.receive(aws.queue_url)) == 2


def test_releasing_a_cancelled_request_does_nothing(post, delete, release, aws):
    body = scheduled_send(post)
    assert delete(body["message_id"])[0] == 200

    assert release(body["message_id"]) == "cancelled"
    assert aws.receive(aws.queue_url) == []


def test_releasing_an_unknown_request_does_nothing(release, aws):
    assert release("msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C") == "unknown"
    assert aws.receive(aws.queue_url) == []


# --- cancelling a whole request ----------------------------------------------------------------


def test_cancelling_a_scheduled_request_cancels_every_message_and_deletes_the_schedule(post, delete, get, scheduler):
    body = scheduled_send(post, numbers=("0712345678", "0722111222", "0712"))
    request_id = body["message_id"]

    code, view = delete(request_id)

    assert code == 200
    assert view["counts"] == {"cancelled": 2, "rejected": 1} and view["cancelled_at"]
    assert [r["status"] for r in view["recipients"]] == ["cancelled", "cancelled", "rejected"]
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
    assert get(f"{request_id}_2")[1]["history"][-1]["status"] == "cancelled"

    code, again = delete(request_id)
    assert code == 409 and again["error"]["code"] == "already_cancelled"
    code, one = delete(f"{request_id}_1")
    assert code == 409 and one["error"]["code"] == "already_cancelled"


def test_cancelling_a_queued_request_before_the_sender_means_the_sender_sends_nothing(
        post, delete, sender, aws, simsaya):
    code, body = post("/v1/messages", {"to": ["0712345678", "0722111222"], "from": "TUMA", "body": "Habari"})
    (job,) = aws.receive(aws.queue_url)

    assert delete(body["message_id"])[0] == 200
    assert sender([job["Body"]]) == {"batchItemFailures": []}

    assert simsaya.requests() == []
    assert [aws.item(recipient_pk("tenant-a", body["message_id"], i), recipient_sk(i))["status"]
            for i in (1, 2)] == ["cancelled", "cancelled"]


def test_a_request_the_sender_has_sent_cannot_be_cancelled(post, delete, sender, aws, simsaya):
    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari"})
    (job,) = aws.receive(aws.queue_url)
    sender([job["Body"]])

    code, refused = delete(body["message_id"])
    assert code == 409 and refused["error"]["code"] == "already_sent"
    assert "already been sent or is being sent" in refused["error"]["message"]
    code, refused = delete(f"{body['message_id']}_1")
    assert code == 409 and refused["error"]["code"] == "already_sent"
    assert len(simsaya.requests()) == 1


def test_a_job_claimed_but_not_yet_recorded_cannot_be_cancelled(post, delete, aws):
    from tuma.domain.jobs import parse_job
    from tuma.store.sending import MessageStore

    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari"})
    (job,) = aws.receive(aws.queue_url)
    claim = MessageStore().claim(parse_job(job["Body"], "m1"), datetime.now(UTC), timedelta(seconds=30))
    assert claim.state == "claimed"  # the sender is calling the provider right now

    assert delete(body["message_id"])[1]["error"]["code"] == "already_sent"
    code, refused = delete(f"{body['message_id']}_1")
    assert code == 409 and refused["error"]["code"] == "already_sent"
    assert aws.item(recipient_pk("tenant-a", body["message_id"], 1), recipient_sk(1)) is None


def test_a_cancelled_job_cannot_be_claimed(post, delete, aws):
    from tuma.domain.jobs import parse_job
    from tuma.store.sending import MessageStore

    code, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari"})
    (job,) = aws.receive(aws.queue_url)
    delete(body["message_id"])

    claim = MessageStore().claim(parse_job(job["Body"], "m1"), datetime.now(UTC), timedelta(seconds=30))
    assert claim.state == "done" and claim.to_send == []


def test_a_cancel_that_died_half_way_is_finished_by_the_next_delete(post, delete, get, aws, monkeypatch):
    from tuma.store import cancels

    body = scheduled_send(post)
    with monkeypatch.context() as patch:
        patch.setattr(cancels, "put_cancelled_messages", lambda *a: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError):
            delete(body["message_id"])
    assert aws.item(message_pk("tenant-a", body["message_id"]), job_sk(1))["state"] == "cancelled"

    code, view = delete(body["message_id"])
    assert code == 200 and view["counts"] == {"cancelled": 2}


def test_cancelling_a_whole_batch(post, delete, get, release, aws):
    code, body = post("/v1/messages/bulk", {"from": "TUMA", "scheduled_at": ahead(hours=1),
                                            "messages": [{"to": "0712345678", "body": "A"},
                                                         {"to": "0722111222", "body": "B"}]})
    batch_id = body["batch_id"]

    code, view = delete(batch_id)

    assert code == 200 and view["batch_id"] == batch_id
    assert view["counts"] == {"cancelled": 2} and view["done"] is True
    assert release(batch_id) == "cancelled"


# --- cancelling one message --------------------------------------------------------------------


def test_cancelling_one_message_leaves_it_out_of_its_job_and_sends_the_rest(post, delete, get, release, sender,
                                                                            aws, simsaya):
    body = scheduled_send(post, numbers=("0712345678", "0722111222", "0733123456"))
    request_id = body["message_id"]

    code, view = delete(f"{request_id}_2")
    assert code == 200 and view["status"] == "cancelled" and view["message_id"] == f"{request_id}_2"
    code, again = delete(f"{request_id}_2")
    assert code == 409 and again["error"]["code"] == "already_cancelled"

    assert release(request_id) == "released"
    (job,) = aws.receive(aws.queue_url)
    assert sender([job["Body"]]) == {"batchItemFailures": []}

    (call,) = simsaya.requests()
    assert call["body"]["to"] == ["+254712345678", "+254733123456"]
    counts = get(request_id)[1]["counts"]
    assert counts == {"sent": 2, "cancelled": 1}


def test_cancelling_a_message_then_its_request_keeps_the_first_cancel(post, delete, get, aws):
    body = scheduled_send(post)
    request_id = body["message_id"]
    first_at = delete(f"{request_id}_1")[1]["updated_at"]

    code, view = delete(request_id)

    assert code == 200 and view["counts"] == {"cancelled": 2}
    assert get(f"{request_id}_1")[1]["updated_at"] == first_at


def test_a_rejected_message_is_not_cancellable(post, delete):
    body = scheduled_send(post, numbers=("0712345678", "0712"))
    code, refused = delete(f"{body['message_id']}_2")
    assert code == 409 and refused["error"]["code"] == "not_cancellable"


@pytest.mark.parametrize("suffix", ["", "_1"])
def test_another_tenants_or_an_unknown_id_is_a_404(post, delete, suffix):
    body = scheduled_send(post)
    for message_id, tenant in ((body["message_id"] + suffix, "tenant-b"),
                               (f"msg_{'0' * 26}{suffix}", "tenant-a"), (f"{body['message_id']}_9", "tenant-a")):
        code, refused = delete(message_id, tenant=tenant)
        assert code == 404 and refused["error"]["code"] == "not_found"
    assert delete("not-an-id")[0] == 404


def test_a_producers_request_is_not_cancellable(delete, aws, sender, simsaya):
    job = {"version": 1, "tenant_id": "tenant-a", "provider": "sayasms", "from": "TUMA", "body": "x",
           "request_id": "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C", "recipients": [{"number": "0712345678"}]}
    sender([json.dumps(job)])
    code, refused = delete("msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C")
    assert code == 409 and refused["error"]["code"] == "not_cancellable"


# --- failures and retention --------------------------------------------------------------------


def test_when_the_schedule_cannot_be_made_nothing_is_stored_to_wait_forever(post, aws, monkeypatch):
    from tuma.store import schedules

    def refused(*args, **kwargs):
        raise RuntimeError("Scheduler throttled the call")
    monkeypatch.setattr(schedules, "create_release_schedule", refused)

    status, body = post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Habari",
                                         "scheduled_at": ahead(hours=2)})

    assert (status, body["error"]["code"]) == (503, "unavailable")  # Tuma's shape, to retry with a key
    assert aws.items() == []


def test_retention_counts_from_the_scheduled_time(post, aws):
    at = datetime.now(UTC) + timedelta(days=20)
    scheduled_send(post, scheduled_at=at.isoformat())

    retention = timedelta(days=90)  # RETENTION_DAYS in the tests
    assert {int(item["expires_at"]) for item in aws.items()} == {int((at.replace(microsecond=at.microsecond // 1000 * 1000)
                                                                      + retention).timestamp())}


# --- cancelling what waits for a retry (no provider took it) -----------------------------------


def a_job_waiting_for_its_retry(post, sender, aws, simsaya, numbers=("0712345678", "0722111222")) -> tuple[str, str]:
    """A send pinned to SayaSMS whose first attempt found SayaSMS busy: (request id, its job)."""
    code, body = post("/v1/messages", {"to": list(numbers), "from": "TUMA", "body": "Habari", "provider": "sayasms"})
    assert code == 202
    (job,) = aws.receive(aws.queue_url)
    simsaya.faults({"status": 503})
    with pytest.raises(BatchProcessingError):  # Powertools' answer when every record of the batch failed
        sender([job["Body"]])
    simsaya.faults({})
    return body["message_id"], job["Body"]


def test_a_request_waiting_for_its_retry_can_be_cancelled_and_is_never_sent(post, delete, sender, aws, simsaya):
    request_id, job = a_job_waiting_for_its_retry(post, sender, aws, simsaya)

    code, view = delete(request_id)

    assert code == 200 and view["counts"] == {"cancelled": 2}
    assert sender([job]) == {"batchItemFailures": []}  # the retry arrives: nothing left to send
    assert simsaya.answered() == []


def test_one_message_waiting_for_its_retry_can_be_cancelled_and_the_rest_is_sent(post, delete, get, sender, aws,
                                                                                 simsaya):
    request_id, job = a_job_waiting_for_its_retry(post, sender, aws, simsaya)

    code, view = delete(f"{request_id}_1")
    assert code == 200 and view["status"] == "cancelled"

    assert sender([job]) == {"batchItemFailures": []}
    (call,) = simsaya.answered()
    assert call["body"]["to"] == ["+254722111222"]
    assert get(request_id)[1]["counts"] == {"cancelled": 1, "sent": 1}
    assert delete(f"{request_id}_2")[1]["error"]["code"] == "already_sent"
