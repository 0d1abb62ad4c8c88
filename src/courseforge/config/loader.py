"""Finds, reads and validates the config. Secrets come from the environment only.

Which config: `--config` (a path or a bundled profile name), else `$COURSEFORGE_CONFIG`, else
the bundled `hosted` profile when `OPENROUTER_API_KEY` is set and `offline` when it is not.
`OPENROUTER_BASE_URL` re-points the `openrouter` provider (a proxy, a gateway, the simulator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError, UserError
from ..files import MAX_SMALL_FILE_BYTES, read_text_limited
from .prices import apply_prices
from .settings import Settings

__all__ = [
    "BUNDLED_PROFILES",
    "LoadedConfig",
    "api_key_for",
    "bundled_text",
    "load_config",
    "masked",
    "parse_config",
    "settings_from",
    "yaml_mapping",
]

BUNDLED_PROFILES = ("hosted", "offline", "offline-cascade")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    #: Where it came from: a file path or "bundled:<profile>".
    source: str
    #: Why this one was chosen, said once by the CLI.
    reason: str


def _bundled_text(name: str) -> str:
    return resources.files("courseforge.config").joinpath(f"profiles/{name}.yaml").read_text("utf-8")


def _validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in err["loc"]) or "(root)", err["msg"]) for err in exc.errors()]


def yaml_mapping(text: str, source: str) -> dict[str, Any]:
    """A config file's YAML as a mapping (a ConfigError naming `source` otherwise)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {source} is not valid YAML", [("(file)", str(exc))]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {source} must be a mapping", [("(root)", "not a mapping")])
    return data


def bundled_text(name: str) -> str:
    """The YAML of a bundled profile."""
    return _bundled_text(name)


def parse_config(text: str, source: str, env: Mapping[str, str]) -> Settings:
    return settings_from(yaml_mapping(text, source), source, env)


def settings_from(data: dict[str, Any], source: str, env: Mapping[str, str]) -> Settings:
    """Validated settings from a config mapping (`OPENROUTER_BASE_URL` applied)."""
    base_url = env.get("OPENROUTER_BASE_URL")
    providers = data.get("providers")
    if base_url and isinstance(providers, dict) and isinstance(providers.get("openrouter"), dict):
        providers["openrouter"]["base_url"] = base_url
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {source} is invalid", _validation_problems(exc)) from exc
    # The synced prices files (`courseforge models sync`), where there are any.
    return apply_prices(settings)


def load_config(
    config: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> LoadedConfig:
    env = os.environ if env is None else env
    chosen = str(config) if config is not None else env.get("COURSEFORGE_CONFIG") or None
    if chosen is None:
        if env.get("OPENROUTER_API_KEY"):
            name, reason = "hosted", "OPENROUTER_API_KEY is set: using the hosted OpenRouter profile"
        else:
            name = "offline"
            reason = "OPENROUTER_API_KEY is not set: using the offline profile (local model, no cost)"
        return LoadedConfig(parse_config(_bundled_text(name), name, env), f"bundled:{name}", reason)
    if chosen in BUNDLED_PROFILES and not Path(chosen).exists():
        text = _bundled_text(chosen)
        return LoadedConfig(parse_config(text, chosen, env), f"bundled:{chosen}", f"profile {chosen}")
    path = Path(chosen)
    if not path.exists():
        raise ConfigError("config not found", [(str(path), "no such file")])
    try:
        text = read_text_limited(path, MAX_SMALL_FILE_BYTES, what="config")
    except UserError as exc:
        raise ConfigError("config unreadable", exc.problems) from exc
    return LoadedConfig(parse_config(text, str(path), env), str(path), f"config file {path}")


def api_key_for(settings: Settings, provider: str, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    var = settings.providers[provider].api_key_env
    return env.get(var) if var else None


def _mask(value: str) -> str:
    return value[:4] + "…" + "*" * 4 if len(value) > 8 else "****"


def masked(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective config as plain data, with every secret masked and key presence shown."""
    env = os.environ if env is None else env
    data: dict[str, Any] = settings.model_dump(mode="json")
    for name, provider in data["providers"].items():
        var = provider.get("api_key_env")
        if var:
            key = env.get(var)
            provider["api_key"] = _mask(key) if key else f"(unset: ${var})"
        for header, value in list(provider.get("headers", {}).items()):
            if header.lower() in ("authorization", "x-api-key", "api-key"):
                provider["headers"][header] = _mask(value)
        data["providers"][name] = provider
    data["cache_dir"] = str(Path(settings.cache_dir).expanduser())
    if isinstance(data.get("storage"), dict):  # a database password in the URL is a secret too
        data["storage"]["url"] = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:****@", str(data["storage"]["url"]))
    return data
