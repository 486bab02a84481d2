"""Token prices of hosted LLM APIs and the cost of one request.

The built-in table is ``analytics/data/prices.toml`` (dated, with a source URL per
provider); a user file with the same schema overlays it, entry by entry (user wins).

Token convention (one for every provider): ``input_tokens`` is the request's TOTAL input,
cache reads and cache writes included, as OpenAI and Gemini report it and as OTel's
``gen_ai.usage.input_tokens`` is meant. Anthropic's API reports ``input_tokens`` WITHOUT
cache reads and writes; instrumentation must add ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` to it before emitting the span. A request is billed as::

    (input - cache_read - cache_write) x input rate
    + cache_read x cached rate + cache_write x cache-write rate + output x output rate

so a cached token is billed once, at the cached rate, never also at the input rate.
Counts that contradict this (cache reads + writes above the total input) are unpriced.

Unknown model, or a count the price needs but the span did not report: ``None``
(unpriced), never 0. Self-hosted models have no token price; they are priced by GPU time
(``gpu_time_usd``) from the GPU share computed in ``strata.analytics.attribution``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from strata.agent.errors import ConfigError
from strata.agent.model import SpanRecord

__all__ = [
    "CACHE_WRITE_TOKENS_ATTRIBUTE",
    "LongContext",
    "ModelPrice",
    "PriceTable",
    "Rates",
    "TokenCost",
    "TokenUsage",
    "cost_of",
    "gpu_time_usd",
    "parse_price_file",
    "usage_of",
]

CACHE_WRITE_TOKENS_ATTRIBUTE = "gen_ai.usage.cache_creation.input_tokens"
_PACKAGED = "prices.toml"
_RATE_KEYS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "cache_write_usd_per_mtok",
)
_TOKENS_PER_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens; None where the provider publishes no such rate."""

    input_usd_per_mtok: float | None
    output_usd_per_mtok: float | None
    cached_input_usd_per_mtok: float | None = None
    cache_write_usd_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class LongContext:
    """Rates that apply to the whole request once its input exceeds a threshold."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One priced model: rates, how its names match, and its energy coefficients."""

    provider: str
    model: str
    family: str
    tier: int  # 1 = smallest / cheapest of its family
    rates: Rates
    as_of: str  # ISO date from which this price applies
    source: str  # URL of the provider's price page
    aliases: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    long_context: LongContext | None = None
    energy_wh_per_1k_input_tokens: float | None = None  # estimate; None = unknown
    energy_wh_per_1k_output_tokens: float | None = None  # estimate; None = unknown
    energy_source: str | None = None  # citation for the two coefficients above
    energy_as_of: str | None = None  # when the coefficients were computed (ISO date)
    energy_unknown: str | None = None  # why there are no coefficients (None when there are)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one request; ``input_tokens`` includes cache reads and writes."""

    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TokenCost:
    """The USD cost of one request, by token class."""

    usd: float
    input_usd: float
    cached_input_usd: float
    cache_write_usd: float
    output_usd: float


def usage_of(span: SpanRecord) -> TokenUsage:
    """Read a span's token counts (cache writes come from the OTel attribute)."""
    raw = span.attributes.get(CACHE_WRITE_TOKENS_ATTRIBUTE)
    cache_write = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return TokenUsage(
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        cache_read_tokens=span.cache_read_tokens,
        cache_write_tokens=cache_write,
    )


