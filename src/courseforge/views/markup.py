"""HTML building blocks of the views: the page shell and `views.css`. Escaping and Markdown
come from `courseforge.safehtml`, the one renderer the dashboard, the exports and the eval page
share (re-exported here for the views' callers)."""

from __future__ import annotations

from importlib import resources

from ..safehtml import esc, markdown_html

__all__ = ["document", "esc", "markdown_html", "stylesheet"]


def stylesheet() -> str:
    """The views' CSS (shipped in the package), for pages that inline it."""
    return resources.files(__package__).joinpath("views.css").read_text("utf-8")


def document(title: str, body: str, *, head: str = "", inline_css: bool = False) -> str:
    """A whole HTML page. `head`: extra <head> markup (links to stylesheets, scripts)."""
    css = f"<style>\n{stylesheet()}</style>" if inline_css else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n{css}{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
