"""Normalisation at ingest: one canonical form for spans and metric samples.

Pure functions. Spans get their GenAI attributes mapped to the current OTel names (the
deprecated, OpenInference and Traceloop keys in ``strata.agent.semconv.ALIASES``), promoted columns,
a layer, and prompt/response content replaced by its length and a salted SHA-256 unless
content capture is on. Metrics get a layer and canonical name from
``strata.agent.ingest.metric_names``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from strata.agent import semconv
from strata.agent.ingest.metric_names import classify_metric
from strata.agent.model import AttributeValue, Layer, Sample
from strata.agent.semconv import CONTENT_HEURISTIC_MIN_BYTES

MAX_ATTRIBUTES = 128
MAX_VALUE_CHARS = 64 * 1024
CAPTURED_CONTENT_CHARS = 16 * 1024
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1  # the store's BIGINT; OTLP times are uint64


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """How ingest treats attributes: content capture, salt for content hashes, limits."""

    salt: str
    capture_content: bool = False
    max_attributes: int = MAX_ATTRIBUTES
    max_value_chars: int = MAX_VALUE_CHARS


@dataclass(slots=True)  # not frozen: built for every span, and frozen __init__ costs 2x
class PromotedFields:
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    reasoning_tokens: int | None
    error_type: str | None
    layer: Layer


def redact(value: AttributeValue, salt: str) -> str:
    """Replace content by its length and a salted hash, so equal prompts stay comparable."""
    text = value if isinstance(value, str) else repr(value)
    hasher = _salted(salt).copy()  # the salt's state is computed once per salt
    data = memoryview(text.encode("utf-8", "surrogatepass"))
    # hashlib releases the GIL for an update of 2 KiB or more; under load, getting it back
    # from the event loop and writer threads costs far more than hashing a prompt (py-spy:
    # 17 % of the agent's samples in this line at 2 KiB prompts). Smaller updates keep it.
    for start in range(0, len(data), _HASH_STEP):
        hasher.update(data[start:start + _HASH_STEP])
    return f"[redacted len={len(text)} sha256={hasher.hexdigest()[:32]}]"


_HASH_STEP: Final = 2047  # below hashlib's HASHLIB_GIL_MINSIZE (2048)


@functools.lru_cache(maxsize=8)
def _salted(salt: str) -> hashlib._Hash:
    return hashlib.sha256(salt.encode())


_KEY_CACHE_LIMIT = 10_000
_key_cache: dict[str, tuple[str, bool]] = {}
PLAIN_KEYS: set[str] = set()
"""Keys seen so far that ``clean_attributes`` keeps as they are (canonical, not content):
a short non-content value under one of them needs no cleaning (the decoder's fast path)."""


def _classify_key(key: str) -> tuple[str, bool]:
    """(canonical key, is a content key), memoised: the same few keys repeat on every span."""
    known = _key_cache.get(key)
    if known is None:
        canonical = semconv.ALIASES.get(key, key)
        known = (canonical, semconv.is_content_key(canonical, None))
        if len(_key_cache) < _KEY_CACHE_LIMIT:  # bounded: keys can be attacker-chosen
            _key_cache[key] = known
            if canonical == key and not known[1]:
                PLAIN_KEYS.add(key)
    return known


@dataclass(slots=True)
class CleanedAttributes:
    """A span's attributes after ``clean_attributes``."""

    attributes: dict[str, AttributeValue]
    dropped: int  # over the count limit
    redaction_failures: int  # content attributes dropped because redacting them failed


def _structured_content(value: AttributeValue) -> bool:
    """A list or map value whose JSON form looks like role/content messages (> 1 KiB)."""
    if not isinstance(value, list | dict):
        return False
    text = json.dumps(value, ensure_ascii=False, default=str)
    return semconv.is_content_key("", text)


def clean_attributes(
    attributes: Mapping[str, AttributeValue], policy: IngestPolicy
) -> CleanedAttributes:
    """Canonical keys, content redacted (or truncated when captured), limits applied.

    Fails closed (RELIABILITY P4): content whose redaction raises is dropped and counted,
    never stored raw.
    """
    out: dict[str, AttributeValue] = {}
    dropped = failures = 0
    max_chars = policy.max_value_chars
    max_attributes = policy.max_attributes
    cached = _key_cache.get
    for original, value in attributes.items():
        key, is_content = cached(original) or _classify_key(original)
        if key != original and key in attributes:
            continue  # the canonical key is present too; it wins
        value_type = type(value)
        if value_type is str:
            if len(value) > CONTENT_HEURISTIC_MIN_BYTES:  # type: ignore[arg-type]
                is_content = is_content or semconv.is_content_key(key, value)
                if len(value) > max_chars and not is_content:  # type: ignore[arg-type]
                    value = value[:max_chars]  # type: ignore[index]
        elif not is_content and (value_type is list or value_type is dict):
            is_content = _structured_content(value)
        if is_content:
            if not policy.capture_content:
                try:
                    value = redact(value, policy.salt)
                except Exception:  # noqa: BLE001 - fail closed: drop, never store raw
                    failures += 1
                    continue
            elif isinstance(value, str) and len(value) > CAPTURED_CONTENT_CHARS:
                value = value[:CAPTURED_CONTENT_CHARS]
        if len(out) >= max_attributes and key not in out:
            dropped += 1
            continue
        out[key] = value
    return CleanedAttributes(out, dropped, failures)


def _int(value: AttributeValue) -> int | None:
    """An integer column's value, or None when absent or out of the BIGINT range (a count
    the column cannot hold must not fail the group commit it would be written in)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) < 20):
        return None
    number = int(value)
    return number if INT64_MIN <= number <= INT64_MAX else None


def _str(value: AttributeValue) -> str | None:
    if type(value) is str:
        return value
    if value is None or isinstance(value, list | dict):
        return None
    return str(value)


def span_layer(attributes: Mapping[str, AttributeValue], kind: str, operation: str | None) -> Layer:
    """The layer a span belongs to, from its GenAI operation, DB system or span kind."""
    if operation in semconv.MODEL_OPERATIONS:
        # A server-side model span (vLLM, TGI tracing) is the serving layer.
        return Layer.SERVING if kind == "server" else Layer.MODEL
    if operation in semconv.ORCHESTRATION_OPERATIONS:
        return Layer.ORCHESTRATION
    if operation in semconv.DATA_OPERATIONS:
        return Layer.DATA
    system = attributes.get(semconv.DB_SYSTEM)
    if isinstance(system, str) and system.lower() in semconv.VECTOR_DB_SYSTEMS:
        return Layer.DATA
    if kind == "server" and _serves_a_model(attributes):
        return Layer.SERVING  # vLLM's per-request ``llm_request`` span names no operation
    return Layer.ORCHESTRATION


def _serves_a_model(attributes: Mapping[str, AttributeValue]) -> bool:
    """A model and token usage: what an inference server reports for one request."""
    has_model = semconv.RESPONSE_MODEL in attributes or semconv.REQUEST_MODEL in attributes
    return has_model and (semconv.INPUT_TOKENS in attributes
                          or semconv.OUTPUT_TOKENS in attributes)


def promote(attributes: Mapping[str, AttributeValue], kind: str) -> PromotedFields:
    """Read the promoted columns from canonical attributes (absent keys cost one lookup:
    most spans carry few of them)."""
    get = attributes.get
    operation = _str(get(semconv.OPERATION))
    if operation is None:
        for key in semconv.SPAN_KIND_KEYS:
            span_kind = get(key)
            if isinstance(span_kind, str) and span_kind in semconv.SPAN_KIND_OPERATIONS:
                operation = semconv.SPAN_KIND_OPERATIONS[span_kind]
                break
    # One line per column, not a loop over the keys: this runs for every span, and a
    # generator costs more than the eight lookups it would save writing out.
    return PromotedFields(
        operation, _str(get(semconv.PROVIDER)), _str(get(semconv.REQUEST_MODEL)),
        _str(get(semconv.RESPONSE_MODEL)), _int(get(semconv.INPUT_TOKENS)),
        _int(get(semconv.OUTPUT_TOKENS)), _int(get(semconv.CACHE_READ_TOKENS)),
        _int(get(semconv.REASONING_TOKENS)), _str(get(semconv.ERROR_TYPE)),
        span_layer(attributes, kind, operation))


def metric_sample(
    name: str,
    value: float,
    unit: str,
    time_unix_nano: int,
    labels: Mapping[str, str],
    resource: Mapping[str, Any],
) -> Sample:
    """A pushed metric point as a Sample: layer and canonical name by metric name.

    Unknown names are kept as received in the layer their resource suggests (model layer for
    application metrics), so nothing pushed is lost.
    """
    info = classify_metric(name)
    host = labels.get("Hostname") or _str(resource.get(semconv.HOST_NAME))
    device = labels.get("UUID") or labels.get("gpu_uuid") or labels.get("gpu")
    service = _str(resource.get(semconv.SERVICE_NAME))
    if info is None:
        return Sample(name, value, unit or "1", Layer.MODEL, time_unix_nano, labels,
                      None, host, device, service)
    return Sample(
        name,
        value * info.scale,
        info.target_unit,
        info.layer,
        time_unix_nano,
        labels,
        info.canonical,
        host,
        device,
        service,
    )
