"""Provider credentials never reach a log line: a key read from SSM with a stray newline is
stripped (requests would refuse it with an error quoting `Bearer <key>`), a key no header can
carry is refused by its parameter's name, and an exception that may quote a request is logged
and raised by its class only. Every test runs the sender at DEBUG and greps all it printed."""

from __future__ import annotations

import json
import logging
import traceback

import pytest
import requests
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from conftest import CONFIG_PATH, SAYASMS_API_KEY, api_event, sqs_event


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture):
    """Everything the run prints: Tuma's logger and Powertools' own at DEBUG, any other library at
    WARNING (Lambda's root level; botocore's DEBUG lines would show the SSM answer itself, and
    Lambda never prints them unless asked). Call it for the text to grep."""
    from tuma.observability import logger

    level = logger.log_level
    logger.setLevel("DEBUG")
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    yield lambda: "\n".join([*capfd.readouterr(), caplog.text])
    logger.setLevel(level)


@pytest.fixture
def run(functions, context, aws, simsaya, sim254, monkeypatch):
    """Accept one message for SayaSMS; a callable that runs the sender on its job and gives its
    answer, or the text of the exception it raised (what Lambda would log)."""
    from tuma.store import queue

    # The hand-built event's receipt handle is not moto's: record the retry instead of making it.
    monkeypatch.setattr(queue, "retry_later", lambda *args: None)
    send = functions("send")
    answer = send.handler(api_event("POST", "/v1/messages", body={
        "to": ["0712345678"], "from": "TUMA", "body": "Hello", "provider": "sayasms"}), context)
    assert answer["statusCode"] == 202, answer["body"]
    (job,) = aws.receive(aws.queue_url)
    sender = functions("sender")

    def go():
        try:
            return sender.handler(sqs_event([job["Body"]]), context)
        except Exception as problem:  # the text Lambda would log for it: message and traceback
            return "".join(traceback.format_exception(problem))
    return go


def _set_sayasms_key(aws, value: str) -> None:
    aws.ssm.put_parameter(Name=f"{CONFIG_PATH}/providers/sayasms/api_key", Value=value, Type="SecureString",
                          Overwrite=True)


def test_a_provider_key_pasted_with_a_trailing_newline_still_sends_and_is_never_logged(
        aws, simsaya, run, debug_logs):
    _set_sayasms_key(aws, SAYASMS_API_KEY + "\n")

    outcome = run()

    assert outcome == {"batchItemFailures": []}
    (call,) = simsaya.answered()
    assert call["headers"]["Authorization"] == f"Bearer {SAYASMS_API_KEY}"
    assert SAYASMS_API_KEY not in debug_logs()


@pytest.mark.parametrize("key", ["sk_live\nsecret-part", "sk_live\x00secret-part", "sk_live\u00e9secret-part"])
def test_a_provider_key_no_header_can_carry_is_refused_by_name_and_never_logged(aws, simsaya, run, debug_logs, key):
    _set_sayasms_key(aws, key)

    outcome = run()

    assert "All records failed processing" in outcome  # the only job failed: it goes back to the queue
    assert f"{CONFIG_PATH}/providers/sayasms/api_key" in outcome
    assert simsaya.requests() == []
    printed = debug_logs() + outcome
    assert "secret-part" not in printed and "sk_live" not in printed


def test_an_exception_quoting_a_request_header_is_logged_and_raised_by_its_class_only(
        aws, simsaya, run, debug_logs, monkeypatch):
    from tuma.providers import http

    def quoting_session():
        class Session:
            def request(self, *args, headers=None, **kwargs):
                # What requests says of a header it refuses: the whole header, key included.
                raise requests.exceptions.InvalidHeader(f"Invalid return character or leading space in header: "
                                                        f"Authorization: {json.dumps(headers)}")
        return Session()
    monkeypatch.setattr(http, "session", quoting_session)

    outcome = run()

    assert "InvalidHeader (its text is withheld" in outcome
    printed = debug_logs() + outcome
    assert "InvalidHeader" in printed
    assert SAYASMS_API_KEY not in printed
