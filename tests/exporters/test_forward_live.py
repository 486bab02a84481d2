"""Forwarding between two real Strata agents (RELIABILITY E1, E4): nothing acked is lost.

The edge agent forwards to an upstream agent. The upstream is stopped mid-stream, the edge is
killed with SIGKILL while its queue holds data and restarted, then the upstream comes back:
every span the edge acknowledged arrives upstream, with at most one in-flight batch
duplicated.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import wait_until

BATCH = 50
HEADERS = {"Content-Type": "application/x-protobuf"}


def metric(agent: LiveAgent, name: str, **labels: str) -> float:
    text = httpx.get(agent.api_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(name)


class Sender:
    """Posts batches of GenAI spans to the edge; remembers the span ids of 200 replies."""

    def __init__(self, edge: LiveAgent) -> None:
        self.url = edge.otlp_endpoint + "/v1/traces"
        self.acked: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, n_batches: int) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(n_batches):
                self._post(client)

    def _post(self, client: httpx.Client) -> None:
        spans = [make_span(attributes={**genai_attributes(), "gen_ai.input.messages": "Q" * 300})
                 for _ in range(BATCH)]
        body = trace_request(spans, {"service.name": "rag-api"}).SerializeToString()
        try:
            reply = client.post(self.url, content=body, headers=HEADERS)
        except httpx.TransportError:
            self.refused += 1
            return
        if reply.status_code == 200:
            self.acked += [s.span_id.hex() for s in spans]
        else:
            self.refused += 1

    def start(self) -> None:
        def loop() -> None:
            with httpx.Client(timeout=30) as client:
                while not self._stop.is_set():
                    self._post(client)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def stored_span_ids(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT span_id FROM spans").fetchall()]


@pytest.fixture(name="pair")
def pair_fixture(tmp_path: Path) -> Iterator[tuple[LiveAgent, LiveAgent]]:
    (tmp_path / "upstream").mkdir()
    (tmp_path / "edge").mkdir()
    upstream = launch_agent(tmp_path / "upstream")
    config = tmp_path / "edge.toml"
    config.write_text(
        "[forward]\n"
        f'endpoint = "{upstream.otlp_endpoint}"\n'
        f'queue_dir = "{tmp_path / "edge" / "queue"}"\n'
        'max_queue_bytes = "64MiB"\n'
        'initial_backoff = "0.2s"\n'
        'max_backoff = "1s"\n'
    )
    edge = launch_agent(tmp_path / "edge", "--config", str(config))
    yield edge, upstream
    for agent in (edge, upstream):
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(10)


def test_every_acked_span_arrives_through_outage_and_kill_9(
    pair: tuple[LiveAgent, LiveAgent],
) -> None:
    edge, upstream = pair
    sender = Sender(edge)
    sender.send(10)
    wait_until(lambda: upstream.get("/api/v1/health").json()["counts"]["spans"]
               >= len(sender.acked), 30, "the first batches upstream")

    # mid-stream: the upstream goes away while the app keeps sending to the edge
    sender.start()
    time.sleep(0.5)  # let the stream run a little before the outage (load, not a sync)
    assert upstream.stop() == 0
    wait_until(lambda: len(sender.acked) >= 30 * BATCH, 60, "acks during the outage")
    sender.stop()
    assert metric(edge, "strata_exporter_queue_bytes") > 0  # the queue holds the outage

    # kill -9 with a non-empty queue, restart, send a little more
    edge.stop(signal.SIGKILL)
    edge.restart()
    assert metric(edge, "strata_exporter_queue_bytes") > 0  # recovered from disk
    sender.send(5)
    upstream.restart()

    acked = set(sender.acked)
    assert len(acked) == len(sender.acked)
    wait_until(lambda: upstream.get("/api/v1/health").json()["counts"]["spans"] >= len(acked),
               90, "every acked span upstream")
    wait_until(lambda: metric(edge, "strata_exporter_queue_bytes") == 0, 30, "an empty queue")
    assert upstream.stop() == 0
    ids = stored_span_ids(upstream.db)
    assert acked <= set(ids), f"{len(acked - set(ids))} acked spans missing upstream"
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= 4 * 1024 * 1024 // 200  # at most one in-flight 4 MiB batch
    assert len(set(ids) - acked) == 0  # nothing forwarded that the edge did not ack
    assert edge.stop() == 0
    assert acked <= set(stored_span_ids(edge.db))


def test_forwarded_spans_carry_layer_and_cost_but_no_prompt(
    pair: tuple[LiveAgent, LiveAgent],
) -> None:
    edge, upstream = pair
    canary = "CANARY-forward-7d1c"
    span = make_span(attributes={**genai_attributes(model="gpt-4o"),
                                 "gen_ai.input.messages": canary * 50})
    reply = httpx.post(edge.otlp_endpoint + "/v1/traces", headers=HEADERS, timeout=30,
                       content=trace_request([span]).SerializeToString())
    assert reply.status_code == 200
    wait_until(lambda: upstream.get("/api/v1/health").json()["counts"]["spans"] >= 1, 30,
               "the span upstream")
    assert metric(edge, "strata_exporter_sent_items_total", signal="traces") == 1
    assert upstream.stop() == 0
    with duckdb.connect(str(upstream.db), read_only=True) as con:
        (attributes,) = con.execute("SELECT attributes FROM spans").fetchone()  # type: ignore[misc]
    assert '"strata.layer":"model"' in attributes
    assert '"gen_ai.usage.cost.usd":' in attributes
    assert canary not in attributes
    assert canary.encode() not in upstream.db.read_bytes()
