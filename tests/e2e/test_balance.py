"""Provider balances on the deployed template: the cache shared through the table, the balance
monitor invoked as its schedule would, and the low-balance alarms as MiniStack created them."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from local.stack import STACK_NAME
from tuma.domain.times import iso_millis
from tuma.store.balances import balance_key

PROVIDERS = ("254sms", "sayasms")


def balance_calls(sms254, sayasms) -> tuple[int, int]:
    return len(sms254.requests("/credits")), len(sayasms.requests("/v1/account/balance"))


def cache_item(stack, provider: str) -> dict | None:
    key = {name: {"S": value} for name, value in balance_key(provider).items()}
    item = stack.client("dynamodb").get_item(TableName=stack.outputs["TableName"], Key=key,
                                             ConsistentRead=True).get("Item")
    return {name: next(iter(value.values())) for name, value in item.items()} if item else None


def test_two_balance_calls_in_a_row_ask_each_provider_once(client, sms254, sayasms, balance_cache):
    first = client.get("/v1/account/balance")
    second = client.get("/v1/account/balance")

    assert first.status_code == second.status_code == 200
    assert balance_calls(sms254, sayasms) == (1, 1)
    for provider in PROVIDERS:
        fresh, cached = first.json()["providers"][provider], second.json()["providers"][provider]
        assert fresh["available"] is True and fresh["cached"] is False
        assert cached == {**fresh, "cached": True}


def test_the_monitor_reads_both_balances_and_refreshes_the_cache(stack, client, sms254, sayasms, balance_cache):
    before = client.get("/v1/account/balance").json()["providers"]

    invoked = stack.client("lambda").invoke(FunctionName=stack.outputs["BalanceMonitorFunctionName"],
                                            Payload=json.dumps({"source": "aws.scheduler"}).encode())
    summary = json.loads(invoked["Payload"].read())

    assert "FunctionError" not in invoked, summary
    assert summary["254sms"] == {"available": True, "balance": float(before["254sms"]["credits"])}
    assert summary["sayasms"] == {"available": True, "balance": pytest.approx(before["sayasms"]["balance"])}
    # The monitor asked both providers although the cache was fresh ...
    assert balance_calls(sms254, sayasms) == (2, 2)
    # ... and rewrote it: the API now answers from what the monitor read, without asking again.
    after = client.get("/v1/account/balance").json()["providers"]
    for provider in PROVIDERS:
        assert after[provider]["cached"] is True
        assert after[provider]["fetched_at"] == cache_item(stack, provider)["fetched_at"]
        assert after[provider]["fetched_at"] > before[provider]["fetched_at"]
    assert balance_calls(sms254, sayasms) == (2, 2)
    # Its metrics went out as EMF in its log: one ProviderBalance per provider, as the alarms expect.
    published = {d["provider"]: d for d in emf_documents(stack, stack.outputs["BalanceMonitorFunctionName"])
                 if "ProviderBalance" in d}
    assert set(published) == set(PROVIDERS)
    assert published["254sms"]["ProviderBalance"] == [summary["254sms"]["balance"]]
    assert published["sayasms"]["service"] == "tuma"


def emf_documents(stack, function_name: str, seconds: float = 20) -> list[dict]:
    """The EMF documents (metrics) the function printed, from its CloudWatch Logs group, polled
    until there are some or the deadline passes."""
    logs = stack.client("logs")
    deadline = time.monotonic() + seconds
    while True:
        events = []
        # The functions log to the stack's one group (Globals LoggingConfig); an emulator that
        # ignores LoggingConfig writes to the function's own.
        for group in (f"/aws/lambda/{STACK_NAME}", f"/aws/lambda/{function_name}"):
            try:
                events += logs.filter_log_events(logGroupName=group)["events"]
            except logs.exceptions.ResourceNotFoundException:
                pass
        documents = [json.loads(e["message"]) for e in events if e["message"].lstrip().startswith('{"_aws"')]
        if documents or time.monotonic() > deadline:
            return documents
        time.sleep(0.5)


def test_a_failing_provider_shows_its_last_known_balance(stack, client, sms254, sayasms, balance_cache):
    client.get("/v1/account/balance")
    # Age the cached SayaSMS balance past BalanceCacheSeconds rather than wait for it.
    item = cache_item(stack, "sayasms")
    aged = iso_millis(datetime.now(timezone.utc) - timedelta(hours=1))
    stack.client("dynamodb").update_item(
        TableName=stack.outputs["TableName"], Key={k: {"S": v} for k, v in balance_key("sayasms").items()},
        UpdateExpression="SET fetched_at = :aged", ExpressionAttributeValues={":aged": {"S": aged}})
    sayasms.fault(status=503, count=1)

    answer = client.get("/v1/account/balance").json()["providers"]

    assert answer["sayasms"] == {"available": False, "reason": "HTTP 503", "code": "503",
                                 "last_known": {**json.loads(item["details"]), "fetched_at": aged},
                                 "circuit": {"state": "closed", "failures": 0}}
    assert answer["254sms"]["cached"] is True
    assert balance_calls(sms254, sayasms) == (1, 2)


@pytest.mark.parametrize("output, provider, threshold", [("Sms254LowBalanceAlarmName", "254sms", 500.0),
                                                         ("SayaSmsLowBalanceAlarmName", "sayasms", 500.0)])
def test_the_low_balance_alarms_watch_each_providers_metric(stack, output, provider, threshold):
    (alarm,) = stack.client("cloudwatch").describe_alarms(AlarmNames=[stack.outputs[output]])["MetricAlarms"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("Tuma", "ProviderBalance")
    assert sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]) == [("provider", provider),
                                                                             ("service", "tuma")]
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == threshold
    assert alarm["Statistic"] == "Minimum"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Period"] == 7200  # twice BalanceCheckMinutes (60 in the e2e stack)
    assert alarm["AlarmActions"] == []  # AlarmTopicArn left empty
