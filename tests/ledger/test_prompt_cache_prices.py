"""Cached prompt tokens at the model's cache-read price; the provider's own cost still wins."""

from __future__ import annotations

from decimal import Decimal

from courseforge.config import ModelSettings
from courseforge.ledger import price_of, prompt_cache_saving
from courseforge.providers import Usage

MODEL = ModelSettings(
    provider="p",
    name="m",
    price_in_per_m=Decimal("1.00"),
    price_out_per_m=Decimal("4.00"),
    price_cache_read_per_m=Decimal("0.25"),
    price_cache_write_per_m=Decimal("1.25"),
)


def test_cached_and_written_tokens_at_their_prices() -> None:
    # 1,000,000 prompt tokens: 600k read from the cache, 100k written, 300k plain; 1M out
    usage = Usage(1_000_000, 1_000_000, cached_tokens=600_000, cache_write_tokens=100_000)
    cost, source = price_of(MODEL, usage)
    assert source == "price_table"
    assert cost == Decimal("0.30") + Decimal("0.15") + Decimal("0.125") + Decimal("4.00")
    # saving: 600k x (1.00 - 0.25) - 100k x (1.25 - 1.00), per million
    assert prompt_cache_saving(MODEL, usage) == Decimal("0.45") - Decimal("0.025")


def test_without_cache_prices_cached_tokens_cost_the_input_price() -> None:
    plain = MODEL.model_copy(update={"price_cache_read_per_m": None, "price_cache_write_per_m": None})
    usage = Usage(1_000_000, 0, cached_tokens=500_000)
    assert price_of(plain, usage)[0] == Decimal("1.00")
    assert prompt_cache_saving(plain, usage) == 0


def test_the_providers_cost_wins() -> None:
    usage = Usage(1000, 10, cached_tokens=900, cost_usd=Decimal("0.000123"))
    assert price_of(MODEL, usage) == (Decimal("0.000123"), "provider")


def test_cached_tokens_beyond_the_prompt_are_clamped() -> None:
    usage = Usage(100, 0, cached_tokens=500)
    assert price_of(MODEL, usage)[0] == Decimal(100) * Decimal("0.25") / Decimal(1_000_000)
