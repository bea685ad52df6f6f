"""Preview, progressive and power pacing, and the limits every pacer obeys."""

import pytest
from campaign_rig import spec

from callcenterd.core.campaigns.model import DialMode
from callcenterd.core.campaigns.pacing import (
    Pacer,
    PacingInput,
    PowerPacer,
    PreviewPacer,
    ProgressivePacer,
    pacer_for,
)
from callcenterd.core.pacer import PredictivePacer


def inp(**kw) -> PacingInput:
    base = dict(now=0.0, agents_staffed=5, agents_ready=5, agents_in_wrapup=0, agents_on_call=0,
                lines_ringing=0, answered_waiting=0, max_lines=50, lines_up=0, cap=0.03,
                budget_ok=True, headroom_24h=3, headroom_30d=3, rate_24h=0.0, rate_30d=0.0)
    base.update(kw)
    return PacingInput(**base)


def test_progressive_dials_one_line_per_free_agent_minus_lines_in_flight():
    p = ProgressivePacer()
    assert p.lines_to_dial(inp(agents_ready=5)) == 5
    assert p.lines_to_dial(inp(agents_ready=5, lines_ringing=2, answered_waiting=1, lines_up=3)) == 2
    assert p.lines_to_dial(inp(agents_ready=5, lines_answering=2, lines_up=2)) == 3
    assert p.lines_to_dial(inp(agents_ready=1, lines_ringing=4, lines_up=4)) == 0  # never negative


def test_power_dials_a_fixed_ratio_of_ready_agents():
    p = PowerPacer(2.5)
    assert p.lines_to_dial(inp(agents_ready=3)) == 7  # floor(7.5)
    assert p.lines_to_dial(inp(agents_ready=3, lines_ringing=5, lines_up=5)) == 2
    assert PowerPacer(0.5).lines_to_dial(inp(agents_ready=1)) == 0


def test_preview_never_dials_by_itself():
    assert PreviewPacer().lines_to_dial(inp(agents_ready=10)) == 0


@pytest.mark.parametrize("pacer", [ProgressivePacer(), PowerPacer(3.0)])
def test_no_line_when_every_agent_is_paused_or_logged_out(pacer):
    assert pacer.lines_to_dial(inp(agents_staffed=0, agents_ready=0)) == 0


@pytest.mark.parametrize("pacer", [ProgressivePacer(), PowerPacer(3.0)])
def test_no_line_once_the_abandonment_budget_is_spent(pacer):
    assert pacer.lines_to_dial(inp(budget_ok=False, headroom_24h=0)) == 0


@pytest.mark.parametrize("pacer", [ProgressivePacer(), PowerPacer(3.0)])
def test_never_more_lines_than_the_campaign_allows(pacer):
    assert pacer.lines_to_dial(inp(agents_ready=10, max_lines=6, lines_up=4)) == 2
    assert pacer.lines_to_dial(inp(agents_ready=10, max_lines=6, lines_up=7)) == 0


def test_a_power_ratio_must_be_positive():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="power ratio"):
            PowerPacer(bad)


def test_each_mode_gets_its_pacer_and_predictive_starts_progressive():
    assert isinstance(pacer_for(spec(mode=DialMode.PREVIEW)), PreviewPacer)
    assert isinstance(pacer_for(spec(mode=DialMode.PROGRESSIVE)), ProgressivePacer)
    power = pacer_for(spec(mode=DialMode.POWER, power_ratio=1.7))
    assert isinstance(power, PowerPacer) and power.ratio == 1.7
    predictive = pacer_for(spec(mode=DialMode.PREDICTIVE))
    assert isinstance(predictive, PredictivePacer)  # no answer data yet: progressive pace
    assert predictive.lines_to_dial(inp(agents_ready=5, lines_ringing=2, lines_up=2)) == 3
    assert isinstance(ProgressivePacer(), Pacer)


def test_pacing_input_counts_lines_in_flight_and_room():
    i = inp(lines_ringing=2, lines_answering=1, answered_waiting=1, max_lines=5, lines_up=6)
    assert i.lines_in_flight == 4 and i.line_room == 0
