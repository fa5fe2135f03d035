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
