"""Leave-one-category-out (LOCO) evaluation of AnomalyScorer settings on the NAB dev subset.

For every setting of a small grid (``GRID``: keyword arguments of
:class:`strata.analytics.AnomalyScorer`) every data file is scored once, then
the data set's own scorer ``nab_score.py`` scores the outputs on each category
and on the whole split. Each fold holds one category out and chooses a setting
on the other two by a rule fixed before any held-out score was seen:

* **the worse of the two training categories** (each scored on its own, as NAB
  scores a category): the setting whose lower training score is highest, ties
  broken by the mean of the two, then by grid order. A setting must be good on
  both categories it was shown, not excellent on one: the held-out category is
  unlike either (one is synthetic), and the best score on the pooled pair can
  hinge on 0.01 points of one category.

The held-out category is then scored with the chosen setting, twice:

* **NAB procedure**: ``nab_score.py`` on the held-out category alone (its
  threshold optimised on the scored files, as NAB scores every detector);
* **strict**: the threshold chosen on the two training categories is carried
  over (the held-out outputs are binarised at it, so the scorer can only flag
  what that threshold flags, or nothing).

The LOCO mean is the mean of the held-out standard scores. The full-dev
score of each fold's choice is printed beside it, and which value each fold
chose for every grid axis (the stability of the shipped defaults). No
setting is chosen on the whole split. Progress goes to stdout.

Usage::

    .venv/bin/python benchmarks/nab_loco.py [--nab-dir DIR] [--out DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab import DEFAULT_NAB_DIR, score_file

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
# Axes of the grid (every combination is scored); the other tunables keep their defaults.
GRID: dict[str, tuple[object, ...]] = {
    "count_noise": (True, False),
    "tail_k": (3, 8, 25),
    "history_window": (850, 2500),
    "shift_frac": (1.0, 0.8, 0.6),
    "alarm_level": (0.53, 0.6),
}


def settings_grid() -> list[dict[str, object]]:
    """Every combination of the grid's axes."""
    names = list(GRID)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*GRID.values())]


def setting_id(settings: dict[str, object]) -> str:
    """A directory-safe name of one setting."""
    return "_".join(f"{key}={value}" for key, value in settings.items())


def nab_score(nab_dir: Path, out: Path, subset: list[str], per_category: bool) -> dict[str, dict]:
    """Run nab_score.py on *out* over *subset* (categories); its JSON results."""
    result = out / f"score-{'-'.join(subset) or 'all'}.json"
    command = [sys.executable, str(nab_dir / "nab_score.py"), str(out), "--name", "strata"]
    command += ["--baselines", "--json", str(result)]  # no published baselines stored here
    if subset:
        command += ["--subset", *subset]
    if per_category:
        command.append("--per-category")
    subprocess.run(command, check=True, capture_output=True, cwd=nab_dir)
    return json.loads(result.read_text())


def evaluate(
    nab_dir: Path, out: Path, settings: dict[str, object], reuse: bool
) -> dict[str, object]:
    """Score every file with *settings* into *out* (*reuse*: keep score files already
    there); scores per category and overall."""
    labels = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    rows, cpu_s = 0, 0.0
    for rel in sorted(labels):
        if reuse and (out / rel).exists():
            continue
        n, seconds = score_file(nab_dir / "data" / rel, out / rel, settings)  # type: ignore[arg-type]
        rows += n
        cpu_s += seconds
    groups = nab_score(nab_dir, out, [], per_category=True)
    scores = {
        name: {p: group["results"]["strata"][p] for p in PROFILES} for name, group in groups.items()
    }
    return {"scores": scores, "us_per_row": 1e6 * cpu_s / rows if rows else float("nan")}


def strict_score(nab_dir: Path, out: Path, category: str, threshold: float) -> float:
    """Standard score of *category* when its outputs are flagged at a carried-over threshold."""
    with tempfile.TemporaryDirectory(prefix="strata-strict-") as tmp:
        for src in sorted((out / category).glob("*.csv")):
            dst = Path(tmp) / category / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with src.open(newline="") as fin, dst.open("w", newline="") as fout:
                reader, writer = csv.reader(fin), csv.writer(fout)
                writer.writerow(next(reader))
                for stamp, value, score in reader:
                    writer.writerow([stamp, value, "1.0" if float(score) >= threshold else "0.0"])
        results = nab_score(nab_dir, Path(tmp), [category], per_category=False)
    return float(results["selection"]["results"]["strata"]["standard"]["score"])


