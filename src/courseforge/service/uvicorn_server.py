"""`courseforge serve`: the app on uvicorn, with the configured store and engine.

uvicorn's access log writes each request's path with its query string; a client that puts its
token there (`?token=...`, refused: only the header counts) would have it written to the log.
`QueryRedaction` rewrites the path of every access-log record first: the values of every query
parameter except our harmless ones (`status`, `limit`, `offset`) become `***`, a parameter
name that is not a plain word (it could be the token itself) is redacted whole, and anything
holding a configured token (a harmless parameter's value, a name, a path segment) is `***`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ..config import Settings
from ..engine import Engine
from ..errors import ConfigError
from ..storage import masked_url, open_store, storage_url
from ..telemetry import configure_tracing
from .app import create_app
from .tenants import tenant_tokens

__all__ = ["QueryRedaction", "build_server", "serve_forever"]

#: Query parameters whose values are logged as they are; every other value is redacted.
_LOGGED_AS_IS = frozenset({"status", "limit", "offset"})
#: A parameter name shown (with its value redacted): letters and underscores, as names are.
_NAME = re.compile(r"[A-Za-z_]{1,32}")


def redact_query(path: str, secrets: Collection[str] = ()) -> str:
    """`path` with the value of every query parameter not in `_LOGGED_AS_IS` replaced by ***,
    and every value, name or path segment that holds one of `secrets` (the configured tokens)
    replaced by *** whatever its parameter: `?status=<token>` is a token in the log otherwise."""
    base, sep, query = path.partition("?")
    if any(s and s in unquote(base) for s in secrets):
        base = "/".join("***" if any(s and s in unquote(p) for s in secrets) else p for p in base.split("/"))
    if not sep:
        return base
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return f"{base}?***"  # not key=value pairs: nothing in it is known to be harmless
    shown = []
    for key, value in pairs:
        if any(s and s in key for s in secrets) or not _NAME.fullmatch(key):
            shown.append("***")  # a name that is not a plain word may itself be the secret
        elif key in _LOGGED_AS_IS and not any(s and s in value for s in secrets):
            shown.append(f"{key}={quote(value)}")
        else:
            shown.append(f"{key}=***")
    return f"{base}?{'&'.join(shown)}"


class QueryRedaction(logging.Filter):
    """For uvicorn's access logger: its record's args are (client, method, path, http, status).
    `secrets`: the configured tokens, redacted wherever they appear in the path."""

    def __init__(self, secrets: Collection[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2], self.secrets), *args[3:])
        return True


def build_server(
    app: Any, *, host: str, port: int, log_level: str = "info", secrets: Collection[str] = ()
) -> Any:
    """A uvicorn Server for `app`, its access log redacted (uvicorn configures logging when the
    Config is built, so the filter goes on after that); `secrets`: the accepted tokens."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=True)
    access = logging.getLogger("uvicorn.access")
    existing = [f for f in access.filters if isinstance(f, QueryRedaction)]
    if existing:
        existing[0].secrets.update(secrets)
    else:
        access.addFilter(QueryRedaction(secrets))
    return uvicorn.Server(config)


def serve_forever(settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
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
    store = open_store(
        url, pool_size=settings.storage.pool_size, request_pool_size=settings.storage.request_pool_size
    )
    engine = Engine(settings)
    app = create_app(
        settings, store=store, engine=engine, tokens=tokens, close_on_shutdown=True, freeze_gc=True
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("courseforge.service").info(
        "serving on http://%s:%d, store %s, %d token(s) of %d tenant(s)",
        host,
        port,
        masked_url(url),
        len(tokens),
        len(set(tokens.values())),
    )
    # Traces only when the standard OTEL_* variables ask for them (docs/operations.md).
    stop_tracing = configure_tracing(say=logging.getLogger("courseforge.service").info)
    try:
        build_server(app, host=host, port=port, log_level=log_level, secrets=tokens.keys()).run()
    finally:
        stop_tracing()
