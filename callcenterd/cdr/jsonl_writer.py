"""JSON Lines outputs: journeys (one object per call) and agent state events.

One compact UTF-8 JSON object per line, ``\\n``-terminated; times are epoch
seconds (float), exactly as the core recorded them.  Field list:
docs/cdr.md.  The ``report`` command reads these files back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from callcenterd.cdr.rotating import DEFAULT_DEDUPE_SCAN_BYTES, DedupedJourneyFile, RotatingFile
from callcenterd.core.facts import AgentStateChanged
from callcenterd.core.journeys.record import Journey

JOURNEYS_STEM = "journeys"
AGENT_EVENTS_STEM = "agent-events"


def dumps(obj: dict[str, Any]) -> bytes:
    # ensure_ascii=False keeps names readable; json escapes CR/LF inside strings,
    # so one object is always exactly one line.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def parse_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode JSONL lines, skipping blank, torn or non-object lines."""
    for line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict):
            yield obj


def agent_event_dict(fact: AgentStateChanged) -> dict[str, Any]:
    return {
        "at": fact.at,
        "agent": fact.agent,
        "state": fact.state,
        "reason": fact.reason,
        "extra": dict(fact.extra),
    }


class JsonlJourneyWriter(DedupedJourneyFile):
    """journeys-YYYY-MM-DD.jsonl (daily) or journeys.jsonl (size)."""

    def __init__(self, directory: Path, *, scan_bytes: int = DEFAULT_DEDUPE_SCAN_BYTES, **file_options: Any) -> None:
        """``file_options``: rotate, max_bytes, file_mode, durable, tz (see RotatingFile)."""
        super().__init__(RotatingFile(directory, JOURNEYS_STEM, ".jsonl", **file_options), scan_bytes=scan_bytes)

    def encode(self, journey: Journey) -> bytes:
        return dumps(journey.to_dict())

    def ids_in(self, lines: Iterable[bytes]) -> set[str]:
        return {obj["call_id"] for obj in parse_lines(lines) if isinstance(obj.get("call_id"), str)}


class JsonlAgentEventWriter:
    """agent-events-YYYY-MM-DD.jsonl: every AgentStateChanged, for occupancy."""

    def __init__(self, directory: Path, **file_options: Any) -> None:
        self.file = RotatingFile(directory, AGENT_EVENTS_STEM, ".jsonl", **file_options)

    def write(self, fact: AgentStateChanged) -> bool:
        self.file.write(dumps(agent_event_dict(fact)), fact.at)
        return True

    def sync(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()
