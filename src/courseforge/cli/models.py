"""`courseforge models sync`: a provider's live prices and capabilities into its prices file.

`GET {base_url}/models` (OpenRouter's `/api/v1/models`), with the provider's key; every model
the provider lists is kept (the configured ones are summarised), written atomically to
`config.prices.prices_path` with the time it was fetched. Loading a config reads it; nothing is
fetched while a course is generated.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ..config import api_key_for, load_config
from ..config.prices import PricesFile, parse_models_list, prices_path
from ..errors import ProviderError, UserError
from ..providers.openai_compat import OpenAICompatModel
from ._common import EXIT_FAILED, ConfigOpt, app, err, fail_user, write_atomic

__all__ = ["models_app", "sync"]

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
            body = asyncio.run(_fetch(p.base_url, api_key_for(settings, name), dict(p.headers)))
            listed = parse_models_list(body)
        except (ProviderError, ValueError) as exc:
            err.print(f"[red]error:[/red] {name}: could not read {p.base_url}/models: {exc}")
            raise typer.Exit(EXIT_FAILED) from exc
        fetched = PricesFile(
            provider=name, source=f"{p.base_url}/models", fetched_at=datetime.now(UTC), models=listed
        )
        path = prices_path(settings, name)
        write_atomic(path, json.dumps(fetched.model_dump(mode="json"), indent=2) + "\n")
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
