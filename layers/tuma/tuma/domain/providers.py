"""What the sender needs of a provider, and the ways a provider call can end.

The three failure kinds decide what happens to a message:
- ProviderUnavailable: the provider certainly did not take it (connection refused, 5xx, 429):
  the job goes back to SQS for a retry.
- ProviderRejected: the provider refused the call for good (254sms X000–X003, SayaSMS 4xx): the
  recipients are `failed` with the provider's code and reason, and not retried.
- ProviderAmbiguous: the request went out and no answer came (read timeout): the provider may
  have sent it, so it is never resent automatically; the recipients become `unknown`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ProviderError(Exception):
    def __init__(self, provider: str, reason: str, code: str | None = None):
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.code = code


class ProviderUnavailable(ProviderError):
    pass


class ProviderRejected(ProviderError):
    pass


class ProviderAmbiguous(ProviderError):
    pass


@dataclass(frozen=True)
class RecipientOutcome:
    """What the provider said of one recipient, in the order the numbers were given."""

    status: str  # sent | failed
    provider_message_id: str | None = None
    cost: str | None = None
    error_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Balance:
    provider: str
    available: bool
    details: dict


class Provider(Protocol):
    name: str

    def send(self, sender: str, body: str, numbers: list[str]) -> list[RecipientOutcome]:
        """Send one body to E.164 `numbers`; one outcome per number, in order."""

    def balance(self) -> dict:
        """The provider's balance fields; raises ProviderError when it cannot be had."""
