"""The provider adapters against the real simulators over loopback (tuma.providers).

A failed provider call decides the fate of its messages: unavailable (certainly not taken:
`not_taken`, retried), rejected (refused for good: `failed` with the provider's code), ambiguous
(may have been taken: `unknown`, never resent). SayaSMS's adapter raises these as ProviderError
subclasses; 254sms's makes one call per distinct body and turns a failed call into the outcomes
of that call's messages, and raises them from `balance()`."""

from __future__ import annotations

import re

import pytest

from conftest import SAYASMS_API_KEY, SMS254_API_KEY, SMS254_USERNAME, ULID
from local.simulators.sms254 import ERRORS as SMS254_ERRORS
from tuma.domain.providers import (
    NOT_TAKEN, OutgoingMessage, ProviderAccountProblem, ProviderAmbiguous, ProviderError, ProviderRejected,
    ProviderUnavailable, RecipientOutcome)
from tuma.providers.sayasms import SayaSms
from tuma.providers.sms254 import Sms254

NUMBERS = ["+254712345678", "+254722111222"]


def msgs(numbers: list[str], body: str = "Hi") -> list[OutgoingMessage]:
    return [OutgoingMessage(number, body) for number in numbers]


@pytest.fixture
def saya(simsaya) -> SayaSms:
    return SayaSms(simsaya.url, SAYASMS_API_KEY)


@pytest.fixture
def sms254(sim254) -> Sms254:
    return Sms254(sim254.url, SMS254_USERNAME, SMS254_API_KEY)


# --- SayaSMS: success ------------------------------------------------------------------------


def test_sayasms_send_gives_one_sent_outcome_per_number_with_its_message_id_and_cost(saya, simsaya):
    outcomes = saya.send("TUMA", msgs(NUMBERS, "Hello from Tuma"))

    assert [o.status for o in outcomes] == ["sent", "sent"]
    ids = [o.provider_message_id for o in outcomes]
    assert re.fullmatch(rf"msg_{ULID}_1", ids[0]) and ids[1] == ids[0][:-1] + "2"
    assert [o.cost for o in outcomes] == ["KES 0.90", "KES 0.90"]
    assert all(o.error_code is None and o.reason is None for o in outcomes)
    # One call, in SayaSMS's documented shape, with the key as a Bearer token.
    (call,) = simsaya.requests()
    assert (call["method"], call["path"]) == ("POST", "/v1/messages")
    assert call["headers"]["Authorization"] == f"Bearer {SAYASMS_API_KEY}"
    assert call["body"] == {"to": NUMBERS, "from": "TUMA", "body": "Hello from Tuma"}
    # The outcomes are SayaSMS's own records of those numbers.
    assert {(m["message_id"], m["to"]) for m in simsaya.messages()} == set(zip(ids, NUMBERS))


def test_sayasms_outcomes_follow_the_order_of_the_messages(saya, simsaya):
    numbers = ["+254733123456", "+254712345678", "+254722111222"]
    outcomes = saya.send("TUMA", msgs(numbers))
    to_by_id = {m["message_id"]: m["to"] for m in simsaya.messages()}
    assert [to_by_id[o.provider_message_id] for o in outcomes] == numbers


def test_sayasms_personalised_bodies_go_in_one_bulk_call(saya, simsaya):
    messages = [OutgoingMessage("+254712345678", "Hi Grace"), OutgoingMessage("+254722111222", "Hi Peter"),
                OutgoingMessage("+254733123456", "Hi Amina")]
    outcomes = saya.send("SHOP", messages)

    assert [o.status for o in outcomes] == ["sent", "sent", "sent"]
    (call,) = simsaya.requests()
    assert (call["method"], call["path"]) == ("POST", "/v1/messages/bulk")
    assert call["body"] == {"from": "SHOP", "messages": [{"to": m.number, "body": m.body} for m in messages]}
    taken = {m["message_id"]: (m["to"], m["body"]) for m in simsaya.messages()}
    assert [taken[o.provider_message_id] for o in outcomes] == [(m.number, m.body) for m in messages]
    assert all(o.cost == "KES 0.90" for o in outcomes)


def test_sayasms_cost_reflects_the_segments(saya):
    (outcome,) = saya.send("TUMA", msgs(["+254712345678"], "a" * 161))  # two GSM-7 segments
    assert outcome.cost == "KES 1.80"


