"""The API contract: docs/openapi.json is what scripts/openapi.py makes of the schema declarations,
and those declarations agree with the code: they accept the README's example requests, refuse
what the API refuses, and describe the answers the code really gives."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from scripts import openapi
from tuma.domain import compat_254sms, suppressions
from tuma.domain.bulk import accept_bulk, bulk_response
from tuma.domain.errors import ApiError
from tuma.domain.estimates import estimate_response
from tuma.domain.messages import accept_send, send_response

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "layers" / "tuma" / "tuma" / "schemas"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # before the README's scheduled_at example
RATES = {"254sms": __import__("decimal").Decimal("0.80"), "sayasms": __import__("decimal").Decimal("0.90")}
BASE = "https://tuma.dev/schemas/"


@pytest.fixture(scope="module")
def validator():
    registry = Registry().with_resources(
        (BASE + path.name, Resource.from_contents(json.loads(path.read_text()))) for path in SCHEMAS.glob("*.json"))

    def make(name: str):
        schema = json.loads((SCHEMAS / name).read_text())
        return jsonschema.validators.validator_for(schema)(schema, registry=registry)
    return make


def readme_requests() -> dict[str, list[dict]]:
    """The JSON bodies of the README's curl examples, by route."""
    text = (REPO / "README.md").read_text()
    found: dict[str, list[dict]] = {}
    for match in re.finditer(r'curl -X POST "\$TUMA_URL(/v1/[a-z/]+)".*?-d \'(.*?)\'', text, re.S):
        found.setdefault(match[1], []).append(json.loads(match[2]))
    return found


def test_docs_openapi_json_is_what_the_generator_makes_of_the_declarations():
    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi.render(), "run: .venv/bin/python -m scripts.openapi"


def test_the_spec_documents_bearer_auth_and_every_error_status():
    spec = json.loads(openapi.render())
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "A Tuma API key: `Authorization: Bearer tuma_…`."}
    statuses = {code for path in spec["paths"].values() for op in path.values() for code in op["responses"]}
    assert {"200", "202", "400", "401", "403", "404", "409", "413", "422", "429"} <= statuses
    assert spec["paths"]["/v1/compat/254sms/sendsms"]["post"]["security"] == []
    # The queue's definition of `from` is the API's.
    job = json.loads((SCHEMAS / "send_job.v1.json").read_text())
    api_from = spec["components"]["schemas"]["SendRequest"]["properties"]["from"]
    assert {k: v for k, v in api_from.items() if k != "x-reason"} == job["properties"]["from"]


def test_the_readme_examples_are_accepted_by_the_schemas_and_by_the_api(validator):
    examples = readme_requests()
    assert len(examples["/v1/messages"]) == 2 and len(examples["/v1/messages/bulk"]) == 2
    for body in examples["/v1/messages"] + examples["/v1/messages/estimate"]:
        validator("send_request.v1.json").validate(body)
        accept_send(body, "tenant-a", NOW)
    for body in examples["/v1/messages/bulk"]:
        validator("bulk_request.v1.json").validate(body)
        accept_bulk(body, "tenant-a", NOW)


