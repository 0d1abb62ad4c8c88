"""Eval configs: a config YAML, optionally `extends:` a bundled profile or another file, with an
`eval:` block of regression tolerances that is not part of the generation settings.

    # evals/configs/always-premium.yaml
    extends: hosted                 # bundled profile name, or a path relative to this file
    gates: {embedding_model: hashing}
    routing:
      tiers: {cheap: qwen3-max, mid: qwen3-max, premium: qwen3-max}
    eval:
      tolerances: {cost_per_course: 0.10, similarity_mean: 0.02}

Mappings merge key by key (recursively); anything else (lists, scalars) replaces the base's
value. The result is validated by the same `config.parse_config` as `--config`, so an eval
config is an ordinary config once merged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import BUNDLED_PROFILES, Settings
from ..config.loader import bundled_text, settings_from, yaml_mapping
from ..engine import without_cache
from ..errors import ConfigError, UserError
from ..files import MAX_SMALL_FILE_BYTES, read_text_limited

__all__ = ["EvalConfig", "deep_merge", "load_eval_config"]

#: Nesting of `extends:` allowed (a loop is reported before this is reached).
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class EvalConfig:
    #: The name the eval reports it under (file stem or profile name, made unique by the CLI).
    name: str
    settings: Settings
    #: Where it came from: a path or "bundled:<profile>".
    source: str
    #: sha256 of the merged settings (first 10 hex digits): part of every job id, so a changed
    #: config never reuses another config's finished jobs.
    digest: str
    #: Figure -> allowed worsening before `--fail-on-regression` trips (see evals.compare).
    tolerances: dict[str, float] = field(default_factory=dict)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(ref: str, relative_to: Path | None) -> tuple[dict[str, Any], str, Path | None]:
    """(data, source, directory) of a profile name or a YAML path."""
    path = Path(ref)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if ref in BUNDLED_PROFILES and not path.exists():
        return yaml_mapping(bundled_text(ref), ref), f"bundled:{ref}", None
    try:
        text = read_text_limited(path, MAX_SMALL_FILE_BYTES, what="config")
    except UserError as exc:
        reason = "; ".join(r for _, r in exc.problems)
        raise ConfigError(
            "config not found", [(str(path), f"{reason}; bundled: {', '.join(BUNDLED_PROFILES)}")]
        ) from exc
    source, directory = str(path), path.parent
    data = yaml_mapping(text, source)
    return data, source, directory


def _resolve(ref: str, relative_to: Path | None, seen: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    data, source, directory = _read(ref, relative_to)
    if source in seen or len(seen) > _MAX_DEPTH:
        raise ConfigError("config extends itself", [("extends", " -> ".join([*seen, source]))])
    parent = data.pop("extends", None)
    if parent is None:
        return data, source
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"config {source} is invalid", [("extends", "must be a profile name or a path")])
    base, _ = _resolve(parent, directory, (*seen, source))
    return deep_merge(base, data), source


def _tolerances(block: object, source: str) -> dict[str, float]:
    if block is None:
        return {}
    tol = block.get("tolerances", {}) if isinstance(block, dict) else None
    unknown = sorted(set(block) - {"tolerances"}) if isinstance(block, dict) else []
    if not isinstance(tol, dict) or unknown:
        raise ConfigError(
            f"config {source} is invalid",
            [
                (
                    "eval",
                    f"only `tolerances: {{figure: number}}` is allowed (got {unknown or type(tol).__name__})",
                )
            ],
        )
    out: dict[str, float] = {}
    for name, value in tol.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(
                f"config {source} is invalid", [(f"eval.tolerances.{name}", "must be a number >= 0")]
            )
        out[str(name)] = float(value)
    return out


def load_eval_config(
    ref: str, env: Mapping[str, str] | None = None, *, name: str | None = None
) -> EvalConfig:
    """A bundled profile name or a config path (with `extends:` and `eval:` resolved).

    The response cache is off in every eval and shadow run: an eval measures what a course
    costs cold, and a repeat (or a second config with the same models) served from the cache
    would report $0 for work that was never redone."""
    env = os.environ if env is None else env
    data, source = _resolve(ref, None, ())
    tolerances = _tolerances(data.pop("eval", None), source)
    settings = without_cache(settings_from(data, source, env))
    dumped = settings.model_dump(mode="json")
    for provider in dumped["providers"].values():  # where calls go is not what they ask
        provider.pop("base_url", None)
    canonical = json.dumps(dumped, sort_keys=True, default=str)
    stem = Path(ref).stem if not source.startswith("bundled:") else ref
    return EvalConfig(
        name=name or stem,
        settings=settings,
        source=source,
        digest=hashlib.sha256(canonical.encode()).hexdigest()[:10],
        tolerances=tolerances,
    )
