"""Run :class:`strata.analytics.AnomalyScorer` over the NAB dev subset and score it.

Writes one ``timestamp,value,anomaly_score`` CSV per data file (same relative
path as under ``data/``) into ``--out`` (default: a temporary directory), then
runs the independent scorer ``nab_score.py`` shipped with the data set on it
and prints the standard / reward_low_FP_rate / reward_low_FN_rate scores and
the scorer's CPU time per row (only the ``update`` calls are timed: reading and
writing the CSVs is not the scorer's cost), with the machine's load average,
since timings on a shared machine wobble. One scorer with the default (global)
hyperparameters per file; nothing is tuned per file.

Usage::

    .venv/bin/python benchmarks/nab.py [--nab-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from strata.analytics import AnomalyScorer  # noqa: E402  (needs the repo root on sys.path)

DEFAULT_NAB_DIR = REPO_ROOT.parent / "shared" / "datasets" / "nab-dev"


def timestamp_ns(text: str) -> int:
    """NAB timestamps (naive, UTC) to integer Unix nanoseconds."""
    parsed = datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def score_file(src: Path, dst: Path, settings: dict[str, float] | None = None) -> tuple[int, float]:
    """Score one data file into *dst* with one scorer built from *settings* (its keyword
    arguments; default: the shipped defaults); returns the rows and the CPU seconds spent
    in ``update`` (CPU time, not wall time: the machine is shared)."""
    with src.open(newline="") as fin:
        rows = [(row["timestamp"], row["value"]) for row in csv.DictReader(fin)]
    points = [(timestamp_ns(stamp), float(value)) for stamp, value in rows]
    scorer = AnomalyScorer(**(settings or {}))  # type: ignore[arg-type]
    update = scorer.update
    started = time.process_time()
    scores = [update(t, v) for t, v in points]
    elapsed = time.process_time() - started
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", newline="") as fout:
        writer = csv.writer(fout)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for (stamp, value), score in zip(rows, scores, strict=True):
            writer.writerow([stamp, value, repr(score)])
    return len(rows), elapsed


def run(nab_dir: Path, out_dir: Path) -> dict[str, float]:
    """Score every labelled series, run nab_score.py, return the three scores."""
    labels = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    load_before = os.getloadavg()[0]
    rows, elapsed = 0, 0.0
    for rel in sorted(labels):
        file_rows, file_seconds = score_file(nab_dir / "data" / rel, out_dir / rel)
        rows += file_rows
        elapsed += file_seconds
    load_after = os.getloadavg()[0]
    result_json = out_dir / "nab_result.json"
    subprocess.run(
        [
            sys.executable,
            str(nab_dir / "nab_score.py"),
            str(out_dir),
            "--name",
            "strata",
            "--baselines",
            "--json",
            str(result_json),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    summary = json.loads(result_json.read_text())["selection"]["results"]["strata"]
    order = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    scores = {profile: float(summary[profile]["score"]) for profile in order}
    print(
        f"files: {len(labels)}  rows: {rows}  scoring CPU time: {elapsed:.2f} s "
        f"({1e6 * elapsed / rows:.1f} us/row; 1-min load average {load_before:.2f} before, "
        f"{load_after:.2f} after, on {os.cpu_count()} CPUs)"
    )
    for profile, value in scores.items():
        detail = summary[profile]
        print(
            f"{profile:>20}: {value:6.2f}  (threshold {detail['threshold']:.4f}, windows "
            f"{detail['windows_detected']}/{detail['windows']}, false-positive rows "
            f"{detail['fp_rows']})"
        )
    print(f"outputs in {out_dir}")
    return scores


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nab-dir",
        type=Path,
        default=DEFAULT_NAB_DIR,
        help="NAB dev subset (data/, labels/, nab_score.py)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the score CSVs (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        run(args.nab_dir, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="strata-nab-") as tmp:
            run(args.nab_dir, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
