"""PrometheusScrapeCollector: GET a /metrics endpoint, parse it, return Samples.

Scrape limits follow Prometheus and RELIABILITY.md C1-C6: a total timeout, a body cap applied
to the *decompressed* bytes while streaming (a gzip bomb is cut off after ``body_limit_bytes``
of output), and ``sample_limit`` / ``label_limit`` / ``label_value_length_limit``, each of
which fails the whole scrape. Parsing uses prometheus_client's text parser (OpenMetrics when
the target answers with that content type). Raw samples keep their names, labels and values as
received; the profile adds derived samples (rates, p50/p95, per-shard counts).
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Timestamp
from strata.agent.errors import CollectError
from strata.agent.ingest.metric_names import MetricInfo, classify_metric
from strata.agent.model import Sample
from strata.agent.units import NS_PER_MS, NS_PER_S
from strata.collectors.profiles import (
    DeriveState,
    Profile,
    derive,
    get_profile,
    unavailable_signals,
)

__all__ = [
    "DEFAULT_BODY_LIMIT_BYTES",
    "DEFAULT_LABEL_LIMIT",
    "DEFAULT_LABEL_VALUE_LENGTH_LIMIT",
    "DEFAULT_SAMPLE_LIMIT",
    "DEFAULT_TIMEOUT_S",
    "PrometheusScrapeCollector",
    "fetch_body",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BODY_LIMIT_BYTES = 32 * 1024 * 1024
DEFAULT_SAMPLE_LIMIT = 50_000
DEFAULT_LABEL_LIMIT = 64
DEFAULT_LABEL_VALUE_LENGTH_LIMIT = 2048
_COUNTER_WITHOUT_TOTAL = re.compile(r"^# TYPE (\S+?)(?<!_total) counter\s*$", re.MULTILINE)
_ACCEPT = (
    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
)


class PrometheusScrapeCollector:
    """Scrapes one Prometheus target with a product profile.

    Blocking; meant to run in the scheduler's worker thread. Not thread-safe for concurrent
    ``collect`` calls on the same instance (the scheduler never does that).
    """

    def __init__(
        self,
        name: str,
        url: str,
        profile: Profile | str = "prometheus",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
        sample_limit: int = DEFAULT_SAMPLE_LIMIT,
        label_limit: int = DEFAULT_LABEL_LIMIT,
        label_value_length_limit: int = DEFAULT_LABEL_VALUE_LENGTH_LIMIT,
        client: httpx.Client | None = None,
        host: str | None = None,
    ) -> None:
        """Create the collector; opens no connection yet.

        Args:
            name: stable target name (``vllm-a``); the collector's name is ``scrape:<name>``
                and raw samples carry it as ``service``.
            url: the /metrics URL.
            profile: a profile or its name (``vllm``, ``milvus``, ``prometheus`` ...).
            timeout_s: total time for connect + headers + body.
            body_limit_bytes: cap on the decompressed body.
            sample_limit: more samples than this fail the scrape (0 = no limit).
            label_limit: more labels on one sample fail the scrape (0 = no limit).
            label_value_length_limit: a longer label value fails the scrape (0 = no limit).
            client: an httpx client to reuse (the caller closes it); else one is owned.
            host: the host the target runs on; default: the URL's host.
        """
        self.name = f"scrape:{name}"
        self.target = name
        self.url = url
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.timeout_s = timeout_s
        self.body_limit_bytes = body_limit_bytes
        self.sample_limit = sample_limit
        self.label_limit = label_limit
        self.label_value_length_limit = label_value_length_limit
        self.host = host or urlsplit(url).hostname
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(follow_redirects=False)
        self._state = DeriveState()
        self._info_cache: dict[str, MetricInfo | None] = {}
        self.unavailable: dict[str, str] = {}
        self._closed = False

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """Scrape once: raw samples plus the profile's derived samples.

        Raises:
            CollectError: connection failed, timeout, non-200, body over the cap, undecodable
                or unparsable body, or a limit exceeded. Nothing from that scrape is returned.
        """
        body, content_type = self._fetch()
        raw = self._parse(body, content_type, now_ns)
        by_name: dict[str, list[Sample]] = {}
        for s in raw:
            by_name.setdefault(s.name, []).append(s)
        template = Sample(
            name="",
            value=0.0,
            unit="1",
            layer=self.profile.layer,
            time_unix_nano=now_ns,
            host=self.host,
            device=self.target,
            service=self.target,
        )
        derived = derive(self.profile, by_name, self._state, now_ns, template)
        self._note_unavailable(by_name)
        return [*raw, *derived]

    def close(self) -> None:
        """Close the owned HTTP client. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                self._client.close()

    # -- fetching --------------------------------------------------------------------------

    def _fetch(self) -> tuple[bytes, str]:
        return fetch_body(
            self._client,
            self.url,
            target=self.target,
            timeout_s=self.timeout_s,
            body_limit_bytes=self.body_limit_bytes,
            headers={"Accept": _ACCEPT},
        )

    # -- parsing ---------------------------------------------------------------------------

    def _parse(self, body: bytes, content_type: str, now_ns: int) -> list[Sample]:
        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype in ("text/html", "application/json", "application/xml"):
            raise CollectError(self.target, f"not an exposition (Content-Type {ctype})")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CollectError(self.target, f"body is not UTF-8 at byte {exc.start}") from exc
        openmetrics = ctype == "application/openmetrics-text"
        parser = parse_openmetrics if openmetrics else parse_text
        # prometheus_client's text parser appends "_total" to the samples of a counter declared
        # without it (TGI, Triton, Milvus do that); names must stay as exposed, so remember
        # those declarations and undo the suffix.
        renamed = set() if openmetrics else set(_COUNTER_WITHOUT_TOTAL.findall(text))
        try:
            return self._samples(parser(text), now_ns, renamed)
        except CollectError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            msg = f"unparsable exposition: {type(exc).__name__}: {str(exc)[:200]}"
            raise CollectError(self.target, msg) from exc

    def _samples(self, families: Iterable[Metric], now_ns: int, renamed: set[str]) -> list[Sample]:
        out: list[Sample] = []
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        sample_limit, label_limit = self.sample_limit, self.label_limit
        value_limit = self.label_value_length_limit
        device_labels = self.profile.device_labels
        for family in families:
            strip_total = family.type == "counter" and family.name in renamed
            for s in family.samples:
                labels = s.labels
                if "" in labels.values():  # an empty label equals an absent one (Prometheus)
                    labels = {k: v for k, v in labels.items() if v}
                name = s.name[:-6] if strip_total and s.name.endswith("_total") else s.name
                if label_limit and len(labels) > label_limit:
                    msg = f"{name} has {len(labels)} labels, over label_limit {label_limit}"
                    raise CollectError(self.target, msg)
                if value_limit and any(len(v) > value_limit for v in labels.values()):
                    msg = f"{name} has a label value over label_value_length_limit {value_limit}"
                    raise CollectError(self.target, msg)
                key = (name, tuple(labels.items()))
                if key in seen:
                    continue  # duplicate series: first one wins, as Prometheus keeps one
                seen.add(key)
                if sample_limit and len(seen) > sample_limit:
                    msg = f"more than sample_limit {sample_limit} samples"
                    raise CollectError(self.target, msg)
                if math.isnan(s.value):
                    continue  # NaN carries no reading (empty summary); absent, not a value
                info = self._classify(name)
                device = next((labels[n] for n in device_labels if labels.get(n)), self.target)
                out.append(
                    Sample(
                        name=name,
                        value=float(s.value),
                        unit=info.unit if info else "1",
                        layer=info.layer if info else self.profile.layer,
                        time_unix_nano=now_ns
                        if s.timestamp is None
                        else _timestamp_ns(s.timestamp),
                        attributes=labels,
                        canonical=info.canonical if info else None,
                        host=self.host,
                        device=device,
                        service=self.target,
                    )
                )
        return out

    def _classify(self, name: str) -> MetricInfo | None:
        try:
            return self._info_cache[name]
        except KeyError:
            info = self._info_cache[name] = classify_metric(name)
            return info

    def _note_unavailable(self, by_name: dict[str, list[Sample]]) -> None:
        missing = unavailable_signals(self.profile, by_name)
        for signal in missing.keys() - self.unavailable.keys():
            logger.info("%s: signal %s unavailable: %s", self.name, signal, missing[signal])
        self.unavailable = missing


