"""The planner of preferred windows: slots in the policy's zone, never in what is taken."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from maintenance.planning import Slot, WeeklyWindow, find_slot, free_pieces, wall_clock

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SUNDAY_2_TO_4_TOKYO = WeeklyWindow(weekday=6, start=time(2), end=time(4), zone=TOKYO)


def test_the_next_sunday_window_in_tokyo_is_saturday_evening_in_utc():
    # Tuesday 2026-12-01 09:00 UTC; Sunday 2026-12-06 02:00 JST is Saturday 17:00 UTC.
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=utc(2026, 12, 1, 9),
        lead_time=timedelta(hours=24),
        length=HOUR,
        deadline=utc(2026, 12, 31),
    )
    assert slot == Slot(utc(2026, 12, 5, 17), utc(2026, 12, 5, 18), preferred=True)


def test_the_lead_time_takes_what_is_left_of_a_window_else_the_next_week():
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=utc(2026, 12, 4, 18),  # a day before Sunday 03:00 JST: one hour left
        lead_time=timedelta(hours=24),
        length=HOUR,
        deadline=utc(2026, 12, 31),
    )
    assert slot == Slot(utc(2026, 12, 5, 18), utc(2026, 12, 5, 19), preferred=True)
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=utc(2026, 12, 4, 18, 30),  # half an hour left: too short
        lead_time=timedelta(hours=24),
        length=HOUR,
        deadline=utc(2026, 12, 31),
    )
    assert slot is not None and slot.start == utc(2026, 12, 12, 17)


def test_the_sibling_goes_later_in_the_same_window_then_into_the_next():
    now, deadline = utc(2026, 12, 1), utc(2026, 12, 31)
    first = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO], now=now, lead_time=HOUR, length=HOUR, deadline=deadline
    )
    assert first is not None
    second = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=now,
        lead_time=HOUR,
        length=HOUR,
        deadline=deadline,
        taken=[(first.start, first.end)],
    )
    assert second == Slot(first.end, first.end + HOUR, preferred=True)
    # A window of 90 minutes has no room for a second hour: the sibling waits a week.
    third = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=now,
        lead_time=HOUR,
        length=timedelta(minutes=90),
        deadline=deadline,
        taken=[(first.start, first.start + timedelta(minutes=90))],
    )
    assert third is not None and third.start == first.start + timedelta(days=7)


def test_a_blackout_over_the_window_moves_the_slot_a_week():
    blackout = (utc(2026, 12, 5), utc(2026, 12, 6))
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=utc(2026, 12, 1),
        lead_time=HOUR,
        length=HOUR,
        deadline=utc(2026, 12, 31),
        taken=[blackout],
    )
    assert slot is not None and slot.start == utc(2026, 12, 12, 17)


def test_no_window_before_the_deadline_gives_the_latest_slot_before_it_flagged():
    deadline = utc(2026, 12, 4, 12)  # before the first Sunday window
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=utc(2026, 12, 1),
        lead_time=HOUR,
        length=HOUR,
        deadline=deadline,
        taken=[(utc(2026, 12, 4, 11, 30), utc(2026, 12, 4, 13))],
    )
    assert slot == Slot(utc(2026, 12, 4, 10, 30), utc(2026, 12, 4, 11, 30), preferred=False)


def test_no_room_at_all_gives_nothing():
    now = utc(2026, 12, 1)
    slot = find_slot(
        windows=[SUNDAY_2_TO_4_TOKYO],
        now=now,
        lead_time=HOUR,
        length=HOUR,
        deadline=now + timedelta(minutes=90),
    )
    assert slot is None


def test_a_window_keeps_its_wall_clock_time_across_daylight_saving():
    # New York goes to daylight time on Sunday 2027-03-14 at 02:00 (to 03:00).
    window = WeeklyWindow(weekday=6, start=time(1), end=time(4), zone=NEW_YORK)
    before, on_the_day, after = window.occurrences(utc(2027, 3, 7), utc(2027, 3, 22))
    assert before == (utc(2027, 3, 7, 6), utc(2027, 3, 7, 9))  # EST, UTC-5
    assert on_the_day == (utc(2027, 3, 14, 6), utc(2027, 3, 14, 8))  # 01:00 EST – 04:00 EDT
    assert after == (utc(2027, 3, 21, 5), utc(2027, 3, 21, 8))  # EDT, UTC-4


def test_a_start_the_clocks_skip_moves_forward_by_the_gap():
    assert wall_clock(datetime(2027, 3, 14).date(), time(2, 30), NEW_YORK) == utc(
        2027, 3, 14, 7, 30
    )  # 03:30 EDT
    # The night the clocks go back, 01:30 is its first showing (EDT).
    assert wall_clock(datetime(2027, 11, 7).date(), time(1, 30), NEW_YORK) == utc(
        2027, 11, 7, 5, 30
    )


def test_a_window_past_midnight_ends_the_next_day():
    window = WeeklyWindow(weekday=5, start=time(23), end=time(1), zone=TOKYO)
    (occ,) = window.occurrences(utc(2026, 12, 1), utc(2026, 12, 8))
    assert occ == (utc(2026, 12, 5, 14), utc(2026, 12, 5, 16))


def test_a_weekday_out_of_range_is_refused():
    try:
        WeeklyWindow(weekday=7, start=time(1), end=time(2), zone=TOKYO)
    except ValueError as error:
        assert "weekday must be 0 (Monday) to 6 (Sunday), not 7" in str(error)
    else:
        raise AssertionError("weekday 7 was accepted")


def test_free_pieces_cut_every_taken_interval_out():
    span = (utc(2026, 1, 1, 0), utc(2026, 1, 1, 10))
    taken = [(utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)), (utc(2026, 1, 1, 9), utc(2026, 1, 2))]
    assert free_pieces(span, taken) == [
        (utc(2026, 1, 1, 0), utc(2026, 1, 1, 2)),
        (utc(2026, 1, 1, 3), utc(2026, 1, 1, 9)),
    ]


ZONES = st.sampled_from(
    [ZoneInfo(z) for z in ("Asia/Tokyo", "America/New_York", "Europe/Berlin", "UTC")]
)
MOMENTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@st.composite
def weekly_windows(draw):
    start = draw(st.times(max_value=time(22)).map(lambda t: t.replace(second=0, microsecond=0)))
    hours = draw(st.integers(1, 6))
    end = (datetime.combine(datetime(2026, 1, 1).date(), start) + timedelta(hours=hours)).time()
    return WeeklyWindow(weekday=draw(st.integers(0, 6)), start=start, end=end, zone=draw(ZONES))


@settings(max_examples=150, deadline=None)
@given(
    windows=st.lists(weekly_windows(), min_size=1, max_size=3),
    now=MOMENTS,
    lead_hours=st.integers(0, 96),
    deadline_days=st.integers(0, 60),
    length_minutes=st.integers(30, 180),
    taken_starts=st.lists(st.integers(0, 60 * 24 * 60), max_size=6),
)
def test_a_slot_keeps_every_rule(
    windows, now, lead_hours, deadline_days, length_minutes, taken_starts
):
    deadline = now + timedelta(days=deadline_days)
    length = timedelta(minutes=length_minutes)
    taken = [(now + timedelta(minutes=m), now + timedelta(minutes=m + 120)) for m in taken_starts]
    slot = find_slot(
        windows=windows,
        now=now,
        lead_time=timedelta(hours=lead_hours),
        length=length,
        deadline=deadline,
        taken=taken,
    )
    if slot is None:
        return
    assert slot.end - slot.start == length
    assert slot.start >= now + timedelta(hours=lead_hours)
    assert slot.end <= deadline
    assert all(slot.end <= t_start or slot.start >= t_end for t_start, t_end in taken)
    if slot.preferred:
        occurrences = [
            occ for w in windows for occ in w.occurrences(slot.start - timedelta(days=8), slot.end)
        ]
        assert any(o_start <= slot.start and slot.end <= o_end for o_start, o_end in occurrences)
