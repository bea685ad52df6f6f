"""The dialer simulator: deterministic for a seed, strict about its scenario files."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[4] / "bench" / "dialer_sim.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("dialer_sim", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dialer_sim"] = mod
    spec.loader.exec_module(mod)
    return mod


SMALL = """\
name: tiny
agents: 4
days: 2
day_hours: 0.25
outcomes: {human: 0.3, machine: 0.15, busy_failed: 0.1, no_answer: 0.45}
time_to_answer:
  human: {dist: lognormal, mean: 8, cv: 0.5}
  machine: 8
  busy_failed: {dist: uniform, low: 1, high: 5}
  no_answer: 25
talk: {mean: 60, cv: 1.0}
wrapup: 10
amd: {enabled: true, delay: 2.5, false_positive: 0.05, false_negative: 0.1}
drift: [[0, 1.0], [0.25, 0.8]]
"""


def write(tmp_path, text):
    f = tmp_path / "sc.yaml"
    f.write_text(text)
    return f


def test_the_same_seed_gives_the_same_day(sim, tmp_path):
    sc = sim.load_scenario(write(tmp_path, SMALL))
    a = sim.simulate(sc, 4, "ours", 0.05, 2)
    b = sim.simulate(sc, 4, "ours", 0.05, 2)
    assert a == b and a["dials"] > 0 and a["connects"] > 0


def test_progressive_never_drops_a_call(sim, tmp_path):
    sc = sim.load_scenario(write(tmp_path, SMALL))
    r = sim.simulate(sc, 4, "progressive", 0.0, 2)
    assert r["drops"] == 0 and r["connects"] > 0


def test_the_no_idle_bound_is_talk_over_talk_plus_wrap_up(sim, tmp_path):
    sc = sim.load_scenario(write(tmp_path, SMALL))
    assert sc.no_idle_bound() == pytest.approx(60 / 70)


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("no_answer: 0.45}", "no_answer: 0.55}", ["outcomes", "sum to 1"]),
        ("wrapup: 10", "wrapup: -3", ["wrapup", "negative", ":12:"]),
        ("wrapup: 10", "wrapup: 10\nwrap_up: 4", ["unknown key 'wrap_up'", ":13:"]),
        ("  machine: 8", "  machine: {dist: lognormal, mean: 8, sd: 2}", ["time_to_answer.machine", "'sd'"]),
        ("talk: {mean: 60, cv: 1.0}", "talk: {mean: 60}", ["talk", "missing key 'cv'"]),
    ],
)
def test_a_bad_scenario_gets_an_error_naming_the_key_and_line(sim, tmp_path, old, new, words):
    assert old in SMALL
    f = write(tmp_path, SMALL.replace(old, new))
    with pytest.raises(sim.ScenarioError) as exc:
        sim.load_scenario(f)
    for w in words:
        assert w in str(exc.value)
    assert str(f) in str(exc.value)


def test_the_shipped_scenarios_load(sim):
    for f in sorted((BENCH.parent / "scenarios").glob("*.yaml")):
        sc = sim.load_scenario(f)
        assert sc.agents and sc.days >= 1
