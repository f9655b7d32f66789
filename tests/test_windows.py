"""The windows' time logic, on the wall clock of a zone: inside is [start, end), wrapping
midnight; the next opening is the first instant whose wall time is inside, across the
days daylight saving skips or repeats an hour (Europe/Berlin, America/New_York) and in UTC."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from django_conductor.windows import Window, closed_until, window_problem

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def window(start, end):
    made = Window.parse((start, end))
    assert made is not None
    return made


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        ("22:00", "06:00", ["22:00", "23:59", "00:00", "05:59"], ["06:00", "12:00", "21:59"]),
        ("09:00", "17:00", ["09:00", "16:59"], ["08:59", "17:00", "00:00", "23:59"]),
        ("00:00", "23:59", ["00:00", "12:00", "23:58"], ["23:59"]),
    ],
)
def test_inside_is_start_up_to_but_not_including_end(start, end, inside, outside):
    rule = window(start, end)
    assert all(rule.contains(time.fromisoformat(t)) for t in inside)
    assert not any(rule.contains(time.fromisoformat(t)) for t in outside)
    just_before_the_end = datetime.combine(datetime.min, rule.end) - timedelta(microseconds=1)
    assert rule.contains(just_before_the_end.time())


def test_a_window_across_midnight_opens_the_same_evening_in_utc():
    rule = window("22:00", "06:00")
    assert rule.closed_until(utc(2024, 5, 1, 23, 30), UTC) is None
    assert rule.closed_until(utc(2024, 5, 2, 5, 59, 59), UTC) is None
    assert rule.closed_until(utc(2024, 5, 2, 6, 0), UTC) == utc(2024, 5, 2, 22, 0)
    assert rule.closed_until(utc(2024, 5, 2, 21, 59), UTC) == utc(2024, 5, 2, 22, 0)


def test_a_daytime_window_that_has_closed_opens_tomorrow():
    rule = window("09:00", "17:00")
    assert rule.closed_until(utc(2024, 5, 1, 17, 0), UTC) == utc(2024, 5, 2, 9, 0)
    assert rule.closed_until(utc(2024, 5, 1, 8, 0), UTC) == utc(2024, 5, 1, 9, 0)
    assert rule.closed_until(utc(2024, 12, 31, 23, 0), UTC) == utc(2025, 1, 1, 9, 0)


def test_the_window_is_the_local_wall_clock_not_utc():
    rule = window("22:00", "06:00")
    # 21:30 UTC is 23:30 in Berlin's summer: inside there, outside in UTC.
    assert rule.closed_until(utc(2024, 7, 1, 21, 30), BERLIN) is None
    assert rule.closed_until(utc(2024, 7, 1, 21, 30), UTC) == utc(2024, 7, 1, 22, 0)
    # 06:00 in Berlin's summer is 04:00 UTC; it opens at 22:00 Berlin, 20:00 UTC.
    assert rule.closed_until(utc(2024, 7, 2, 4, 0), BERLIN) == utc(2024, 7, 2, 20, 0)
    # The same wall time is another instant in winter.
    assert rule.closed_until(utc(2024, 1, 2, 5, 0), BERLIN) == utc(2024, 1, 2, 21, 0)


def test_an_opening_in_the_hour_spring_forward_skips_is_the_end_of_that_hour():
    # Berlin, 31 March 2024: 02:00 CET is followed by 03:00 CEST (01:00 UTC).
    rule = window("02:30", "05:00")
    opening = rule.closed_until(datetime(2024, 3, 31, 1, 50, tzinfo=BERLIN), BERLIN)
    assert opening == utc(2024, 3, 31, 1, 0)
    assert opening.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    # New York, 10 March 2024: 02:00 EST is followed by 03:00 EDT (07:00 UTC).
    opening = rule.closed_until(datetime(2024, 3, 10, 0, 0, tzinfo=NEW_YORK), NEW_YORK)
    assert opening == utc(2024, 3, 10, 7, 0)
    # The next day, 02:30 is a time the clock shows again.
    after = rule.closed_until(datetime(2024, 3, 31, 12, 0, tzinfo=BERLIN), BERLIN)
    assert after == datetime(2024, 4, 1, 2, 30, tzinfo=BERLIN)


def test_a_window_wholly_inside_a_skipped_hour_opens_the_next_day():
    rule = window("02:10", "02:50")
    opening = rule.closed_until(datetime(2024, 3, 31, 0, 0, tzinfo=BERLIN), BERLIN)
    assert opening == datetime(2024, 4, 1, 2, 10, tzinfo=BERLIN)


def test_an_opening_in_the_hour_fall_back_repeats_is_its_first_time():
    # Berlin, 27 October 2024: 02:00-03:00 comes twice, first CEST (+02) then CET (+01).
    rule = window("02:30", "04:00")
    opening = rule.closed_until(datetime(2024, 10, 27, 0, 0, tzinfo=BERLIN), BERLIN)
    assert opening == utc(2024, 10, 27, 0, 30)
    assert opening.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"
    # New York, 3 November 2024: 01:00-02:00 comes twice, first EDT then EST.
    rule = window("01:30", "04:00")
    opening = rule.closed_until(datetime(2024, 11, 3, 0, 10, tzinfo=NEW_YORK), NEW_YORK)
    assert opening == utc(2024, 11, 3, 5, 30)


def test_in_the_second_pass_of_a_repeated_hour_it_opens_at_the_second_reading():
    # 06:20 UTC is 01:20 EST, the second 01:20 of the day; the first 01:30 has passed.
    rule = window("01:30", "01:40")
    opening = rule.closed_until(utc(2024, 11, 3, 6, 20), NEW_YORK)
    assert opening == utc(2024, 11, 3, 6, 30)
    assert opening.astimezone(NEW_YORK).strftime("%H:%M %Z") == "01:30 EST"
    # Both passes of the repeated hour are inside a window that holds it.
    assert rule.closed_until(utc(2024, 11, 3, 5, 35), NEW_YORK) is None
    assert rule.closed_until(utc(2024, 11, 3, 6, 35), NEW_YORK) is None


def test_closed_until_reads_the_projects_time_zone_live():
    rule = window("22:00", "06:00")
    at = utc(2024, 7, 1, 21, 30)
    with override_settings(TIME_ZONE="Europe/Berlin"):
        assert closed_until(rule, at) is None
    with override_settings(TIME_ZONE="America/New_York"):
        assert closed_until(rule, at) == utc(2024, 7, 2, 2, 0)  # 22:00 EDT


@pytest.mark.parametrize(
    "value",
    [
        ("22:00",),
        ("22:00", "06:00", "07:00"),
        "22:00-06:00",
        ("24:00", "06:00"),
        ("7:00", "8:00"),
        ("22:00", "06:60"),
        (b"22:00", "06:00"),
        ("22:00", "22:00"),
        (" 22:00", "06:00"),
    ],
)
def test_a_bad_window_is_a_problem_and_parses_to_none(value):
    assert window_problem(value) is not None
    assert Window.parse(value) is None


def test_a_good_window_is_no_problem():
    assert window_problem(None) is None
    assert window_problem(("00:00", "23:59")) is None
    assert window_problem(["23:59", "00:00"]) is None
