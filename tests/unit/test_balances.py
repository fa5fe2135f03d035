"""Provider balances: the shared cache (tuma.domain.balances + tuma.store.balances, through the
balance handler) and the scheduled monitor's metrics (functions/balance_monitor), under moto,
with the provider simulators on loopback. The simulators' recorded requests show whether a
provider was really asked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from conftest import REPO, SAYASMS_API_KEY, api_event, utc
from local.simulators.sms254 import ERRORS as SMS254_ERRORS
from tuma.domain.balances import BalanceCheck, KnownBalance, balance_figure
from tuma.domain.providers import OutgoingMessage, ProviderUnavailable
from tuma.providers.sayasms import SayaSms
from tuma.store.balances import DynamoBalanceCache, balance_key

T0 = utc(2026, 3, 13, 14, 30)
T0_SHOWN = "2026-03-13T14:30:00.000Z"
SCHEDULED_EVENT = json.loads((REPO / "events" / "balance_monitor_scheduled.json").read_text())


class Clock:
    """The handlers' `_now`, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def balance_calls(sim254, simsaya) -> tuple[int, int]:
    """How many balance calls each simulator received."""
    return (sum(r["path"] == "/credits" for r in sim254.requests()),
            sum(r["path"] == "/v1/account/balance" for r in simsaya.requests()))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def balance(functions, context, aws, clock, monkeypatch):
    """GET /v1/account/balance through its handler; (status, body)."""
    module = functions("balance")
    monkeypatch.setattr(module, "_now", clock)

    def get() -> tuple[int, dict]:
        response = module.handler(api_event("GET", "/v1/account/balance"), context)
        return response["statusCode"], json.loads(response["body"])
    return get


@pytest.fixture
def monitor(functions, context, aws, clock, monkeypatch, capsys):
    """The scheduled monitor's handler; (its return value, the EMF documents it printed)."""
    module = functions("balance_monitor")
    monkeypatch.setattr(module, "_now", clock)

    def run() -> tuple[dict, list[dict]]:
        capsys.readouterr()
        result = module.handler(SCHEDULED_EVENT, context)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        return result, [line for line in lines if "_aws" in line]
    return run


def spend_on_sayasms(simsaya, count: int = 1) -> None:
    """Send `count` SMS through SayaSMS so that its balance moves (KES 0.90 each)."""
    SayaSms(simsaya.url, SAYASMS_API_KEY).send("TUMA", [OutgoingMessage(f"+2547123456{n:02d}", "Hi")
                                                        for n in range(count)])


# --- the cache, through GET /v1/account/balance -------------------------------------------------


def test_a_second_call_within_the_cache_age_asks_no_provider(balance, clock, sim254, simsaya):
    code, first = balance()
    clock.advance(59)
    _, second = balance()

    assert code == 200
    assert first["providers"] == {
        "254sms": {"available": True, "credits": 1000, "fetched_at": T0_SHOWN, "cached": False},
        "sayasms": {"available": True, "balance": 1000, "currency": "KES", "sms_credits": 1111,
                    "fetched_at": T0_SHOWN, "cached": False},
    }
    assert second["providers"] == {name: {**shown, "cached": True} for name, shown in first["providers"].items()}
    assert balance_calls(sim254, simsaya) == (1, 1)


def test_the_cache_is_shared_through_the_table(balance, aws, clock, sim254, simsaya):
    balance()

    item = aws.item(**balance_key("sayasms"))
    assert item["pk"] == "PROVIDER#sayasms" and item["sk"] == "BALANCE"
    assert item["fetched_at"] == T0_SHOWN
    assert json.loads(item["details"]) == {"balance": 1000, "currency": "KES", "sms_credits": 1111}
    # Another instance (a fresh cache object, as in another Lambda) reads the same balance.
    assert DynamoBalanceCache().latest("254sms") == KnownBalance("254sms", {"credits": 1000}, T0)


def test_an_expired_entry_is_refreshed(balance, aws, clock, sim254, simsaya):
    balance()
    spend_on_sayasms(simsaya)
    clock.advance(60)
    _, refreshed = balance()

    sayasms = refreshed["providers"]["sayasms"]
    assert sayasms["cached"] is False
    assert sayasms["balance"] == pytest.approx(999.1)
    assert sayasms["fetched_at"] == "2026-03-13T14:31:00.000Z"
    assert balance_calls(sim254, simsaya) == (2, 2)
    assert aws.item(**balance_key("sayasms"))["fetched_at"] == "2026-03-13T14:31:00.000Z"
    # The float came back from the table as it went in (stored as JSON, not as a Decimal).
    assert DynamoBalanceCache().latest("sayasms").details["balance"] == pytest.approx(999.1)


def test_a_cache_age_of_zero_asks_the_providers_every_time(balance, sim254, simsaya, monkeypatch):
    monkeypatch.setenv("BALANCE_CACHE_S", "0")
    balance()
    _, second = balance()

    assert second["providers"]["254sms"]["cached"] is False
    assert balance_calls(sim254, simsaya) == (2, 2)


def test_a_failing_provider_shows_its_last_known_balance(balance, clock, sim254, simsaya):
    balance()
    clock.advance(120)
    simsaya.faults({"status": 503})
    _, answer = balance()

    assert answer["providers"]["sayasms"] == {
        "available": False, "reason": "HTTP 503", "code": "503",
        "last_known": {"balance": 1000, "currency": "KES", "sms_credits": 1111, "fetched_at": T0_SHOWN},
    }
    assert answer["providers"]["254sms"]["cached"] is False
    # The failure is not cached: once SayaSMS answers again, the next call shows it.
    simsaya.faults({})
    clock.advance(1)
    _, recovered = balance()
    assert recovered["providers"]["sayasms"]["available"] is True
    assert recovered["providers"]["sayasms"]["fetched_at"] == "2026-03-13T14:32:01.000Z"
    assert balance_calls(sim254, simsaya) == (2, 3)


