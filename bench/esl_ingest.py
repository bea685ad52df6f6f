"""ESL ingest: events/s through the codec on the real JSON and plain captures.

Baseline, same bytes, same run: ``data.split(b"Content-Length: ")``, the
cheapest pass that touches every frame boundary (no header parsing, no
bodies, no chunking; the plain events' inner Content-Length makes it split
even more).  Measured next to it:

* ``frames``  -- EslDecoder.feed() in 64 KiB reads, messages out (event bodies
  are decoded lazily, so this is what a consumer that filters by outer frame
  pays);
* ``decoded`` -- the same plus every event fully decoded (``msg.event.name``):
  json.loads / URL-decoding of every header.

Target: ``frames`` >= 0.1 x baseline on both captures.  The ``decoded`` ratio
is reported, not targeted.  Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenterd.protocols.esl.codec import EslDecoder  # noqa: E402

FIXTURES = Path(os.environ.get("CALLCENTERD_FS_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures/freeswitch"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/freeswitch")
CAPTURES = {"json": "esl-inbound-events-json-originate.txt", "plain": "esl-inbound-events-plain-originate.txt"}
TARGET_RATIO = 0.1
CHUNK = 64 * 1024


def _stream(name: str, target_bytes: int) -> tuple[bytes, int]:
    """The capture's event frames repeated to ~target_bytes; events in it."""
    raw = (FIXTURES / name).read_bytes()
    msgs = EslDecoder().feed(raw)
    # keep only the event frames so the stream stays valid when repeated
    one = b"".join(
        b"Content-Length: %d\nContent-Type: %s\n\n" % (len(m.body), m.content_type.encode()) + m.body
        for m in msgs
        if m.is_event
    )
    n_one = sum(m.is_event for m in msgs)
    reps = max(1, target_bytes // len(one))
    return one * reps, n_one * reps


def _timed(fn, seconds: float) -> tuple[float, int]:
    """Run fn() repeatedly for ~seconds; best single-pass time and its result."""
    best, result, spent = float("inf"), 0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
    return best, result


def run(seconds: float, target_bytes: int) -> dict:
    out: dict = {}
    for fmt, name in CAPTURES.items():
        data, n_events = _stream(name, target_bytes)

        def bare() -> int:
            return len(data.split(b"Content-Length: ")) - 1

        def frames() -> int:
            dec, n = EslDecoder(), 0
            for i in range(0, len(data), CHUNK):
                for m in dec.feed(data[i : i + CHUNK]):
                    n += m.is_event
            return n

        def decoded() -> int:
            dec, n = EslDecoder(), 0
            for i in range(0, len(data), CHUNK):
                for m in dec.feed(data[i : i + CHUNK]):
                    if m.is_event and m.event.name:
                        n += 1
            return n

        t_bare, _ = _timed(bare, seconds / 3)
        t_frames, got_f = _timed(frames, seconds / 3)
        t_dec, got_d = _timed(decoded, seconds / 3)
        assert got_f == n_events == got_d, (got_f, got_d, n_events)
        out[fmt] = {
            "bytes": len(data),
            "events": n_events,
            "bare_split_events_per_s": round(n_events / t_bare),
            "frames_events_per_s": round(n_events / t_frames),
            "decoded_events_per_s": round(n_events / t_dec),
            "frames_ratio": round(t_bare / t_frames, 4),
            "decoded_ratio": round(t_bare / t_dec, 4),
            "frames_mb_per_s": round(len(data) / t_frames / 1e6, 1),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time budget per capture (default 3)")
    ap.add_argument("--mbytes", type=float, default=4.0, help="stream size per capture in MB (default 4)")
    args = ap.parse_args()
    res = run(args.seconds, int(args.mbytes * 1e6))
    print("baseline: data.split(b'Content-Length: ') on the same bytes (boundary scan only, no parsing)")
    print(f"{'capture':8} {'events':>8} {'bare ev/s':>12} {'frames ev/s':>12} {'ratio':>7} {'decoded ev/s':>13} {'ratio':>7}")
    for fmt, r in res.items():
        print(
            f"{fmt:8} {r['events']:>8} {r['bare_split_events_per_s']:>12,} {r['frames_events_per_s']:>12,}"
            f" {r['frames_ratio']:>7.3f} {r['decoded_events_per_s']:>13,} {r['decoded_ratio']:>7.3f}"
        )
    met = all(r["frames_ratio"] >= TARGET_RATIO for r in res.values())
    print(
        json.dumps(
            {
                "bench": "esl_ingest",
                "baseline": "bytes.split(b'Content-Length: ')",
                "results": res,
                "target": {"frames_ratio_min": TARGET_RATIO},
                "target_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
