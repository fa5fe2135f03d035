"""One SMS from curl to a provider and back, on the deployed template, as a user does it."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import Client

# The "Send an SMS" curl of seeds/sayasms-api.txt, with only the host and the key changed.
SEED_CURL_BODY = """{
"to": ["+254712345678", "+254722111222"],
"from": "SAYARADIUS",
"body": "Hello! Your verification code is 834921.",
"callback_url": "https://yourapp.com/webhooks/sms"
}"""


def seed_curl(api_url: str, api_key: str, body: str) -> tuple[int, dict]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", f"{api_url}/v1/messages",
         "-H", f"Authorization: Bearer {api_key}", "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=60, check=True)
    text, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(text)


def test_the_sayasms_seed_curl_is_sent_through_sayasms(stack, client, sayasms):
    status, answer = seed_curl(stack.api_url, stack.api_key, SEED_CURL_BODY)

    assert status == 202
    assert answer["status"] == "queued"
    assert re.fullmatch(r"msg_[0-9A-Z]{26}", answer["message_id"])
    assert [r["number"] for r in answer["recipients"]] == ["+254712345678", "+254722111222"]
    assert [r["message_id"] for r in answer["recipients"]] == [f"{answer['message_id']}_1", f"{answer['message_id']}_2"]
    assert all(r["status"] == "queued" for r in answer["recipients"])

    views = [client.wait_for(r["message_id"]) for r in answer["recipients"]]
    assert [v["status"] for v in views] == ["sent", "sent"]
    assert all(v["provider"] == "sayasms" and v["provider_message_id"].startswith("msg_") for v in views)
    assert all(v["cost"] == "KES 0.90" for v in views)
    assert [h["status"] for h in views[0]["history"]] == ["queued", "sending", "sent"]

    calls = sayasms.requests("/v1/messages")
    assert len(calls) == 1
    assert calls[0]["body"]["to"] == ["+254712345678", "+254722111222"]
    assert calls[0]["body"]["from"] == "SAYARADIUS"
    assert calls[0]["body"]["body"] == "Hello! Your verification code is 834921."


def test_the_same_curl_pinned_to_254sms_is_one_comma_list_call(stack, client, sms254, sayasms):
    body = json.loads(SEED_CURL_BODY) | {"provider": "254sms"}
    status, answer = seed_curl(stack.api_url, stack.api_key, json.dumps(body))

    assert status == 202
    request_view = client.wait_for(answer["message_id"], done=lambda v: v["counts"].get("sent") == 2)
    assert request_view["counts"] == {"sent": 2}
    assert {r["provider"] for r in request_view["recipients"]} == {"254sms"}

    calls = sms254.requests("/sendsms")
    assert len(calls) == 1
    assert calls[0]["body"]["phone"] == "254712345678,254722111222"
    assert calls[0]["body"]["sender_id"] == "SAYARADIUS"
    assert sayasms.requests("/v1/messages") == []


def test_numbers_in_every_kenyan_form_and_a_bad_one(client, sayasms):
    answer = client.post("/v1/messages", {"to": ["0712345678", "722111222", "254733123456", "+254770123456", "0712"],
                                          "from": "TUMA", "body": "Habari"})

    assert answer.status_code == 202
    recipients = answer.json()["recipients"]
    assert [r["status"] for r in recipients] == ["queued"] * 4 + ["rejected"]
    assert "not a valid phone number" in recipients[4]["reason"]
    client.wait_for(answer.json()["message_id"], done=lambda v: v["counts"].get("sent") == 4)
    assert sayasms.requests("/v1/messages")[0]["body"]["to"] == [
        "+254712345678", "+254722111222", "+254733123456", "+254770123456"]


def test_a_provider_rejection_is_final_and_recorded(client, sms254):
    sms254.fault(error="X001", count=1)
    answer = client.post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Hi", "provider": "254sms"})

    view = client.wait_for(answer.json()["recipients"][0]["message_id"])
    assert view["status"] == "failed"
    assert view["error_code"] == "X001"
    assert len(sms254.requests("/sendsms")) == 1


def test_balance_shows_both_providers(client, balance_cache):
    answer = client.get("/v1/account/balance")

    assert answer.status_code == 200
    providers = answer.json()["providers"]
    assert providers["254sms"]["available"] is True and isinstance(providers["254sms"]["credits"], int)
    assert providers["sayasms"]["available"] is True and providers["sayasms"]["currency"] == "KES"


def test_balance_shows_a_failing_provider_as_unavailable(client, sayasms, balance_cache):
    sayasms.fault(status=503, count=1)
    answer = client.get("/v1/account/balance")

    assert answer.status_code == 200
    assert answer.json()["providers"]["sayasms"] == {"available": False, "reason": "HTTP 503", "code": "503"}
    assert answer.json()["providers"]["254sms"]["available"] is True


def test_errors_are_json_4xx(stack, client):
    # API Gateway answers these before any function runs. The template's GatewayResponses give
    # them Tuma's error shape on AWS; MiniStack 1.5.33 answers with its own JSON body.
    no_key = Client(stack.api_url, None).post("/v1/messages", {})
    assert no_key.status_code == 401 and no_key.json()

    bad_key = Client(stack.api_url, "tuma_not-a-key").post("/v1/messages", {})
    assert bad_key.status_code == 403 and bad_key.json()

    invalid = client.post("/v1/messages", {"to": ["0712345678"], "from": "THIS-IS-TOO-LONG", "body": "", "colour": "red"})
    assert invalid.status_code == 400
    fields = {d["field"] for d in invalid.json()["error"]["details"]}
    assert fields == {"from", "body", "colour"}

    nothing_sendable = client.post("/v1/messages", {"to": ["123"], "from": "TUMA", "body": "Hi"})
    assert nothing_sendable.status_code == 400
    assert nothing_sendable.json()["error"]["code"] == "no_sendable_recipient"

    unknown = client.get("/v1/messages/msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_another_tenant_cannot_see_a_message(stack, client):
    answer = client.post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "Hi"}).json()
    other = Client(stack.api_url, stack.create_api_key("another-tenant"))

    assert other.get(f"/v1/messages/{answer['message_id']}").status_code == 404
    assert other.get(f"/v1/messages/{answer['message_id']}_1").status_code == 404
    assert client.get(f"/v1/messages/{answer['message_id']}_1").status_code == 200


def test_an_outage_leaves_the_job_to_sqs_and_the_retry_sends_it_once(client, sms254):
    sms254.fault(status=503, count=1)
    answer = client.post("/v1/messages", {"to": ["0712345678", "0722111222"], "from": "TUMA", "body": "Retry me",
                                          "provider": "254sms"})

    view = client.wait_for(answer.json()["message_id"], done=lambda v: v["counts"].get("sent") == 2)
    assert view["counts"] == {"sent": 2}
    calls = sms254.requests("/sendsms")
    assert [c.get("fault") for c in calls] == ["status:503", None]
    assert calls[1]["body"]["phone"] == "254712345678,254722111222"
