"""@workflow, @task and step(): sync, async, generators; errors recorded and re-raised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import strata.agent.sdk as sdk
from opentelemetry.trace import StatusCode

from tests.sdk.conftest import Traced


class Boom(Exception):
    pass


def test_nesting_and_return_values(traced: Traced) -> None:
    """A task inside a workflow is its child; return values pass through unchanged."""
    marker = object()

    @sdk.task(name="fetch")
    def fetch() -> object:
        with sdk.step("rank", attributes={"k": 3}):
            return marker

    @sdk.workflow(name="answer")
    def answer() -> object:
        return fetch()

    assert answer() is marker
    spans = {s.name: s for s in traced.spans()}
    wf, task, step = spans["invoke_workflow answer"], spans["task fetch"], spans["task rank"]
    assert (wf.attributes or {})["gen_ai.workflow.name"] == "answer"
    assert task.parent is not None
    assert task.parent.span_id == wf.context.span_id
    assert step.parent is not None
    assert step.parent.span_id == task.context.span_id
    assert (step.attributes or {})["k"] == 3


def test_exception_recorded_and_reraised_unchanged(traced: Traced) -> None:
    """The very same exception object propagates; the span is marked failed."""
    err = Boom("x")

    @sdk.workflow
    def fail() -> None:
        raise err

    with pytest.raises(Boom) as info:
        fail()
    assert info.value is err
    (span,) = traced.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "Boom"
    with pytest.raises(Boom), sdk.step("block"):
        raise Boom("y")
    assert traced.span("task block").status.status_code is StatusCode.ERROR


def test_async_and_generators(traced: Traced) -> None:
    """Coroutines, generators and async generators get one span covering their whole run."""

    @sdk.task(name="co")
    async def co(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @sdk.task(name="gen")
    def gen(n: int) -> Iterator[int]:
        for i in range(n):
            got = yield i
            assert got is None

    @sdk.task(name="agen")
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def collect() -> list[int]:
        return [i async for i in agen(3)]

    assert asyncio.run(co(1)) == 2
    assert list(gen(3)) == [0, 1, 2]
    assert asyncio.run(collect()) == [0, 1, 2]
    assert {s.name for s in traced.spans()} == {"task co", "task gen", "task agen"}


def test_generator_error_and_send(traced: Traced) -> None:
    """send() reaches the wrapped generator; an exception inside it is recorded."""

    @sdk.task(name="echo")
    def echo() -> Iterator[int]:
        received = yield 0
        yield received * 2
        raise Boom("done")

    g = echo()
    assert next(g) == 0
    assert g.send(21) == 42
    with pytest.raises(Boom):
        next(g)
    assert traced.span("task echo").status.status_code is StatusCode.ERROR


def test_without_init_calls_through() -> None:
    """Without init() the decorators are pass-throughs and step() yields a non-recording span."""

    @sdk.workflow
    def f(x: int) -> int:
        return x * 2

    assert f(2) == 4
    with sdk.step("s") as span:
        assert not span.is_recording()
