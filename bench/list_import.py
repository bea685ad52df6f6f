"""Call-list import: time and peak memory, ours vs a naive load, at 100k and 1M rows.

Targets (issue 12): a 100,000-row list loads in under 20 s, and peak memory
for 1,000,000 rows is less than twice that for 100,000 rows.

Each measurement runs in its own subprocess and reports its ``ru_maxrss``
(peak resident memory, everything included: Python, phonenumbers' metadata,
SQLite's page cache), so one run cannot inherit another's heap.

* ``ours``: :func:`callcenterd.campaigns.importer.import_leads` into a
  counting sink (the store's batch insert is not part of this bench), all or
  nothing off (``skip_bad``) since the file has a few bad rows on purpose.
* ``naive``: the baseline: ``csv.DictReader`` into a list, then
  ``phonenumbers.parse`` / validate / format per row, a set for duplicates.

The generated list has 1 % duplicate numbers, 0.1 % bad numbers, and names
with quotes, commas, semicolons and braces.

Running the full phonenumbers validation on 1M rows takes over a minute on
this machine, so by default the 1M-row memory check runs the importer with
phonenumbers replaced by a trivial stand-in (``stub``), and compares it with
100k rows in the same ``stub`` mode: the memory that could grow with the
file (reading, de-duplication, spill, batches) is all still exercised;
phonenumbers' per-row work keeps nothing.  ``--full`` measures 1M rows with
the real validation too.  The JSON says which was measured.

    .venv/bin/python bench/list_import.py [--full] [--rows-small 100000] [--rows-large 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS_100K = 20.0
TARGET_MEMORY_RATIO = 2.0
AREAS = ("202", "212", "305", "312", "415", "503", "617", "713", "206", "404")
HOSTILE_NAMES = ('Smith, "Bob"', "Ann; {x} ^^", "Zoë Müller", "O'Brien }{")


# ------------------------------------------------------------------ data
def generate(path: Path, rows: int, seed: int = 12) -> None:
    """A call list with unique US numbers, plus 1 % duplicates and 0.1 % bad ones."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "name", "timezone", "postal_code", "Account", "Notes"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.001:
                phone = "12345"
            elif roll < 0.011 and i > 0:
                phone = _number(rng.randrange(i))
            else:
                phone = _number(i)
            name = HOSTILE_NAMES[i % 4] if i % 50 == 0 else f"Lead {i}"
            tz = "America/Chicago" if i % 10 == 0 else ""
            writer.writerow([phone, name, tz, f"{10000 + i % 89999}", f"AC-{i}", "prefers mornings"])


