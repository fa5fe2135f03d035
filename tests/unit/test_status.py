"""The status machine only moves forward (tuma.domain.status)."""

from __future__ import annotations

import itertools

import pytest

from tuma.domain import status as machine
from tuma.domain.status import (
    CANCELLED, DELIVERED, FAILED, FINAL, QUEUED, RANK, REJECTED, SCHEDULED, SENDING, SENT, UNKNOWN, earlier_than,
    may_move)

ALL = list(RANK)  # every status the machine knows
EXPIRED = getattr(machine, "EXPIRED", None)  # "no final report in time", where the machine has it

FORWARD = [
    (SCHEDULED, QUEUED), (SCHEDULED, CANCELLED), (QUEUED, CANCELLED),
    (QUEUED, SENDING), (QUEUED, SENT), (QUEUED, UNKNOWN), (QUEUED, FAILED), (QUEUED, REJECTED),
    (SENDING, SENT), (SENDING, FAILED), (SENDING, UNKNOWN), (SENDING, DELIVERED),
    (UNKNOWN, SENT), (UNKNOWN, DELIVERED), (UNKNOWN, FAILED),  # a late report settles an unknown
    (SENT, DELIVERED), (SENT, FAILED),
]


def test_the_documented_statuses_are_all_known():
    assert {SCHEDULED, QUEUED, SENDING, SENT, DELIVERED, FAILED, REJECTED, UNKNOWN, CANCELLED} <= set(ALL)
    assert FINAL == {DELIVERED, FAILED, REJECTED, CANCELLED}


@pytest.mark.parametrize("current, new", FORWARD)
def test_forward_moves_are_allowed(current, new):
    assert may_move(current, new)


@pytest.mark.parametrize("current, new", [(new, current) for current, new in FORWARD])
def test_backward_moves_are_refused(current, new):
    assert not may_move(current, new)


@pytest.mark.parametrize("status", ALL)
def test_a_status_never_replaces_itself(status):
    assert not may_move(status, status)


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("new", ALL)
def test_nothing_moves_a_final_status(final, new):
    assert not may_move(final, new)


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("current", [s for s in ALL if s not in FINAL])
def test_any_status_not_final_may_become_final(current, final):
    assert may_move(current, final)


def test_no_two_statuses_may_replace_each_other():
    assert [(a, b) for a, b in itertools.permutations(ALL, 2) if may_move(a, b) and may_move(b, a)] == []


def test_moving_forward_is_transitive():
    # Otherwise two events in one order could reach a status the other order cannot.
    assert [(a, b, c) for a, b, c in itertools.permutations(ALL, 3)
            if may_move(a, b) and may_move(b, c) and not may_move(a, c)] == []


@pytest.mark.parametrize("new", ALL)
def test_a_message_with_no_status_yet_may_take_any(new):
    assert may_move(None, new)


@pytest.mark.skipif(EXPIRED is None, reason="this status machine has no `expired`")
def test_expired_comes_after_sent_and_a_late_final_report_still_wins():
    assert may_move(SENT, EXPIRED) and may_move(UNKNOWN, EXPIRED)
    assert may_move(EXPIRED, DELIVERED) and may_move(EXPIRED, FAILED)
    assert not may_move(EXPIRED, SENT) and not may_move(EXPIRED, UNKNOWN)
    assert EXPIRED not in FINAL


@pytest.mark.parametrize("new", ALL)
def test_earlier_than_lists_exactly_the_statuses_a_conditional_write_may_replace(new):
    assert sorted(earlier_than(new)) == sorted(s for s in ALL if may_move(s, new))


@pytest.mark.parametrize("new, must, must_not", [
    (SCHEDULED, [], ALL),
    (QUEUED, [SCHEDULED], [s for s in ALL if s != SCHEDULED]),
    (CANCELLED, [SCHEDULED, QUEUED], [CANCELLED, DELIVERED, FAILED, REJECTED]),
    (SENDING, [QUEUED], [SENDING, SENT, UNKNOWN, DELIVERED, FAILED, REJECTED]),
    (UNKNOWN, [QUEUED, SENDING], [UNKNOWN, SENT, DELIVERED, FAILED, REJECTED]),
    (SENT, [QUEUED, SENDING, UNKNOWN], [SENT, DELIVERED, FAILED, REJECTED]),
    (DELIVERED, [QUEUED, SENDING, UNKNOWN, SENT], [DELIVERED, FAILED, REJECTED]),
    (FAILED, [QUEUED, SENDING, UNKNOWN, SENT], [DELIVERED, FAILED, REJECTED]),
    (REJECTED, [QUEUED, SENDING, UNKNOWN, SENT], [DELIVERED, FAILED, REJECTED]),
])
def test_earlier_than_for_each_documented_status(new, must, must_not):
    allowed = set(earlier_than(new))
    assert set(must) <= allowed
    assert not allowed & set(must_not)
