"""Shared helpers for the campaign core tests: a fake clock, a spec, leads."""

from dataclasses import replace
from datetime import datetime, timezone

from callcenterd.core.campaigns import commands as c
from callcenterd.core.campaigns.dialer import CampaignDialer, PoolView
from callcenterd.core.campaigns.model import CampaignSpec, DialMode, Lead

NY, LA = "America/New_York", "America/Los_Angeles"


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


MONDAY_NOON_NY = utc(2024, 6, 3, 16)  # 12:00 EDT, 09:00 PDT


class Clock:
    def __init__(self, t: float = MONDAY_NOON_NY) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> float:
        self.t += s
        return self.t


def spec(**kw) -> CampaignSpec:
    base = dict(
        name="c1",
        mode=DialMode.PROGRESSIVE,
        queue="sales",
        dial_string="PJSIP/{number}@trunk",
        caller_id_number="+12125550000",
        caller_id_name="ACME",
        max_lines=4,
        abandon_message="sorry",
        machine_message="hello machine",
    )
    base.update(kw)
    return CampaignSpec(**base)


def lead(i: int, **kw) -> Lead:
    base = dict(lead_id=i, campaign="c1", phone=f"+1212555{i:04d}", name=f"Lead {i}", zones=(NY,))
    base.update(kw)
    return Lead(**base)


def pool(ready=(), wrapup=(), on_call=(), paused=()) -> PoolView:
    return PoolView(
        ready=tuple(ready),
        wrapup={a: 5.0 for a in wrapup},
        on_call={a: 30.0 for a in on_call},
        paused=tuple(paused),
    )


def of(cmds, kind):
    return [x for x in cmds if isinstance(x, kind)]


def dials(cmds) -> list[c.Dial]:
    return of(cmds, c.Dial)


def dialer(clock=None, **kw) -> tuple[CampaignDialer, Clock]:
    clock = clock or Clock()
    ids = iter(range(1, 10_000))
    d = CampaignDialer(spec(**kw), clock, new_id=lambda: f"att-{next(ids)}")
    d.start()
    return d, clock


def due(ld: Lead, **kw) -> Lead:
    return replace(ld, **kw)
