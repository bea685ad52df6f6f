"""Calling windows across zones, DST changes and holidays, with a fake clock
(epoch seconds built from UTC), plus hypothesis properties against an
independent local-time check and a brute-force minute scan."""

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenterd.core.campaigns.model import CallingWindows, DayWindow
from callcenterd.core.campaigns.windows import DEFAULT_WINDOWS, may_call, next_opening

NY, LA, LONDON, LORD_HOWE = "America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Lord_Howe"


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def every_day(start: time, end: time) -> CallingWindows:
    return CallingWindows(weekdays=tuple((DayWindow(start, end),) for _ in range(7)))


# ------------------------------------------------------------------ basics
def test_the_default_window_is_eight_to_nine_pm_local_every_day():
    assert may_call(None, [NY], utc(2024, 6, 3, 12, 0))  # 08:00 EDT
    assert not may_call(None, [NY], utc(2024, 6, 3, 11, 59, 59))  # 07:59:59 EDT
    assert not may_call(None, [NY], utc(2024, 6, 9, 11, 59))  # a Sunday, still 07:59


def test_a_window_ending_at_21_00_excludes_21_00_itself():
    assert may_call(DEFAULT_WINDOWS, [NY], utc(2024, 6, 4, 0, 59, 59))  # 20:59:59 EDT
    assert not may_call(DEFAULT_WINDOWS, [NY], utc(2024, 6, 4, 1, 0, 0))  # 21:00:00 EDT


def test_a_lead_without_a_zone_is_never_called():
    assert not may_call(DEFAULT_WINDOWS, [], utc(2024, 6, 3, 16))
    assert next_opening(DEFAULT_WINDOWS, [], utc(2024, 6, 3, 16)) is None


def test_an_unknown_zone_is_never_called():
    assert not may_call(DEFAULT_WINDOWS, ["Mars/Olympus_Mons"], utc(2024, 6, 3, 16))
    assert not may_call(DEFAULT_WINDOWS, [NY, "Mars/Olympus_Mons"], utc(2024, 6, 3, 16))
    assert next_opening(DEFAULT_WINDOWS, ["Mars/Olympus_Mons"], utc(2024, 6, 3, 16)) is None


def test_weekend_rules_differ_from_weekdays():
    weekday = (DayWindow(time(9), time(20)),)
    w = CallingWindows(weekdays=(weekday,) * 5 + ((DayWindow(time(10), time(14)),), ()))
    sat_0930 = utc(2024, 6, 8, 13, 30)  # 09:30 EDT, Saturday
    assert not may_call(w, [NY], sat_0930)
    assert may_call(w, [NY], utc(2024, 6, 8, 14, 0))  # 10:00 Saturday
    assert not may_call(w, [NY], utc(2024, 6, 9, 16, 0))  # Sunday: no calls
    # Saturday 14:00 closes; Sunday closed; Monday 09:00 EDT opens
    assert next_opening(w, [NY], utc(2024, 6, 8, 18, 0)) == utc(2024, 6, 10, 13, 0)


def test_a_window_ending_at_midnight_runs_to_the_end_of_the_day():
    w = every_day(time(18), time(0))
    assert may_call(w, [LONDON], utc(2024, 1, 10, 23, 59, 59))
    assert not may_call(w, [LONDON], utc(2024, 1, 11, 0, 0, 0))
    w24 = every_day(time(18), time.max)  # the campaign file's "24:00"
    assert may_call(w24, [LONDON], utc(2024, 1, 10, 23, 59, 59, 999999))
    assert not may_call(w24, [LONDON], utc(2024, 1, 11, 0, 0, 0))


def test_a_calendar_with_no_hour_has_no_opening():
    w = CallingWindows(weekdays=((),) * 7)
    assert next_opening(w, [NY], utc(2024, 6, 3)) is None


# --------------------------------------------------------------- DST days
def test_us_spring_forward_opens_at_eight_daylight_time():
    # 2024-03-10: 02:00 EST -> 03:00 EDT.  08:00 EDT is 12:00 UTC, not 13:00.
    at = utc(2024, 3, 10, 5, 0)  # 00:00 EST
    assert next_opening(None, [NY], at) == utc(2024, 3, 10, 12, 0)
    assert not may_call(None, [NY], utc(2024, 3, 10, 11, 59, 59))


