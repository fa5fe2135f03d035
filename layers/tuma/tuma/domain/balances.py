"""Both providers' balances, asked at the same time; a provider that fails is reported as
unavailable with the reason, so the answer is always whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tuma.domain.providers import Provider, ProviderError


def _one(provider: Provider) -> dict:
    try:
        return {"available": True, **provider.balance()}
    except ProviderError as problem:
        return {"available": False, "reason": problem.reason, **({"code": problem.code} if problem.code else {})}


def balances(providers: dict[str, Provider]) -> dict:
    with ThreadPoolExecutor(len(providers) or 1) as pool:
        answers = pool.map(_one, providers.values())
    return {"providers": dict(zip(providers, answers))}
