"""Protobuf wire-format primitives shared by Strata's hand-written OTLP encoders.

The SDK's span encoder (``strata.agent.sdk.otlp_encoder``) and the forwarder's
(``strata.exporters.otlp_encode``) write OTLP bytes field by field instead of building the
generated message classes, which costs several times more per span on a hot path. They share
what is generic here: varints, length-delimited fields, fixed-width packers, and OTLP's span
kind and status code tables (which the decoder ``strata.agent.ingest.otlp_codec`` reads too).

A field's tag is passed pre-encoded (``b"\\x0a"`` is field 1, wire type 2): callers keep
their tags as byte constants, so nothing is computed per field. A leaf module: imports
nothing of the project.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

__all__ = [
    "SPAN_KINDS",
    "SPAN_KIND_CODES",
    "STATUS_CODES",
    "STATUS_NAMES",
    "field",
    "pack_double",
    "pack_fixed32",
    "pack_fixed64",
    "varint",
]

_UINT64: Final = 1 << 64
_INT64_MIN: Final = -(1 << 63)
_SMALL: Final = 0x4000  # every varint of one or two bytes is precomputed

pack_double: Final[Callable[[float], bytes]] = struct.Struct("<d").pack
pack_fixed64: Final[Callable[[int], bytes]] = struct.Struct("<Q").pack
pack_fixed32: Final[Callable[[int], bytes]] = struct.Struct("<I").pack

# Span.SpanKind and Status.StatusCode of opentelemetry/proto/trace/v1/trace.proto, by wire
# value; Strata's records keep the lowercase names.
SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
SPAN_KIND_CODES: Final = {name: code for code, name in enumerate(SPAN_KINDS)}
STATUS_NAMES: Final = ("unset", "ok", "error")
STATUS_CODES: Final = {name: code for code, name in enumerate(STATUS_NAMES)}


def _long_varint(value: int) -> bytes:
    if value < 0:
        if value < _INT64_MIN:
            msg = f"varint out of the int64 range: {value}"
            raise ValueError(msg)
        value += _UINT64  # negative int64: ten bytes of two's complement, as protobuf does
    elif value >= _UINT64:
        msg = f"varint out of the uint64 range: {value}"
        raise ValueError(msg)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS: Final = tuple(_long_varint(i) for i in range(_SMALL))


def varint(value: int) -> bytes:
    """Base-128 varint of an int64 or uint64 (negatives as 64-bit two's complement).

    Raises:
        ValueError: *value* fits neither int64 nor uint64.
    """
    if 0 <= value < _SMALL:
        return _SMALL_VARINTS[value]
    return _long_varint(value)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: the pre-encoded *tag*, the length, the payload."""
    n = len(payload)
    return tag + (_SMALL_VARINTS[n] if n < _SMALL else _long_varint(n)) + payload

