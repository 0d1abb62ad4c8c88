"""`courseforge models sync` against a `/models` list written from OpenRouter's documented
fields (`GET /api/v1/models`: `id`, `pricing` per token as strings, `context_length`,
`top_provider`, `supported_parameters`, `:batch` variants), served on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from typer.testing import CliRunner

from courseforge.cli import app
from courseforge.config import load_config
from courseforge.config.prices import parse_models_list, price_sources
from courseforge.testing._openai_wire import LocalOpenAIServer
from engine_helpers import in_thread

runner = CliRunner()


def entry(name: str, prompt: str, completion: str, params: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": name,
        "canonical_slug": name,
        "name": name,
        "created": 1754000000,
        "context_length": extra.pop("context_length", 131072),
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"], "tokenizer": "Other"},
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0", **extra},
        "top_provider": {"context_length": 131072, "max_completion_tokens": 32768, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": params,
    }


MODELS = {
    "data": [
        # No structured_outputs at any provider: it must start in json_object mode.
        entry(
            "openai/gpt-oss-20b", "0.00000004", "0.00000015", ["max_tokens", "reasoning", "response_format"]
        ),
        # Its :batch variant costs more than the normal one: it must not go to batch.
        entry("openai/gpt-oss-20b:batch", "0.00000005", "0.0000002", ["max_tokens"]),
        entry(
            "qwen/qwen3-max",
            "0.0000012",
            "0.000006",
            ["max_tokens", "response_format", "structured_outputs"],
            input_cache_read="0.00000024",
            input_cache_write="0.0000015",
            context_length=262144,
        ),
        entry("qwen/qwen3-max:batch", "0.0000006", "0.000003", ["max_tokens"]),
        entry("some/other-model", "-1", "-1", []),  # a variable price: left out
    ]
}


class ModelsServer(LocalOpenAIServer):
    def _app(self) -> web.Application:
        app = web.Application()

        async def models(request: web.Request) -> web.StreamResponse:
            self.auth = request.headers.get("Authorization")
            return web.json_response(MODELS)

        app.router.add_get("/v1/models", models)
        return app


def config_file(tmp_path: Path) -> Path:
    text = (Path(__file__).resolve().parents[2] / "src/courseforge/config/profiles/hosted.yaml").read_text(
        "utf-8"
    )
    raw = yaml.safe_load(text)
    raw["providers"]["openrouter"]["prices_file"] = str(tmp_path / "prices" / "openrouter.json")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), "utf-8")
    return path


def test_documented_fields_parse_into_prices_per_million() -> None:
    listed = parse_models_list(MODELS)
    assert set(listed) == {"openai/gpt-oss-20b", "qwen/qwen3-max"}
    qwen = listed["qwen/qwen3-max"]
    assert (qwen.price_in_per_m, qwen.price_out_per_m) == (Decimal("1.2"), Decimal("6"))
    assert (qwen.price_cache_read_per_m, qwen.price_cache_write_per_m) == (Decimal("0.24"), Decimal("1.5"))
    assert (qwen.batch_in_per_m, qwen.batch_out_per_m) == (Decimal("0.6"), Decimal("3"))
    assert qwen.context_length == 262144 and qwen.max_completion_tokens == 32768


def test_sync_writes_a_dated_file_that_the_config_then_reads(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    env = {"OPENROUTER_API_KEY": "sk-or-test-key"}
    with in_thread(ModelsServer()) as server:
        env["OPENROUTER_BASE_URL"] = server.base_url
        result = runner.invoke(
            app, ["models", "sync", "--provider", "openrouter", "-c", str(config)], env=env
        )
    assert result.exit_code == 0, result.output
    assert server.auth == "Bearer sk-or-test-key"
    assert "no structured_outputs: json_object mode" in result.output
    written = json.loads((tmp_path / "prices" / "openrouter.json").read_text("utf-8"))
    assert written["provider"] == "openrouter" and written["fetched_at"]

    settings = load_config(config, env=env).settings
    small, qwen = settings.models["gpt-oss-20b"], settings.models["qwen3-max"]
    assert (small.price_in_per_m, small.price_out_per_m) == (Decimal("0.04"), Decimal("0.15"))
    assert small.output_mode == "json_object"
    assert small.batch_price_multiplier is None  # its :batch price is above the normal one
    assert qwen.batch_price_multiplier == Decimal("0.5") and qwen.output_mode == "json_schema"
    assert qwen.price_cache_read_per_m == Decimal("0.24") and qwen.context_window == 262144
    # A model the list lacks keeps the config's own table.
    assert settings.models["gemini-2.5-flash"].price_source == ""
    later = datetime.now(UTC) + timedelta(days=3)
    sources = price_sources(settings, now=later)
    assert (
        sources["qwen3-max"].startswith(f"{server.base_url}/models at ")
        and "3.0 days old" in sources["qwen3-max"]
    )
    assert "no prices file" in sources["gemini-2.5-flash"]

    shown = runner.invoke(app, ["config", "show", "-c", str(config)], env=env)
    assert shown.exit_code == 0
    assert "#   qwen3-max: " in shown.output and "days old" in shown.output


def test_an_unknown_provider_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "sync", "--provider", "nope", "-c", str(config_file(tmp_path))])
    assert result.exit_code == 2
