"""The 254sms drop-in on the deployed stack: the seed's own request, with a Tuma key in its body
and no Authorization header, is queued, sent and answered in 254sms's shape."""

from __future__ import annotations

import requests

PATH = "/v1/compat/254sms/sendsms"


def test_the_seeds_request_goes_through_with_no_bearer_header(stack, client, sayasms, sms254):
    seed = {"username": "254SMS USERNAME", "api_key": stack.api_key, "sender_id": "254sms",
            "phone": "25472256565,254722998999", "message": "Hello world"}
    answer = requests.post(stack.api_url + PATH, json=seed, timeout=30)  # no Authorization header
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["statusCode"] == 101 and body["recipientsCount"] == 1
    assert [d["statusCode"] for d in body["messageDetails"]] == ["Invalid Phone Number", "Successfully Sent"]
    sent = client.wait_for(body["messageDetails"][1]["messageId"])
    assert sent["status"] == "sent" and sent["number"] == "+254722998999"


def test_a_wrong_key_is_x001_and_a_missing_parameter_x000(stack):
    wrong = requests.post(stack.api_url + PATH, json={"username": "u", "api_key": "tuma_nope", "phone": "0722998999",
                                                      "message": "hi"}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["statusCode"] == "X001"
    missing = requests.post(stack.api_url + PATH, json={"username": "u", "api_key": stack.api_key}, timeout=30)
    assert missing.status_code == 400 and missing.json()["statusCode"] == "X000"


def test_the_bearer_routes_still_need_their_header(stack):
    assert requests.get(stack.api_url + "/v1/account/balance", timeout=30).status_code == 401