def test_sayasms_send_names_tumas_webhook_with_a_new_reference_per_call(simsaya):
    from urllib.parse import parse_qs, urlsplit

    from tuma.domain.reports import ReportRef

    webhook = "https://tuma.example/v1/webhooks/sayasms?token=t%2Bk"
    saya = SayaSms(simsaya.url, SAYASMS_API_KEY, callback_url=webhook)
    single = saya.send("TUMA", msgs(["+254712345678"]))
    bulk = saya.send("TUMA", [OutgoingMessage(f"+2547{i:08d}", f"body {i}") for i in range(26)])

    urls = [urlsplit(r["body"]["callback_url"]) for r in simsaya.requests()]
    assert [u._replace(query="").geturl() for u in urls] == ["https://tuma.example/v1/webhooks/sayasms"] * 2
    queries = [parse_qs(u.query) for u in urls]
    assert [q["token"] for q in queries] == [["t+k"], ["t+k"]]  # the token kept as it was
    refs = [ReportRef.parse(q["ref"][0]) for q in queries]
    assert [r.blocks for r in refs] == [1, 2]  # ceil(messages / 25)
    assert refs[0].call != refs[1].call
    # Every outcome carries its own call's reference, for the store to link it by.
    assert {o.report_ref for o in single} == {str(refs[0])} and {o.report_ref for o in bulk} == {str(refs[1])}


def test_sayasms_send_without_a_webhook_gives_no_reference(saya, simsaya):
    (outcome,) = saya.send("TUMA", msgs(["+254712345678"]))

    assert outcome.report_ref is None and "callback_url" not in simsaya.requests()[0]["body"]


def test_sayasms_base_url_may_end_with_a_slash(simsaya):
    (outcome,) = SayaSms(simsaya.url + "/", SAYASMS_API_KEY).send("TUMA", msgs(["+254712345678"]))
    assert outcome.status == "sent"
    assert simsaya.requests()[0]["path"] == "/v1/messages"


# --- SayaSMS: errors -------------------------------------------------------------------------


@pytest.mark.parametrize("fault, status, code", [
    ({"error": "invalid_request"}, 400, "invalid_request"),
    ({"error": "unauthorized"}, 401, "unauthorized"),
    ({"error": "insufficient_balance"}, 402, "insufficient_balance"),
    ({"status": 403}, 403, "simulated_fault"),
    ({"status": 404}, 404, "simulated_fault"),
])
@pytest.mark.parametrize("personalised", [False, True], ids=["one-body", "bulk"])
def test_sayasms_4xx_is_a_final_rejection_with_its_code(saya, simsaya, fault, status, code, personalised):
    simsaya.faults(fault)
    messages = [OutgoingMessage(n, f"Hi {n}" if personalised else "Hi") for n in NUMBERS]
    with pytest.raises(ProviderRejected) as raised:
        saya.send("TUMA", messages)
    assert raised.value.provider == "sayasms"
    assert raised.value.code == code
    # 401 (our key) and 402 (our credit) are about the account: another provider may send it.
    assert isinstance(raised.value, ProviderAccountProblem) == (status in (401, 402))
    assert raised.value.reason.startswith(f"HTTP {status}: ")


def test_sayasms_wrong_api_key_is_rejected_401(simsaya):
    with pytest.raises(ProviderAccountProblem) as raised:
        SayaSms(simsaya.url, "sk_test_wrong").send("TUMA", msgs(NUMBERS))
    assert raised.value.code == "unauthorized"
    assert raised.value.reason.startswith("HTTP 401: missing or invalid API key")


def test_sayasms_invalid_request_is_rejected_400_with_its_message(saya):
    with pytest.raises(ProviderRejected) as raised:
        saya.send("THIS-IS-NOT-A-SENDER-ID", msgs(NUMBERS))
    assert raised.value.code == "invalid_request"
    assert "from must be a sender ID" in raised.value.reason


def test_sayasms_insufficient_balance_is_rejected_402():
    from local.simulators.common import start
    from local.simulators.sayasms import SayaSmsSimulator

    simulator = SayaSmsSimulator(api_key=SAYASMS_API_KEY, balance="1.00")
    simulator.callbacks.configure({"enabled": False})
    with start(simulator) as running:
        with pytest.raises(ProviderRejected) as raised:
            SayaSms(running.url, SAYASMS_API_KEY).send("TUMA", msgs(NUMBERS))  # KES 1.80 > 1.00
    assert isinstance(raised.value, ProviderAccountProblem)
    assert raised.value.code == "insufficient_balance"
    assert raised.value.reason.startswith("HTTP 402: ")


