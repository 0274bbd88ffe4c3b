"""Where a maintenance can go: a policy's preferred weekly windows, made into slots.

A leaf with no model in it: it takes plain intervals (UTC datetimes) and answers with one.
A policy names weekly windows in its own time zone ("Sun 02:00–04:00 Asia/Tokyo"); the
policy code (issue 11) asks ``find_slot`` for the first slot that

- starts at least the lead time from now,
- ends before AWS's deadline,
- misses every blackout, and every window already planned on the connection's other tunnel
  (one tunnel of a connection at a time: the sibling goes later in the same window, or
  into a later one),

and, when no preferred window fits, for the latest slot before the deadline, flagged as
outside the preferred windows. Local times are turned into UTC one occurrence at a time,
so a window keeps its wall-clock time across a daylight-saving change (``wall_clock``
says what happens to a time the clocks skip).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]

# How far ahead occurrences are looked for when there is no deadline.
HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class WeeklyWindow:
    """Every week on ``weekday`` (0 is Monday) from ``start`` to ``end``, local time in
    ``zone``. An end at or before the start runs past midnight into the next day."""

    weekday: int
    start: time
    end: time
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday}")

    def occurrences(self, after: datetime, until: datetime) -> Iterator[Interval]:
        """The occurrences (in UTC) that end after ``after`` and start before ``until``."""
        first_day = after.astimezone(self.zone).date() - timedelta(days=7)
        day = first_day + timedelta(days=(self.weekday - first_day.weekday()) % 7)
        while True:
            start = wall_clock(day, self.start, self.zone)
            end_day = day if self.end > self.start else day + timedelta(days=1)
            end = wall_clock(end_day, self.end, self.zone)
            if start >= until:
                return
            if end > after and end > start:
                yield start, end
            day += timedelta(days=7)


def wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC moment the clocks in ``zone`` show ``at`` on ``day``.

    A time the clocks skip (02:30 on the night they go forward an hour) moves forward by
    the gap (to 03:30); a time they show twice (the night they go back) is its first
    showing. Both are Python's reading of a local time with ``fold=0`` (PEP 495).
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def merged_occurrences(
    windows: Iterable[WeeklyWindow], after: datetime, until: datetime
) -> list[Interval]:
    """Every window's occurrences between the two moments, in order of start."""
    found = [occ for window in windows for occ in window.occurrences(after, until)]
    return sorted(found)


def free_pieces(span: Interval, taken: Iterable[Interval]) -> list[Interval]:
    """What is left of ``span`` once every taken interval is cut out of it, in order."""
    pieces = [span]
    for t_start, t_end in sorted(taken):
        next_pieces = []
        for p_start, p_end in pieces:
            if t_end <= p_start or t_start >= p_end:
                next_pieces.append((p_start, p_end))
                continue
            if t_start > p_start:
                next_pieces.append((p_start, t_start))
            if t_end < p_end:
                next_pieces.append((t_end, p_end))
        pieces = next_pieces
    return pieces


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    preferred: bool  # inside one of the policy's preferred windows


def find_slot(
    *,
    windows: Iterable[WeeklyWindow],
    now: datetime,
    lead_time: timedelta,
    length: timedelta,
    deadline: datetime | None,
    taken: Iterable[Interval] = (),
) -> Slot | None:
    """The first slot of ``length`` in a preferred window, else the latest one before the
    deadline outside them (``preferred`` False), else None.

    ``taken``: blackouts and the windows planned on the connection's other tunnel, none of
    which a slot may overlap. A slot never starts before ``now + lead_time`` and never ends
    after ``deadline``.
    """
    taken = sorted(taken)
    earliest = now + lead_time
    until = deadline if deadline is not None else now + HORIZON
    for occ_start, occ_end in merged_occurrences(windows, earliest, until):
        span = (max(occ_start, earliest), min(occ_end, until))
        for piece_start, piece_end in free_pieces(span, taken):
            if piece_end - piece_start >= length:
                return Slot(piece_start, piece_start + length, preferred=True)
    if deadline is None:
        return None
    # No preferred window fits: the latest slot that still ends before the deadline.
    for piece_start, piece_end in reversed(free_pieces((earliest, deadline), taken)):
        if piece_end - piece_start >= length:
            return Slot(piece_end - length, piece_end, preferred=False)
    return None
