"""Configuration: plain settings from the environment (set by template.yaml), provider
credentials from SSM Parameter Store SecureStrings through Powertools Parameters, cached.

Parameter names, under CONFIG_PATH (e.g. /tuma/local):
  providers/254sms/username, providers/254sms/api_key, providers/sayasms/api_key,
  webhook/sayasms_token (the secret in the callback_url Tuma gives SayaSMS),
  webhook/sayasms_token_previous (only during a rotation: still accepted by the webhook)"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import quote

from tuma.domain.circuit import CircuitSettings
from tuma.domain.providers import Provider

if TYPE_CHECKING:  # routing loads phonenumbers: only the sender needs it
    from tuma.domain.routing import RoutingPolicy

SECRETS_MAX_AGE_S = 300  # a rotated key is picked up within five minutes


class SettingsError(RuntimeError):
    """A setting or secret Tuma cannot run with. Its text names the setting, never a secret's value."""


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def default_provider() -> str:
    return env("DEFAULT_PROVIDER", "sayasms")


def routing_policy() -> "RoutingPolicy":
    """DEFAULT_PROVIDER and ROUTING_RULES (template parameters; syntax in tuma.domain.routing)."""
    from tuma.domain.routing import policy_from

    return policy_from(default_provider(), env("ROUTING_RULES", ""))


def circuit_settings() -> CircuitSettings:
    return CircuitSettings(threshold=int(env("CIRCUIT_FAILURE_THRESHOLD", "5")),
                           cooloff=timedelta(seconds=int(env("CIRCUIT_COOLOFF_S", "60"))),
                           # A probe still unanswered after the sender's timeout belongs to a dead sender.
                           probe_grace=timedelta(seconds=int(env("SENDER_TIMEOUT_S", "30"))))


def rates() -> dict[str, Decimal]:
    """KES per segment by provider (template parameters Sms254CostPerSegment, SayaSmsCostPerSegment),
    for estimates: 254sms reports no cost at all, SayaSMS its own only once a message is sent."""
    return {"254sms": _amount("SMS254_COST_PER_SEGMENT", "0.80"),
            "sayasms": _amount("SAYASMS_COST_PER_SEGMENT", "0.90")}


def _amount(name: str, default: str) -> Decimal:
    try:
        value = Decimal(env(name, default))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise RuntimeError(f"environment variable {name} must be an amount in KES, like 0.90")
    return value


def _parameters():
    """Powertools Parameters, loaded by the first SSM read: most functions (send, bulk, status,
    cancel, release...) read no secret, and its import (its SSM, Secrets Manager and AppConfig
    providers) would be on each of their cold starts for nothing."""
    from aws_lambda_powertools.utilities import parameters

    return parameters


def _secrets() -> dict[str, str]:
    path = env("CONFIG_PATH").rstrip("/") + "/providers"
    found = _parameters().get_parameters(path, recursive=True, decrypt=True, max_age=SECRETS_MAX_AGE_S)
    return {name: _credential(f"{path}/{name}", value) for name, value in found.items()}


def _credential(parameter: str, value: str) -> str:
    """A provider credential as a header or a JSON field can carry it. A value pasted into SSM often
    ends in a newline, and requests refuses such a header with an error that quotes it whole
    (`Bearer <key>`): the edges are stripped, and what still cannot be sent is refused by name."""
    value = value.strip()
    if not value or not value.isascii() or not value.isprintable():
        raise SettingsError(f"SSM parameter {parameter} is empty or holds characters a request header "
                            "cannot carry (control characters, line breaks, non-ASCII)")
    return value


def webhook_token() -> str:
    return _parameters().get_parameter(env("CONFIG_PATH").rstrip("/") + "/webhook/sayasms_token", decrypt=True,
                                       max_age=SECRETS_MAX_AGE_S)


def webhook_tokens() -> list[str]:
    """The tokens the webhook accepts: the current one and, during a rotation, the previous one
    (docs/delivery-reports.md). One cached call for both, whichever exist."""
    found = _parameters().get_parameters(env("CONFIG_PATH").rstrip("/") + "/webhook", recursive=False, decrypt=True,
                                         max_age=SECRETS_MAX_AGE_S)
    return [found[name] for name in ("sayasms_token", "sayasms_token_previous") if found.get(name)]


def sayasms_callback_url() -> str | None:
    """The webhook's URL with its token, given to SayaSMS on every send (None: no reports)."""
    base = os.environ.get("SAYASMS_CALLBACK_URL")
    return f"{base}?token={quote(webhook_token(), safe='')}" if base else None


def scheduler_min_lead() -> timedelta:
    """A scheduled send closer than this is held on the queue, not by a one-time schedule."""
    return timedelta(seconds=int(env("SCHEDULER_MIN_LEAD_S", "60")))


def expire_after() -> timedelta:
    return timedelta(seconds=int(env("EXPIRE_AFTER_S", "172800")))


def balance_cache_age() -> timedelta:
    """How long a provider's balance is answered from the shared cache (0: always asked)."""
    return timedelta(seconds=int(env("BALANCE_CACHE_S", "60")))


def providers() -> dict[str, Provider]:
    # Imported here: requests is only needed by the functions that call providers.
    from tuma.providers.sayasms import SayaSms
    from tuma.providers.sms254 import Sms254

    secrets = _secrets()
    try:
        return {
            "254sms": Sms254(env("SMS254_BASE_URL"), secrets["254sms/username"], secrets["254sms/api_key"]),
            "sayasms": SayaSms(env("SAYASMS_BASE_URL"), secrets["sayasms/api_key"],
                               callback_url=sayasms_callback_url()),
        }
    except KeyError as missing:
        raise SettingsError(f"SSM parameter {env('CONFIG_PATH')}/providers/{missing.args[0]} is missing") from None
