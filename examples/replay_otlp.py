"""Replay a captured OTLP file into an agent, keeping the original event times.

The capture is JSON lines, one OTLP/JSON export request per line — the format the
OpenTelemetry Collector's `file` exporter writes. Lines with `resourceSpans` go to
/v1/traces, lines with `resourceMetrics` to /v1/metrics. Detection runs on event time, so
replaying yesterday's capture gives the incidents watching it live would have.

    python examples/replay_otlp.py examples/data/capture.jsonl --endpoint http://127.0.0.1:4318
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx


def replay(path: Path, endpoint: str) -> dict[str, int]:
    counts = {"requests": 0, "rejected": 0}
    with httpx.Client(base_url=endpoint, timeout=60) as client:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            doc = json.loads(line)
            route = "/v1/traces" if "resourceSpans" in doc else "/v1/metrics"
            reply = client.post(route, content=line.encode(),
                                headers={"Content-Type": "application/json"})
            if reply.status_code != 200:
                msg = f"line {number}: HTTP {reply.status_code}: {reply.text[:200]}"
                raise SystemExit(msg)
            partial = reply.json().get("partialSuccess", {})
            counts["rejected"] += int(partial.get("rejectedSpans", partial.get(
                "rejectedDataPoints", 0)) or 0)
            counts["requests"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318")
    args = parser.parse_args()
    counts = replay(args.capture, args.endpoint)
    print(f"replayed {counts['requests']} requests ({counts['rejected']} items rejected)")


if __name__ == "__main__":
    main()
