#!/usr/bin/env python3
"""AMI ingest throughput: our codec vs panoramisk 1.4 vs a bare split.

Replays the real 50-call burst (ami-burst-50.txt, 1.7 MB, 4,154 messages)
the way a reader sees it: 64 KiB reads.  For every event the driver reads
``.name``; for the events it acts on it also reads a couple of headers.

    .venv/bin/python bench/ami_ingest.py [--rounds N]

Fixture folder: ../shared/fixtures/asterisk-22 from the repo root, or
$CALLCENTERD_AST_FIXTURES.  Last line: one JSON object.
Targets: >= 2x panoramisk, >= 0.1 of the bare ``split`` loop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from callcenterd.protocols.ami.codec import AmiDecoder  # noqa: E402

FIXTURES = Path(os.environ.get("CALLCENTERD_AST_FIXTURES", REPO.parent / "shared" / "fixtures" / "asterisk-22"))
CAPTURE = "ami-burst-50.txt"
CHUNK = 64 * 1024
TARGET_VS_PANORAMISK = 2.0
TARGET_VS_SPLIT = 0.1
TIME_BUDGET = 20.0  # seconds for the whole run

# What the Asterisk driver reads from the events it acts on.
USED = {
    "Newchannel": ("Channel", "Uniqueid"),
    "Hangup": ("Uniqueid", "Cause"),
    "OriginateResponse": ("ActionID", "Reason"),
    "DialEnd": ("DestUniqueid", "DialStatus"),
    "BridgeEnter": ("BridgeUniqueid", "Uniqueid"),
    "BridgeLeave": ("BridgeUniqueid", "Uniqueid"),
    "AgentConnect": ("Queue", "DestUniqueid"),
    "QueueCallerJoin": ("Queue", "Uniqueid"),
    "QueueCallerLeave": ("Queue", "Uniqueid"),
    "Newstate": ("Uniqueid", "ChannelStateDesc"),
}


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def run_ours(chunks: list[bytes]) -> int:
    decoder = AmiDecoder()
    used = USED
    n = 0
    for chunk in chunks:
        for msg in decoder.feed(chunk):
            n += 1
            headers = used.get(msg.name)
            if headers is not None:
                for key in headers:
                    msg.get(key)
    return n


def make_panoramisk():
    """panoramisk's own AMIProtocol.data_received, with a stub manager."""
    try:
        from importlib.metadata import version as dist_version

        from panoramisk.ami_protocol import AMIProtocol  # type: ignore

        version = dist_version("panoramisk")
    except Exception as exc:  # pragma: no cover - depends on the env
        return None, f"panoramisk not importable ({exc}); pip install -e '.[bench]'"

    class Transport:
        def write(self, data):
            pass

        def close(self):
            pass

    def run(chunks: list[bytes]) -> int:
        count = [0]

        class Factory:
            save_stream = None
            forgetable_actions = ("ping", "login")
            awaiting_actions = ()

            def dispatch(self, event):
                count[0] += 1
                headers = USED.get(event["Event"])
                if headers is not None:
                    for key in headers:
                        event.get(key)

            def connection_lost(self, exc):
                pass

        proto = AMIProtocol()
        proto.connection_made(Transport())
        proto.encoding = "utf8"  # Manager's default
        proto.factory = Factory()
        proto.log.disabled = True
        for chunk in chunks:
            proto.data_received(chunk)
        return count[0]

    return run, version


def run_split(data: bytes) -> int:
    n = 0
    for _m in data.split(b"\r\n\r\n"):
        n += 1
    return n


def best_of(fn, arg, rounds: int, deadline: float) -> tuple[float, int]:
    best = float("inf")
    result = 0
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(arg)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="best of N (default 25)")
    args = parser.parse_args()
    path = FIXTURES / CAPTURE
    if not path.exists():
        print(f"capture not found: {path} (set CALLCENTERD_AST_FIXTURES)", file=sys.stderr)
        print(json.dumps({"bench": "ami_ingest", "error": "capture not found", "target_met": False}))
        return 1
    data = path.read_bytes()
    chunks = chunks_of(data)
    deadline = time.perf_counter() + TIME_BUDGET / 3

    t_ours, n_ours = best_of(run_ours, chunks, args.rounds, deadline)
    messages = n_ours
    events = sum(1 for m in AmiDecoder().feed(data) if m.is_event)
    deadline = time.perf_counter() + TIME_BUDGET / 3
    t_split, n_split = best_of(run_split, data, args.rounds * 3, deadline)

    pano_run, pano_version = make_panoramisk()
    t_pano = None
    if pano_run is not None:
        deadline = time.perf_counter() + TIME_BUDGET / 3
        t_pano, n_pano = best_of(pano_run, chunks, args.rounds, deadline)
        if n_pano != events:
            print(f"warning: panoramisk dispatched {n_pano} events, expected {events}", file=sys.stderr)
    else:
        print(f"NOTE: {pano_version}: cannot compare, target_met is false", file=sys.stderr)

    rate = lambda t: messages / t  # noqa: E731  messages/s (same message count for all three)
    rows = [("callcenterd AmiDecoder", t_ours), ("panoramisk " + (pano_version if t_pano else "(missing)"), t_pano),
            ("bare bytes.split loop", t_split)]
    print(f"AMI ingest: {CAPTURE}, {len(data):,} bytes, {messages:,} messages ({events:,} events), "
          f"{len(chunks)} reads of {CHUNK // 1024} KiB, best of {args.rounds}")
    print(f"{'parser':<28}{'ms':>9}{'msgs/s':>14}{'vs ours':>9}")
    for label, t in rows:
        if t is None:
            print(f"{label:<28}{'-':>9}{'-':>14}{'-':>9}")
        else:
            print(f"{label:<28}{t * 1e3:>9.2f}{rate(t):>14,.0f}{t_ours / t:>9.2f}")
    vs_pano = (t_pano / t_ours) if t_pano else None
    vs_split = t_split / t_ours
    met = vs_pano is not None and vs_pano >= TARGET_VS_PANORAMISK and vs_split >= TARGET_VS_SPLIT
    print(f"ours / panoramisk throughput: {vs_pano:.2f}x (target >= {TARGET_VS_PANORAMISK})" if vs_pano
          else "ours / panoramisk throughput: n/a")
    print(f"ours / bare split throughput: {vs_split:.3f} (target >= {TARGET_VS_SPLIT})")
    print(json.dumps({
        "bench": "ami_ingest",
        "capture": CAPTURE,
        "bytes": len(data),
        "messages": messages,
        "events": events,
        "ours_msgs_per_s": round(rate(t_ours)),
        "panoramisk_msgs_per_s": round(rate(t_pano)) if t_pano else None,
        "split_msgs_per_s": round(rate(t_split)),
        "ratio_vs_panoramisk": round(vs_pano, 3) if vs_pano else None,
        "ratio_vs_split": round(vs_split, 4),
        "target_vs_panoramisk": TARGET_VS_PANORAMISK,
        "target_vs_split": TARGET_VS_SPLIT,
        "target_met": met,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