@pytest.mark.parametrize("fault, code", [
    ({"status": 503}, "503"), ({"status": 429}, "429"), ({"error": "rate_limited"}, "429"),
])
def test_sayasms_503_and_429_are_an_outage(saya, simsaya, fault, code):
    simsaya.faults(fault)
    with pytest.raises(ProviderUnavailable) as raised:
        saya.send("TUMA", msgs(NUMBERS))
    assert raised.value.code == code
    assert raised.value.transient
    assert simsaya.messages() == []  # and indeed nothing was taken


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_5xx_may_come_after_the_message_was_taken_so_they_are_ambiguous(saya, sms254, simsaya, sim254, status):
    simsaya.faults({"status": status})
    with pytest.raises(ProviderAmbiguous) as raised:
        saya.send("TUMA", msgs(NUMBERS))
    assert (raised.value.code, raised.value.reason) == (str(status), f"HTTP {status}: the provider may have taken it")
    sim254.faults({"status": status})
    assert [o.status for o in sms254.send("TUMA", msgs(NUMBERS))] == ["unknown", "unknown"]


def test_sayasms_connection_refused_is_an_outage(closed_url):
    with pytest.raises(ProviderUnavailable) as raised:
        SayaSms(closed_url, SAYASMS_API_KEY).send("TUMA", msgs(NUMBERS))
    assert raised.value.reason.startswith("connection failed")


def test_sayasms_hang_is_ambiguous(saya, simsaya, short_read_timeout):
    simsaya.faults({"hang": True, "count": 1})
    with pytest.raises(ProviderAmbiguous) as raised:
        saya.send("TUMA", msgs(NUMBERS))
    assert raised.value.code == "read_timeout"
    assert raised.value.reason == "no answer within 0.5 s after the request was sent"
    assert len(simsaya.requests()) == 1  # the request did reach the provider


def test_sayasms_dropped_connection_is_a_provider_error_not_a_crash(saya, simsaya):
    simsaya.faults({"drop": True, "count": 1})
    with pytest.raises(ProviderError):
        saya.send("TUMA", msgs(NUMBERS))
    assert simsaya.requests()[0]["fault"] == "drop"


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_sayasms_connection_dropped_after_the_request_was_sent_is_ambiguous(saya, simsaya, fault):
    simsaya.faults({fault: True, "count": 1})
    with pytest.raises(ProviderAmbiguous):
        saya.send("TUMA", msgs(NUMBERS))


def test_sayasms_balance(saya):
    assert saya.balance() == {"balance": 1000, "currency": "KES", "sms_credits": 1111}


def test_sayasms_balance_goes_down_after_a_send(saya):
    saya.send("TUMA", msgs(NUMBERS))
    assert saya.balance()["balance"] == pytest.approx(998.2)


@pytest.mark.parametrize("fault, kind", [({"error": "unauthorized"}, ProviderRejected),
                                         ({"status": 503}, ProviderUnavailable)])
def test_sayasms_balance_failures(saya, simsaya, fault, kind):
    simsaya.faults(fault)
    with pytest.raises(kind):
        saya.balance()


# --- 254sms: success -------------------------------------------------------------------------


def test_254sms_sends_all_numbers_in_one_call_as_a_comma_list_of_digits(sms254, sim254):
    outcomes = sms254.send("TUMA", msgs(NUMBERS, "Hello from Tuma"))

    assert outcomes == [RecipientOutcome("sent"), RecipientOutcome("sent")]
    (call,) = sim254.requests()
    assert (call["method"], call["path"]) == ("POST", "/sendsms")
    assert call["body"] == {"username": SMS254_USERNAME, "api_key": SMS254_API_KEY, "sender_id": "TUMA",
                            "phone": "254712345678,254722111222", "message": "Hello from Tuma"}


def test_254sms_makes_one_call_per_distinct_body(sms254, sim254):
    messages = [OutgoingMessage("+254712345678", "A"), OutgoingMessage("+254722111222", "B"),
                OutgoingMessage("+254733123456", "A")]
    assert [o.status for o in sms254.send("SHOP", messages)] == ["sent", "sent", "sent"]
    calls = sorted((r["body"]["message"], r["body"]["phone"]) for r in sim254.requests())
    assert calls == [("A", "254712345678,254733123456"), ("B", "254722111222")]


