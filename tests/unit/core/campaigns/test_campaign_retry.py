"""Retry rules, attempt caps and dispositions on a lead."""

import pytest
from campaign_rig import lead, spec

from callcenterd.core.campaigns.model import AttemptOutcome as O
from callcenterd.core.campaigns.model import Disposition, LeadState, RetryRule
from callcenterd.core.campaigns.retry import (
    DAYS_30,
    DEFAULT_RETRY,
    UnknownDisposition,
    after_attempt,
    after_disposition,
    in_drop_guard,
)

NOW = 1_700_000_000.0


def test_a_busy_lead_is_retried_after_the_campaigns_busy_delay():
    s = spec(retry={O.BUSY: RetryRule(delay=120)})
    got = after_attempt(s, lead(1, attempts=1), O.BUSY, NOW, [NOW])
    assert got.state is LeadState.READY and got.next_at == NOW + 120 and got.last_outcome == "busy"


def test_an_outcome_without_a_rule_uses_the_default_delay():
    got = after_attempt(spec(), lead(1, attempts=1), O.NO_ANSWER, NOW, [NOW])
    assert got.next_at == NOW + DEFAULT_RETRY[O.NO_ANSWER].delay


def test_string_keyed_rules_from_yaml_are_found():
    got = after_attempt(spec(retry={"busy": RetryRule(delay=7)}), lead(1, attempts=1), O.BUSY, NOW)
    assert got.next_at == NOW + 7


def test_a_rule_that_says_no_retry_closes_the_lead():
    s = spec(retry={O.FAILED: RetryRule(delay=0, retry=False)})
    assert after_attempt(s, lead(1, attempts=1), O.FAILED, NOW).state is LeadState.DONE


def test_the_last_allowed_attempt_closes_the_lead():
    s = spec(max_attempts=3)
    assert after_attempt(s, lead(1, attempts=2), O.BUSY, NOW).state is LeadState.READY
    assert after_attempt(s, lead(1, attempts=3), O.BUSY, NOW).state is LeadState.DONE


def test_the_30_day_cap_waits_for_the_oldest_attempt_to_age_out():
    s = spec(max_attempts=20, max_attempts_30d=3)
    times = [NOW - 20 * 86400, NOW - 10 * 86400, NOW]
    got = after_attempt(s, lead(1, attempts=3), O.BUSY, NOW, times)
    assert got.state is LeadState.READY
    assert got.next_at == NOW - 20 * 86400 + DAYS_30  # 10 days from now, not 10 minutes
    # an attempt older than 30 days does not count
    old = [NOW - 40 * 86400, NOW - 10 * 86400, NOW]
    assert after_attempt(s, lead(1, attempts=3), O.BUSY, NOW, old).next_at == NOW + 600


def test_a_dropped_call_stamps_the_lead_and_starts_the_redial_guard():
    s = spec()
    got = after_attempt(s, lead(1, attempts=1), O.DROPPED, NOW)
    assert got.last_dropped_at == NOW
    assert in_drop_guard(s, got, NOW + 71 * 3600)
    assert not in_drop_guard(s, got, NOW + 72 * 3600)


def test_a_connected_call_closes_the_lead_until_the_disposition():
    assert after_attempt(spec(), lead(1, attempts=1), O.CONNECTED, NOW).state is LeadState.DONE


def test_the_input_lead_is_not_changed():
    ld = lead(1, attempts=1)
    after_attempt(spec(), ld, O.DROPPED, NOW)
    assert ld.state is LeadState.READY and ld.last_dropped_at is None


def test_a_callback_disposition_schedules_the_lead_for_its_agent():
    got = after_disposition(spec(), lead(1, attempts=1), "callback", "alice", NOW + 3600, NOW)
    assert (got.state, got.next_at, got.callback_agent, got.disposition) == (
        LeadState.CALLBACK, NOW + 3600, "alice", "callback")


def test_a_callback_without_a_time_is_refused():
    with pytest.raises(ValueError, match="callback time"):
        after_disposition(spec(), lead(1, attempts=1), "callback", "alice", None, NOW)


def test_a_callback_on_a_lead_with_no_attempt_left_closes_it():
    got = after_disposition(spec(max_attempts=2), lead(1, attempts=2), "callback", "alice", NOW + 60, NOW)
    assert got.state is LeadState.DONE and got.disposition == "callback"


def test_dnc_sale_and_custom_dispositions():
    s = spec(dispositions={"call-later": Disposition("call-later", final=False)})
    assert after_disposition(s, lead(1, attempts=1), "dnc", "a", None, NOW).state is LeadState.DNC
    assert after_disposition(s, lead(1, attempts=1), "sale", "a", None, NOW).state is LeadState.DONE
    later = after_disposition(s, lead(1, attempts=1), "call-later", "a", None, NOW)
    assert later.state is LeadState.READY and later.next_at == NOW + DEFAULT_RETRY[O.CONNECTED].delay


def test_an_unknown_disposition_names_itself_and_the_known_ones():
    with pytest.raises(UnknownDisposition, match="'bogus'.*sale"):
        after_disposition(spec(), lead(1, attempts=1), "bogus", "a", None, NOW)