def test_us_fall_back_keeps_the_caller_out_until_eight_standard_time():
    # 2024-11-03: 02:00 EDT -> 01:00 EST.  08:00 EST is 13:00 UTC.
    assert not may_call(None, [NY], utc(2024, 11, 3, 12, 30))  # 07:30 EST (08:30 under the old offset)
    assert next_opening(None, [NY], utc(2024, 11, 3, 6)) == utc(2024, 11, 3, 13, 0)
    # and the evening closes at 21:00 EST = 02:00 UTC next day
    assert may_call(None, [NY], utc(2024, 11, 4, 1, 59))
    assert not may_call(None, [NY], utc(2024, 11, 4, 2, 0))


def test_a_window_inside_the_repeated_hour_is_open_twice_on_fall_back_day():
    w = every_day(time(1), time(1, 30))
    assert may_call(w, [NY], utc(2024, 11, 3, 5, 15))  # 01:15 EDT
    assert not may_call(w, [NY], utc(2024, 11, 3, 5, 45))  # 01:45 EDT
    assert may_call(w, [NY], utc(2024, 11, 3, 6, 15))  # 01:15 EST, the second time
    assert next_opening(w, [NY], utc(2024, 11, 3, 5, 45)) == utc(2024, 11, 3, 6, 0)


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps():
    w = every_day(time(2, 30), time(4))
    # 02:30 never happens on 2024-03-10 in New York: 03:00 EDT (07:00 UTC) is already inside
    assert next_opening(w, [NY], utc(2024, 3, 10, 5)) == utc(2024, 3, 10, 7, 0)
    assert not may_call(w, [NY], utc(2024, 3, 10, 6, 59, 59))  # 01:59:59 EST


def test_europe_london_spring_forward():
    # 2024-03-31: 01:00 GMT -> 02:00 BST.  08:00 BST = 07:00 UTC.
    assert next_opening(None, [LONDON], utc(2024, 3, 31, 0)) == utc(2024, 3, 31, 7, 0)
    assert not may_call(None, [LONDON], utc(2024, 3, 31, 6, 59))


def test_lord_howe_half_hour_dst():
    # Lord Howe: +10:30 standard, +11:00 summer.  Summer time ended 2024-04-07
    # (02:00 -> 01:30); 08:00 that day is 21:30 UTC the day before.
    assert next_opening(None, [LORD_HOWE], utc(2024, 4, 6, 20)) == utc(2024, 4, 6, 21, 30)
    assert not may_call(None, [LORD_HOWE], utc(2024, 4, 6, 21, 15))  # 07:45 local (08:15 under the old offset)
    # Summer time began 2024-10-06 (02:00 -> 02:30): 08:00 is 21:00 UTC the day before.
    assert next_opening(None, [LORD_HOWE], utc(2024, 10, 5, 20)) == utc(2024, 10, 5, 21, 0)


# ---------------------------------------------------------- several zones
def test_a_number_in_two_zones_waits_for_the_later_one():
    at = utc(2024, 6, 3, 12, 0)  # 08:00 New York, 05:00 Los Angeles
    assert may_call(None, [NY], at)
    assert not may_call(None, [NY, LA], at)
    assert next_opening(None, [NY, LA], at) == utc(2024, 6, 3, 15, 0)  # 08:00 PDT


def test_a_number_in_two_zones_stops_with_the_earlier_one():
    assert may_call(None, [NY, LA], utc(2024, 6, 4, 0, 59, 59))  # 20:59:59 EDT, 17:59:59 PDT
    assert not may_call(None, [NY, LA], utc(2024, 6, 4, 1, 0))  # 21:00 EDT
    assert may_call(None, [LA], utc(2024, 6, 4, 1, 0))


def test_two_zones_whose_windows_never_overlap_have_no_opening():
    # 08:00-10:00 in London never overlaps 08:00-10:00 in Los Angeles
    w = every_day(time(8), time(10))
    assert next_opening(w, [LONDON, LA], utc(2024, 6, 3)) is None


# -------------------------------------------------------------- holidays
def test_a_national_holiday_closes_the_day():
    w = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, holiday_country="US")
    noon_july_4 = utc(2024, 7, 4, 16)
    assert may_call(DEFAULT_WINDOWS, [NY], noon_july_4)
    assert not may_call(w, [NY], noon_july_4)
    assert next_opening(w, [NY], noon_july_4) == utc(2024, 7, 5, 12, 0)


def test_the_holiday_is_the_leads_local_date():
    # 2024-07-05 01:30 UTC is still July 4 in Los Angeles (18:30 PDT)
    w = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, holiday_country="US")
    assert not may_call(w, [LA], utc(2024, 7, 5, 1, 30))