def test_254sms_invalid_phone_number_detail_fails_that_number_only(sms254):
    # +25420... is a landline: 254sms's own check refuses it, the other numbers go.
    outcomes = sms254.send("TUMA", msgs(["+254712345678", "+254202222222", "+254722111222"]))
    assert outcomes == [
        RecipientOutcome("sent"),
        RecipientOutcome("failed", error_code="0", reason="Invalid Phone Number"),
        RecipientOutcome("sent"),
    ]
    assert sms254.balance() == {"credits": 998}


def test_254sms_insufficient_credits_detail_fails_the_numbers_not_paid_for():
    from local.simulators.common import start
    from local.simulators.sms254 import Sms254Simulator

    with start(Sms254Simulator(username=SMS254_USERNAME, api_key=SMS254_API_KEY, credits=1)) as running:
        outcomes = Sms254(running.url, SMS254_USERNAME, SMS254_API_KEY).send("TUMA", msgs(NUMBERS))
    assert outcomes == [RecipientOutcome("sent"),
                        RecipientOutcome("failed", error_code="0", reason="Insufficient Credits")]


def test_254sms_balance_is_its_credits_as_a_number(sms254):
    assert sms254.balance() == {"credits": 1000}
    sms254.send("TUMA", msgs(NUMBERS, "a" * 161))  # two segments, two recipients
    assert sms254.balance() == {"credits": 996}


# --- 254sms: errors --------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["X000", "X001", "X002", "X003"])
def test_254sms_error_codes_fail_the_messages_with_that_code_and_its_meaning(sms254, sim254, code):
    sim254.faults({"error": code})
    outcomes = sms254.send("TUMA", msgs(NUMBERS))
    # X001-X003 are about our key or token, not the message: another provider may send it.
    account = code != "X000"
    assert outcomes == [RecipientOutcome("failed", error_code=code, reason=SMS254_ERRORS[code],
                                         account_problem=account, provider_failed=account)] * 2
    assert all(o.may_go_elsewhere == account for o in outcomes)


@pytest.mark.parametrize("code", ["X000", "X001", "X002", "X003"])
def test_254sms_error_codes_are_provider_rejections(sms254, sim254, code):
    sim254.faults({"error": code})
    with pytest.raises(ProviderRejected) as raised:
        sms254.balance()
    assert (raised.value.provider, raised.value.code, raised.value.reason) == ("254sms", code, SMS254_ERRORS[code])


@pytest.mark.parametrize("username, api_key, code", [
    (SMS254_USERNAME, "wrong-key", "X001"),   # unknown API key
    ("someone-else", SMS254_API_KEY, "X003"),  # unknown user
    ("", SMS254_API_KEY, "X000"),              # a mandatory parameter missing
])
def test_254sms_credentials_it_refuses_give_its_code(sim254, username, api_key, code):
    adapter = Sms254(sim254.url, username, api_key)
    assert {(o.status, o.error_code) for o in adapter.send("TUMA", msgs(NUMBERS))} == {("failed", code)}
    with pytest.raises(ProviderRejected) as raised:
        adapter.balance()
    assert raised.value.code == code


def test_254sms_an_empty_message_is_x000(sms254):
    assert {(o.status, o.error_code) for o in sms254.send("TUMA", msgs(NUMBERS, ""))} == {("failed", "X000")}


@pytest.mark.parametrize("status", [503, 429])
def test_254sms_503_and_429_leave_the_messages_not_taken(sms254, sim254, status):
    sim254.faults({"status": status})
    outcomes = sms254.send("TUMA", msgs(NUMBERS))
    assert outcomes == [RecipientOutcome(NOT_TAKEN, error_code=str(status), reason=f"HTTP {status}",
                                         transient=True, provider_failed=True)] * 2
    with pytest.raises(ProviderUnavailable) as raised:
        sms254.balance()
    assert raised.value.code == str(status)
    assert raised.value.transient


def test_254sms_connection_refused_leaves_the_messages_not_taken(closed_url):
    adapter = Sms254(closed_url, SMS254_USERNAME, SMS254_API_KEY)
    outcomes = adapter.send("TUMA", msgs(NUMBERS))
    assert [o.status for o in outcomes] == [NOT_TAKEN, NOT_TAKEN]
    assert outcomes[0].reason.startswith("connection failed")
    with pytest.raises(ProviderUnavailable):
        adapter.balance()


