"""Tests for analytics.pricing: the dated price table, lookups, and request cost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from strata.agent.errors import ConfigError
from strata.agent.model import Layer, SpanRecord
from strata.analytics.pricing import (
    ModelPrice,
    PriceTable,
    TokenUsage,
    cost_of,
    gpu_time_usd,
    usage_of,
)


@pytest.fixture(name="table", scope="module")
def fixture_table() -> PriceTable:
    return PriceTable.packaged()


def _price(table: PriceTable, provider: str, model: str) -> ModelPrice:
    found = table.lookup(provider, model)
    assert found is not None, f"{provider}/{model} not in the table"
    return found


def test_cached_tokens_are_billed_once_at_the_cached_rate(table: PriceTable) -> None:
    """10k input incl. 4k cache reads: 6k at $2.50, 4k at $1.25, 1k output at $10 per 1M."""
    cost = cost_of(_price(table, "openai", "gpt-4o"), TokenUsage(10_000, 1_000, 4_000))
    assert cost is not None
    assert cost.input_usd == pytest.approx(0.015)
    assert cost.cached_input_usd == pytest.approx(0.005)
    assert cost.output_usd == pytest.approx(0.010)
    assert cost.usd == pytest.approx(0.030)  # billing cache reads twice would give 0.040


def test_anthropic_cache_writes_bill_at_the_write_rate(table: PriceTable) -> None:
    """5k input = 1k fresh + 3k read + 1k written; 500 output on Sonnet 4.5."""
    price = _price(table, "anthropic", "claude-sonnet-4-5-20250929")
    cost = cost_of(price, TokenUsage(5_000, 500, cache_read_tokens=3_000, cache_write_tokens=1_000))
    assert cost is not None
    # 1000*3 + 3000*0.30 + 1000*3.75 + 500*15, per 1M
    assert cost.usd == pytest.approx(0.003 + 0.0009 + 0.00375 + 0.0075)


def test_long_context_rates_apply_to_the_whole_request(table: PriceTable) -> None:
    """Gemini 2.5 Pro bills every token at the long rate above 200k input tokens."""
    price = _price(table, "google", "gemini-2.5-pro")
    long = cost_of(price, TokenUsage(300_000, 1_000))
    short = cost_of(price, TokenUsage(200_000, 1_000))
    assert long is not None
    assert short is not None
    assert long.usd == pytest.approx(300_000 * 2.50 / 1e6 + 1_000 * 15.00 / 1e6)  # 0.765
    assert short.usd == pytest.approx(200_000 * 1.25 / 1e6 + 1_000 * 10.00 / 1e6)  # 0.26


def test_missing_counts_leave_the_request_unpriced(table: PriceTable) -> None:
    """A chat span without output tokens, or with more cache reads than input, is unpriced."""
    price = _price(table, "openai", "gpt-4o")
    assert cost_of(price, TokenUsage(1_000, None)) is None
    assert cost_of(price, TokenUsage(None, None)) is None
    assert cost_of(price, TokenUsage(1_000, 10, cache_read_tokens=2_000)) is None


def test_embeddings_bill_input_only(table: PriceTable) -> None:
    """An embedding span reports no output; 1000 tokens at $0.02 per 1M."""
    cost = cost_of(_price(table, "openai", "text-embedding-3-small"), TokenUsage(1_000, None))
    assert cost is not None
    assert cost.usd == pytest.approx(0.00002)
    assert cost_of(_price(table, "openai", "text-embedding-3-small"), TokenUsage(10, 5)) is None


def test_cache_reads_without_a_published_discount_bill_at_the_input_rate(
    table: PriceTable,
) -> None:
    """Qwen-Max lists no cached rate: all 1000 input tokens bill at $1.60 per 1M."""
    cost = cost_of(_price(table, "qwen", "qwen-max"), TokenUsage(1_000, 0, cache_read_tokens=400))
    assert cost is not None
    assert cost.usd == pytest.approx(0.0016)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("openai", "GPT-4O", "gpt-4o"),
        ("openai", "gpt-5-chat-latest", "gpt-5"),
        (None, "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-20250514", "claude-opus-4-0"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gcp.gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("openai", "deepseek-chat", "deepseek-chat"),
        ("mistral_ai", "codestral-latest", "codestral-2501"),
    ],
)
def test_lookup_resolves_exact_alias_and_prefix(
    table: PriceTable, provider: str | None, model: str, expected: str
) -> None:
    """Exact ids, aliases, provider aliases and dated snapshots resolve to their entry."""
    assert _price(table, provider or "", model).model == expected


@pytest.mark.parametrize("model", ["gpt-5.2", "llama-3.1-8b-instruct", "mistral-large-latest", ""])
def test_unknown_models_are_unpriced(table: PriceTable, model: str) -> None:
    """A model not in the table, or sharing only a stem with one, has no price."""
    assert table.lookup("openai", model) is None


def test_usage_of_reads_cache_writes_from_the_otel_attribute() -> None:
    """Cache-creation tokens come from gen_ai.usage.cache_creation.input_tokens."""
    span = SpanRecord(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name="chat claude-sonnet-4-5",
        kind="client",
        start_unix_nano=0,
        end_unix_nano=1,
        status="ok",
        service="rag",
        layer=Layer.MODEL,
        input_tokens=5_000,
        output_tokens=500,
        cache_read_tokens=3_000,
        attributes={"gen_ai.usage.cache_creation.input_tokens": 1_000},
    )
    assert usage_of(span) == TokenUsage(5_000, 500, 3_000, 1_000)


def test_cheaper_in_family_lists_lower_tiers(table: PriceTable) -> None:
    """GPT-5's cheaper siblings are nano then mini; the smallest has none."""
    gpt5 = _price(table, "openai", "gpt-5")
    assert [m.model for m in table.cheaper_in_family(gpt5)] == ["gpt-5-nano", "gpt-5-mini"]
    assert table.cheaper_in_family(_price(table, "openai", "gpt-5-nano")) == ()


