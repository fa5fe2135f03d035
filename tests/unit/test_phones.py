"""Kenyan mobile numbers as people write them, normalised with `phonenumbers` (tuma.domain.phones)."""

from __future__ import annotations

import pytest

from tuma.domain.phones import InvalidNumber, Msisdn, mask, normalise


@pytest.mark.parametrize("written", [
    "0712345678",          # national, with the trunk 0
    "712345678",           # national, without it
    "254712345678",        # country code, no '+' (254sms's form)
    "+254712345678",       # E.164 (SayaSMS's form)
    " +254712345678 ",     # surrounding blanks
    "+254 712 345 678",    # grouped
    "0712-345-678",
    "0712 345 678",
    "(0712) 345678",
    "+254 (0) 712 345 678",
])
def test_every_kenyan_way_of_writing_a_mobile_number_gives_the_same_e164(written):
    assert normalise(written) == Msisdn("+254712345678")


@pytest.mark.parametrize("written, e164", [
    ("0722111222", "+254722111222"),   # Safaricom 072x
    ("0733123456", "+254733123456"),   # Airtel 073x
    ("0110123456", "+254110123456"),   # Safaricom 011x: a mobile range that starts with 1
    ("0100123456", "+254100123456"),   # Airtel 010x
])
def test_other_kenyan_mobile_ranges_are_accepted(written, e164):
    assert normalise(written).e164 == e164


def test_digits_is_254sms_form_without_plus():
    number = normalise("0712345678")
    assert number.e164 == "+254712345678"
    assert number.digits == "254712345678"


@pytest.mark.parametrize("written, reason", [
    ("+254202222222", "is not a mobile number"),       # a Nairobi landline
    ("020 2222222", "is not a mobile number"),
    ("+14155552671", "is not a Kenyan number (+254)"),  # valid, but American
    ("+255712345678", "is not a Kenyan number (+254)"),  # valid, but Tanzanian
    ("07123456789", "is not a valid phone number"),     # one digit too many
    ("071234567", "is not a valid phone number"),       # one digit too few
    ("12", "is not a valid phone number"),
    ("hello", "is not a phone number"),
    ("", "must be a non-empty string"),
    ("   ", "must be a non-empty string"),
])
def test_unusable_numbers_raise_invalid_number_saying_why(written, reason):
    with pytest.raises(InvalidNumber) as raised:
        normalise(written)
    assert str(raised.value) == reason


@pytest.mark.parametrize("value", [None, 712345678, 254712345678, ["+254712345678"], {"n": "0712345678"}])
def test_anything_but_a_string_is_refused(value):
    with pytest.raises(InvalidNumber, match="must be a non-empty string"):
        normalise(value)


def test_a_number_with_letters_is_rejected_not_translated_by_the_keypad():
    with pytest.raises(InvalidNumber):
        normalise("0712ABCDEF")


def test_mask_hides_all_but_the_last_three_digits():
    assert mask("+254712345678") == "**********678"
    assert mask("12") == "12"


def test_five_leading_digits_decide_a_kenyan_numbers_verdict():
    """normalise caches phonenumbers' verdict per five leading national digits: that only holds
    while Kenya's numbering plan (phonenumbers' metadata) decides by those digits alone."""
    from tuma.domain.phones import _problem_of

    differing = [prefix for prefix in (f"{first}{rest:04d}" for first in "17" for rest in range(10_000))
                 if _problem_of(f"+254{prefix}0000") != _problem_of(f"+254{prefix}9999")]
    assert differing == []


@pytest.mark.parametrize("written", ["0712345678", "0110123456", "0202222222", "0733123456", "0199999999"])
def test_the_fast_path_agrees_with_phonenumbers(written):
    from tuma.domain.phones import _parse

    try:
        expected = _parse(written)
    except InvalidNumber as problem:
        with pytest.raises(InvalidNumber, match=str(problem)):
            normalise(written)
    else:
        assert normalise(written) == expected
