"""The status machine only moves forward (tuma.domain.status)."""

from __future__ import annotations

import pytest

from tuma.domain.status import (
    DELIVERED, FAILED, FINAL, QUEUED, RANK, REJECTED, SENDING, SENT, UNKNOWN, earlier_than, may_move)

ALL = [QUEUED, SENDING, SENT, DELIVERED, FAILED, REJECTED, UNKNOWN]

FORWARD = [
    (QUEUED, SENDING), (QUEUED, SENT), (QUEUED, UNKNOWN), (QUEUED, FAILED), (QUEUED, REJECTED),
    (SENDING, SENT), (SENDING, FAILED), (SENDING, UNKNOWN), (SENDING, DELIVERED),
    (UNKNOWN, SENT), (UNKNOWN, DELIVERED), (UNKNOWN, FAILED),  # a late report settles an unknown
    (SENT, DELIVERED), (SENT, FAILED),
]


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


def test_finals_are_delivered_failed_and_rejected():
    assert FINAL == {DELIVERED, FAILED, REJECTED}
    assert set(RANK) == set(ALL)


@pytest.mark.parametrize("new", ALL)
def test_a_message_with_no_status_yet_may_take_any(new):
    assert may_move(None, new)


@pytest.mark.parametrize("new, expected", [
    (QUEUED, []),
    (SENDING, [QUEUED]),
    (UNKNOWN, [QUEUED, SENDING]),
    (SENT, [QUEUED, SENDING, UNKNOWN]),
    (DELIVERED, [QUEUED, SENDING, UNKNOWN, SENT]),
    (FAILED, [QUEUED, SENDING, UNKNOWN, SENT]),
    (REJECTED, [QUEUED, SENDING, UNKNOWN, SENT]),
])
def test_earlier_than_lists_the_statuses_a_conditional_write_may_replace(new, expected):
    assert sorted(earlier_than(new)) == sorted(expected)
    assert all(may_move(s, new) for s in earlier_than(new))
