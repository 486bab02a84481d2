"""Long fuzzing run of the OTLP decode paths (RELIABILITY I8: >= 1 h per target nightly).

    .venv/bin/python benchmarks/fuzz.py --minutes 60 --seed 1

Prints the report as JSON; exits 1 if any input crashed, hung over 1 s or allocated more
than twice the body limit. The CI test runs the same fuzzer for 3,000 inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.agent.fuzz_otlp import LIMIT, fuzz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = fuzz(seed=args.seed, seconds=args.minutes * 60)
    print(json.dumps({**asdict(report), "crashes": report.crashes[:20]}, indent=2))
    if report.crashes or report.peak_bytes > 2 * LIMIT:
        sys.exit(1)


if __name__ == "__main__":
    main()
