"""The routing policy (tuma.domain.routing): pin, prefix rules, network rules, default."""

from __future__ import annotations

import pytest

from tuma.domain.phones import network
from tuma.domain.routing import BadRoutingRules, policy_from

SAFARICOM, AIRTEL, TELKOM = "+254712345678", "+254733123456", "+254771234567"


@pytest.mark.parametrize("number, name", [
    (SAFARICOM, "Safaricom"), ("+254110123456", "Safaricom"), (AIRTEL, "Airtel"), ("+254101234567", "Airtel"),
    (TELKOM, "Telkom"),
])
def test_networks_come_from_phonenumbers_carrier_data(number, name):
    assert network(number) == name


def test_without_rules_every_number_goes_to_the_default_first_then_the_other():
    policy = policy_from("sayasms", "")
    assert [policy.chain(n, None) for n in (SAFARICOM, AIRTEL)] == [("sayasms", "254sms")] * 2
    assert policy_from("254sms", "").chain(SAFARICOM, None) == ("254sms", "sayasms")


def test_a_pin_is_the_only_provider_tried():
    policy = policy_from("sayasms", "Safaricom=sayasms")
    assert policy.chain(SAFARICOM, "254sms") == ("254sms",)


def test_network_rules_pick_the_first_provider_by_network_case_blind():
    policy = policy_from("sayasms", "airtel=254sms, Telkom=254sms")
    assert policy.chain(AIRTEL, None) == ("254sms", "sayasms")
    assert policy.chain(TELKOM, None) == ("254sms", "sayasms")
    assert policy.chain(SAFARICOM, None) == ("sayasms", "254sms")


def test_prefix_rules_come_before_network_rules_and_the_longest_prefix_wins():
    policy = policy_from("254sms", "Safaricom=254sms,+2547=sayasms,+25471=254sms")
    assert policy.primary("+254712345678") == "254sms"  # +25471 beats +2547
    assert policy.primary("+254722111222") == "sayasms"  # +2547 beats the Safaricom rule
    assert policy.primary("+254110123456") == "254sms"  # Safaricom, no prefix rule


@pytest.mark.parametrize("rules, says", [
    ("Safaricom", "rule 1 ('Safaricom') must be"),
    ("Safaricom=twilio", "rule 1 ('Safaricom=twilio') must be"),
    ("Airtel=254sms,=sayasms", "rule 2 ('=sayasms') must be"),
    ("+2547x=254sms", "rule 1 ('+2547x=254sms'): a prefix is + and digits"),
])
def test_unreadable_rules_say_which_rule_and_why(rules, says):
    with pytest.raises(BadRoutingRules) as raised:
        policy_from("sayasms", rules)
    assert f"routing {says}" in str(raised.value)


def test_an_unknown_default_is_refused():
    with pytest.raises(BadRoutingRules, match="default provider 'twilio'"):
        policy_from("twilio", "")