def cost_of(price: ModelPrice, usage: TokenUsage) -> TokenCost | None:
    """Price one request at its model's rates.

    Args:
        price: the model's entry from a ``PriceTable``.
        usage: token counts, ``input_tokens`` being the total input (module docstring).

    Returns:
        The cost, or None (unpriced) when a count the model bills is unknown, the
        counts are inconsistent, or tokens were used of a class the model has no rate for.
        Absent cache counts mean no cache use. Cache reads/writes of a model without a
        cached/cache-write rate bill at the input rate.
    """
    if usage.input_tokens is None and usage.output_tokens is None:
        return None
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    total_input = usage.input_tokens
    if total_input is None:
        if price.rates.input_usd_per_mtok is not None or cache_read or cache_write:
            return None
        total_input = 0
    fresh_input = total_input - cache_read - cache_write
    if fresh_input < 0 or (usage.output_tokens is not None and usage.output_tokens < 0):
        return None
    rates = price.rates
    if price.long_context is not None and total_input > price.long_context.above_input_tokens:
        rates = price.long_context.rates
    input_usd = _tokens_usd(fresh_input, rates.input_usd_per_mtok)
    cached_usd = _tokens_usd(cache_read, _or(rates.cached_input_usd_per_mtok, rates))
    write_usd = _tokens_usd(cache_write, _or(rates.cache_write_usd_per_mtok, rates))
    output = usage.output_tokens
    if output is None and rates.output_usd_per_mtok is not None:
        return None
    output_usd = _tokens_usd(output or 0, rates.output_usd_per_mtok)
    if input_usd is None or cached_usd is None or write_usd is None or output_usd is None:
        return None
    return TokenCost(
        usd=input_usd + cached_usd + write_usd + output_usd,
        input_usd=input_usd,
        cached_input_usd=cached_usd,
        cache_write_usd=write_usd,
        output_usd=output_usd,
    )


def gpu_time_usd(*, gpu_hour_usd: float, gpu_seconds: float) -> float:
    """Cost of a span's share of GPU time: ``gpu_hour_usd x gpu_seconds / 3600``.

    Raises:
        ValueError: a negative price or duration.
    """
    if gpu_hour_usd < 0 or gpu_seconds < 0:
        msg = f"gpu_hour_usd and gpu_seconds must be >= 0, got {gpu_hour_usd}, {gpu_seconds}"
        raise ValueError(msg)
    return gpu_hour_usd * gpu_seconds / 3600


def _or(rate: float | None, rates: Rates) -> float | None:
    return rate if rate is not None else rates.input_usd_per_mtok


def _tokens_usd(tokens: int, usd_per_mtok: float | None) -> float | None:
    if tokens == 0:
        return 0.0
    if usd_per_mtok is None:
        return None
    return tokens * usd_per_mtok / _TOKENS_PER_MTOK


_MEMO_LIMIT = 10_000