def test_a_regional_holiday_uses_the_subdivision():
    # Patriots' Day, third Monday of April, is a Massachusetts holiday only
    ma = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, holiday_country="US", holiday_subdiv="MA")
    us = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, holiday_country="US")
    at = utc(2024, 4, 15, 16)
    assert not may_call(ma, [NY], at)
    assert may_call(us, [NY], at)


def test_closed_dates_close_the_day():
    w = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, closed_dates=frozenset({date(2024, 6, 3)}))
    assert not may_call(w, [NY], utc(2024, 6, 3, 16))
    assert next_opening(w, [NY], utc(2024, 6, 3, 16)) == utc(2024, 6, 4, 12)


def test_an_unknown_holiday_country_is_a_clear_error():
    w = CallingWindows(weekdays=DEFAULT_WINDOWS.weekdays, holiday_country="XX")
    with pytest.raises(ValueError, match="'XX'"):
        may_call(w, [NY], utc(2024, 6, 3, 16))


# -------------------------------------------------------------- properties
ZONES = [NY, LA, LONDON, LORD_HOWE, "Asia/Kolkata", "Pacific/Chatham", "America/Santiago",
         "Asia/Kathmandu", "Pacific/Honolulu", "Europe/Berlin"]
T0, T1 = utc(2024, 1, 1), utc(2026, 1, 1)


@st.composite
def calendars(draw):
    days = []
    for _ in range(7):
        if draw(st.integers(0, 5)) == 0:
            days.append(())
            continue
        s = draw(st.integers(0, 23 * 60))
        e = draw(st.integers(s + 1, 24 * 60))
        end = time(0) if e == 24 * 60 else time(e // 60, e % 60)
        days.append((DayWindow(time(s // 60, s % 60), end),))
    return CallingWindows(weekdays=tuple(days))


def local_inside(w: CallingWindows, zone: str, at: float) -> bool:
    """Independent check: UTC instant -> local via astimezone -> minutes of day."""
    local = datetime.fromtimestamp(at, timezone.utc).astimezone(ZoneInfo(zone))
    secs = local.hour * 3600 + local.minute * 60 + local.second
    for dw in w.weekdays[local.weekday()]:
        s = dw.start.hour * 3600 + dw.start.minute * 60
        e = 86400 if dw.end == time(0) else dw.end.hour * 3600 + dw.end.minute * 60
        if s <= secs < e:
            return True
    return False


# instants near DST changes are where bugs live: half the draws land within a day of one
DST_DAYS = [utc(2024, 3, 10, 7), utc(2024, 11, 3, 6), utc(2024, 3, 31, 1), utc(2024, 4, 6, 15),
            utc(2024, 10, 5, 15), utc(2024, 4, 6, 14), utc(2024, 9, 8, 4), utc(2025, 3, 30, 1)]
instants = st.one_of(
    st.floats(T0, T1),
    st.builds(lambda base, d: base + d, st.sampled_from(DST_DAYS), st.floats(-86400, 86400)),
)
zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True)


@settings(max_examples=300, deadline=None)
@given(calendars(), zone_sets, instants)
def test_property_may_call_means_every_zone_is_inside(w, zones, at):
    if may_call(w, zones, at):
        assert all(local_inside(w, z, at) for z in zones)
    else:
        assert not all(local_inside(w, z, at) for z in zones)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(), zone_sets, instants)
def test_property_next_opening_is_the_first_open_minute(w, zones, at):
    horizon = 2 * 86400.0
    got = next_opening(w, zones, at, horizon=horizon)
    first_minute = (int(at) // 60 + 1) * 60
    stop = got if got is not None else at + horizon
    m = first_minute
    while m < stop:  # no minute boundary before the answer is open
        assert not all(local_inside(w, z, m) for z in zones), (m, got)
        m += 60
    if got is not None:
        assert at <= got <= at + horizon
        assert all(local_inside(w, z, got) for z in zones)
        if got > at:  # exact to the second: one second earlier is closed
            assert not may_call(w, zones, got - 1)


def test_a_window_opening_mid_repeated_hour_opens_again_on_its_second_reading():
    w = every_day(time(1, 15), time(1, 30))
    # 01:15 EDT (05:15 UTC) and again 01:15 EST (06:15 UTC)
    assert next_opening(w, [NY], utc(2024, 11, 3, 5, 40)) == utc(2024, 11, 3, 6, 15)
