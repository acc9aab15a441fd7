"""The waves' time axis (campaign.rules.timeline): pure layout, checked on numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaign.rules.timeline import MARGIN, layout, relative_text

START = datetime(2026, 6, 19, 7, 0, tzinfo=UTC)


def at(**delta: float) -> datetime:
    return START + timedelta(**delta)


def test_a_week_a_day_and_an_hour_before_are_all_apart_and_in_order() -> None:
    timeline = layout(START, [("w", at(days=-7)), ("d", at(days=-1)), ("h", at(hours=-1)), ("f", at(days=1))])
    pos = {p.name: p.position for p in timeline.points}
    assert MARGIN == pos["w"] < pos["d"] < pos["h"] < timeline.start < pos["f"] == 100 - MARGIN
    # Linear, the hour before would sit 0.6 % from the start; here it is well clear of it and of the day before.
    assert timeline.start - pos["h"] >= 5
    assert pos["h"] - pos["d"] >= 15


def test_a_wave_months_away_does_not_squash_the_others() -> None:
    timeline = layout(START, [("far", at(days=-180)), ("h", at(hours=-1)), ("d", at(days=-1))])
    pos = {p.name: p.position for p in timeline.points}
    assert timeline.start == 100 - MARGIN  # nothing after the start: it is the right end
    assert timeline.start - pos["h"] >= 5
    assert pos["h"] - pos["d"] >= 10


def test_labels_read_towards_the_middle_and_now_is_placed_only_inside_the_span() -> None:
    timeline = layout(START, [("early", at(days=-3)), ("late", at(days=2))], now=at(days=-1))
    anchors = {p.name: p.anchor for p in timeline.points}
    assert anchors == {"early": "start", "late": "end"}
    assert timeline.now is not None
    assert timeline.points[0].position < timeline.now < timeline.start
    assert layout(START, [("x", at(days=-3))], now=at(days=-30)).now is None


def test_one_point_at_the_start_is_in_the_middle() -> None:
    timeline = layout(START, [("now", START)])
    assert timeline.start == timeline.points[0].position == 50.0
    assert layout(START, []).points == []


def test_distances_in_words() -> None:
    assert relative_text(timedelta(days=-7)) == "7 days before"
    assert relative_text(timedelta(hours=-1, minutes=-30)) == "1 h 30 min before"
    assert relative_text(timedelta(days=1, hours=2, minutes=5)) == "1 day 2 h after"
    assert relative_text(timedelta(seconds=20)) == "at the start"
    assert relative_text(timedelta(minutes=-5)) == "5 min before"
