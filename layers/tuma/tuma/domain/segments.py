"""How an SMS body is encoded and into how many parts (segments) it is split, and what it costs.

A body goes as GSM-7 when every character is in the GSM 03.38 default alphabet or its extension
table, else as UCS-2. One SMS holds 160 GSM-7 septets or 70 UTF-16 units; a longer body is sent
as concatenated parts of 153 septets or 67 units (the rest of each part is its header). An
extension character (€ { } [ ] ~ \\ | ^ and form feed) is two septets, the escape and the
character, and an astral character (most emoji) is two UTF-16 units, a surrogate pair: neither
may be cut between two parts, so parts are filled greedily rather than counted as ceil(units/153).

The alphabet is the gsm0338 codec's (3GPP TS 23.038), written out by scripts/codegen.py.
The codec's encoder is not used to count: it is a per-character Python loop (about 0.6 s for 10,000
bodies of 160 characters on our machines, the size of one bulk request), whereas set look-ups and
str.count run in C; the greedy fill itself is a few lines and only runs for multi-part bodies
that hold an extension or astral character."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from tuma.domain.gsm7_alphabet import GSM7_BASIC, GSM7_EXTENSION

GSM7, UCS2 = "GSM-7", "UCS-2"
MAX_SEGMENTS = 6  # SayaSMS: "max 918 chars for multi-part SMS" = 6 x 153 GSM-7 septets

SINGLE = {GSM7: 160, UCS2: 70}  # units in a one-part SMS
PART = {GSM7: 153, UCS2: 67}  # units in each part of a concatenated SMS
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


@dataclass(frozen=True)
class Measure:
    encoding: str  # GSM7 | UCS2
    characters: int  # len(text) as the user sees it (code points)
    units: int  # GSM-7 septets (extension-table chars count 2) or UTF-16 code units (emoji = 2)
    segments: int  # 1 if units <= 160 (GSM-7) / 70 (UCS-2); else concatenated parts of 153 / 67


def measure(text: str) -> Measure:
    if _GSM7_ALL.issuperset(text):
        encoding, doubles = GSM7, sum(text.count(c) for c in GSM7_EXTENSION if c in text)
    else:
        encoding, doubles = UCS2, (len(text.encode("utf-16-le")) // 2) - len(text)
    units = len(text) + doubles
    if units <= SINGLE[encoding]:
        segments = 1
    elif not doubles:  # every character is one unit: no character can straddle two parts
        segments = math.ceil(units / PART[encoding])
    else:
        segments = _filled_parts(text, encoding)
    return Measure(encoding, len(text), units, segments)


def _filled_parts(text: str, encoding: str) -> int:
    """Parts of PART units, filled in order; a two-unit character that does not fit in what is
    left of a part starts the next one (as phones and SMSCs split)."""
    double = GSM7_EXTENSION.__contains__ if encoding == GSM7 else (lambda c: ord(c) > 0xFFFF)
    capacity, parts, used = PART[encoding], 1, 0
    for character in text:
        size = 2 if double(character) else 1
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts


def length_problem(m: Measure) -> str | None:
    """None if the body fits in MAX_SEGMENTS parts, else why not (for an error's `reason`)."""
    if m.segments <= MAX_SEGMENTS:
        return None
    return (f"is {m.segments} segments ({m.encoding}, {m.characters} characters); at most {MAX_SEGMENTS} "
            f"segments are allowed ({MAX_SEGMENTS * PART[GSM7]} GSM-7 characters, "
            f"or {MAX_SEGMENTS * PART[UCS2]} UCS-2 units)")


def estimated_cost(m: Measure, rate_per_segment: Decimal) -> Decimal:
    return m.segments * rate_per_segment


_CENTS = Decimal("0.01")
_KES = re.compile(r"^\s*(?:KES|KSHS?\.?)?\s*([0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?)\s*$",
                  re.IGNORECASE)


def kes(amount: Decimal) -> str:
    """An amount as SayaSMS writes one: "KES 0.90" (two decimals, no thousands separator)."""
    return f"KES {Decimal(amount).quantize(_CENTS, rounding=ROUND_HALF_UP)}"


def parse_kes(text: str) -> Decimal | None:
    """"KES 0.90" (or "0.90", "KES 1,234.50") -> Decimal; None if it is not an amount in KES."""
    match = _KES.match(text) if isinstance(text, str) else None
    if not match:
        return None
    try:
        return Decimal(match.group(1).replace(",", ""))
    except InvalidOperation:
        return None