def _number(i: int) -> str:
    area = AREAS[i % len(AREAS)]
    exchange = 200 + (i // len(AREAS) // 10000) % 700
    if exchange % 100 == 11:
        exchange += 1
    return f"({area}) {exchange:03d}-{(i // len(AREAS)) % 10000:04d}"


# ------------------------------------------------------------------ children
def child(mode: str, path: str) -> None:
    """Run one measurement; print one JSON object."""
    started = time.perf_counter()
    if mode.startswith("ours"):
        from callcenterd.campaigns import importer
        from callcenterd.config.campaigns import CampaignConfig, ListMapping
        from callcenterd.core.campaigns.model import CampaignSpec, DialMode

        if mode == "ours-stub":
            importer.normalise_number = _stub_normalise  # type: ignore[assignment]
            importer.zones_for_number = lambda number, region: ("America/New_York",)  # type: ignore[assignment]
        campaign = CampaignConfig(
            spec=CampaignSpec(name="bench", mode=DialMode.PROGRESSIVE, queue="sales"),
            source_file=Path("bench.yaml"),
            columns=ListMapping(fields=("Account", "Notes")),
        )
        base_kb = _maxrss_kb()
        stored = [0]

        def sink(new, merged):
            stored[0] += len(new) + len(merged)

        t0 = time.perf_counter()
        result = importer.import_leads(Path(path), campaign, sink, skip_bad=True)
        seconds = time.perf_counter() - t0
        out = {"rows": result.read, "stored": stored[0], "bad": result.bad,
               "duplicates": result.duplicates_in_file}  # fmt: skip
    else:
        import phonenumbers

        base_kb = _maxrss_kb()
        t0 = time.perf_counter()
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        seen: set[str] = set()
        leads = []
        bad = dups = 0
        for row in rows:
            try:
                number = phonenumbers.parse(row["phone"], "US")
            except phonenumbers.NumberParseException:
                bad += 1
                continue
            if not phonenumbers.is_valid_number(number):
                bad += 1
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 in seen:
                dups += 1
                continue
            seen.add(e164)
            leads.append((e164, row))
        seconds = time.perf_counter() - t0
        out = {"rows": len(rows), "stored": len(leads), "bad": bad, "duplicates": dups}
    out.update(mode=mode, seconds=round(seconds, 3), peak_kb=_maxrss_kb(), base_kb=base_kb,
               wall=round(time.perf_counter() - started, 3))  # fmt: skip
    print(json.dumps(out))


class _StubNumber:
    country_code = 1


def _stub_normalise(raw: str, region: str):
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) != 10:
        return None, "not a valid phone number"
    return _StubNumber(), "+1" + digits


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(mode: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows-small", type=int, default=100_000)
    parser.add_argument("--rows-large", type=int, default=1_000_000)
    parser.add_argument("--full", action="store_true", help="1M rows with real phonenumbers validation too")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    with tempfile.TemporaryDirectory(prefix="list-import-") as tmp:
        small, large = Path(tmp) / "small.csv", Path(tmp) / "large.csv"
        t0 = time.perf_counter()
        generate(small, args.rows_small)
        generate(large, args.rows_large)
        gen_s = time.perf_counter() - t0
        runs = [
            ("ours", small, args.rows_small),
            ("naive", small, args.rows_small),
            ("ours-stub", small, args.rows_small),
            ("ours-stub", large, args.rows_large),
        ]
        if args.full:
            runs.append(("ours", large, args.rows_large))
        results = [(mode, rows, measure(mode, path)) for mode, path, rows in runs]

    print(f"generated {args.rows_small:,} + {args.rows_large:,} rows in {gen_s:.1f} s")
    print(f"{'mode':<10} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak MiB':>9} {'base MiB':>9} "
          f"{'stored':>9} {'dups':>6} {'bad':>5}")  # fmt: skip
    for mode, rows, r in results:
        print(f"{mode:<10} {rows:>10,} {r['seconds']:>8.2f} {rows / max(r['seconds'], 1e-9):>9,.0f} "
              f"{r['peak_kb'] / 1024:>9.1f} {r['base_kb'] / 1024:>9.1f} {r['stored']:>9,} "
              f"{r['duplicates']:>6,} {r['bad']:>5,}")  # fmt: skip

    by = {(mode, rows): r for mode, rows, r in results}
    ours = by[("ours", args.rows_small)]
    naive = by[("naive", args.rows_small)]
    memory_mode = "ours" if args.full else "ours-stub"
    mem_small = by[(memory_mode, args.rows_small)]["peak_kb"]
    mem_large = by[(memory_mode, args.rows_large)]["peak_kb"]
    ratio = mem_large / mem_small
    time_ok = ours["seconds"] < TARGET_SECONDS_100K
    memory_ok = ratio < TARGET_MEMORY_RATIO
    print(f"100k rows: {ours['seconds']:.2f} s (target < {TARGET_SECONDS_100K:g} s; naive {naive['seconds']:.2f} s, "
          f"naive peak {naive['peak_kb'] / 1024:.0f} MiB vs ours {ours['peak_kb'] / 1024:.0f} MiB)")
    print(f"peak memory {args.rows_large:,} / {args.rows_small:,} rows ({memory_mode}): {ratio:.2f}x "
          f"(target < {TARGET_MEMORY_RATIO:g}x)")
    summary = {
        "bench": "list_import",
        "rows_small": args.rows_small,
        "rows_large": args.rows_large,
        "seconds_small": ours["seconds"],
        "seconds_small_naive": naive["seconds"],
        "peak_mib_small": round(ours["peak_kb"] / 1024, 1),
        "peak_mib_small_naive": round(naive["peak_kb"] / 1024, 1),
        "memory_measured_with": memory_mode,
        "memory_note": "ours-stub = the importer with phonenumbers replaced by a stand-in; run --full for "
                       "real validation at 1M rows" if not args.full else "real validation at both sizes",
        "peak_mib_memory_small": round(mem_small / 1024, 1),
        "peak_mib_memory_large": round(mem_large / 1024, 1),
        "memory_ratio": round(ratio, 3),
        "seconds_large": by[(memory_mode, args.rows_large)]["seconds"],
        "targets": {"seconds_small_below": TARGET_SECONDS_100K, "memory_ratio_below": TARGET_MEMORY_RATIO},
        "target_met": time_ok and memory_ok,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
