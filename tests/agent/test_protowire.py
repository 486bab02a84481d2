"""The shared wire primitives write what the generated opentelemetry-proto classes write."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import UInt64Value
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from strata.agent.protowire import (
    SPAN_KIND_CODES,
    SPAN_KINDS,
    STATUS_CODES,
    STATUS_NAMES,
    field,
    pack_double,
    pack_fixed32,
    pack_fixed64,
    varint,
)

INT64_EDGES = [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**31 - 1, 2**32,
               2**56, 2**63 - 1, -1, -2, -128, -16384, -(2**31), -(2**63)]


@pytest.mark.parametrize("value", INT64_EDGES)
def test_int64_varint_matches_generated_class(value: int) -> None:
    """AnyValue.int_value (field 3, int64): negatives are ten bytes of two's complement."""
    assert b"\x18" + varint(value) == AnyValue(int_value=value).SerializeToString()


@pytest.mark.parametrize("value", [1, 2**63, 2**64 - 1])
def test_uint64_varint_matches_generated_class(value: int) -> None:
    assert b"\x08" + varint(value) == UInt64Value(value=value).SerializeToString()


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_varint_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="range"):
        varint(value)


def test_varint_known_bytes() -> None:
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 2**21])
def test_length_delimited_field_matches_generated_class(size: int) -> None:
    """Lengths at the one-, two- and three-byte varint boundaries."""
    text = "x" * size
    assert field(b"\x0a", text.encode()) == AnyValue(string_value=text).SerializeToString()
    parsed = AnyValue.FromString(field(b"\x0a", text.encode()))
    assert parsed.string_value == text


def test_fixed_width_packers_match_generated_class() -> None:
    span = Span(start_time_unix_nano=2**64 - 1, flags=0x300)
    assert span.SerializeToString() == (b"\x39" + pack_fixed64(2**64 - 1)
                                        + b"\x85\x01" + pack_fixed32(0x300))
    assert b"\x21" + pack_double(-0.25) == AnyValue(double_value=-0.25).SerializeToString()


def test_kind_and_status_tables_follow_the_proto_enums() -> None:
    for code, name in enumerate(SPAN_KINDS):
        assert Span.SpanKind.Name(code) == f"SPAN_KIND_{name.upper()}"
        assert SPAN_KIND_CODES[name] == code
    assert len(SPAN_KINDS) == len(Span.SpanKind.values())
    for code, name in enumerate(STATUS_NAMES):
        assert Status.StatusCode.Name(code) == f"STATUS_CODE_{name.upper()}"
        assert STATUS_CODES[name] == code
    assert len(STATUS_NAMES) == len(Status.StatusCode.values())
