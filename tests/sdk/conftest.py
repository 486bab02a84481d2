"""SDK fixtures: the local LLM server and an SDK pipeline with in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import strata.agent.sdk as sdk
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.sdk.llm_server import LLMServer


@pytest.fixture(name="llm", scope="session")
def llm_fixture() -> Iterator[LLMServer]:
    server = LLMServer().start()
    yield server
    server.stop()


@dataclass
class Traced:
    """An initialised SDK whose spans and metrics stay in memory."""

    handle: sdk.SDKHandle
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        self.handle.force_flush()
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out


def start(**kwargs: Any) -> Traced:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    handle = sdk.init("test-app", span_exporter=exporter, metric_reader=reader,
                      set_global=False, **kwargs)
    assert handle is not None
    return Traced(handle, exporter, reader)


@pytest.fixture(name="traced")
def traced_fixture() -> Iterator[Traced]:
    traced = start(version="1.2.3", team="search", environment="test")
    yield traced
    sdk.shutdown()
