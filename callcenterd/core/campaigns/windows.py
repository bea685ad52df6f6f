"""Calling windows: may this number be called now, and when next.

A lead's number may map to several IANA zones (a US area code across a
state line, a mobile number...).  It may be called only when **every** one
of its zones is inside the campaign's window, in that zone's local
wall-clock time, on a day that is neither a holiday (``holidays`` package,
the campaign's country and subdivision) nor a closed date.

Decisions:

* a lead with **no zone** is never callable: we cannot prove any local time
  is inside the window.  The list importer always gives a zone (from the
  number, the time zone override, or the campaign's default region); a lead
  without one is a data problem to fix, not a reason to guess.
* an unknown zone name is never callable, for the same reason.
* ``windows=None`` means the default window, 08:00-21:00 every day.
* a window is [start, end): 21:00 is outside a window that ends at 21:00.
  An end of 00:00 or ``time.max`` (the config's "24:00") means the end of
  the day; a window with
  ``end <= start`` otherwise covers nothing (windows never cross midnight).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays

from callcenterd.core.campaigns.model import CallingWindows, DayWindow

__all__ = ["DEFAULT_WINDOWS", "HORIZON", "may_call", "next_opening", "zone_inside"]

DEFAULT_WINDOWS = CallingWindows(weekdays=tuple((DayWindow(time(8), time(21)),) for _ in range(7)))
HORIZON = 14 * 86400.0  # how far next_opening looks ahead
_MIDNIGHT = time(0)
_SAMPLE = 6 * 3600  # DST transitions are found by sampling the offset this often


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=256)
def _holiday_dates(country: str, subdiv: str, year: int) -> frozenset[date]:
    """The holidays of one country/subdivision and year, cached."""
    try:
        cal = _holidays.country_holidays(country, subdiv=subdiv or None, years=year)
    except NotImplementedError as exc:  # unknown country or subdivision
        raise ValueError(f"holiday calendar {country!r}/{subdiv!r} is unknown: {exc}") from None
    return frozenset(cal.keys())


def _closed(windows: CallingWindows, d: date) -> bool:
    if d in windows.closed_dates:
        return True
    if windows.holiday_country:
        return d in _holiday_dates(windows.holiday_country, windows.holiday_subdiv, d.year)
    return False


def _in_day_window(w: DayWindow, t: time) -> bool:
    if w.end == _MIDNIGHT or w.end == time.max:
        return t >= w.start
    return w.start <= t < w.end


def zone_inside(windows: CallingWindows | None, zone: str, at: float) -> bool:
    """True when ``at`` is inside the window in ``zone``'s local time."""
    windows = windows or DEFAULT_WINDOWS
    tz = _zone(zone)
    if tz is None:
        return False
    local = datetime.fromtimestamp(at, tz)
    d = local.date()
    day = windows.weekdays[d.weekday()]
    if not day or _closed(windows, d):
        return False
    t = local.time()
    return any(_in_day_window(w, t) for w in day)


def may_call(windows: CallingWindows | None, zones: Sequence[str], at: float) -> bool:
    """True when every zone of the number is inside its window at ``at``.

    No zone at all: False (see the module docstring).
    """
    if not zones:
        return False
    return all(zone_inside(windows, z, at) for z in zones)


def _offset(tz: ZoneInfo, t: float) -> timedelta | None:
    return datetime.fromtimestamp(t, tz).utcoffset()


def _transitions(tz: ZoneInfo, start: float, end: float) -> list[float]:
    """Instants in [start, end] where the zone's UTC offset changes (DST),
    to the second."""
    found: list[float] = []
    t0 = math.floor(start)
    off0 = _offset(tz, t0)
    while t0 < end:
        t1 = min(t0 + _SAMPLE, math.ceil(end))
        off1 = _offset(tz, t1)
        if off1 != off0:
            lo, hi = t0, t1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, mid) == off0:
                    lo = mid
                else:
                    hi = mid
            found.append(float(hi))
        t0, off0 = t1, off1
    return found


def _openings(windows: CallingWindows, tz: ZoneInfo, start: float, end: float) -> set[float]:
    """Every instant in (start, end] where the zone may enter its window:
    each window start on an open day (both readings of an ambiguous local
    time), and each DST transition (a jump can land inside a window)."""
    out: set[float] = set(_transitions(tz, start, end))
    d = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    while d <= last:
        if not _closed(windows, d):
            for w in windows.weekdays[d.weekday()]:
                for fold in (0, 1):
                    out.add(datetime.combine(d, w.start, tzinfo=tz).replace(fold=fold).timestamp())
        d += timedelta(days=1)
    return {t for t in out if start < t <= end}


def next_opening(
    windows: CallingWindows | None, zones: Sequence[str], at: float, horizon: float = HORIZON
) -> float | None:
    """The earliest instant >= ``at`` when every zone is inside its window,
    or None when there is none within ``horizon`` seconds (or no zone).

    The answer is exact to the second: the all-zones predicate only turns
    true where some zone enters its window, so only those instants are
    checked, never a minute-by-minute scan.
    """
    windows = windows or DEFAULT_WINDOWS
    if not zones:
        return None
    tzs = [_zone(z) for z in dict.fromkeys(zones)]
    if any(tz is None for tz in tzs):
        return None
    if may_call(windows, zones, at):
        return at
    end = at + horizon
    candidates: set[float] = set()
    for tz in tzs:
        assert tz is not None
        candidates |= _openings(windows, tz, at, end)
    for t in sorted(candidates):
        if may_call(windows, zones, t):
            return t
    return None
