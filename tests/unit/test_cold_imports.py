"""What a function's cold start loads: modules its handler never uses stay out (issue 12).

Each handler is imported in a fresh interpreter (as Lambda does) and its sys.modules inspected:
timings are bench/run.py's business, but a heavy module loaded for nothing is a fact a test can
hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The sender's store and what it drags in (phonenumbers, the job schema's validator).
SENDERS_MODULES = ("tuma.store.sending", "tuma.domain.jobs", "phonenumbers", "fastjsonschema")


def loaded(function: str) -> set[str]:
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import app; "
            "print(json.dumps(sorted(sys.modules)))")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "TABLE_NAME": "t", "CONFIG_PATH": "/tuma/test",
           "SEND_QUEUE_URL": "q", "PYTHONPATH": ""}
    answer = subprocess.run([sys.executable, "-c", code, str(REPO / "layers" / "tuma"), str(REPO / "functions" / function)],
                            env=env, check=True, capture_output=True, text=True, timeout=60)
    return set(json.loads(answer.stdout))


@pytest.mark.parametrize("function", ["webhook", "expirer"])
def test_report_functions_do_not_load_the_senders_store(function):
    assert not loaded(function) & set(SENDERS_MODULES)


def test_the_sender_still_links_sayasms_ids():
    assert "tuma.store.linking" in loaded("sender")


@pytest.mark.parametrize("function", ["send", "bulk", "status"])
def test_functions_that_read_no_secret_do_not_load_ssm_parameters(function):
    assert "aws_lambda_powertools.utilities.parameters" not in loaded(function)


@pytest.mark.parametrize("function", ["send", "bulk", "sender", "compat_254sms", "suppressions"])
def test_plainly_written_numbers_need_no_phonenumbers_at_cold_start(function):
    """tuma.domain.kenya_prefixes judges 0712.../+254712... (and every job the API makes): the
    ~80 ms of `import phonenumbers` is paid only by a function that meets another form."""
    assert "phonenumbers" not in loaded(function)


@pytest.mark.parametrize("function", ["send", "bulk", "sender", "compat_254sms"])
def test_measuring_bodies_loads_no_codec(function):
    """The GSM 03.38 alphabet is written out (tuma.domain.gsm7_alphabet): no function imports
    gsm0338 or looks its codec up by name (about 9 ms of a cold start), and the layer ships none."""
    assert not {"gsm0338", "gsm0338.codec"} & loaded(function)


def test_plain_numbers_are_judged_without_phonenumbers():
    """The saving is real only if a first request of plain numbers, valid or not, does not load it."""
    code = """
import sys
sys.path[:0] = [sys.argv[1]]
from tuma.domain.phones import InvalidNumber, normalise
assert [normalise(n).e164 for n in ("0712345678", "+254110123456", "254733123456")] == [
    "+254712345678", "+254110123456", "+254733123456"]
for bad in ("0109123456", "0147123456"):  # not valid numbers in Kenya's plan
    try:
        normalise(bad)
    except InvalidNumber:
        continue
    raise AssertionError(bad)
print("phonenumbers" in sys.modules)
"""
    answer = subprocess.run([sys.executable, "-c", code, str(REPO / "layers" / "tuma")], check=True,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert answer.stdout.strip() == "False"


@pytest.mark.parametrize("function", ["send", "bulk", "sender", "compat_254sms", "suppressions"])
def test_no_function_imports_fastjsonschema_or_powertools_validation(function):
    """Request and job schemas are checked by validators generated ahead of time
    (tuma.domain.schema_checks, scripts/codegen.py): nothing is compiled at a cold start or per job."""
    assert not loaded(function) & {"fastjsonschema", "aws_lambda_powertools.utilities.validation"}


def test_a_job_is_checked_without_compiling_its_schema():
    code = """
import json, sys
sys.path[:0] = [sys.argv[1]]
from tuma.domain.jobs import parse_job
job = {"version": 1, "origin": "api", "tenant_id": "t", "request_id": "msg_01HZY5Q3J5Q0W3V0S6Y9X8T7R6",
       "from": "SHOP", "body": "Hi", "recipients": [{"number": "+254712345678"}]}
assert parse_job(json.dumps(job)).recipients[0].number == "+254712345678"
print("fastjsonschema" in sys.modules)
"""
    answer = subprocess.run([sys.executable, "-c", code, str(REPO / "layers" / "tuma")], check=True,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert answer.stdout.strip() == "False"


def test_the_cheaper_pattern_refuses_exactly_what_xml_cannot_carry():
    """tuma.domain.requests names the characters outside XML 1.0 rather than negating its ranges
    (the negated class cost ~9 ms to compile at every cold start): the same characters, all of them."""
    from tuma.domain.requests import text_problem

    def xml(code: int) -> bool:
        return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code

    refused = [code for code in range(0x110000) if text_problem(chr(code)) is not None]
    assert refused == [code for code in range(0x110000) if not xml(code)]


@pytest.mark.parametrize("function", ["send", "bulk", "status", "cancel", "balance", "webhook"])
def test_api_functions_load_only_the_rest_resolver(function):
    """tuma.lazy_powertools: Powertools' event_handler `__init__` would load every resolver."""
    others = {"aws_lambda_powertools.event_handler." + name for name in (
        "appsync", "bedrock_agent", "bedrock_agent_function", "events_appsync", "vpc_lattice", "http_resolver")}
    assert not loaded(function) & others


def test_the_event_handler_package_still_gives_every_name():
    code = """
import sys
sys.path[:0] = [sys.argv[1]]
import tuma.api
assert "aws_lambda_powertools.event_handler.appsync" not in sys.modules
from aws_lambda_powertools.event_handler import AppSyncResolver, LambdaFunctionUrlResolver, Response
import aws_lambda_powertools.event_handler as package
assert package.api_gateway.Response is Response and "AppSyncResolver" in package.__all__
try:
    package.no_such_name
except AttributeError:
    print("ok")
"""
    answer = subprocess.run([sys.executable, "-c", code, str(REPO / "layers" / "tuma")], check=True,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert answer.stdout.strip() == "ok"


@pytest.mark.parametrize("function", ["send", "bulk", "status", "sender", "callback", "callback_dispatch", "dead_letters"])
def test_functions_load_only_the_event_classes_their_powertools_modules_import(function):
    """tuma.lazy_powertools: Powertools' data_classes `__init__` would load every event source's class."""
    others = {"aws_lambda_powertools.utilities.data_classes." + name for name in (
        "appsync_resolver_event", "code_pipeline_job_event", "connect_contact_flow_event", "ses_event",
        "kinesis_firehose_event", "transfer_family_event", "secrets_manager_event")}
    assert not loaded(function) & others
