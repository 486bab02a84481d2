"""The analysis window over a real DuckDB store: span series priced at list prices."""

import numpy as np
from strata.agent.model import SpanRecord
from strata.agent.store.db import DuckDBStore
from strata.agent.store.window import Window

from tests.agent.store.rows import MIN, T0, span, write

RATES = {("openai", "gpt-4o"): (2.5, 10.0), ("openai", "gpt-4o-mini"): (0.15, 0.6)}


def _chat(span_id: str, start_s: float, model: str, tokens: tuple[int, int]) -> SpanRecord:
    return span(span_id, start_s, start_s + 1, operation="chat", request_model=model,
                provider="openai", input_tokens=tokens[0], output_tokens=tokens[1])


def test_span_series_priced_per_model_and_named_by_the_most_used(store: DuckDBStore) -> None:
    write(store, [
        _chat("a", 1, "gpt-4o", (1000, 100)),
        _chat("b", 2, "gpt-4o-mini", (2000, 200)),
        _chat("c", 3, "gpt-4o-mini", (1000, 0)),
        _chat("d", 61, "gpt-4o", (100, 10)),
        _chat("e", 62, "gpt-4o", (100, 10)),
        _chat("f", 121, "local-llama", (500, 50)),  # no list price: its bucket stays unpriced
        _chat("g", 122, "gpt-4o", (500, 50)),
    ])
    window = Window(store, start_ns=T0, end_ns=T0 + 3 * MIN,
                    price=lambda provider, model: RATES.get((provider or "", model or "")))
    (chat,) = window.span_series()
    expected = [(1000 * 2.5 + 100 * 10.0 + (2000 + 1000) * 0.15 + 200 * 0.6) / 1e6,
                2 * (100 * 2.5 + 10 * 10.0) / 1e6, np.nan]
    np.testing.assert_allclose(chat.cost_usd, expected, rtol=1e-12)
    # gpt-4o: 4 spans against gpt-4o-mini's 2 and local-llama's 1
    assert (chat.model, chat.provider) == ("gpt-4o", "openai")


def test_a_tie_names_the_first_model_in_sorted_order(store: DuckDBStore) -> None:
    write(store, [_chat("a", 1, "gpt-4o-mini", (10, 1)), _chat("b", 2, "gpt-4o", (10, 1))])
    window = Window(store, start_ns=T0, end_ns=T0 + MIN, price=lambda p, m: None)
    (chat,) = window.span_series()
    assert chat.model == "gpt-4o"
    assert np.isnan(chat.cost_usd).all()  # nothing priced, nothing stored