class PriceTable:
    """Model prices with case-insensitive lookup by exact id, alias, then longest prefix.

    Immutable after construction; safe to share between threads.
    """

    def __init__(self, models: Iterable[ModelPrice], *, provider_aliases: Mapping[str, str]):
        self._models = tuple(models)
        self._provider_aliases = {k.lower(): v.lower() for k, v in provider_aliases.items()}
        self._names: dict[tuple[str, str], ModelPrice] = {}
        self._prefixes: dict[tuple[str, str], ModelPrice] = {}
        for entry in self._models:  # later entries (the user's) win
            provider = entry.provider.lower()
            for name in (entry.model, *entry.aliases):
                self._names[provider, name.lower()] = entry
            for prefix in entry.prefixes:
                self._prefixes[provider, prefix.lower()] = entry
        # Lookups repeat for every span of the same model: memoise (bounded: model names
        # arrive from the wire). A dict is safe to share; a racing miss just recomputes.
        self._memo: dict[tuple[str | None, str | None], ModelPrice | None] = {}

    @classmethod
    def packaged(cls) -> PriceTable:
        """The built-in table shipped in ``analytics/data/prices.toml``."""
        text = resources.files("strata.analytics").joinpath("data", _PACKAGED).read_text("utf-8")
        return cls.from_toml(text, origin=f"analytics/data/{_PACKAGED}")

    @classmethod
    def load(cls, user_file: str | Path | None = None) -> PriceTable:
        """The built-in table, overlaid with *user_file* when given.

        Raises:
            ConfigError: the user file is missing, not TOML, or has an invalid entry.
        """
        table = cls.packaged()
        if user_file is None:
            return table
        path = Path(user_file)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            msg = f"{path}: cannot read price file: {exc.strerror or exc}"
            raise ConfigError(msg) from exc
        return table.overlay(cls.from_toml(text, origin=str(path)))

    @classmethod
    def from_toml(cls, text: str, *, origin: str) -> PriceTable:
        """Parse one price file; *origin* names it in error messages.

        Raises:
            ConfigError: invalid TOML or an invalid entry, naming *origin* and the key.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = f"{origin}: not valid TOML: {exc}"
            raise ConfigError(msg) from exc
        models, aliases = parse_price_file(data, origin=origin)
        return cls(models, provider_aliases=aliases)

    def overlay(self, user: PriceTable) -> PriceTable:
        """A new table: this one, with *user*'s entries replacing same (provider, id)."""
        replaced = {(m.provider.lower(), m.model.lower()) for m in user._models}
        kept = [m for m in self._models if (m.provider.lower(), m.model.lower()) not in replaced]
        return PriceTable(
            [*kept, *user._models],
            provider_aliases={**self._provider_aliases, **user._provider_aliases},
        )

    @property
    def models(self) -> tuple[ModelPrice, ...]:
        return self._models

    def lookup(self, provider: str | None, model: str | None) -> ModelPrice | None:
        """The price of *model*, or None when it is not in the table (unpriced).

        A known *provider* (or an alias such as ``gcp.gemini``) is searched first; then
        all providers, accepting a unique match only (OpenAI-compatible clients report
        ``openai`` when calling DeepSeek or Qwen). ``models/gemini-2.5-pro`` and
        ``openai/gpt-4o`` retry with the last path segment.
        """
        key = (provider, model)
        if key in self._memo:
            return self._memo[key]
        found = self._lookup(provider, model)
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[key] = found
        return found

    def _lookup(self, provider: str | None, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        canonical = self._provider_aliases.get(provider.lower()) if provider else None
        names = [model.lower()]
        if "/" in model:
            names.append(model.rsplit("/", 1)[1].lower())
        for scope in ([canonical] if canonical else []) + [None]:
            for name in names:
                found = self._match(scope, name)
                if found is not None:
                    return found
        return None

    def cheaper_in_family(self, price: ModelPrice) -> tuple[ModelPrice, ...]:
        """Models of the same provider and family with a lower tier, smallest first."""
        same = [m for m in self._models if (m.provider, m.family) == (price.provider, price.family)]
        return tuple(sorted((m for m in same if m.tier < price.tier), key=lambda m: m.tier))

    def _match(self, provider: str | None, name: str) -> ModelPrice | None:
        providers = [provider] if provider else sorted({p for p, _ in self._names})
        hits: list[ModelPrice] = []
        for p in providers:
            hit = self._names.get((p, name)) or self._longest_prefix(p, name)
            if hit is not None:
                hits.append(hit)
        return hits[0] if len(hits) == 1 else None

    def _longest_prefix(self, provider: str, name: str) -> ModelPrice | None:
        matches = [
            (len(pre), e)
            for (p, pre), e in self._prefixes.items()
            if p == provider and name.startswith(pre)
        ]
        return max(matches, key=lambda m: m[0])[1] if matches else None


def parse_price_file(
    data: Mapping[str, Any], *, origin: str
) -> tuple[list[ModelPrice], dict[str, str]]:
    """Validate a parsed price file into entries and a provider-alias map.

    Raises:
        ConfigError: naming *origin* and the offending key.
    """
    meta = _Reader(origin, "meta", data.get("meta", {}))
    energy_defaults = _EnergyDefaults(
        meta.opt_str("energy_source"), meta.opt_str("energy_as_of"), meta.opt_str("energy_unknown")
    )
    providers = _Reader(origin, "providers", data.get("providers", {}))
    aliases: dict[str, str] = {}
    defaults: dict[str, tuple[str | None, str | None]] = {}
    for pid in providers.raw:
        table = providers.table(pid)
        aliases[pid.lower()] = pid.lower()
        aliases.update({alias.lower(): pid.lower() for alias in table.str_list("aliases")})
        defaults[pid.lower()] = (table.opt_str("as_of"), table.opt_str("source"))
    raw_models = data.get("models", [])
    if not isinstance(raw_models, list):
        msg = f"{origin}: models must be an array of tables ([[models]]), got {raw_models!r}"
        raise ConfigError(msg)
    seen: dict[tuple[str, str], str] = {}
    models: list[ModelPrice] = []
    for i, raw in enumerate(raw_models):
        entry = _parse_model(_Reader(origin, f"models[{i}]", raw), defaults, energy_defaults)
        aliases.setdefault(entry.provider, entry.provider)
        for name in (entry.model, *entry.aliases):
            key = (entry.provider, name.lower())
            if key in seen:
                msg = f"{origin}: models[{i}] name {name!r} is already used by {seen[key]}"
                raise ConfigError(msg)
            seen[key] = f"models[{i}] ({entry.model})"
        models.append(entry)
    return models, aliases


_MODEL_KEYS = frozenset(
    {
        "provider", "id", "aliases", "prefixes", "family", "tier", "as_of", "source",
        "long_context", "energy_wh_per_1k_input_tokens", "energy_wh_per_1k_output_tokens",
        "energy_source", "energy_as_of", "energy_unknown", *_RATE_KEYS,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _EnergyDefaults:
    """``[meta]`` values a model's energy keys fall back to."""

    source: str | None
    as_of: str | None
    unknown: str | None


_NO_ENERGY = "no energy coefficient in the price table"


def _parse_model(
    r: _Reader,
    defaults: Mapping[str, tuple[str | None, str | None]],
    energy: _EnergyDefaults,
) -> ModelPrice:
    r.reject_unknown(_MODEL_KEYS)
    provider = r.req_str("provider").lower()
    model = r.req_str("id")
    r = _Reader(r.origin, f"{r.where} ({provider}/{model})", r.raw)
    as_of_default, source_default = defaults.get(provider, (None, None))
    as_of = r.opt_str("as_of") or as_of_default
    source = r.opt_str("source") or source_default
    if as_of is None or source is None:
        r.fail("needs as_of and source (on the model or its [providers] table)")
    long_context = None
    if "long_context" in r.raw:
        lc = r.table("long_context")
        lc.reject_unknown({"above_input_tokens", *_RATE_KEYS})
        long_context = LongContext(lc.int_at_least("above_input_tokens", 0), _rates(lc))
    energy_in = r.opt_number("energy_wh_per_1k_input_tokens")
    energy_out = r.opt_number("energy_wh_per_1k_output_tokens")
    has_energy = energy_in is not None or energy_out is not None
    return ModelPrice(
        provider=provider,
        model=model,
        family=r.opt_str("family") or model,
        tier=r.int_at_least("tier", 1, default=1),
        rates=_rates(r),
        as_of=as_of,
        source=source,
        aliases=tuple(r.str_list("aliases")),
        prefixes=tuple(r.str_list("prefixes")),
        long_context=long_context,
        energy_wh_per_1k_input_tokens=energy_in,
        energy_wh_per_1k_output_tokens=energy_out,
        energy_source=(r.opt_str("energy_source") or energy.source) if has_energy else None,
        energy_as_of=(r.opt_str("energy_as_of") or energy.as_of) if has_energy else None,
        energy_unknown=None if energy_out is not None
        else (r.opt_str("energy_unknown") or energy.unknown or _NO_ENERGY),
    )


def _rates(r: _Reader) -> Rates:
    rates = Rates(*(r.opt_number(key) for key in _RATE_KEYS))
    if rates.input_usd_per_mtok is None and rates.output_usd_per_mtok is None:
        r.fail("needs input_usd_per_mtok or output_usd_per_mtok")
    return rates


class _Reader:
    """Typed access to one TOML table; every error names the file and the key."""

    def __init__(self, origin: str, where: str, raw: object) -> None:
        if not isinstance(raw, Mapping):
            msg = f"{origin}: {where} must be a table, got {raw!r}"
            raise ConfigError(msg)
        self.origin, self.where, self.raw = origin, where, raw

    def fail(self, detail: str, key: str | None = None) -> NoReturn:
        msg = f"{self.origin}: {self.where}{'.' + key if key else ''} {detail}"
        raise ConfigError(msg)

    def reject_unknown(self, known: Iterable[str]) -> None:
        unknown = sorted(set(self.raw) - set(known))
        if unknown:
            self.fail("is not a known key", unknown[0])

    def table(self, key: str) -> _Reader:
        return _Reader(self.origin, f"{self.where}.{key}", self.raw.get(key))

    def req_str(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value:
            self.fail(f"must be a non-empty string, got {value!r}", key)
        return value

    def opt_str(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.req_str(key)

    def str_list(self, key: str) -> list[str]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"must be a list of non-empty strings, got {value!r}", key)
        return value

    def opt_number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.fail(f"must be a number >= 0, got {value!r}", key)
        return float(value)

    def int_at_least(self, key: str, low: int, *, default: int | None = None) -> int:
        value = self.raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self.fail(f"must be an integer >= {low}, got {value!r}", key)
        return value
