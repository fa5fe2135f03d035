"""Security promises on the deployed stack: a key sends only as its registered sender ids, the
stage throttle answers 429 in Tuma's error shape, and an unknown or missing key gets nowhere.

What MiniStack cannot show (the usage plan's per-key limits, which it reads only from x-api-key;
the access log, which it does not write) is checked on the template in tests/unit/test_security_scans.py."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Client
from local.stack import SENDER_IDS

pytestmark = pytest.mark.e2e


def _error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


def test_a_key_may_not_send_as_another_sender_id(stack, client, sayasms):
    answer = client.post("/v1/messages", {"to": ["0712345678"], "from": "BANK", "body": "Hello"})

    body = _error_shape(answer, 403, "sender_id_not_allowed")
    assert body["error"]["details"] == [{"field": "from", "reason": "is not a sender id registered for this API key"}]
    bulk = client.post("/v1/messages/bulk", {"from": "BANK", "messages": [{"to": "0712345678", "body": "Hi"}]})
    _error_shape(bulk, 403, "sender_id_not_allowed")
    time.sleep(1)
    assert sayasms.requests("/v1/messages") == []


def test_a_key_sends_as_each_of_its_sender_ids(stack, client):
    for sender in SENDER_IDS:
        answer = client.post("/v1/messages/estimate", {"to": ["0712345678"], "from": sender, "body": "Hello"})
        assert answer.status_code == 200, answer.text


def test_another_tenants_key_with_its_own_sender_ids(stack):
    from tuma.store.api_keys import create_api_key

    other = Client(stack.api_url, create_api_key("acme", label="e2e", key_table=stack._table(), sender_ids=["ACME"]))
    assert other.post("/v1/messages/estimate", {"to": ["0712345678"], "from": "ACME", "body": "Hi"}).status_code == 200
    _error_shape(other.post("/v1/messages/estimate", {"to": ["0712345678"], "from": "TUMA", "body": "Hi"}),
                 403, "sender_id_not_allowed")


def test_no_key_or_an_unknown_key_gets_nowhere(stack):
    _error_shape(Client(stack.api_url, None).get("/v1/messages/msg_x"), 401, "unauthorized")
    _error_shape(Client(stack.api_url, "tuma_nobody_has_this_key").get("/v1/messages/msg_x"), 403, "forbidden")


@pytest.fixture
def slow_stage(stack):
    """The stage throttle as the template sets it, then cut to 1 request/s with a burst of 2 for
    the test (the template's own limits are too high to reach from here), then put back."""
    apigateway = stack.client("apigateway")
    api_id = stack.outputs["ApiId"]
    stage = apigateway.get_stage(restApiId=api_id, stageName="local")
    deployed = stage["methodSettings"]["*/*"]
    limits = {"rateLimit": deployed["throttlingRateLimit"], "burstLimit": deployed["throttlingBurstLimit"]}

    def set_limits(rate, burst):
        apigateway.update_stage(restApiId=api_id, stageName="local", patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(rate)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)}])
    set_limits(1, 2)
    yield limits
    set_limits(limits["rateLimit"], limits["burstLimit"])


def test_the_stage_throttle_answers_429_in_tumas_error_shape(stack, client, slow_stage):
    assert slow_stage == {"rateLimit": 200.0, "burstLimit": 400}  # ApiRateLimit, ApiBurstLimit defaults

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.get("/v1/messages/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"), range(8)))

    throttled = [a for a in answers if a.status_code == 429]
    assert throttled, [a.status_code for a in answers]
    for answer in throttled:
        _error_shape(answer, 429, "throttled")
    assert {a.status_code for a in answers} <= {404, 429}  # never a 5xx
