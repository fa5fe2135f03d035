"""A tenant's key sends only as the sender ids registered with it: the authorizer carries them,
send/estimate/bulk refuse another `from` with 403 sender_id_not_allowed, storing and queuing
nothing. A key made with none registered (before sender ids existed, or --any-sender-id) may use any."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, api_event
from tuma.store.api_keys import create_api_key, key_record

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/POST/v1/messages"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def authorize(functions, context, aws):
    module = functions("authorizer")
    return lambda key: module.handler({"type": "TOKEN", "authorizationToken": f"Bearer {key}",
                                       "methodArn": METHOD_ARN}, context)


@pytest.fixture
def call(functions, context, aws, authorize):
    """Call a route as API Gateway would after the authorizer allowed `key`: with its context."""
    def go(key: str, name: str, path: str, body: dict) -> tuple[int, dict]:
        policy = authorize(key)
        event = api_event("POST", path, body=body, tenant=policy["principalId"])
        event["requestContext"]["authorizer"] = {"principalId": policy["principalId"], **policy["context"]}
        response = functions(name).handler(event, context)
        return response["statusCode"], json.loads(response["body"])
    return go


SEND = {"to": ["0712345678"], "body": "Hello"}
BULK = {"messages": [{"to": "0712345678", "body": "Hello"}]}
ROUTES = [("send", "/v1/messages", SEND), ("send", "/v1/messages/estimate", SEND), ("bulk", "/v1/messages/bulk", BULK)]


def test_the_authorizer_carries_the_keys_sender_ids_and_its_usage_key(authorize, aws):
    key = create_api_key("tenant-a", sender_ids=["MYSHOP", "ALERTS"], usage_key="usage-key-of-tenant-a")
    policy = authorize(key)
    assert policy["context"] == {"tenant_id": "tenant-a", "sender_ids": "ALERTS,MYSHOP"}
    assert policy["usageIdentifierKey"] == "usage-key-of-tenant-a"


@pytest.mark.parametrize("name,path,body", ROUTES)
def test_a_key_may_not_send_as_a_sender_id_not_registered_for_it(call, aws, name, path, body):
    key = create_api_key("tenant-a", sender_ids=["MYSHOP"])

    status, answer = call(key, name, path, {**body, "from": "BANK"})

    assert status == 403
    assert answer["error"]["code"] == "sender_id_not_allowed"
    assert answer["error"]["details"] == [{"field": "from", "reason": "is not a sender id registered for this API key"}]
    assert aws.receive(aws.queue_url) == []
    assert [i for i in aws.items() if i["pk"].startswith("T#")] == []


@pytest.mark.parametrize("name,path,body", ROUTES)
def test_a_key_sends_as_its_registered_sender_ids(call, aws, name, path, body):
    key = create_api_key("tenant-a", sender_ids=["MYSHOP", "ALERTS"])
    status, answer = call(key, name, path, {**body, "from": "ALERTS"})
    assert status in (200, 202), answer


def test_sender_ids_match_exactly_not_by_case(call, aws):
    key = create_api_key("tenant-a", sender_ids=["MYSHOP"])
    status, answer = call(key, "send", "/v1/messages", {**SEND, "from": "MyShop"})
    assert (status, answer["error"]["code"]) == (403, "sender_id_not_allowed")


def test_a_key_made_without_sender_ids_may_use_any(call, aws):
    key = create_api_key("tenant-a")
    assert key_record(key).sender_ids is None
    status, _ = call(key, "send", "/v1/messages", {**SEND, "from": "ANYTHING"})
    assert status == 202


def test_a_bad_from_is_still_a_400_before_the_sender_id_check(call, aws):
    key = create_api_key("tenant-a", sender_ids=["MYSHOP"])
    status, answer = call(key, "send", "/v1/messages", {**SEND, "from": "THIS-IS-TOO-LONG"})
    assert status == 400 and answer["error"]["details"][0]["field"] == "from"


def test_the_script_needs_sender_ids_or_an_explicit_any():
    script = [sys.executable, str(REPO / "scripts" / "create_api_key.py"), "--tenant", "acme"]
    for argv, complaint in [(script, "one of the arguments --sender-id --any-sender-id is required"),
                            (script + ["--sender-id", "NOT A SENDER"], "must be at most 11 letters and digits"),
                            (script + ["--sender-id", "ACME", "--any-sender-id"], "not allowed with argument")]:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and complaint in result.stderr, result.stderr
