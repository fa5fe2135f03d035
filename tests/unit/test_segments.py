"""Encoding, segment counting, the length limit and KES amounts (tuma.domain.segments)."""

from decimal import Decimal

import pytest

from tuma.domain.segments import (
    GSM7, GSM7_BASIC, GSM7_EXTENSION, MAX_SEGMENTS, UCS2, Measure, estimated_cost, kes, length_problem, measure,
    parse_kes)

SWAHILI = "Habari yako? Karibu sana, tutaonana kesho."
EMOJI = "\U0001F600"  # 😀: one character, two UTF-16 units (a surrogate pair)

CASES = [
    # (name, text, encoding, characters, units, segments)
    ("one character", "a", GSM7, 1, 1, 1),
    ("160 GSM-7 characters: one SMS", "a" * 160, GSM7, 160, 160, 1),
    ("161: two parts of 153", "a" * 161, GSM7, 161, 161, 2),
    ("306: two full parts", "a" * 306, GSM7, 306, 306, 2),
    ("307: three parts", "a" * 307, GSM7, 307, 307, 3),
    ("918: six full parts", "a" * 918, GSM7, 918, 918, 6),
    ("919: seven parts", "a" * 919, GSM7, 919, 919, 7),
    ("€ counts two septets", "€", GSM7, 1, 2, 1),
    ("{ counts two septets", "{", GSM7, 1, 2, 1),
    ("80 € fill one SMS", "€" * 80, GSM7, 80, 160, 1),
    ("81 € need two parts", "€" * 81, GSM7, 81, 162, 2),
    ("159 + € is 161 septets", "a" * 159 + "€", GSM7, 160, 161, 2),
    # A part of 153 septets cannot end in the escape of an extension character: 152 + € moves the
    # € to the second part, so 306 septets take three parts where ceil(306/153) says two.
    ("€ at a 153 boundary", "a" * 152 + "€" + "a" * 152, GSM7, 305, 306, 3),
    ("{ at a 153 boundary", "a" * 152 + "{" + "a" * 152, GSM7, 305, 306, 3),
    ("€ just inside a part", "a" * 151 + "€" + "a" * 153, GSM7, 305, 306, 2),
    ("459 € are 918 septets, but 6 × 76 fit", "€" * 459, GSM7, 459, 918, 7),
    ("456 € fill six parts of 152", "€" * 456, GSM7, 456, 912, 6),
    ("all the extension table", "^{}\\[~]|€\f", GSM7, 10, 20, 1),
    ("Swahili is GSM-7", SWAHILI, GSM7, 42, 42, 1),
    ("é is in GSM-7", "Karibu café", GSM7, 11, 11, 1),
    ("ê is not", "Karibu crêpe", UCS2, 12, 12, 1),
    ("lower-case ç is not (only Ç)", "ç", UCS2, 1, 1, 1),
    ("a curly quote makes it UCS-2", "It’s ready", UCS2, 10, 10, 1),
    ("70 UCS-2 units: one SMS", "ê" * 70, UCS2, 70, 70, 1),
    ("71: two parts of 67", "ê" * 71, UCS2, 71, 71, 2),
    ("134: two full parts", "ê" * 134, UCS2, 134, 134, 2),
    ("402: six full parts", "ê" * 402, UCS2, 402, 402, 6),
    ("403: seven", "ê" * 403, UCS2, 403, 403, 7),
    ("an emoji is two units", EMOJI, UCS2, 1, 2, 1),
    ("35 emoji fill one SMS", EMOJI * 35, UCS2, 35, 70, 1),
    ("36 emoji: two parts", EMOJI * 36, UCS2, 36, 72, 2),
    # 66 units then a surrogate pair: the pair may not be cut, so it opens part two.
    ("emoji at a 67 boundary", "ê" * 66 + EMOJI + "ê" * 66, UCS2, 133, 134, 3),
    ("201 emoji are 402 units, but 33 fit a part", EMOJI * 201, UCS2, 201, 402, 7),
    ("emoji just inside a part", "ê" * 65 + EMOJI + "ê" * 67, UCS2, 133, 134, 2),
    ("Swahili with an emoji", SWAHILI + " " + EMOJI, UCS2, 44, 45, 1),
    ("€ in a UCS-2 body is one unit", "€ê", UCS2, 2, 2, 1),
]


@pytest.mark.parametrize("name, text, encoding, characters, units, segments", CASES, ids=[c[0] for c in CASES])
def test_measure(name, text, encoding, characters, units, segments):
    assert measure(text) == Measure(encoding, characters, units, segments)


def test_the_alphabet_is_gsm_03_38_default_and_extension_tables():
    assert len(GSM7_BASIC) == 127  # 128 codes, one of them the escape to the extension table
    assert GSM7_EXTENSION == set("^{}\\[~]|€\f")
    assert {"@", "£", "$", "¥", "è", "é", "Ç", "Δ", "Ø", "ñ", "ü", "à", "\n", "\r", "§", "¿"} <= GSM7_BASIC
    assert not {"\x1b", "ê", "ç", "`", "á", "’"} & (GSM7_BASIC | GSM7_EXTENSION)


@pytest.mark.parametrize("text", ["a" * 918, "€" * 456, "ê" * 402, EMOJI * 198, SWAHILI])
def test_six_segments_fit(text):
    assert measure(text).segments <= MAX_SEGMENTS
    assert length_problem(measure(text)) is None


LIMIT = "at most 6 segments are allowed (918 GSM-7 characters, or 402 UCS-2 units)"


@pytest.mark.parametrize("text, reason", [
    ("a" * 919, f"is 7 segments (GSM-7, 919 characters); {LIMIT}"),
    ("ê" * 520, f"is 8 segments (UCS-2, 520 characters); {LIMIT}"),
    (EMOJI * 199, f"is 7 segments (UCS-2, 199 characters); {LIMIT}"),
])
def test_more_than_six_segments_is_a_problem_naming_the_count_and_the_limit(text, reason):
    assert length_problem(measure(text)) == reason


def test_estimated_cost_is_segments_times_the_rate():
    assert estimated_cost(measure("a" * 161), Decimal("0.90")) == Decimal("1.80")
    assert estimated_cost(measure(SWAHILI), Decimal("0.80")) == Decimal("0.80")


@pytest.mark.parametrize("amount, text", [
    (Decimal("0.9"), "KES 0.90"), (Decimal("12.6"), "KES 12.60"), (Decimal("0"), "KES 0.00"),
    (Decimal("1.805"), "KES 1.81"), (Decimal("1234.5"), "KES 1234.50"), (3, "KES 3.00"),
])
def test_kes_writes_two_decimals_as_sayasms_does(amount, text):
    assert kes(amount) == text


@pytest.mark.parametrize("text, amount", [
    ("KES 0.90", Decimal("0.90")), ("kes 1.80", Decimal("1.80")), ("KES 1,234.50", Decimal("1234.50")),
    ("0.90", Decimal("0.90")), ("KSh 2", Decimal("2")), (" KES 3.00 ", Decimal("3.00")),
    ("USD 1.00", None), ("KES", None), ("KES -1", None), ("KES 1,2", None), ("", None), (None, None), (0.9, None),
])
def test_parse_kes_reads_sayasms_amounts_and_refuses_anything_else(text, amount):
    assert parse_kes(text) == amount
