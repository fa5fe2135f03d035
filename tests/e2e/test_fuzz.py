"""schemathesis over docs/openapi.json against the deployed stack: a bounded number of generated
requests per operation, and not one answer ≥ 500 nor one that contradicts the spec (an undocumented
status, a wrong content type, a body outside its schema)."""

from __future__ import annotations

import json
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from local.stack import ROOT

EXAMPLES_PER_OPERATION = 25  # 12 operations: at most 300 requests, a couple of minutes on the local stack
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REPORT = ROOT / ".tuma" / "fuzz-report.json"


def _drain(stack, seconds: float = 120) -> None:
    """Wait for the send queue to empty, so the fuzz's messages do not reach the next tests' simulators."""
    sqs, url = stack.client("sqs"), stack.outputs["SendQueueUrl"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if not any(int(v) for v in attributes.values()):
            return
        time.sleep(1)


@pytest.mark.timeout(900)
def test_the_api_answers_every_generated_request_as_its_spec_says(stack, sayasms, sms254):
    schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
    # Its own tenant: the opt-outs and messages it makes touch no other test's.
    headers = {"Authorization": f"Bearer {stack.create_api_key('fuzz')}"}
    session = requests.Session()
    calls: list[tuple[str, int]] = []
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            response = case.call(base_url=stack.api_url, session=session, headers=headers, timeout=60)
            calls.append((operation.label, response.status_code))
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except AssertionError as problem:  # schemathesis' Failure(s) are AssertionErrors
                failures.append(f"{operation.label} -> {response.status_code}: {str(problem)[:500]}")

        fuzz()

    _drain(stack)
    by_status: dict[str, int] = {}
    for _, status in calls:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    REPORT.write_text(json.dumps({"requests": len(calls), "by_status": by_status, "failures": failures}, indent=2))
    print(f"schemathesis: {len(calls)} requests, by status {by_status}, {len(failures)} failure(s)")
    assert len(calls) >= 100
    assert [c for c in calls if c[1] >= 500] == []
    assert failures == []
