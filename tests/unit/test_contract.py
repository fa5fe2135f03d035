"""Accept validates from the declarations (issue 11): what a route's JSON Schema refuses, the route
refuses, naming the same field; what it accepts (of bodies that are sendable), the route accepts.

The schemas are read here by `jsonschema` (a full 2020-12 implementation), not by the
fastjsonschema validators the API compiles (tuma.domain.contract): two readings of one declaration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from tuma.domain import compat_254sms, contract, suppressions
from tuma.domain.bulk import accept_bulk, bulk_response
from tuma.domain.errors import ApiError, TooLarge
from tuma.domain.messages import accept_send

SCHEMAS = Path(__file__).resolve().parents[2] / "layers" / "tuma" / "tuma" / "schemas"
NOW = datetime(2026, 3, 13, 14, 30, tzinfo=UTC)
REGISTRY = Registry().with_resources(
    ("https://tuma.dev/schemas/" + path.name, Resource.from_contents(json.loads(path.read_text())))
    for path in SCHEMAS.glob("*.json"))


def schema_check(name: str):
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.validators.validator_for(schema)(schema, registry=REGISTRY)


def fields_refused_by_schema(name: str, body: dict) -> set[str]:
    """The paths jsonschema names, as Tuma names fields: `to`, `messages[1].body`, `messages[1]`."""
    named = set()
    for error in schema_check(name).iter_errors(body):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        prefix = f"{path}." if path else ""
        if error.validator == "required":
            named |= {prefix + n for n in error.validator_value if n not in error.instance}
        elif error.validator == "additionalProperties":
            named |= {prefix + n for n in set(error.instance) - set(error.schema.get("properties", {}))}
        elif error.validator == "not" and set(error.validator_value) == {"required"}:
            named |= {prefix + n for n in error.validator_value["required"]}
        else:
            named.add(path)
    return named


SEND = {"to": ["0712345678", "+254722111222"], "from": "MYSHOP", "body": "Hello"}
REFUSED_SENDS = [
    {k: v for k, v in SEND.items() if k != "to"},
    {k: v for k, v in SEND.items() if k != "from"},
    {k: v for k, v in SEND.items() if k != "body"},
    {**SEND, "sender": "X", "priority": 1},
    {**SEND, "to": "0712345678"}, {**SEND, "to": None}, {**SEND, "to": []}, {**SEND, "to": {"0": "0712345678"}},
    {**SEND, "from": "WAYTOOLONGSENDER"}, {**SEND, "from": "MY SHOP"}, {**SEND, "from": 254712},
    {**SEND, "from": "1" * 16}, {**SEND, "from": ""},
    {**SEND, "provider": "twilio"}, {**SEND, "provider": None}, {**SEND, "provider": ["sayasms"]},
    {**SEND, "body": ""}, {**SEND, "body": "a" * 919}, {**SEND, "body": 42}, {**SEND, "body": None},
    {**SEND, "callback_url": "ftp://example.com/hook"}, {**SEND, "callback_url": "https://exa mple.com/"},
    {**SEND, "callback_url": "HTTPS://example.com/"}, {**SEND, "callback_url": "https://" + "a" * 2041},
    {**SEND, "callback_url": None}, {**SEND, "callback_url": 7},
    {**SEND, "scheduled_at": 1773412200}, {**SEND, "scheduled_at": ["2026-03-14T09:00:00Z"]},
    {"to": "x", "from": "WAY_TOO_LONG_SENDER", "body": "", "provider": "x", "callback_url": "nope", "extra": 1},
]
BULK = {"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "Hi"}, {"to": "0722111222", "body": "Hi"}]}
TEMPLATE = {"from": "MYSHOP", "template": "Hi {name}", "recipients": [{"to": "0712345678", "vars": {"name": "A"}},
                                                                      {"to": "0722111222", "vars": {"name": "B"}}]}
REFUSED_BULKS = [
    {"messages": BULK["messages"]},
    {"from": "MYSHOP"},
    {**BULK, "template": "Hi {name}", "recipients": TEMPLATE["recipients"]},
    {"from": "MYSHOP", "recipients": TEMPLATE["recipients"]},
    {"from": "MYSHOP", "template": "Hi {name}"},
    {**BULK, "messages": []}, {**BULK, "messages": {"to": "0712345678"}}, {**BULK, "messages": None},
    {**BULK, "priority": "high"}, {**BULK, "body": "shared"},
    {**TEMPLATE, "template": ""}, {**TEMPLATE, "template": 42}, {**TEMPLATE, "recipients": []},
    {**BULK, "from": "WAY-TOO-LONG"}, {**BULK, "provider": "twilio"}, {**BULK, "callback_url": "not a url"},
    {**BULK, "scheduled_at": True},
]
# One bad entry beside a good one: the schema refuses the body at the entry; Tuma rejects that entry alone.
REFUSED_ENTRIES = [
    {**BULK, "messages": [BULK["messages"][0], "0722111222"]},
    {**BULK, "messages": [BULK["messages"][0], {"to": "0722111222"}]},
    {**BULK, "messages": [BULK["messages"][0], {"body": "Hi"}]},
    {**BULK, "messages": [BULK["messages"][0], {"to": "0722111222", "body": ""}]},
    {**BULK, "messages": [BULK["messages"][0], {"to": "0722111222", "body": "a" * 919}]},
    {**BULK, "messages": [BULK["messages"][0], {"to": 722111222, "body": "Hi"}]},
    {**BULK, "messages": [BULK["messages"][0], {"to": "0722111222", "body": "Hi", "priority": "high"}]},
    {**TEMPLATE, "recipients": [TEMPLATE["recipients"][0], {"to": "0722111222", "vars": ["B"]}]},
    {**TEMPLATE, "recipients": [TEMPLATE["recipients"][0], {"to": "0722111222", "vars": {"name": None}}]},
    {**TEMPLATE, "recipients": [TEMPLATE["recipients"][0], {"to": "0722111222", "vars": {"name": {"first": "B"}}}]},
    {**TEMPLATE, "recipients": [TEMPLATE["recipients"][0], {"to": "0722111222", "body": "Hi"}]},
]
ACCEPTED_SENDS = [
    SEND, {**SEND, "from": "1" * 15}, {**SEND, "from": "A" * 11}, {**SEND, "body": "a" * 918},
    {**SEND, "to": [f"+25471{n:07d}" for n in range(1000)]}, {**SEND, "provider": "254sms"},
    {**SEND, "provider": "sayasms", "callback_url": "https://example.com/hooks/sms?x=1"},
    {**SEND, "scheduled_at": "2026-03-14T09:00:00+03:00"}, {**SEND, "scheduled_at": None},
    {**SEND, "to": ["0712345678", 42, None]},  # a bad number is rejected on its own
]
ACCEPTED_BULKS = [
    BULK, TEMPLATE, {**TEMPLATE, "recipients": [{"to": "0712345678", "vars": {"name": 7, "unused": True}}]},
    {**TEMPLATE, "template": "Hello", "recipients": [{"to": "0712345678"}]},
    {**BULK, "provider": "sayasms", "callback_url": "https://example.com/cb", "scheduled_at": "2026-03-14T06:00:00Z"},
    {**BULK, "messages": [{"to": f"07{12000000 + i}", "body": "Hi"} for i in range(10_000)]},
]


def refusal(accept, body) -> ApiError:
    with pytest.raises(ApiError) as raised:
        accept(body, "tenant-a", NOW)
    return raised.value


@pytest.mark.parametrize("body", REFUSED_SENDS, ids=lambda b: json.dumps(b)[:60])
def test_what_the_send_schema_refuses_the_send_route_refuses_naming_the_same_fields(body):
    expected = fields_refused_by_schema("send_request.v1.json", body)
    assert expected, "not a refused body: fix the case"
    problem = refusal(accept_send, body)
    assert problem.status == 400
    assert {d["field"] for d in problem.details} == expected


@pytest.mark.parametrize("body", REFUSED_BULKS, ids=lambda b: json.dumps(b)[:60])
def test_what_the_bulk_schema_refuses_the_bulk_route_refuses_naming_the_same_fields(body):
    expected = fields_refused_by_schema("bulk_request.v1.json", body)
    assert expected, "not a refused body: fix the case"
    problem = refusal(accept_bulk, body)
    assert problem.status == 400
    named = {d["field"] for d in problem.details}
    # Every field named is one the schema refuses; a rule across fields (either `messages` or a
    # `template`) reports its first problem only, as fastjsonschema stops at the first.
    assert named and named <= expected
    assert named >= {f for f in expected if f in body}  # each field given and refused is named


@pytest.mark.parametrize("body", REFUSED_ENTRIES, ids=lambda b: json.dumps(b)[-70:])
def test_an_entry_the_bulk_schema_refuses_is_rejected_alone_at_its_index(body):
    expected = fields_refused_by_schema("bulk_request.v1.json", body)
    assert {contract.top_field(f) for f in expected} in ({"messages"}, {"recipients"})
    assert {f.split("]")[0] + "]" for f in expected} in ({"messages[1]"}, {"recipients[1]"})
    answer = bulk_response(accept_bulk(body, "tenant-a", NOW))
    assert (answer["accepted"], [r["index"] for r in answer["rejected"]]) == (1, [1])


@pytest.mark.parametrize("size, accept, body", [
    (1001, accept_send, lambda n: {**SEND, "to": ["0712345678"] * n}),
    (10_001, accept_bulk, lambda n: {**BULK, "messages": [BULK["messages"][0]] * n}),
    (10_001, accept_bulk, lambda n: {**TEMPLATE, "recipients": [TEMPLATE["recipients"][0]] * n}),
])
def test_a_list_over_its_declared_maximum_is_a_413(size, accept, body):
    schema = "send_request.v1.json" if accept is accept_send else "bulk_request.v1.json"
    field = fields_refused_by_schema(schema, body(size))
    problem = refusal(accept, body(size))
    assert isinstance(problem, TooLarge) and {d["field"] for d in problem.details} == field
    accept(body(size - 1), "tenant-a", NOW)


@pytest.mark.parametrize("body", ACCEPTED_SENDS, ids=lambda b: json.dumps(b)[:60])
def test_a_sendable_body_the_send_schema_accepts_is_accepted(body):
    schema_check("send_request.v1.json").validate(body)
    accept_send(body, "tenant-a", NOW)


@pytest.mark.parametrize("body", ACCEPTED_BULKS, ids=lambda b: json.dumps(b)[:60])
def test_a_sendable_body_the_bulk_schema_accepts_is_accepted_whole(body):
    schema_check("bulk_request.v1.json").validate(body)
    assert bulk_response(accept_bulk(body, "tenant-a", NOW))["rejected"] == []


@pytest.mark.parametrize("body", [{"reason": ""}, {"reason": "x" * 201}, {"why": "STOP"}, {"reason": 5},
                                  {"reason": None}, {"reason": "ok", "by": "me"}])
def test_the_suppression_route_and_its_schema_refuse_the_same_fields(body):
    with pytest.raises(ApiError) as raised:
        suppressions.reason(body)
    assert {d["field"] for d in raised.value.details} == fields_refused_by_schema("suppression_request.v1.json", body)


SEED = {"username": "u", "api_key": "tuma_x", "sender_id": "254sms", "phone": "254722998999", "message": "Hello"}


@pytest.mark.parametrize("body", [{k: v for k, v in SEED.items() if k != "phone"}, {**SEED, "message": ""},
                                  {**SEED, "username": "   "}, {**SEED, "api_key": 5}, {**SEED, "sender_id": 7},
                                  {"phone": "254722998999"}])
def test_the_254sms_route_and_its_schema_refuse_the_same_parameters(body):
    with pytest.raises(compat_254sms.Compat254Error) as raised:
        compat_254sms.parse_request(body)
    assert raised.value.code == "X000"
    assert {d["field"] for d in raised.value.details} == fields_refused_by_schema("compat_254sms_request.v1.json",
                                                                                    body)


# --- the translation of a schema's refusal ---------------------------------------------------------

def test_a_problem_is_named_by_its_path_and_worded_from_its_rule():
    assert contract.entry_problem("bulk_request.v1.json", "messages", {"to": 1, "body": "Hi"}) == [
        {"field": "to", "reason": "must be a string"}]
    assert contract.field_problems("bulk_request.v1.json", "recipients", [{}]) == [
        {"field": "recipients[0].to", "reason": "is required"}]
    assert contract.entry_problem("bulk_request.v1.json", "recipients", {"to": "0712345678", "vars": {"a": []}}) == [
        {"field": "vars.a", "reason": "must be a string or a number or true or false"}]


def test_every_wrong_field_is_named_though_the_validator_stops_at_the_first_error():
    problems = contract.problems("send_request.v1.json", {"to": [], "from": "", "body": 1, "x": 1, "y": 2})
    assert [p["field"] for p in problems] == ["x", "y", "to", "from", "body"]
