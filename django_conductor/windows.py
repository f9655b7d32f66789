"""Time windows: the hours of the local wall clock in which a task may run. A window is
``[start, end)`` on the project's ``TIME_ZONE`` and may wrap midnight. Its next opening is
the first instant whose wall time is inside, so a start in a skipped hour (spring forward)
opens when the hour ends, and a start in a repeated hour (fall back) opens the first time."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.conf import settings as django_settings

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

#: How many days ahead to look for an opening: a window that lies wholly in a skipped hour
#: has none on that day; no zone skips its hours on days in a row.
_DAYS_AHEAD = 4


def window_problem(value: object) -> str | None:
    """What is wrong with a task's ``window``, or None."""
    if value is None:
        return None
    wanted = f"window must be None or a pair of 'HH:MM' times (00:00 to 23:59), not {value!r}"
    if not isinstance(value, tuple | list) or len(value) != 2:
        return wanted
    if not all(isinstance(part, str) and _HH_MM.fullmatch(part) for part in value):
        return wanted
    if value[0] == value[1]:
        return f"window {value!r} starts where it ends: give two different times"
    return None


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    @classmethod
    def parse(cls, value: tuple[str, str] | list[str] | None) -> Window | None:
        """The window ``value`` names; None for None or a bad one (the checks report it)."""
        if value is None or window_problem(value) is not None:
            return None
        return cls(time.fromisoformat(value[0]), time.fromisoformat(value[1]))

    def contains(self, wall: time) -> bool:
        """Whether a wall-clock time is inside ``[start, end)``, wrapping midnight."""
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def closed_until(self, now: datetime, zone: tzinfo) -> datetime | None:
        """None when ``now`` is inside the window in ``zone``; else its next opening."""
        local = now.astimezone(zone)
        if self.contains(local.time()):
            return None
        day = local.date()
        if local.time() >= self.start:
            day += timedelta(days=1)
        for _ in range(_DAYS_AHEAD):
            opening = self._first_instant(day, now, zone)
            if opening is not None:
                return opening
            day += timedelta(days=1)
        raise ValueError(f"{self} has no opening in {zone} after {now}")  # pragma: no cover

    def _first_instant(self, day: date, now: datetime, zone: tzinfo) -> datetime | None:
        """The first instant at or after ``now`` when ``day``'s wall clock reads ``start``
        (or, in a skipped hour, when that hour ends), if the window is open then."""
        wall = datetime.combine(day, self.start)
        candidates = [wall.replace(tzinfo=zone, fold=fold) for fold in (0, 1)]
        instants = sorted({c.astimezone(UTC) for c in candidates})
        if not _exists(candidates[0]):
            instants = [_gap_end(wall, instants[0], instants[-1], zone)]
        for instant in instants:
            if instant >= now and self.contains(instant.astimezone(zone).time()):
                return instant
        return None

    def __str__(self) -> str:
        return f"window {self.start:%H:%M}-{self.end:%H:%M}"


def _exists(local: datetime) -> bool:
    """Whether a zoned wall time is one the clock shows (not in a skipped hour)."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def _gap_end(wall: datetime, before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant a skipped hour ends, found between the two readings of a skipped wall
    time: the first whole second whose wall time is past ``wall``."""
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def project_zone() -> tzinfo:
    """The project's ``TIME_ZONE``, read live (``override_settings`` changes it)."""
    return zoneinfo.ZoneInfo(getattr(django_settings, "TIME_ZONE", None) or "UTC")


def closed_until(window: Window, now: datetime) -> datetime | None:
    """The window's next opening in the project's zone, or None when it is open at ``now``."""
    return window.closed_until(now, project_zone())
