"""POST /v1/compat/254sms/sendsms: the seed's own request (shared/seeds/254sms-api.txt) with a
Tuma key, answered in 254sms's shape and codes, and queued like POST /v1/messages."""

from __future__ import annotations

import json

import pytest

from conftest import api_event
from tuma.store.api_keys import create_api_key

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

PATH = "/v1/compat/254sms/sendsms"


def seed_request(api_key: str) -> dict:
    """The document's PHP sample, as json_encode($data) sends it."""
    return {"username": "254SMS USERNAME", "api_key": api_key, "sender_id": "254sms",
            "phone": "25472256565,254722998999", "message": "Hello world"}


@pytest.fixture
def sendsms(functions, context, aws):
    module = functions("compat_254sms")

    def post(body):
        # No authorizer on this route: the event has no authorizer context.
        response = module.handler(api_event("POST", PATH, body=body, tenant=None, headers={"Authorization": ""}),
                                  context)
        return response["statusCode"], json.loads(response["body"])
    return post


@pytest.fixture
def key(aws):
    return create_api_key("tenant-a", "254sms app", key_table=aws.table)


def test_the_seeds_own_request_with_a_tuma_key_is_queued_and_answered_in_254sms_shape(sendsms, key, aws):
    status, body = sendsms(seed_request(key))
    assert status == 200
    assert body["statusCode"] == 101 and body["statusMessage"] == "Success"
    # The seed's first number has 11 digits (2547 2256565): not a Kenyan mobile number.
    assert body["recipientsCount"] == 1
    first, second = body["messageDetails"]
    assert first["recipient"] == "25472256565" and first["statusCode"] == "Invalid Phone Number"
    assert first["statusMessage"] == 0
    assert second == {"recipient": "254722998999", "message": "Hello world", "statusCode": "Successfully Sent",
                      "statusMessage": 2, "messageId": body["messageId"] + "_2"}
    [job] = [json.loads(m["Body"]) for m in aws.receive(aws.queue_url)]
    assert job["tenant_id"] == "tenant-a" and job["from"] == "254sms" and job["body"] == "Hello world"
    assert [r["number"] for r in job["recipients"]] == ["+254722998999"]


def test_the_sender_id_defaults_to_254sms_as_the_document_says(sendsms, key, aws):
    request = seed_request(key)
    del request["sender_id"]
    request["phone"] = "254722998999"
    assert sendsms(request)[0] == 200
    [job] = [json.loads(m["Body"]) for m in aws.receive(aws.queue_url)]
    assert job["from"] == "254sms"


@pytest.mark.parametrize("missing", ["username", "api_key", "phone", "message"])
def test_a_missing_parameter_is_x000(sendsms, key, aws, missing):
    request = seed_request(key)
    del request[missing]
    status, body = sendsms(request)
    assert status == 400
    assert body["statusCode"] == "X000" and body["statusMessage"].startswith("Some parameters are missing")
    assert [d["field"] for d in body["details"]] == [missing]
    assert aws.receive(aws.queue_url) == []


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '{"phone": " , ,"}'])
def test_a_body_that_is_not_a_254sms_request_is_x000_never_a_5xx(sendsms, raw):
    status, body = sendsms(raw)
    assert status == 400 and body["statusCode"] == "X000"


def test_an_unknown_key_is_x001_and_nothing_is_queued(sendsms, aws):
    status, body = sendsms(seed_request("tuma_not_a_key"))
    assert status == 401
    assert body == {"statusCode": "X001", "statusMessage": "Unknown or unvalid secret_key. This error appears if you "
                                                           "use an unknow API key or if your API key expired."}
    assert aws.receive(aws.queue_url) == []


def test_a_request_tuma_refuses_as_a_whole_is_x000_with_tumas_reasons(sendsms, key, aws):
    request = {**seed_request(key), "sender_id": "A SENDER ID THAT IS TOO LONG"}
    status, body = sendsms(request)
    assert status == 400 and body["statusCode"] == "X000"
    assert body["details"][0]["field"] == "from"
    status, body = sendsms({**seed_request(key), "phone": "25472256565"})  # no valid number at all
    assert status == 400 and body["statusCode"] == "X000" and body["details"][0]["field"] == "to[0]"


def test_the_message_is_readable_through_tumas_status_route(sendsms, key, functions, context, aws):
    _, body = sendsms({**seed_request(key), "phone": "0722998999"})
    message_id = body["messageDetails"][0]["messageId"]
    status = functions("status").handler(api_event("GET", f"/v1/messages/{message_id}", resource="/v1/messages/{message_id}",
                                                   path_parameters={"message_id": message_id}), context)
    assert status["statusCode"] == 200 and json.loads(status["body"])["number"] == "+254722998999"
