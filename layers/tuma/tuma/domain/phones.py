"""Kenyan mobile numbers as people write them (0712…, 712…, 254712…, +254712…), via `phonenumbers`."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from tuma.domain.kenya_prefixes import VERDICTS

# phonenumbers is imported where it is used, not here: importing it costs about 80 ms of CPU (0.15
# x `import boto3`) on every cold start of the API and sender functions, and the plain forms
# (0712..., +254712..., all the API's jobs) are judged from kenya_prefixes, generated from it.


class InvalidNumber(ValueError):
    """The text is not a Kenyan mobile number; the message says why."""


@dataclass(frozen=True)
class Msisdn:
    e164: str  # "+254712345678": SayaSMS's form

    @property
    def digits(self) -> str:
        """254sms's form: country code and number, no '+'."""
        return self.e164[1:]


# The usual written forms of a Kenyan number: 0712345678, 712345678, 254712345678, +254712345678.
_PLAIN_KENYAN = re.compile(r"^(?:\+?254|0)?([17][0-9]{8})$")


def normalise(raw: object) -> Msisdn:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidNumber("must be a non-empty string")
    if any(c.isalpha() for c in raw) and any(c.isdigit() for c in raw):
        # phonenumbers reads letters as keypad digits (vanity numbers): a typo would reach a stranger.
        raise InvalidNumber("contains letters")
    plain = _PLAIN_KENYAN.match(raw)
    if plain:
        # A 10,000-message bulk spends most of its time in phonenumbers otherwise. Kenya's
        # numbering plan decides validity and type by the leading digits of the 9-digit national
        # number, so phonenumbers' verdict per five leading digits (scripts/codegen.py) holds for
        # every number that starts with them.
        national = plain.group(1)
        first, last, problem = VERDICTS[bisect_right(_FIRSTS, national[:5]) - 1]
        if not first <= national[:5] <= last:  # not in the table: the regex and the generator disagree
            return _parse("+254" + national)
        if problem:
            raise InvalidNumber(problem)
        return Msisdn("+254" + national)
    return _parse(raw)


_FIRSTS = tuple(first for first, _, _ in VERDICTS)


def _problem_of(e164: str) -> str | None:
    try:
        _parse(e164)
    except InvalidNumber as problem:
        return str(problem)
    return None


def _parse(raw: str) -> Msisdn:
    import phonenumbers  # numbers written otherwise (spaces, dashes, another country): see the imports

    try:
        number = phonenumbers.parse(raw, "KE")
    except phonenumbers.NumberParseException:
        raise InvalidNumber("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("is not a valid phone number")
    if phonenumbers.region_code_for_number(number) != "KE":
        raise InvalidNumber("is not a Kenyan number (+254)")
    if phonenumbers.number_type(number) not in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidNumber("is not a mobile number")
    return Msisdn(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def mask(number: str) -> str:
    """For logs: all but the last three digits hidden."""
    text = str(number)
    return "*" * max(len(text) - 3, 0) + text[-3:]


def network(e164: str) -> str | None:
    """The mobile network (Safaricom, Airtel, Telkom…) that phonenumbers' carrier data gives for
    the number's prefix, or None where it knows none. It is the network the prefix was allocated
    to: a number ported to another network keeps its old prefix, and no offline data can tell."""
    prefix = e164[:9]  # Kenya's carrier data goes by at most 3 national digits: 5 is ample
    if prefix not in _NETWORKS:
        import phonenumbers
        from phonenumbers import carrier  # loaded only where routing by network is configured

        _NETWORKS[prefix] = carrier.name_for_number(phonenumbers.parse(e164), "en") or None
    return _NETWORKS[prefix]


_NETWORKS: dict[str, str | None] = {}
