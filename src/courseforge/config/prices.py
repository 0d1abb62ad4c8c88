"""Live prices and capabilities: a provider's `GET /models` list, kept as a dated prices file.

`courseforge models sync` writes one file per provider (`prices_path`); loading a config reads
it (`apply_prices`) and every model of that provider whose `name` it lists takes its prices,
context length and structured-output support from it. Nothing is fetched while a course is
generated. The file is what OpenRouter's `GET /api/v1/models` documents, per model: `pricing`
(USD per token, as strings: `prompt`, `completion`, `input_cache_read`, `input_cache_write`,
`internal_reasoning`), `context_length`, `top_provider.max_completion_tokens`,
`supported_parameters` (`structured_outputs`, `response_format`, `reasoning`, ...), and the
`:batch` variant's own entry (`<name>:batch`) where the provider lists one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from .settings import ModelSettings, Settings

__all__ = [
    "ModelPrices",
    "PricesFile",
    "apply_prices",
    "parse_models_list",
    "price_sources",
    "prices_path",
    "read_prices",
]

_MILLION = Decimal(1_000_000)


class ModelPrices(BaseModel):
    """One model of a provider's list, in USD per 1M tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_in_per_m: Decimal
    price_out_per_m: Decimal
    price_cache_read_per_m: Decimal | None = None
    price_cache_write_per_m: Decimal | None = None
    price_reasoning_per_m: Decimal | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    supported_parameters: list[str] = []
    #: The `:batch` variant's prices, where the provider lists one.
    batch_in_per_m: Decimal | None = None
    batch_out_per_m: Decimal | None = None


class PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    #: The endpoint the list came from (`{base_url}/models`).
    source: str
    #: When it was fetched (ISO 8601, UTC).
    fetched_at: datetime
    #: Provider model name (`openai/gpt-oss-20b`) -> its prices.
    models: dict[str, ModelPrices]


def prices_path(settings: Settings, provider: str) -> Path:
    """Where `models sync` keeps `provider`'s prices: its `prices_file`, else
    `<cache_dir>/prices/<provider>.json`."""
    configured = settings.providers[provider].prices_file
    if configured:
        return Path(configured).expanduser()
    return Path(settings.cache_dir).expanduser() / "prices" / f"{provider}.json"


