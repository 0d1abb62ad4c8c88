"""`courseforge serve`: the app on uvicorn, with the configured store and engine."""

from __future__ import annotations

import logging

from ..config import Settings
from ..engine import Engine
from ..errors import ConfigError
from ..storage import masked_url, open_store, storage_url
from .app import create_app
from .tenants import tenant_tokens

__all__ = ["serve_forever"]


def serve_forever(settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    tokens = tenant_tokens(settings)
    if not tokens:
        raise ConfigError(
            "no API tokens",
            [
                (
                    f"${settings.service.api_tokens_env}",
                    "set it (or a tenant's service.tenants.ID.tokens_env) to one or more comma-separated "
                    "bearer tokens",
                )
            ],
        )
    url = storage_url(settings.storage.url)
    store = open_store(url)
    engine = Engine(settings)
    app = create_app(settings, store=store, engine=engine, tokens=tokens, close_on_shutdown=True)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("courseforge.service").info(
        "serving on http://%s:%d, store %s, %d token(s) of %d tenant(s)",
        host,
        port,
        masked_url(url),
        len(tokens),
        len(set(tokens.values())),
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True)
