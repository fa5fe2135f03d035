"""Times as Tuma writes them. A module of its own so that any function can use it without
loading the request-validation code (phonenumbers and all) at its cold start."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_millis(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and Z, as SayaSMS writes times."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """A time Tuma stored (iso_millis: UTC with a Z), back as a UTC datetime."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)
