"""`/docs`: Swagger UI served from this process, never from a CDN.

The assets come from the `swagger-ui-bundle` package (the `service` extra), mounted at
`/docs/assets`. Without that package `/docs` is not served at all (404): the OpenAPI document
stays at `/openapi.json`. ReDoc (FastAPI's `/redoc`, which loads from a CDN) is off.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["mount_docs", "swagger_assets"]


def swagger_assets() -> Path | None:
    """The directory of Swagger UI's files, or None when the package is not installed."""
    try:
        vendor = Path(str(importlib.resources.files("swagger_ui_bundle"))) / "vendor"
    except ModuleNotFoundError:
        return None
    found = sorted(vendor.glob("swagger-ui-*/swagger-ui-bundle.js"))
    return found[-1].parent if found else None


def mount_docs(app: FastAPI) -> bool:
    """Serve Swagger UI at /docs from local assets; False (and no /docs) without them."""
    assets = swagger_assets()
    if assets is None:
        return False
    app.mount("/docs/assets", StaticFiles(directory=assets), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    return True
