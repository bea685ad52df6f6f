"""The example FreeSWITCH configuration matches what the driver expects."""

import xml.etree.ElementTree as ET
from pathlib import Path

from callcenterd.config.models import EslOutboundConfig

DIR = Path(__file__).resolve().parents[4] / "dialplan" / "freeswitch"


def test_inbound_context_hands_calls_to_the_outbound_socket_in_async_full_mode():
    root = ET.parse(DIR / "callcenterd.xml").getroot()
    actions = [(a.get("application"), a.get("data")) for a in root.iter("action")]
    socket = [d for app, d in actions if app == "socket"]
    default = EslOutboundConfig()
    assert socket == [f"{default.host}:{default.port} async full"]
    # after the socket (callcenterd down): stamped and held, never dropped
    after = [app for app, _ in actions[[a for a, _ in actions].index("socket") + 1:]]
    assert "hangup" not in after and after[-1] == "endless_playback"
    stamped = {d.split("=", 1)[0] for app, d in actions if app == "set"}
    assert {"cc_queue", "cc_call_id", "cc_enqueued"} <= stamped


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
