"""Settings: one frozen object, resolved flag > env (``STRATA_*``) > file > default.

Every scalar key of ``strata.toml`` has an environment variable: keys of ``[agent]`` map to
``STRATA_<KEY>`` (``STRATA_OTLP_PORT``), keys of other tables to ``STRATA_<TABLE>_<KEY>``
(``STRATA_CARBON_PUE``). Array tables (``[[scrape]]``, ``[[webhook]]``, ``[[budget]]``) come
from the file only, except ``[[gpu_map]]``, which ``STRATA_GPU_MAP`` replaces
(``address=host[/gpu,gpu];...``). An invalid value raises ``ConfigError`` naming the setting.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from strata.agent.errors import ConfigError

ENV_PREFIX = "STRATA_"
SCRAPE_PROFILES = (
    "vllm", "tgi", "triton", "llamacpp", "ollama", "weaviate", "milvus", "qdrant", "prometheus",
)
_SIZE_UNITS = {
    "": 1, "B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "KB": 1000, "MB": 1000**2,
    "GB": 1000**3,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(value: object, name: str) -> float:
    """Parse ``"15s"``, ``"500ms"``, ``"2h"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
    if not match or float(match.group(1)) <= 0:
        msg = f"{name} must be a positive duration like '15s' or '500ms', got {value!r}"
        raise ConfigError(msg)
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def parse_size_bytes(value: object, name: str) -> int:
    """Parse ``"512MiB"``, ``"20MB"`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B|B)?\s*", str(value), flags=re.IGNORECASE)
    if not match or int(match.group(1)) <= 0:
        msg = f"{name} must be a positive size like '512MiB', got {value!r}"
        raise ConfigError(msg)
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").upper()]


def _port(value: object, name: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # 0 = pick a free port (tests, demo)
        msg = f"{name} must be an integer in 0..65535, got {value!r}"
        raise ConfigError(msg)
    return port


def _bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    msg = f"{name} must be true or false, got {value!r}"
    raise ConfigError(msg)


def _positive_float(value: object, name: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    if number <= 0:
        msg = f"{name} must be a positive number, got {value!r}"
        raise ConfigError(msg)
    return number


def _positive_int(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number <= 0:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise ConfigError(msg)
    return number


def _worker_count(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if not 0 <= number <= 64:
        msg = f"{name} must be an integer in 0..64, got {value!r}"
        raise ConfigError(msg)
    return number


def _fraction(value: object, name: str) -> float:
    number = _positive_float(value, name)
    if number >= 1:
        msg = f"{name} must be between 0 and 1 (exclusive), got {value!r}"
        raise ConfigError(msg)
    return number


def _size_or_auto(value: object, name: str) -> int | None:
    if str(value).strip().lower() == "auto":
        return None
    return parse_size_bytes(value, name)


def _text(value: object, name: str) -> str:
    return str(value)


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    name: str
    url: str
    profile: str = "prometheus"
    interval_s: float = 15.0
    timeout_s: float = 10.0
    body_limit_bytes: int = 32 * 1024**2
    sample_limit: int = 50_000
    label_limit: int = 64
    label_value_length_limit: int = 2048


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    format: str = "json"  # "json" | "slack"


@dataclass(frozen=True, slots=True)
class Budget:
    group_by: str  # attribute, e.g. "team"
    value: str  # e.g. "search"
    usd_per_month: float


@dataclass(frozen=True, slots=True)
class GPUMapEntry:
    """A serving address whose GPUs the telemetry does not reveal (``[[gpu_map]]``)."""

    address: str  # server.address, or "address:port" for one instance of several
    host: str  # the host name the GPU metrics carry (DCGM Hostname, NVML host)
    gpus: tuple[str, ...] = ()  # GPU UUIDs; empty: every GPU of the host


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the agent reads from flags, environment and ``strata.toml``."""

    host: str = "127.0.0.1"
    otlp_port: int = 4318
    otlp_grpc_port: int = 4317  # 0: no gRPC receiver
    api_port: int = 8321
    db: str = "strata.duckdb"
    api_token: str | None = None
    api_read_token: str | None = None
    insecure_allow_unauthenticated: bool = False
    capture_content: bool = False
    max_body_bytes: int = 20 * 1024**2
    max_queue_spans: int = 200_000
    decode_workers: int = 0  # processes decoding trace bodies; 0: a thread of the agent
    read_header_timeout_s: float = 10.0
    memory_limit_bytes: int | None = None  # DuckDB's; None: from the container (agent/memory.py)
    retention_days: float = 30.0
    analyze_interval_s: float = 60.0
    anomaly_threshold: float = 0.6
    anomaly_max_series: int = 1000
    gpu_enabled: bool = True
    gpu_interval_s: float = 5.0
    gpu_timeout_s: float = 2.0
    gpu_pcie_throughput: bool = False
    host_enabled: bool = True
    forward_endpoint: str | None = None
    forward_queue_dir: str | None = None
    forward_max_queue_bytes: int = 512 * 1024**2
    forward_initial_backoff_s: float = 1.0
    forward_max_backoff_s: float = 30.0
    forward_clickhouse_url: str | None = None  # [forward.clickhouse]: chdb:DIR or http(s)://
    forward_clickhouse_database: str = "otel"
    forward_clickhouse_queue_dir: str | None = None
    forward_clickhouse_max_queue_bytes: int = 512 * 1024**2
    forward_clickhouse_batch_rows: int = 10_000
    carbon_pue: float = 1.2
    carbon_grid_gco2e_per_kwh: float = 400.0
    pricing_file: str | None = None
    gpu_hour_usd: float | None = None  # None: the public price of the GPU's model
    gpu_map: tuple[GPUMapEntry, ...] = ()
    scrape: tuple[ScrapeTarget, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    budgets: tuple[Budget, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


# (file table, file key) -> (Settings field, parser). The env var is derived from the pair.
_SCALARS: dict[tuple[str, str], tuple[str, Callable[[object, str], Any]]] = {
    ("agent", "host"): ("host", _text),
    ("agent", "otlp_port"): ("otlp_port", _port),
    ("agent", "otlp_grpc_port"): ("otlp_grpc_port", _port),
    ("agent", "api_port"): ("api_port", _port),
    ("agent", "db"): ("db", _text),
    ("agent", "api_token"): ("api_token", _text),
    ("agent", "api_read_token"): ("api_read_token", _text),
    ("agent", "insecure_allow_unauthenticated"): ("insecure_allow_unauthenticated", _bool),
    ("agent", "capture_content"): ("capture_content", _bool),
    ("agent", "max_body"): ("max_body_bytes", parse_size_bytes),
    ("agent", "max_queue_spans"): ("max_queue_spans", _positive_int),
    ("agent", "decode_workers"): ("decode_workers", _worker_count),
    ("agent", "read_header_timeout"): ("read_header_timeout_s", parse_duration_s),
    ("agent", "memory_limit"): ("memory_limit_bytes", _size_or_auto),
    ("agent", "retention_days"): ("retention_days", _positive_float),
    ("agent", "analyze_interval"): ("analyze_interval_s", parse_duration_s),
    ("anomaly", "threshold"): ("anomaly_threshold", _fraction),
    ("anomaly", "max_series"): ("anomaly_max_series", _positive_int),
    ("gpu", "enabled"): ("gpu_enabled", _bool),
    ("gpu", "interval"): ("gpu_interval_s", parse_duration_s),
    ("gpu", "timeout"): ("gpu_timeout_s", parse_duration_s),
    ("gpu", "pcie_throughput"): ("gpu_pcie_throughput", _bool),
    ("host", "enabled"): ("host_enabled", _bool),
    ("forward", "endpoint"): ("forward_endpoint", _text),
    ("forward", "queue_dir"): ("forward_queue_dir", _text),
    ("forward", "max_queue_bytes"): ("forward_max_queue_bytes", parse_size_bytes),
    ("forward", "initial_backoff"): ("forward_initial_backoff_s", parse_duration_s),
    ("forward", "max_backoff"): ("forward_max_backoff_s", parse_duration_s),
    ("forward.clickhouse", "url"): ("forward_clickhouse_url", _text),
    ("forward.clickhouse", "database"): ("forward_clickhouse_database", _text),
    ("forward.clickhouse", "queue_dir"): ("forward_clickhouse_queue_dir", _text),
    ("forward.clickhouse", "max_queue_bytes"): ("forward_clickhouse_max_queue_bytes",
                                                parse_size_bytes),
    ("forward.clickhouse", "batch_rows"): ("forward_clickhouse_batch_rows", _positive_int),
    ("carbon", "pue"): ("carbon_pue", _positive_float),
    ("carbon", "grid_gco2e_per_kwh"): ("carbon_grid_gco2e_per_kwh", _positive_float),
    ("pricing", "file"): ("pricing_file", _text),
    ("pricing", "gpu_hour_usd"): ("gpu_hour_usd", _positive_float),
}


def env_var(table: str, key: str) -> str:
    """The environment variable for a file key: ``[agent] db`` -> ``STRATA_DB``."""
    suffix = key if table == "agent" else f"{table}_{key}"
    return ENV_PREFIX + suffix.replace(".", "_").upper()


def documented_keys() -> list[tuple[str, str, str, object]]:
    """(table, key, env var, default) for every scalar setting, for the config reference."""
    defaults = {f.name: f.default for f in fields(Settings)}
    return [(t, k, env_var(t, k), defaults[name]) for (t, k), (name, _) in _SCALARS.items()]


def load(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings: ``overrides`` (CLI flags, None = unset) > env > file > defaults.

    Raises:
        ConfigError: unreadable file, unknown profile, or an invalid value (named).
    """
    doc = _subtables_apart(_read_file(Path(path)) if path else {})
    _check_known(doc, str(path))
    values: dict[str, Any] = {}
    for (table, key), (name, parse) in _SCALARS.items():
        section = doc.get(table, {})
        if key in section:
            values[name] = parse(section[key], f"[{table}] {key}")
    environ = environ if environ is not None else {}
    for (table, key), (name, parse) in _SCALARS.items():
        var = env_var(table, key)
        if var in environ:
            values[name] = parse(environ[var], var)
    gpu_map = tuple(_gpu_map_entry(m, f"[[gpu_map]] #{i + 1}")
                    for i, m in enumerate(doc.get("gpu_map", [])))
    if GPU_MAP_ENV in environ:
        gpu_map = parse_gpu_map_env(environ[GPU_MAP_ENV])
    settings = replace(
        Settings(),
        **values,
        scrape=tuple(_scrape_target(t, i) for i, t in enumerate(doc.get("scrape", []))),
        webhooks=tuple(_webhook(w, i) for i, w in enumerate(doc.get("webhook", []))),
        budgets=tuple(_budget(b, i) for i, b in enumerate(doc.get("budget", []))),
        gpu_map=gpu_map,
    )
    flags = {k: v for k, v in overrides.items() if v is not None}
    for name in flags:
        if name not in {f.name for f in fields(Settings)}:
            msg = f"unknown setting {name!r}"
            raise ConfigError(msg)
    if "otlp_port" in flags:
        flags["otlp_port"] = _port(flags["otlp_port"], "--otlp-port")
    if "otlp_grpc_port" in flags:
        flags["otlp_grpc_port"] = _port(flags["otlp_grpc_port"], "--otlp-grpc-port")
    if "api_port" in flags:
        flags["api_port"] = _port(flags["api_port"], "--api-port")
    return replace(settings, **flags)


_ARRAY_TABLES = {
    "scrape": {"name", "url", "profile", "interval", "timeout", "body_limit", "sample_limit",
               "label_limit", "label_value_length_limit"},
    "webhook": {"url", "format"},
    "budget": {"group_by", "value", "usd_per_month"},
    "gpu_map": {"address", "host", "gpus"},
}
GPU_MAP_ENV = ENV_PREFIX + "GPU_MAP"


def parse_gpu_map_env(value: str) -> tuple[GPUMapEntry, ...]:
    """``STRATA_GPU_MAP``: ``address=host[/uuid,uuid];...`` (empty: no map).

    Raises:
        ConfigError: an item without ``=`` or with an empty address or host.
    """
    entries = []
    for i, item in enumerate(p.strip() for p in value.split(";")):
        if not item:
            continue
        address, sep, target = item.partition("=")
        host, _, gpus = target.partition("/")
        entries.append(_gpu_map_entry(
            {"address": address.strip(), "host": host.strip() if sep else "",
             "gpus": [g.strip() for g in gpus.split(",") if g.strip()]},
            f"{GPU_MAP_ENV} item {i + 1}",
        ))
    return tuple(entries)


def _subtables_apart(doc: dict[str, Any]) -> dict[str, Any]:
    """``[forward.clickhouse]`` (TOML: a table inside ``[forward]``) as its own table."""
    out: dict[str, Any] = {}
    for table, body in doc.items():
        if table in _ARRAY_TABLES or not isinstance(body, dict):
            out[table] = body
            continue
        out[table] = {k: v for k, v in body.items() if not isinstance(v, dict)}
        out.update({f"{table}.{k}": v for k, v in body.items() if isinstance(v, dict)})
    return out


def _check_known(doc: Mapping[str, Any], path: str) -> None:
    """Refuse unknown tables and keys: a typo must not silently fall back to a default."""
    known_scalar = {(t, k) for t, k in _SCALARS}
    for table, body in doc.items():
        if table in _ARRAY_TABLES:
            for index, item in enumerate(body if isinstance(body, list) else [body]):
                unknown = sorted(set(item) - _ARRAY_TABLES[table])
                if unknown:
                    msg = f"{path}: unknown key(s) {unknown} in [[{table}]] #{index + 1}"
                    raise ConfigError(msg)
            continue
        if not isinstance(body, dict) or not any(t == table for t, _ in known_scalar):
            msg = f"{path}: unknown table [{table}]"
            raise ConfigError(msg)
        unknown = sorted(k for k in body if (table, k) not in known_scalar)
        if unknown:
            msg = f"{path}: unknown key(s) {unknown} in [{table}]"
            raise ConfigError(msg)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        msg = f"config file {path} does not exist"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {path} is not valid TOML: {exc}"
        raise ConfigError(msg) from None


def _scrape_target(table: Mapping[str, Any], index: int) -> ScrapeTarget:
    where = f"[[scrape]] #{index + 1}"
    for key in ("name", "url"):
        if key not in table:
            msg = f"{where} needs a {key!r}"
            raise ConfigError(msg)
    profile = str(table.get("profile", "prometheus"))
    if profile not in SCRAPE_PROFILES:
        msg = f"{where} profile must be one of {', '.join(SCRAPE_PROFILES)}, got {profile!r}"
        raise ConfigError(msg)
    url = str(table["url"])
    if not url.startswith(("http://", "https://")):
        msg = f"{where} url must start with http:// or https://, got {url!r}"
        raise ConfigError(msg)
    interval = parse_duration_s(table.get("interval", "15s"), f"{where} interval")
    timeout = parse_duration_s(table.get("timeout", min(10.0, interval)), f"{where} timeout")
    if timeout > interval:
        msg = f"{where} timeout ({timeout}s) must not exceed interval ({interval}s)"
        raise ConfigError(msg)
    return ScrapeTarget(
        name=str(table["name"]),
        url=url,
        profile=profile,
        interval_s=interval,
        timeout_s=timeout,
        body_limit_bytes=parse_size_bytes(table.get("body_limit", "32MiB"), f"{where} body_limit"),
        sample_limit=_positive_int(table.get("sample_limit", 50_000), f"{where} sample_limit"),
        label_limit=_positive_int(table.get("label_limit", 64), f"{where} label_limit"),
        label_value_length_limit=_positive_int(table.get("label_value_length_limit", 2048),
                                               f"{where} label_value_length_limit"),
    )


def _webhook(table: Mapping[str, Any], index: int) -> Webhook:
    where = f"[[webhook]] #{index + 1}"
    if "url" not in table:
        msg = f"{where} needs a 'url'"
        raise ConfigError(msg)
    fmt = str(table.get("format", "json"))
    if fmt not in {"json", "slack"}:
        msg = f"{where} format must be 'json' or 'slack', got {fmt!r}"
        raise ConfigError(msg)
    return Webhook(url=str(table["url"]), format=fmt)


def _gpu_map_entry(table: Mapping[str, Any], where: str) -> GPUMapEntry:
    address, host, gpus = table.get("address"), table.get("host"), table.get("gpus", [])
    if not isinstance(address, str) or not address or not isinstance(host, str) or not host:
        msg = f"{where} needs a non-empty 'address' and 'host' (address=host in {GPU_MAP_ENV})"
        raise ConfigError(msg)
    if not isinstance(gpus, list) or not all(isinstance(g, str) and g for g in gpus):
        msg = f"{where} gpus must be a list of GPU UUIDs, got {gpus!r}"
        raise ConfigError(msg)
    return GPUMapEntry(address=address, host=host, gpus=tuple(gpus))


def _budget(table: Mapping[str, Any], index: int) -> Budget:
    where = f"[[budget]] #{index + 1}"
    for key in ("group_by", "value", "usd_per_month"):
        if key not in table:
            msg = f"{where} needs a {key!r}"
            raise ConfigError(msg)
    usd = _positive_float(table["usd_per_month"], f"{where} usd_per_month")
    return Budget(group_by=str(table["group_by"]), value=str(table["value"]), usd_per_month=usd)