def test_254sms_hang_makes_the_messages_unknown(sms254, sim254, short_read_timeout):
    sim254.faults({"hang": True, "count": 1})
    outcomes = sms254.send("TUMA", msgs(NUMBERS))
    assert outcomes == [RecipientOutcome("unknown", error_code="read_timeout",
                                         reason="no answer within 0.5 s after the request was sent",
                                         provider_failed=True)] * 2
    assert len(sim254.requests()) == 1


def test_254sms_hang_on_balance_is_ambiguous(sms254, sim254, short_read_timeout):
    sim254.faults({"hang": True, "count": 1})
    with pytest.raises(ProviderAmbiguous):
        sms254.balance()


def test_254sms_an_unexpected_status_code_is_ambiguous(sms254, sim254):
    # HTTP 200 whose body has neither statusCode 101 nor X00n: it may or may not have sent.
    sim254.faults({"status": 200})
    assert sms254.send("TUMA", msgs(NUMBERS)) == [
        RecipientOutcome("unknown", reason="unexpected statusCode missing", provider_failed=True)] * 2
    with pytest.raises(ProviderAmbiguous) as raised:
        sms254.balance()
    assert raised.value.reason == "unexpected statusCode missing"


@pytest.mark.parametrize("status", [400, 404])
def test_254sms_a_4xx_without_status_code_is_a_rejection(sms254, sim254, status):
    sim254.faults({"status": status})
    assert {o.status for o in sms254.send("TUMA", msgs(NUMBERS))} == {"failed"}


def test_254sms_dropped_connection_is_an_outcome_not_a_crash(sms254, sim254):
    sim254.faults({"drop": True, "count": 1})
    assert {o.status for o in sms254.send("TUMA", msgs(NUMBERS))} <= {NOT_TAKEN, "unknown"}
    assert sim254.requests()[0]["fault"] == "drop"


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_254sms_connection_dropped_after_the_request_was_sent_makes_them_unknown(sms254, sim254, fault):
    sim254.faults({fault: True, "count": 1})
    assert {o.status for o in sms254.send("TUMA", msgs(NUMBERS))} == {"unknown"}


def test_254sms_a_failed_call_fails_only_its_own_messages(sms254, sim254):
    sim254.faults({"status": 503, "count": 1})  # whichever of the two calls comes first
    messages = [OutgoingMessage("+254712345678", "A"), OutgoingMessage("+254722111222", "B"),
                OutgoingMessage("+254733123456", "A")]
    outcomes = sms254.send("SHOP", messages)

    by_body = {body: {o.status for m, o in zip(messages, outcomes) if m.body == body} for body in "AB"}
    assert sorted(by_body.values(), key=sorted) == [{NOT_TAKEN}, {"sent"}]
    assert sorted(r.get("fault", "") for r in sim254.requests()) == ["", "status:503"]


# --- both ------------------------------------------------------------------------------------


@pytest.fixture(params=["sayasms", "254sms"])
def provider(request, simsaya, sim254):
    """Each provider with its simulator: (adapter, simulator)."""
    if request.param == "sayasms":
        return SayaSms(simsaya.url, SAYASMS_API_KEY), simsaya
    return Sms254(sim254.url, SMS254_USERNAME, SMS254_API_KEY), sim254


def test_slow_but_in_time_is_a_normal_answer(provider, short_read_timeout):
    adapter, sim = provider
    sim.faults({"latency_ms": 100, "count": 1})
    assert [o.status for o in adapter.send("TUMA", msgs(NUMBERS))] == ["sent", "sent"]


def test_a_fault_for_one_call_leaves_the_next_untouched(provider):
    adapter, sim = provider
    sim.faults({"status": 503, "count": 1})
    try:
        adapter.send("TUMA", msgs(NUMBERS))
    except ProviderUnavailable:
        pass
    assert [o.status for o in adapter.send("TUMA", msgs(NUMBERS))] == ["sent", "sent"]
    assert [r.get("fault") for r in sim.requests()] == ["status:503", None]


def test_sayasms_ids_not_numbered_in_ascii_digits_fall_back_to_the_order_of_the_list():
    """An id ending in "_\u00b2" (str.isdigit() takes it, int() does not) made the whole call unknown."""
    from tuma.providers.sayasms import _by_position

    answers = [{"message_id": "msg_A_\u00b2", "number": "+254712345678"},
               {"message_id": "msg_A_1", "number": "+254722111222"}]
    assert _by_position(answers, 2) == answers
