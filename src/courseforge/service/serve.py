"""`courseforge serve`: the app on uvicorn, with the configured store and engine."""

from __future__ import annotations

import logging

from ..config import Settings
from ..engine import Engine
from ..errors import ConfigError
from ..storage import masked_url, open_store, storage_url
from ..telemetry import configure_tracing
from . import tokens_from_env
from .app import create_app

__all__ = ["serve_forever"]


def serve_forever(settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    tokens = tokens_from_env(settings.service.api_tokens_env)
    if not tokens:
        raise ConfigError(
            "no API tokens",
            [(f"${settings.service.api_tokens_env}", "set it to one or more comma-separated bearer tokens")],
        )
    url = storage_url(settings.storage.url)
    store = open_store(url)
    engine = Engine(settings)
    app = create_app(settings, store=store, engine=engine, tokens=tokens, close_on_shutdown=True)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("courseforge.service").info(
        "serving on http://%s:%d, store %s, %d token(s)", host, port, masked_url(url), len(tokens)
    )
    # Traces only when the standard OTEL_* variables ask for them (docs/operations.md).
    stop_tracing = configure_tracing(say=logging.getLogger("courseforge.service").info)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True)
    finally:
        stop_tracing()
