"""``json_text``: the attribute, resource and label maps' JSON as the store keeps it, written
by orjson with the stdlib's encoder for what orjson refuses or would write differently."""

from __future__ import annotations

import json
import math

import pytest
from strata.agent.store.columns import json_text


def _stdlib(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


@pytest.mark.parametrize("value", [
    {"s": "é ✓ \u2028", "i": 2**63 - 1, "neg": -(2**63), "f": 0.1, "tiny": 1e-7, "b": True,
     "none": None, "l": [1, "a", None, [2.5]], "d": {"x": {"y": []}}},
    {"control": "\x00\n\"\\/", "": ""},
    {"big": 2**70},  # past 64 bits: orjson refuses
    {"lone": "\ud800"},  # a lone surrogate (OTLP/JSON can carry one): orjson refuses
    {1: "a key that is not a string"},
    {"object": Opaque()},  # unknown types as str
])
def test_the_text_reads_back_as_the_stdlib_encoders(value: dict[object, object]) -> None:
    text = json_text(value)
    assert isinstance(text, str)
    assert json.loads(text) == json.loads(_stdlib(value))


def test_nan_and_infinities_are_kept_as_duckdb_reads_them() -> None:
    """orjson writes them as null; the store keeps NaN and Infinity (valid for DuckDB's JSON)."""
    text = json_text({"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "ok": 1.5})
    assert text == '{"nan":NaN,"inf":Infinity,"-inf":-Infinity,"ok":1.5}'


def test_the_text_is_compact_with_non_ascii_kept() -> None:
    text = json_text({"q": "¿qué? 日本", "a": [1, {"b": 2}]})
    assert text == '{"q":"¿qué? 日本","a":[1,{"b":2}]}'
