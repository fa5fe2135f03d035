"""Powertools Logger, Metrics and Tracer shared by every handler (service name from the env).

The X-Ray SDK behind Powertools Tracer costs about 150 ms of every cold start (it builds a
botocore X-Ray client for sampling rules as it loads, even when tracing is disabled), more than
boto3's own import. So it is opt-in: template parameter XRaySdk=true sets TUMA_XRAY_SDK and the
handlers get Powertools Tracer with subsegments for AWS and provider calls. Without it Lambda's
own active tracing still records each invocation, and `tracer` only passes functions through."""

import os

from aws_lambda_powertools import Logger, Metrics

NAMESPACE = "Tuma"
logger = Logger()
metrics = Metrics(namespace=NAMESPACE)


class _Untraced:
    """The part of Powertools Tracer's interface the handlers use, doing nothing."""

    @staticmethod
    def capture_method(function):
        return function

    @staticmethod
    def capture_lambda_handler(function):
        return function


if os.environ.get("TUMA_XRAY_SDK", "false").lower() == "true":
    from aws_lambda_powertools import Tracer

    tracer = Tracer()
else:
    tracer = _Untraced()


# Exceptions whose text Tuma or AWS wrote (a message, a code, a parameter's name). Anything else,
# requests' above all, may quote a request: InvalidHeader's text holds `Authorization: Bearer <key>`.
_SPEAKS_SAFELY = ("tuma", "botocore", "boto3", "aws_lambda_powertools")


class Withheld(Exception):
    """Stands in for an exception whose text may carry a header or a body."""


def loggable(problem: BaseException) -> BaseException:
    """`problem` itself when its text may be logged, else a Withheld naming only its class: log
    str() of this, and raise this, never the original, where its text can reach a log line."""
    if type(problem).__module__.split(".")[0] in _SPEAKS_SAFELY:
        return problem
    # Its traceback stays: frames and source lines, no values.
    return Withheld(f"{type(problem).__name__} (its text is withheld: it may quote a request's header or body)"
                    ).with_traceback(problem.__traceback__)
