import pytest

from callcenterd.pbx.api import CallerId, OriginateRequest, Outcome, UnsafeValue, outcome_from_q850


@pytest.mark.parametrize(
    "cause,answered,expected",
    [
        (17, False, Outcome.BUSY),
        (19, False, Outcome.NO_ANSWER),
        (21, False, Outcome.REJECTED),
        (34, False, Outcome.CONGESTION),
        (0, False, Outcome.CANCELLED),
        (16, True, Outcome.ANSWERED),
        (17, True, Outcome.ANSWERED),
        (66, False, Outcome.FAILED),
    ],
)
def test_q850_causes_map_to_outcomes(cause, answered, expected):
    assert outcome_from_q850(cause, answered) is expected


@pytest.mark.parametrize("bad", ["1001\r\nAction: Hangup", "x\n", "a\x00b"])
def test_caller_id_with_line_breaks_is_refused(bad):
    with pytest.raises(UnsafeValue) as err:
        CallerId(number=bad)
    assert "Hangup" not in str(err.value)


def test_originate_variables_are_checked():
    with pytest.raises(UnsafeValue):
        OriginateRequest(leg_id="l1", endpoint="PJSIP/1001", variables={"X": "a\r\nAction: Originate"})


def test_skills_stamp_round_trips_and_drops_garbage():
    from callcenterd.pbx.api import format_skills, parse_skills

    assert format_skills({"sales": 5, "fr": 3}) == "fr:3,sales:5"
    assert parse_skills(format_skills({"sales": 5, "fr": 3})) == {"sales": 5, "fr": 3}
    assert parse_skills("sales:x,,fr:2,bare") == {"fr": 2}
