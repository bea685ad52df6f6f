"""configure_logging: JSON lines, console, contextvars, stdlib routing."""

import asyncio
import importlib.util
import io
import json
import logging

import pytest

from callcenterd.logs import bind_call, configure_logging, get_logger


@pytest.fixture(autouse=True)
def restore_logging(daemon_logging):
    """Every test here configures logging: restore it afterwards."""


class TtyStream(io.StringIO):
    def isatty(self):
        return True


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_when_not_a_tty():
    stream = io.StringIO()
    configure_logging(level="info", fmt="auto", stream=stream)
    get_logger("callcenterd.acd").info("agent_offered", agent="1001", ring_time=15)
    (line,) = json_lines(stream)
    assert line["event"] == "agent_offered"
    assert (line["level"], line["logger"], line["agent"], line["ring_time"]) == ("info", "callcenterd.acd", "1001", 15)
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]


def test_console_on_a_tty():
    stream = TtyStream()
    configure_logging(fmt="auto", stream=stream)
    get_logger("callcenterd.acd").warning("queue_full", queue="sales")
    text = stream.getvalue()
    assert "queue_full" in text and "queue=sales" in text and "callcenterd.acd" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_level_filters():
    stream = io.StringIO()
    configure_logging(level="warning", fmt="json", stream=stream)
    log = get_logger("x")
    log.info("hidden")
    logging.getLogger("y").info("hidden too")
    log.error("shown")
    assert [line["event"] for line in json_lines(stream)] == ["shown"]


def test_bind_call_context_shows_up_and_is_removed():
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    log = get_logger("callcenterd.journeys")
    with bind_call(call_id="1712.42", queue="sales"):
        with bind_call(agent="1001"):
            log.info("bridged")
        log.info("agent_left")
    log.info("outside")
    bridged, left, outside = json_lines(stream)
    assert (bridged["call_id"], bridged["queue"], bridged["agent"]) == ("1712.42", "sales", "1001")
    assert "agent" not in left and left["call_id"] == "1712.42"
    assert "call_id" not in outside


async def test_bind_call_is_per_task():
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    log = get_logger("callcenterd.acd")

    async def call(call_id):
        with bind_call(call_id=call_id):
            await asyncio.sleep(0)
            log.info("waiting")

    await asyncio.gather(call("a"), call("b"))
    assert sorted(line["call_id"] for line in json_lines(stream)) == ["a", "b"]


def test_stdlib_logger_goes_through_the_same_pipeline():
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    with bind_call(call_id="c-1"):
        logging.getLogger("aiohttp.access").warning("slow client %s", "10.0.0.9")
    (line,) = json_lines(stream)
    assert line["event"] == "slow client 10.0.0.9"
    assert (line["logger"], line["level"], line["call_id"]) == ("aiohttp.access", "warning", "c-1")
    assert "timestamp" in line


def test_exceptions_are_structured_in_json():
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("x").exception("failed")
    (line,) = json_lines(stream)
    assert line["exception"][0]["exc_type"] == "RuntimeError"


def test_secret_keys_are_masked():
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    get_logger("x").info("login", username="cc", secret="hunter2-XYZ")
    assert "hunter2" not in stream.getvalue()
    assert json_lines(stream)[0]["username"] == "cc"


def test_reconfigure_replaces_the_handler():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    log = get_logger("x")  # created before the reconfigure, as module-level loggers are
    configure_logging(fmt="json", stream=second)
    log.info("once")
    logging.getLogger("y").info("twice")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once", "twice"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="verbose", stream=io.StringIO())
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging(fmt="xml", stream=io.StringIO())


def _fail_with_a_secret_in_a_local():
    token = b"s3cret-api-token"  # noqa: F841 -- the local a traceback must not show
    raise RuntimeError("handler failed")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_never_shows_local_variables(fmt):
    # rich (and better_exceptions) make structlog's console tracebacks print
    # locals, and dict_tracebacks does by default: the test extra installs
    # rich, so this sees the leak if the pipeline ever falls back to them.
    assert importlib.util.find_spec("rich") is not None, "the test extra must install rich"
    stream = io.StringIO()
    configure_logging(fmt=fmt, stream=stream)
    try:
        _fail_with_a_secret_in_a_local()
    except RuntimeError:
        get_logger("callcenterd.api").exception("api.handler_failed")
    logged = stream.getvalue()
    assert "handler failed" in logged and "_fail_with_a_secret_in_a_local" in logged
    assert "s3cret-api-token" not in logged