SEND = {"to": ["0712345678"], "from": "MYSHOP", "body": "Hello"}
BULK = {"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "Hi"}]}
REFUSED_SENDS = {
    "no to": {k: v for k, v in SEND.items() if k != "to"},
    "no from": {k: v for k, v in SEND.items() if k != "from"},
    "no body": {k: v for k, v in SEND.items() if k != "body"},
    "unknown field": {**SEND, "sender": "X"},
    "to not an array": {**SEND, "to": "0712345678"},
    "to empty": {**SEND, "to": []},
    "to over 1,000": {**SEND, "to": [f"07{i:08d}" for i in range(1001)]},
    "from too long": {**SEND, "from": "WAYTOOLONGSENDER"},
    "from with a space": {**SEND, "from": "MY SHOP"},
    "from a number": {**SEND, "from": 254712},
    "provider unknown": {**SEND, "provider": "twilio"},
    "provider null": {**SEND, "provider": None},
    "body empty": {**SEND, "body": ""},
    "body over 918 characters": {**SEND, "body": "a" * 919},
    "callback_url not http": {**SEND, "callback_url": "ftp://example.com/hook"},
    "not an object": [SEND],
}
REFUSED_BULKS = {
    "no from": {"messages": BULK["messages"]},
    "messages and template": {**BULK, "template": "Hi {name}", "recipients": [{"to": "0712345678"}]},
    "recipients without template": {"from": "MYSHOP", "recipients": [{"to": "0712345678", "vars": {}}]},
    "template without recipients": {"from": "MYSHOP", "template": "Hi {name}"},
    "neither": {"from": "MYSHOP"},
    "messages empty": {**BULK, "messages": []},
    "over 10,000": {**BULK, "messages": [{"to": "0712345678", "body": "Hi"}] * 10_001},
    "unknown field": {**BULK, "priority": "high"},
    "template empty": {"from": "MYSHOP", "template": "", "recipients": [{"to": "0712345678"}]},
}


@pytest.mark.parametrize("case", REFUSED_SENDS)
def test_what_the_send_route_refuses_the_schema_refuses(validator, case):
    body = REFUSED_SENDS[case]
    with pytest.raises(ApiError):
        accept_send(body, "tenant-a", NOW)
    assert not validator("send_request.v1.json").is_valid(body)


@pytest.mark.parametrize("case", REFUSED_BULKS)
def test_what_the_bulk_route_refuses_the_schema_refuses(validator, case):
    body = REFUSED_BULKS[case]
    with pytest.raises(ApiError):
        accept_bulk(body, "tenant-a", NOW)
    assert not validator("bulk_request.v1.json").is_valid(body)


@pytest.mark.parametrize("body", [{"reason": ""}, {"reason": "x" * 201}, {"why": "STOP"}, {"reason": 5}])
def test_what_the_suppression_route_refuses_the_schema_refuses(validator, body):
    with pytest.raises(ApiError):
        suppressions.reason(body)
    assert not validator("suppression_request.v1.json").is_valid(body)
    assert validator("suppression_request.v1.json").is_valid({"reason": "replied STOP"})


@pytest.mark.parametrize("missing", ["username", "api_key", "phone", "message"])
def test_what_the_254sms_route_refuses_the_schema_refuses(validator, missing):
    body = {"username": "u", "api_key": "tuma_x", "phone": "254722998999", "message": "Hello world"}
    validator("compat_254sms_request.v1.json").validate(body)
    del body[missing]
    with pytest.raises(compat_254sms.Compat254Error):
        compat_254sms.parse_request(body)
    assert not validator("compat_254sms_request.v1.json").is_valid(body)


def test_the_response_schemas_describe_the_answers_the_code_gives(validator):
    examples = readme_requests()
    for body in examples["/v1/messages"]:
        validator("send_response.v1.json").validate(send_response(accept_send(body, "tenant-a", NOW)))
    for body in examples["/v1/messages/estimate"]:
        validator("estimate_response.v1.json").validate(estimate_response(accept_send(body, "tenant-a", NOW), RATES))
    for body in examples["/v1/messages/bulk"]:
        validator("bulk_response.v1.json").validate(bulk_response(accept_bulk(body, "tenant-a", NOW)))
    seed = {"username": "u", "api_key": "tuma_x", "sender_id": "254sms", "phone": "25472256565,254722998999",
            "message": "Hello world"}
    accepted = accept_send(compat_254sms.parse_request(seed).send, "tenant-a", NOW)
    validator("compat_254sms_response.v1.json").validate(compat_254sms.response(accepted))
    validator("compat_254sms_response.v1.json").validate(compat_254sms.Compat254Error("X001").body())
    validator("error.v1.json").validate(ApiError("invalid_request", "bad", [{"field": "to", "reason": "x"}]).to_body())
