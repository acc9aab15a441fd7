"""The pure rules of staff access: roles and permissions, user names, passwords, session ends, the failure
throttle, and where a login may lead back to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.exceptions import ValidationError
from campaign.models import Permission, Role
from campaign.rules.access import (
    MIN_PASSWORD_LENGTH,
    check_new_password,
    may,
    parse_user_name,
    session_is_live,
    user_name_key,
)
from campaign.rules.routes import staff_destination
from campaign.rules.throttle import FailureThrottle

T0 = datetime(2030, 5, 2, 9, 0, tzinfo=UTC)


def test_an_admin_may_do_everything_staff_act_and_an_analyst_only_views_reports() -> None:
    assert all(may(Role.ADMIN, p) for p in Permission)
    assert may(Role.STAFF, Permission.VIEW_REPORTS)
    assert may(Role.STAFF, Permission.ACT_ON_CAMPAIGNS)
    assert not may(Role.STAFF, Permission.MANAGE_USERS)
    assert may(Role.ANALYST, Permission.VIEW_REPORTS)
    assert not may(Role.ANALYST, Permission.ACT_ON_CAMPAIGNS)
    assert not may(Role.ANALYST, Permission.MANAGE_USERS)


@pytest.mark.parametrize("name", ["ann", "Ann.Lee", "ann_lee-2", "ann@example.org", "josé", "7of9"])
def test_user_names_people_use_are_accepted(name: str) -> None:
    assert parse_user_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", " ", "_ann", "-ann", "ann lee", "ann\nroot", "a/b", "<b>", "a" * 65])
def test_other_user_names_are_refused_with_what_a_name_must_be(name: str) -> None:
    with pytest.raises(ValidationError, match="must be 1 to 64 letters"):
        parse_user_name(name)


def test_user_names_differing_in_letter_case_or_width_are_one_user() -> None:
    assert user_name_key("Ann") == user_name_key("ann") == user_name_key("ＡＮＮ")
    assert user_name_key("ann") != user_name_key("anne")


def test_a_password_needs_twelve_characters_and_not_the_name_and_the_error_never_repeats_it() -> None:
    check_new_password("correct horse", "ann")
    with pytest.raises(ValidationError, match="at least 12") as short:
        check_new_password("elevenchars", "ann")
    assert "elevenchars" not in str(short.value)
    with pytest.raises(ValidationError, match="not be the user name"):
        check_new_password("Ann.Lee.Smith", "ann.lee.smith")
    with pytest.raises(ValidationError, match="longer than"):
        check_new_password("x" * 1025, "ann")
    assert MIN_PASSWORD_LENGTH == 12


def test_a_session_ends_when_idle_and_at_its_absolute_end_whichever_comes_first() -> None:
    idle = timedelta(minutes=60)
    expires = T0 + timedelta(hours=12)
    assert session_is_live(expires, T0, T0 + timedelta(minutes=59), idle=idle)
    assert not session_is_live(expires, T0, T0 + timedelta(minutes=60), idle=idle)
    # Used a minute ago, but past its absolute end.
    late = T0 + timedelta(hours=12)
    assert not session_is_live(expires, late - timedelta(minutes=1), late, idle=idle)


def test_the_throttle_blocks_a_key_after_its_limit_until_the_oldest_failure_leaves_the_window() -> None:
    throttle = FailureThrottle(limit=3, window=timedelta(minutes=15))
    for minute in (0, 1, 2):
        assert throttle.blocked_for("ann", T0 + timedelta(minutes=minute)) is None
        throttle.fail("ann", T0 + timedelta(minutes=minute))
    assert throttle.blocked_for("ann", T0 + timedelta(minutes=3)) == timedelta(minutes=12)
    assert throttle.blocked_for("bob", T0 + timedelta(minutes=3)) is None
    assert throttle.blocked_for("ann", T0 + timedelta(minutes=15)) is None
    throttle.fail("ann", T0 + timedelta(minutes=15))
    # Still two failures within the window (minutes 1 and 2) plus the new one: blocked until minute 16.
    assert throttle.blocked_for("ann", T0 + timedelta(minutes=15, seconds=30)) == timedelta(seconds=30)


def test_forgiving_and_clearing_take_failures_back() -> None:
    throttle = FailureThrottle(limit=2, window=timedelta(minutes=15))
    throttle.fail("a", T0)
    throttle.fail("a", T0 + timedelta(seconds=1))
    assert throttle.blocked_for("a", T0 + timedelta(seconds=2))
    throttle.forgive("a", T0 + timedelta(seconds=1))
    assert throttle.blocked_for("a", T0 + timedelta(seconds=2)) is None
    throttle.fail("a", T0 + timedelta(seconds=2))
    throttle.clear("a")
    assert throttle.blocked_for("a", T0 + timedelta(seconds=3)) is None


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=200))
def test_the_throttle_remembers_at_most_max_keys(keys: list[int]) -> None:
    throttle = FailureThrottle(limit=5, window=timedelta(minutes=15), max_keys=2)
    for n, key in enumerate(keys):
        throttle.fail(str(key), T0 + timedelta(seconds=n))
        assert len(throttle._failures) <= 2
    # The key that failed last is never the one forgotten.
    assert str(keys[-1]) in throttle._failures


@pytest.mark.parametrize("target", ["/dashboard", "/dashboard?campaign=c&x=%2F%2Fevil"])
def test_a_login_may_lead_back_to_a_staff_page(target: str) -> None:
    assert staff_destination(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        "dashboard",
        "//evil.example",
        "//evil.example/dashboard",
        "///evil.example",
        "/\\evil.example",
        "/\\/evil.example/dashboard",
        "https://evil.example/dashboard",
        "http:/evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/dashboard\r\nSet-Cookie: x=1",
        "/dashboard#x",
        "/dashboard/../o/x.gif",
        "/login",
        "/logout",
        "/c/sometoken",
        "/%2F%2Fevil.example",
        "/dashboard" + "x" * 3000,
    ],
)
def test_anything_else_is_no_destination(target: str) -> None:
    assert staff_destination(target) is None
