"""`courseforge models sync`: a provider's live prices and capabilities into its prices file.

`GET {base_url}/models` (OpenRouter's `/api/v1/models`), with the provider's key; every model
the provider lists is kept (the configured ones are summarised), written atomically to
`config.prices.prices_path` with the time it was fetched. Loading a config reads it; nothing is
fetched while a course is generated unless `generate --sync-prices` asks (`sync_for_run`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import Settings, api_key_for, load_config
from ..config.prices import PricesFile, apply_prices, parse_models_list, prices_path
from ..errors import ProviderError, UserError
from ..providers.openai_compat import OpenAICompatModel
from ._common import EXIT_FAILED, ConfigOpt, app, err, fail_user, write_atomic

__all__ = ["fetch_prices", "models_app", "sync", "sync_for_run"]

models_app = typer.Typer(no_args_is_help=True, help="Providers' model lists: live prices and capabilities.")
app.add_typer(models_app, name="models")


async def _fetch(base_url: str, key: str | None, headers: dict[str, str]) -> dict[str, Any]:
    client = OpenAICompatModel(
        model_id="models-sync", model_name="", base_url=base_url, api_key=key, headers=headers
    )
    try:
        return await client.request_json("GET", "/models")
    finally:
        await client.aclose()


async def fetch_prices(settings: Settings, name: str) -> tuple[PricesFile, Path]:
    """Provider `name`'s `/models` list, written atomically to its prices file (and returned
    with the file's path). Raises `ProviderError` (the provider refused or failed) or
    `ValueError` (the body is not a models list)."""
    p = settings.providers[name]
    body = await _fetch(p.base_url, api_key_for(settings, name), dict(p.headers))
    fetched = PricesFile(
        provider=name,
        source=f"{p.base_url}/models",
        fetched_at=datetime.now(UTC),
        models=parse_models_list(body),
    )
    path = prices_path(settings, name)
    write_atomic(path, json.dumps(fetched.model_dump(mode="json"), indent=2) + "\n")
    return fetched, path


async def sync_for_run(settings: Settings, say: Callable[[str], None]) -> Settings:
    """`generate --sync-prices`: every OpenAI-compatible provider the config's models use,
    fetched as `models sync` fetches it, and `settings` priced from the fresh files. Only ever
    called when asked; a failure is a `UserError` naming the provider (nothing was sent to a
    model yet)."""
    used = sorted({ms.provider for ms in settings.models.values()})
    for name in used:
        provider = settings.providers.get(name)
        if provider is None or provider.kind != "openai":
            continue
        try:
            fetched, path = await fetch_prices(settings, name)
        except (ProviderError, ValueError) as exc:
            raise UserError(
                "prices could not be synced; nothing was sent to a model",
                [("--sync-prices", f"{name}: {provider.base_url}/models: {exc}")],
            ) from exc
        mine = sum(1 for ms in settings.models.values() if ms.provider == name and ms.name in fetched.models)
        say(
            f"prices: {name}: {len(fetched.models)} models from {fetched.source} -> {path} ({mine} configured)"
        )
    return apply_prices(settings)


@models_app.command("sync")
def sync(
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider", help="A key of the config's providers (default: each OpenAI-compatible one)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch each provider's /models list into its dated prices file (docs/providers.md)."""
    try:
        loaded = load_config(config)
    except UserError as exc:
        raise fail_user(exc) from exc
    settings = loaded.settings
    names = [provider] if provider else [n for n, p in settings.providers.items() if p.kind == "openai"]
    for name in names:
        if name not in settings.providers or settings.providers[name].kind != "openai":
            known = ", ".join(n for n, p in settings.providers.items() if p.kind == "openai") or "none"
            raise fail_user(
                UserError(
                    "unknown provider", [("--provider", f"{name!r}: OpenAI-compatible providers: {known}")]
                )
            )
    for name in names:
        p = settings.providers[name]
        try:
            fetched, path = asyncio.run(fetch_prices(settings, name))
        except (ProviderError, ValueError) as exc:
            err.print(f"[red]error:[/red] {name}: could not read {p.base_url}/models: {exc}")
            raise typer.Exit(EXIT_FAILED) from exc
        listed = fetched.models
        typer.echo(f"{name}: {len(listed)} models from {fetched.source} -> {path}")
        for model_id, ms in settings.models.items():
            if ms.provider != name:
                continue
            got = listed.get(ms.name)
            if got is None:
                typer.echo(f"  {model_id} ({ms.name}): not listed; its config prices stay")
                continue
            batch = (
                f", :batch {got.batch_in_per_m}/{got.batch_out_per_m}"
                if got.batch_out_per_m is not None
                else ", no :batch variant"
            )
            structured = "structured_outputs" in got.supported_parameters
            typer.echo(
                f"  {model_id} ({ms.name}): ${got.price_in_per_m}/${got.price_out_per_m} per 1M"
                f" (config ${ms.price_in_per_m}/${ms.price_out_per_m}){batch}"
                f"{'' if structured or not got.supported_parameters else ', no structured_outputs: json_object mode'}"
            )
