"""The example FreeSWITCH configuration matches what the driver expects."""

import xml.etree.ElementTree as ET
from pathlib import Path

from callcenterd.config.models import EslOutboundConfig
from tests.contract.fs_switch import FsDialplan

DIR = Path(__file__).resolve().parents[4] / "dialplan" / "freeswitch"


def test_inbound_context_hands_calls_to_the_outbound_socket_in_async_full_mode():
    root = ET.parse(DIR / "callcenterd.xml").getroot()
    actions = [(a.get("application"), a.get("data")) for a in root.iter("action")]
    socket = [d for app, d in actions if app == "socket"]
    default = EslOutboundConfig()
    assert socket == [f"{default.host}:{default.port} async full"]


def _after_socket(variables: dict[str, str]) -> list[tuple[str, str]]:
    """What a caller runs once ``socket`` returned, with these variables
    (the shipped file, hunted the way mod_dialplan_xml does)."""
    plan = FsDialplan(DIR / "callcenterd.xml")
    v = {"cc_requested_queue": "support", **variables}
    ran: list[tuple[str, str]] = []
    actions = plan.after("callcenterd-inbound", "support", "socket")
    while actions:
        app, data = actions.pop(0)
        data = plan.expand(data, v, "the-uuid")
        if app == "transfer":
            dest, _, context = data.partition(" XML ")
            actions = plan.hunt(context, dest, v, "the-uuid")
            continue
        ran.append((app, data))
        if app == "set":
            k, _, val = data.partition("=")
            v[k] = val
    return ran


def test_callcenterd_down_the_dialplan_stamps_and_holds_the_caller():
    ran = _after_socket({})
    assert ran[-2:] == [("endless_playback", "local_stream://moh"), ("park", "")]
    assert "hangup" not in [a for a, _ in ran]
    stamped = dict(d.split("=", 1) for a, d in ran if a == "set")
    assert stamped["cc_queue"] == "support" and stamped["cc_call_id"] == "the-uuid"
    assert stamped["cc_after_socket"] == "1" and float(stamped["cc_enqueued"]) > 1.7e9


def test_after_the_agent_call_the_caller_is_hung_up_never_held_again():
    """esl-outbound-after-bridge-ends-*: once the bridge ends the caller runs
    the lines after ``socket``; callcenterd set cc_connected=1 before the bridge."""
    ran = _after_socket({"cc_connected": "1", "cc_queue": "support", "cc_enqueued": "1700000000.000"})
    assert ran[-1] == ("hangup", "NORMAL_CLEARING")
    assert "endless_playback" not in [a for a, _ in ran] and ("set", "cc_end_reason=agent-call-ended") in ran


def preprocessor_lines(text: str) -> list[tuple[int, str]]:
    """Lines FreeSWITCH's pre-processor acts on.  switch_xml.c preprocess()
    reads the file line by line and looks for ``<X-PRE-PROCESS`` and
    ``<!--#`` anywhere in a line, comments or not; the whole line is then
    replaced by the result."""
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if "x-pre-process" in line.lower() or "<!--#" in line]


def test_no_shipped_freeswitch_xml_holds_a_preprocessor_instruction_even_in_a_comment():
    files = sorted(DIR.glob("*.xml"))
    assert files
    for path in files:
        assert preprocessor_lines(path.read_text()) == [], path.name
    # the scanner does see one hidden in a comment (as the old header had it)
    assert preprocessor_lines('<!--\n  e.g. <X-PRE-PROCESS cmd="include" data="callcenterd.xml"/>\n-->') != []


def test_readme_does_not_ask_to_include_the_dialplan():
    text = (DIR / "README.md").read_text()
    assert "X-PRE-PROCESS" not in text.replace("`X-PRE-PROCESS`", "")
    assert "already" in text and "conf/dialplan/" in text
    assert "and include it" not in text and "do **not**" in text


def test_event_socket_listens_on_loopback_with_a_non_default_password():
    params = {p.get("name"): p.get("value") for p in ET.parse(DIR / "event_socket.conf.xml").getroot().iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] and params["password"] != "ClueCon"


def test_readme_documents_amd():
    text = (DIR / "README.md").read_text()
    assert "mod_avmd" in text and "mod_amd" in text


def test_readme_shows_the_position_prompts_the_driver_sends():
    from callcenterd.pbx.freeswitch.driver import ANNOUNCE
    from callcenterd.protocols.esl.codec import esl_quote_arg

    text = (DIR / "README.md").read_text()
    for prompt in ANNOUNCE:
        assert f"api uuid_broadcast <uuid> {esl_quote_arg(prompt.format(n=3))} aleg" in text
    assert "variable_dialed_user" in text and "Channel-Presence-ID" in text