def test_packaged_table_is_dated_and_sourced(table: PriceTable) -> None:
    """Every built-in price carries an ISO as-of date, an https source and a family."""
    assert len(table.models) >= 30
    for entry in table.models:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry.as_of), entry.model
        assert entry.source.startswith("https://"), entry.model
        if entry.energy_wh_per_1k_output_tokens is not None:
            assert entry.energy_source is not None
            assert "EcoLogits" in entry.energy_source


def test_user_file_overrides_and_extends(tmp_path: Path) -> None:
    """User entries replace the built-in one with the same id and add new models."""
    path = tmp_path / "prices.toml"
    path.write_text(
        """
[providers.acme]
source = "https://acme.example/prices"
as_of = "2026-01-01"
aliases = ["acme-ai"]

[[models]]
provider = "openai"
id = "gpt-4o"
source = "https://contract.example"
as_of = "2026-02-01"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 8.0

[[models]]
provider = "acme"
id = "acme-1"
prefixes = ["acme-1-"]
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
""",
        encoding="utf-8",
    )
    table = PriceTable.load(path)
    gpt4o = _price(table, "openai", "gpt-4o")
    assert (gpt4o.rates.input_usd_per_mtok, gpt4o.rates.output_usd_per_mtok) == (2.0, 8.0)
    assert gpt4o.rates.cached_input_usd_per_mtok is None  # the whole entry was replaced
    # the user's entry drops the built-in aliases and prefixes of gpt-4o
    assert table.lookup("openai", "gpt-4o-2024-08-06") is None
    assert _price(table, "acme-ai", "acme-1-preview").model == "acme-1"
    assert _price(table, "openai", "gpt-4o-mini").rates.input_usd_per_mtok == 0.15


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[[models]\nprovider=", "not valid TOML"),
        (
            '[[models]]\nprovider="openai"\nid="x"\nsource="https://x"\nas_of="2026-01-01"\n'
            "input_usd_per_mtok = -1",
            "input_usd_per_mtok",
        ),
        (
            '[[models]]\nprovider="openai"\nid="x"\nsource="https://x"\nas_of="2026-01-01"\n'
            'input_usd_per_mtok = "cheap"',
            "input_usd_per_mtok",
        ),
        (
            '[[models]]\nprovider="openai"\nid="x"\nsource="https://x"\nas_of="2026-01-01"\n'
            "input_usd_per_mtoks = 1.0",
            "input_usd_per_mtoks",
        ),
        ('[[models]]\nprovider="zz"\nid="x"\ninput_usd_per_mtok = 1.0', "as_of and source"),
        ('[[models]]\nid="x"', "provider"),
        ("models = 3", "array of tables"),
    ],
)
def test_malformed_user_file_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    """A bad price file raises ConfigError naming the file and the offending key."""
    path = tmp_path / "bad-prices.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    assert str(path) in str(info.value)
    assert key in str(info.value)


def test_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    """A configured price file that does not exist fails fast, naming it."""
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        PriceTable.load(tmp_path / "nope.toml")


def test_gpu_time_cost() -> None:
    """50 GPU-seconds at $3.60 per GPU-hour cost $0.05."""
    assert gpu_time_usd(gpu_hour_usd=3.6, gpu_seconds=50) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="gpu_hour_usd"):
        gpu_time_usd(gpu_hour_usd=-1, gpu_seconds=1)
