"""Both providers' balances, asked at the same time, through a short cache shared by every
instance (tuma.store.balances): a balance younger than the cache age is answered from it, an
older one is asked of the provider again and the cache rewritten. A provider that fails is
reported as unavailable with the reason, and with its last known balance when there is one, so
the answer is always whole.

Only successes are cached: a provider that failed is asked again on the next call, so that its
recovery shows at once."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tuma.domain.providers import Provider, ProviderError
from tuma.domain.times import iso_millis

# The figure of each provider's balance that the monitor publishes and its alarm compares, in
# the provider's own unit: 254sms counts SMS credits, SayaSMS keeps money (KES).
BALANCE_FIGURES = {"254sms": "credits", "sayasms": "balance"}


@dataclass(frozen=True)
class KnownBalance:
    """A balance as a provider gave it (the adapter's fields), and when."""

    provider: str
    details: dict
    fetched_at: datetime


class BalanceCache(Protocol):
    def latest(self, provider: str) -> KnownBalance | None:
        """The last balance stored for the provider, however old."""

    def remember(self, balance: KnownBalance) -> None:
        """Store it, unless a balance fetched later is stored already."""


@dataclass(frozen=True)
class BalanceCheck:
    """One provider's balance as answered: `balance` is current (fresh from the provider, or
    from the cache when `cached`), or, when `problem` is set, the last known one (maybe None)."""

    provider: str
    balance: KnownBalance | None
    cached: bool = False
    problem: ProviderError | None = None

    @property
    def available(self) -> bool:
        return self.problem is None


def is_fresh(balance: KnownBalance, now: datetime, max_age: timedelta) -> bool:
    return now - balance.fetched_at < max_age


def check(provider: Provider, cache: BalanceCache, now: Callable[[], datetime], max_age: timedelta) -> BalanceCheck:
    """The provider's balance from the cache when younger than max_age, else from the provider
    (and then cached). max_age of zero always asks the provider."""
    known = cache.latest(provider.name)
    if known is not None and is_fresh(known, now(), max_age):
        return BalanceCheck(provider.name, known, cached=True)
    try:
        details = provider.balance()
    except ProviderError as problem:
        return BalanceCheck(provider.name, known, problem=problem)
    fetched = KnownBalance(provider.name, details, now())
    cache.remember(fetched)
    return BalanceCheck(provider.name, fetched)


def check_all(providers: Mapping[str, Provider], cache: BalanceCache, now: Callable[[], datetime],
              max_age: timedelta) -> dict[str, BalanceCheck]:
    """Every provider's check, made concurrently (each one waits on a provider or the table)."""
    with ThreadPoolExecutor(len(providers) or 1) as pool:
        checks = pool.map(lambda provider: check(provider, cache, now, max_age), providers.values())
    return dict(zip(providers, checks))


def view(result: BalanceCheck) -> dict:
    """One provider's entry in GET /v1/account/balance."""
    if result.problem is None:
        return {"available": True, **result.balance.details, "fetched_at": iso_millis(result.balance.fetched_at),
                "cached": result.cached}
    shown = {"available": False, "reason": result.problem.reason,
             **({"code": result.problem.code} if result.problem.code else {})}
    if result.balance is not None:
        shown["last_known"] = {**result.balance.details, "fetched_at": iso_millis(result.balance.fetched_at)}
    return shown


def balances(providers: Mapping[str, Provider], cache: BalanceCache, now: Callable[[], datetime],
             max_age: timedelta) -> dict:
    """The answer of GET /v1/account/balance."""
    return {"providers": {name: view(result) for name, result in check_all(providers, cache, now, max_age).items()}}


def balance_figure(result: BalanceCheck) -> float | None:
    """The number the monitor publishes for a provider (its BALANCE_FIGURES field), or None when
    the check failed or the provider gave no readable number."""
    field = BALANCE_FIGURES.get(result.provider)
    if not result.available or field is None:
        return None
    value = result.balance.details.get(field)
    if isinstance(value, bool):
        return None
    try:
        figure = float(value)  # SayaSMS documents a number; a numeric string is read the same way
    except (TypeError, ValueError):
        return None
    return figure if math.isfinite(figure) else None