def _per_m(value: object) -> Decimal | None:
    """OpenRouter's per-token price string as USD per 1M tokens (None: absent or negative,
    as `-1` marks a variable price)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        per_token = Decimal(str(value))
    except InvalidOperation:
        return None
    if not per_token.is_finite() or per_token < 0:
        return None
    return (per_token * _MILLION).normalize()


def parse_models_list(body: Mapping[str, Any]) -> dict[str, ModelPrices]:
    """OpenRouter's `GET /models` body (`{"data": [...]}`) as prices by model name; entries
    without a prompt and completion price are left out; a `<name>:batch` entry becomes its
    base model's batch prices."""
    data = body.get("data")
    if not isinstance(data, list):
        raise ValueError("the models list has no `data` array")
    out: dict[str, ModelPrices] = {}
    batch: dict[str, tuple[Decimal, Decimal]] = {}
    for entry in data:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        pricing = entry.get("pricing") if isinstance(entry.get("pricing"), Mapping) else {}
        assert isinstance(pricing, Mapping)
        prompt, completion = _per_m(pricing.get("prompt")), _per_m(pricing.get("completion"))
        if prompt is None or completion is None:
            continue
        name = str(entry["id"])
        if name.endswith(":batch"):
            batch[name.removesuffix(":batch")] = (prompt, completion)
            continue
        top = entry.get("top_provider") if isinstance(entry.get("top_provider"), Mapping) else {}
        assert isinstance(top, Mapping)
        params = entry.get("supported_parameters")
        out[name] = ModelPrices(
            price_in_per_m=prompt,
            price_out_per_m=completion,
            price_cache_read_per_m=_per_m(pricing.get("input_cache_read")),
            price_cache_write_per_m=_per_m(pricing.get("input_cache_write")),
            price_reasoning_per_m=_per_m(pricing.get("internal_reasoning")),
            context_length=_positive(entry.get("context_length")),
            max_completion_tokens=_positive(top.get("max_completion_tokens")),
            supported_parameters=[str(p) for p in params] if isinstance(params, list) else [],
        )
    for name, (prompt, completion) in batch.items():
        if name in out:
            out[name] = out[name].model_copy(update={"batch_in_per_m": prompt, "batch_out_per_m": completion})
    return out


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_prices(path: Path) -> PricesFile | None:
    """The prices file at `path`, or None when there is none."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError("prices file unreadable", [(str(path), str(exc))]) from exc
    try:
        return PricesFile.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(
            "prices file invalid; run `courseforge models sync` again", [(str(path), str(exc)[:300])]
        ) from exc


def _synced(ms: ModelSettings, p: ModelPrices, source: str) -> ModelSettings:
    update: dict[str, Any] = {
        "price_in_per_m": p.price_in_per_m,
        "price_out_per_m": p.price_out_per_m,
        "price_source": source,
    }
    if p.price_cache_read_per_m is not None:
        update["price_cache_read_per_m"] = p.price_cache_read_per_m
    if p.price_cache_write_per_m is not None:
        update["price_cache_write_per_m"] = p.price_cache_write_per_m
    if p.context_length is not None:
        update["context_window"] = max(512, p.context_length)
    if (
        p.supported_parameters
        and ms.output_mode == "json_schema"
        and "structured_outputs" not in p.supported_parameters
    ):
        # No structured outputs at this provider: start in json_object mode (or prompt-only).
        update["output_mode"] = "json_object" if "response_format" in p.supported_parameters else "prompt"
    if p.batch_in_per_m is not None and p.batch_out_per_m is not None and p.price_out_per_m > 0:
        share = max(
            p.batch_in_per_m / p.price_in_per_m if p.price_in_per_m else Decimal(0),
            p.batch_out_per_m / p.price_out_per_m,
        )
        # Batch only where the :batch variant is cheaper (docs/caching.md); never an assumed half.
        update["batch_price_multiplier"] = share.quantize(Decimal("0.0001")) if 0 < share < 1 else None
    else:
        update["batch_price_multiplier"] = None
    return ms.model_copy(update=update)


def apply_prices(settings: Settings) -> Settings:
    """`settings` with every model whose provider has a prices file priced from it."""
    files: dict[str, PricesFile | None] = {}
    models = dict(settings.models)
    for model_id, ms in settings.models.items():
        if ms.provider not in files:
            provider = settings.providers.get(ms.provider)
            files[ms.provider] = (
                read_prices(prices_path(settings, ms.provider))
                if provider and provider.kind == "openai"
                else None
            )
        synced = files[ms.provider]
        if synced is None or ms.name not in synced.models:
            continue
        source = f"{synced.source} at {synced.fetched_at.isoformat(timespec='seconds')}"
        models[model_id] = _synced(ms, synced.models[ms.name], source)
    if models == dict(settings.models):
        return settings
    return settings.model_copy(update={"models": models})


def price_sources(settings: Settings, now: datetime | None = None) -> dict[str, str]:
    """Model id -> where its prices come from and how old they are, for `config show`."""
    now = now or datetime.now(UTC)
    out: dict[str, str] = {}
    for model_id, ms in settings.models.items():
        if not ms.price_source:
            out[model_id] = "the config's own table (no prices file: run `courseforge models sync`)"
            continue
        stamp = ms.price_source.rsplit(" at ", 1)[-1]
        try:
            age = now - datetime.fromisoformat(stamp)
            days = age.total_seconds() / 86400
            out[model_id] = f"{ms.price_source} ({days:.1f} days old)"
        except ValueError:
            out[model_id] = ms.price_source
    return out