def test_a_failing_provider_with_nothing_cached_has_no_last_known(balance, sim254, simsaya):
    sim254.faults({"error": "X001"})
    _, answer = balance()

    assert answer["providers"]["254sms"] == {"available": False, "reason": SMS254_ERRORS["X001"], "code": "X001"}


def test_an_older_balance_never_overwrites_a_newer_one(aws):
    cache = DynamoBalanceCache()
    cache.remember(KnownBalance("254sms", {"credits": 900}, T0 + timedelta(seconds=5)))
    cache.remember(KnownBalance("254sms", {"credits": 1000}, T0))  # a slower instance, finishing last

    assert cache.latest("254sms") == KnownBalance("254sms", {"credits": 900}, T0 + timedelta(seconds=5))
    cache.remember(KnownBalance("254sms", {"credits": 800}, T0 + timedelta(seconds=6)))
    assert cache.latest("254sms").details == {"credits": 800}


# --- the figure the monitor publishes -------------------------------------------------------------


@pytest.mark.parametrize("provider, details, figure", [
    ("254sms", {"credits": 345}, 345.0),
    ("sayasms", {"balance": 4280, "currency": "KES", "sms_credits": 4280}, 4280.0),
    ("sayasms", {"balance": "12.50", "currency": "KES"}, 12.5),
    ("sayasms", {"balance": None, "currency": "KES"}, None),
    ("sayasms", {"balance": True}, None),
    ("sayasms", {"balance": "NaN"}, None),
    ("sayasms", {"currency": "KES"}, None),
    ("254sms", {"balance": 10}, None),  # 254sms's figure is its credits
])
def test_balance_figure_is_the_providers_own_number(provider, details, figure):
    assert balance_figure(BalanceCheck(provider, KnownBalance(provider, details, T0))) == figure


def test_a_failed_check_has_no_figure_even_with_a_last_known_balance():
    last_known = KnownBalance("254sms", {"credits": 345}, T0)
    assert balance_figure(BalanceCheck("254sms", last_known, problem=ProviderUnavailable("254sms", "HTTP 503"))) is None


# --- the monitor ----------------------------------------------------------------------------------


def by_provider(documents: list[dict]) -> dict[tuple[str, str], dict]:
    """(metric name, provider) → its EMF document, checking each is one well-formed metric."""
    found = {}
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Tuma"
        assert directive["Dimensions"] == [["provider", "service"]]
        (metric,) = directive["Metrics"]
        found[(metric["Name"], document["provider"])] = {"unit": metric["Unit"], "value": document[metric["Name"]],
                                                         "service": document["service"]}
    assert len(found) == len(documents)
    return found


def test_the_monitor_publishes_each_providers_balance_in_its_own_unit(monitor, sim254, simsaya):
    spend_on_sayasms(simsaya, 2)
    result, documents = monitor()

    assert by_provider(documents) == {
        ("ProviderBalance", "254sms"): {"unit": "Count", "value": [1000.0], "service": "tuma-test"},
        ("ProviderBalance", "sayasms"): {"unit": "None", "value": [pytest.approx(998.2)], "service": "tuma-test"},
    }
    assert result == {"254sms": {"available": True, "balance": 1000.0},
                      "sayasms": {"available": True, "balance": pytest.approx(998.2)}}


def test_a_failing_provider_publishes_only_the_failure_count(monitor, sim254, simsaya):
    simsaya.faults({"error": "unauthorized"})
    result, documents = monitor()

    assert by_provider(documents) == {
        ("ProviderBalance", "254sms"): {"unit": "Count", "value": [1000.0], "service": "tuma-test"},
        ("ProviderBalanceCheckFailed", "sayasms"): {"unit": "Count", "value": [1.0], "service": "tuma-test"},
    }
    assert result["sayasms"]["available"] is False and "401" in result["sayasms"]["reason"]


def test_a_provider_answering_without_a_number_counts_as_a_failed_check(monitor, sim254, simsaya, monkeypatch):
    from tuma.providers.sms254 import Sms254

    monkeypatch.setattr(SayaSms, "balance", lambda self: {"balance": None, "currency": "KES", "sms_credits": None})
    monkeypatch.setattr(Sms254, "balance", lambda self: {"credits": 7})
    result, documents = monitor()

    assert set(by_provider(documents)) == {("ProviderBalance", "254sms"), ("ProviderBalanceCheckFailed", "sayasms")}
    assert result["sayasms"] == {"available": False, "reason": "no readable balance in the answer"}


def test_the_monitor_asks_the_providers_even_when_the_cache_is_fresh_and_refreshes_it(
        monitor, balance, clock, aws, sim254, simsaya):
    balance()
    spend_on_sayasms(simsaya)
    clock.advance(10)
    result, _ = monitor()

    assert balance_calls(sim254, simsaya) == (2, 2)
    assert result["sayasms"]["balance"] == pytest.approx(999.1)
    assert aws.item(**balance_key("sayasms"))["fetched_at"] == "2026-03-13T14:30:10.000Z"
    # What the monitor read is what the API now answers, from the cache.
    clock.advance(30)
    _, answer = balance()
    assert answer["providers"]["sayasms"]["cached"] is True
    assert answer["providers"]["sayasms"]["balance"] == pytest.approx(999.1)
    assert answer["providers"]["sayasms"]["fetched_at"] == "2026-03-13T14:30:10.000Z"
    assert balance_calls(sim254, simsaya) == (2, 2)
