"""What the template promises about the API's limits and logs, and about its scan skips, read
from template.yaml itself: MiniStack ignores some of it (usage plans by authorizer key, access
logs), so these are the guard; tests/e2e/test_security.py shows the stage throttle working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = yaml_parse((Path(__file__).resolve().parents[2] / "template.yaml").read_text())
RESOURCES = TEMPLATE["Resources"]
API = RESOURCES["Api"]["Properties"]


def _ref(name: str) -> dict:
    return {"Ref": name}


def test_every_checkov_skip_says_why():
    skips = [(name, skip) for name, resource in RESOURCES.items()
             for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])]
    assert skips
    for name, skip in skips:
        assert skip["id"].startswith("CKV_"), (name, skip)
        assert len(skip.get("comment", "")) >= 40, f"{name}: skip {skip['id']} needs a reason"


def test_the_whole_stage_is_throttled_by_parameters():
    (setting,) = API["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == _ref("ApiRateLimit")
    assert setting["ThrottlingBurstLimit"] == _ref("ApiBurstLimit")


def test_every_tenant_is_counted_against_the_usage_plan_through_its_key():
    # The key comes from the authorizer (usageIdentifierKey), and only methods that require a key are counted.
    assert API["ApiKeySourceType"] == "AUTHORIZER"
    assert API["Auth"]["ApiKeyRequired"] is True
    for name, resource in RESOURCES.items():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event["Type"] == "Api":
                assert (event["Properties"].get("Auth") or {}).get("ApiKeyRequired", True) is True, name
    plan = RESOURCES["TenantUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": _ref("Api"), "Stage": _ref("Api.Stage")}]
    assert plan["Throttle"] == {"RateLimit": _ref("TenantRateLimit"), "BurstLimit": _ref("TenantBurstLimit")}
    assert plan["Quota"] == {"Limit": _ref("TenantDailyQuota"), "Period": "DAY"}
    assert TEMPLATE["Outputs"]["TenantUsagePlanId"]["Value"] == _ref("TenantUsagePlan")


@pytest.mark.parametrize("kind,status,code", [("THROTTLED", 429, "throttled"), ("QUOTA_EXCEEDED", 429, "quota_exceeded"),
                                              ("UNAUTHORIZED", 401, "unauthorized"), ("ACCESS_DENIED", 403, "forbidden"),
                                              ("INVALID_API_KEY", 403, "forbidden")])
def test_api_gateways_own_refusals_are_in_tumas_error_shape(kind, status, code):
    response = API["GatewayResponses"][kind]
    assert response["StatusCode"] == status
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["details"] == []


def test_the_access_log_is_one_json_line_per_request_without_bodies_or_keys():
    setting = API["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(setting["Format"])
    assert {"requestId", "sourceIp", "tenant", "method", "resource", "status", "error"} <= set(fields)
    values = " ".join(fields.values())
    for leak in ("$input", "$context.identity.apiKey", "$context.authorizer.usageIdentifierKey", "Authorization",
                 "$method.request", "$context.path"):  # a path holds message ids: the resource is enough
        assert leak not in values
    group = RESOURCES["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == _ref("ApiAccessLogRetentionDays")


def test_queue_consumers_keep_room_for_their_queue_maximum_and_no_more():
    for name in ("SenderFunction", "CallbackFunction"):
        properties = RESOURCES[name]["Properties"]
        (jobs,) = [e for e in properties["Events"].values() if e["Type"] == "SQS"]
        assert properties["ReservedConcurrentExecutions"] == jobs["Properties"]["ScalingConfig"]["MaximumConcurrency"]