def run_grid(
    nab_dir: Path, out: Path, jobs: int, reuse: bool
) -> list[tuple[dict[str, object], dict]]:
    """Evaluate every setting (in *jobs* processes), printing progress."""
    grid = settings_grid()
    started = time.monotonic()
    results: list[tuple[dict[str, object], dict]] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(evaluate, nab_dir, out / setting_id(s), s, reuse) for s in grid]
        for done, (settings, future) in enumerate(zip(grid, futures, strict=True), 1):
            result = future.result()
            results.append((settings, result))
            full = result["scores"]["selection"]["standard"]["score"]
            print(
                f"[{done}/{len(grid)} {time.monotonic() - started:6.0f} s] {setting_id(settings)}"
                f"  dev {full:6.2f}  {result['us_per_row']:.1f} us/row",
                flush=True,
            )
    return results


def choose(
    results: list[tuple[dict[str, object], dict]], train: list[str]
) -> tuple[dict[str, object], dict]:
    """The setting whose worse standard score on the *train* categories is highest
    (ties: the higher mean, then the earlier setting in grid order)."""

    def merit(sr: tuple[dict[str, object], dict]) -> tuple[float, float]:
        scores = [sr[1]["scores"][c]["standard"]["score"] for c in train]
        return min(scores), sum(scores) / len(scores)

    best = max(merit(sr) for sr in results)
    return next(sr for sr in results if merit(sr) == best)


def report(nab_dir: Path, out: Path, results: list[tuple[dict[str, object], dict]]) -> float:
    """Choose per fold on two categories, score the third; print everything; LOCO mean."""
    categories = sorted(name for name in results[0][1]["scores"] if name != "selection")
    held_out: list[float] = []
    chosen: list[dict[str, object]] = []
    print("\nfold (held out)          chosen on the other two  ->  held-out score")
    for category in categories:
        others = [c for c in categories if c != category]
        settings, result = choose(results, others)
        # the pair scored together: the threshold the strict score carries over
        pair = nab_score(nab_dir, out / setting_id(settings), others, per_category=False)
        train = pair["selection"]["results"]["strata"]["standard"]
        each = "  ".join(f"{c} {result['scores'][c]['standard']['score']:.2f}" for c in others)
        test = result["scores"][category]
        strict = strict_score(nab_dir, out / setting_id(settings), category, train["threshold"])
        held_out.append(test["standard"]["score"])
        print(
            f"{category:>22}: {setting_id(settings)}\n"
            f"{'':>24}train {each}; together {train['score']:.2f} "
            f"(threshold {train['threshold']:.4f})\n"
            f"{'':>24}held out: standard {test['standard']['score']:.2f}  low_FP "
            f"{test['reward_low_FP_rate']['score']:.2f}  low_FN "
            f"{test['reward_low_FN_rate']['score']:.2f}  strict-threshold standard {strict:.2f}"
            f"  (fp rows {test['standard']['fp_rows']}, windows "
            f"{test['standard']['windows_detected']}/{test['standard']['windows']})\n"
            f"{'':>24}full dev with this setting: "
            f"{result['scores']['selection']['standard']['score']:.2f}"
        )
        chosen.append(settings)
    loco = sum(held_out) / len(held_out)
    print(f"\nLOCO mean (standard, NAB procedure): {loco:.2f}")
    for axis in GRID:
        print(f"  {axis}: chosen per fold {[c[axis] for c in chosen]}")
    print("\nper setting: " + "  ".join(f"{c[:12]:>12}" for c in categories) + "       dev")
    for settings, result in results:
        scores = result["scores"]
        cells = "  ".join(f"{scores[c]['standard']['score']:12.2f}" for c in categories)
        dev = scores["selection"]["standard"]["score"]
        print(f"{setting_id(settings)}\n             {cells}  {dev:8.2f}")
    return loco


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB_DIR)
    parser.add_argument("--out", type=Path, default=None, help="score CSVs (default: a temp dir)")
    parser.add_argument("--jobs", type=int, default=1, help="settings scored in parallel")
    parser.add_argument(
        "--reuse", action="store_true", help="keep score CSVs already in --out (no timing)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strata-loco-") as tmp:
        out = args.out or Path(tmp)
        results = run_grid(args.nab_dir.resolve(), out.resolve(), args.jobs, args.reuse)
        report(args.nab_dir.resolve(), out.resolve(), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
