"""``decompress``: gzip bodies through zlib-ng, bounded, every malformed stream a DecodeError."""

from __future__ import annotations

import gzip
import os

import pytest
from strata.agent.errors import DecodeError
from strata.agent.ingest.otlp_codec import BodyTooLarge, decompress

PAYLOAD = os.urandom(3000) + b"span " * 50_000


def test_members_are_inflated_and_joined() -> None:
    body = gzip.compress(PAYLOAD) + gzip.compress(b"second member")
    assert decompress(body, "gzip", 1 << 20) == PAYLOAD + b"second member"
    assert decompress(PAYLOAD, "identity", 1 << 20) == PAYLOAD


def test_output_over_the_limit_stops_there() -> None:
    with pytest.raises(BodyTooLarge):
        decompress(gzip.compress(PAYLOAD), "gzip", len(PAYLOAD) - 1)
    assert decompress(gzip.compress(PAYLOAD), "gzip", len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("mangle", [
    lambda body: body[:-9],  # truncated inside the trailer
    lambda body: body[:len(body) // 2],  # truncated inside the deflate stream
    lambda body: body[:-8] + bytes([body[-8] ^ 1]) + body[-7:],  # CRC mismatch
    lambda body: b"\x1f\x8b\x08\x00" + os.urandom(200),  # a gzip header, then noise
    lambda body: body + b"\x1f\x8b",  # a second member that never starts
], ids=["trailer", "stream", "crc", "noise", "dangling-member"])
def test_malformed_streams_are_decode_errors(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError, match="gzip"):
        decompress(mangle(gzip.compress(PAYLOAD)), "gzip", 1 << 24)