def fetch_body(
    client: httpx.Client,
    url: str,
    *,
    target: str,
    timeout_s: float,
    body_limit_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> tuple[bytes, str]:
    """GET *url*; return the decompressed body and its Content-Type.

    The body is streamed and inflated here (gzip or deflate) so that at most
    ``body_limit_bytes + 1`` decompressed bytes are ever produced; the total time is bounded by
    ``timeout_s`` (each network wait by the same value, and the clock is checked per chunk).

    Raises:
        CollectError: connection failure, timeout, non-200 status, unsupported encoding, a body
            over the limit, or a corrupt or truncated compressed body.
    """
    deadline = time.monotonic() + timeout_s
    all_headers = {"Accept-Encoding": "gzip, deflate", **(headers or {})}
    try:
        with client.stream(
            "GET", url, headers=all_headers, timeout=httpx.Timeout(timeout_s)
        ) as resp:
            if resp.status_code != httpx.codes.OK:
                raise CollectError(target, f"HTTP {resp.status_code}")
            encoding = resp.headers.get("content-encoding", "identity").strip().lower()
            body = _read_capped(
                resp.iter_raw(), encoding, deadline, target, timeout_s, body_limit_bytes
            )
            return body, resp.headers.get("content-type", "")
    except httpx.TimeoutException as exc:
        msg = f"timed out after {timeout_s}s ({type(exc).__name__})"
        raise CollectError(target, msg) from exc
    except httpx.HTTPError as exc:
        raise CollectError(target, f"{type(exc).__name__}: {exc}") from exc


def _read_capped(
    chunks: Iterable[bytes],
    encoding: str,
    deadline: float,
    target: str,
    timeout_s: float,
    limit: int,
) -> bytes:
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflate: _Inflater | None = _Inflater(target, limit)
    elif encoding in ("identity", ""):
        inflate = None
    else:
        raise CollectError(target, f"unsupported Content-Encoding {encoding!r}")
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise CollectError(target, f"timed out after {timeout_s}s (reading the body)")
        data = chunk if inflate is None else inflate.feed(chunk)
        size += len(data)
        if size > limit:
            msg = f"body exceeds body_limit of {limit} bytes after decompression"
            raise CollectError(target, msg)
        parts.append(data)
    if inflate is not None:
        inflate.finish()
    return b"".join(parts)


def _timestamp_ns(ts: object) -> int:
    """Exposition timestamp (text parser: float seconds; OpenMetrics: Timestamp) to ns."""
    if isinstance(ts, Timestamp):
        return ts.sec * NS_PER_S + ts.nsec
    # The text format carries integer milliseconds; the parser hands them over as float
    # seconds, so round back to the millisecond instead of keeping float noise.
    return round(float(ts) * 1000) * NS_PER_MS  # type: ignore[arg-type]


class _Inflater:
    """Streaming gzip/zlib decompression that never produces more than ``limit + 1`` bytes."""

    def __init__(self, target: str, limit: int) -> None:
        self._target = target
        self._limit = limit
        self._produced = 0
        self._d = zlib.decompressobj(wbits=47)  # 32 + 15: auto-detect gzip or zlib header
        self._pending = False  # a member has started and not yet ended

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            room = self._limit + 1 - self._produced
            if room <= 0:
                break
            try:
                chunk = self._d.decompress(data, room)
            except zlib.error as exc:
                raise CollectError(self._target, f"corrupt compressed body: {exc}") from exc
            self._pending = True
            self._produced += len(chunk)
            out.append(chunk)
            data = self._d.unconsumed_tail
            if self._d.eof:
                # Concatenated gzip members: go on with a fresh decompressor.
                data = self._d.unused_data + data
                self._d = zlib.decompressobj(wbits=47)
                self._pending = False
        return b"".join(out)

    def finish(self) -> None:
        """Raise if the compressed stream ended inside a member (truncated body)."""
        if self._pending and self._produced <= self._limit:
            raise CollectError(self._target, "truncated compressed body")
