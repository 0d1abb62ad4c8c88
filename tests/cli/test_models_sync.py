"""`courseforge models sync` against a `/models` list written from OpenRouter's documented
fields (`GET /api/v1/models`: `id`, `pricing` per token as strings, `context_length`,
`top_provider`, `supported_parameters`, `:batch` variants), served on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from typer.testing import CliRunner

from courseforge.cli import app
from courseforge.config import load_config
from courseforge.config.prices import parse_models_list, price_sources
from courseforge.testing import LoopbackServer, ReceivedRequest
from courseforge.testing._openai_wire import LocalOpenAIServer, error_response
from engine_helpers import EXAMPLES, author_reply, in_thread, loopback_config, write_config

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


#: The loopback config's three models at twice their configured prices (per token, as listed).
DOUBLED = {
    "data": [
        entry(
            "test/small", "0.00000006", "0.00000026", ["max_tokens", "response_format", "structured_outputs"]
        ),
        entry(
            "test/medium", "0.00000006", "0.00000034", ["max_tokens", "response_format", "structured_outputs"]
        ),
        entry(
            "test/large", "0.00000156", "0.0000078", ["max_tokens", "response_format", "structured_outputs"]
        ),
    ]
}


class PricedLoopback(LoopbackServer):
    """The loopback provider (CourseAuthor's answers) whose `/models` lists OpenRouter's
    documented shape, or fails with `models_status`."""

    def __init__(self, models_status: int = 200) -> None:
        super().__init__(author_reply())
        self.models_status = models_status

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(ReceivedRequest(request.method, request.path, dict(request.headers), None))
        if self.models_status != 200:
            return error_response(self.models_status, "No auth credentials found")
        return web.json_response(DOUBLED)


def _generate(tmp_path: Path, job: str, *flags: str, models_status: int = 200) -> tuple[Any, list[str], Path]:
    out = tmp_path / f"{job}.json"
    with in_thread(PricedLoopback(models_status)) as server:
        config = loopback_config(server.base_url)
        config["providers"]["loop"]["prices_file"] = str(tmp_path / "prices" / "loop.json")
        path = write_config(tmp_path / "c.yaml", config)
        args = ["generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "-c", str(path)]
        result = runner.invoke(app, [*args, "--job", job, "--no-cache", *flags])
        seen = [f"{r.method} {r.path}" for r in server.requests]
    return result, seen, out


def test_generate_fetches_prices_only_when_asked_and_prices_the_run_from_them(tmp_path: Path) -> None:
    plain, seen, out = _generate(tmp_path, "plain")
    assert plain.exit_code == 0, plain.output
    assert "GET /v1/models" not in seen  # never fetched unless asked
    assert not (tmp_path / "prices" / "loop.json").exists()
    plain_cost = Decimal(str(json.loads(out.with_name("plain.report.json").read_text())["total_cost_usd"]))

    synced, seen, out = _generate(tmp_path, "synced", "--sync-prices")
    assert synced.exit_code == 0, synced.output
    assert seen[0] == "GET /v1/models" and seen.count("GET /v1/models") == 1  # once, before any call
    assert "prices: loop: 3 models from" in synced.output and "(3 configured)" in synced.output
    written = json.loads((tmp_path / "prices" / "loop.json").read_text("utf-8"))
    assert written["provider"] == "loop" and set(written["models"]) == {
        "test/small",
        "test/medium",
        "test/large",
    }
    report = json.loads(out.with_name("synced.report.json").read_text())
    # The same course at twice every price: the run was priced from the fetched list.
    assert Decimal(str(report["total_cost_usd"])) == pytest.approx(2 * plain_cost, rel=Decimal("0.001"))
    assert plain_cost > 0


def test_a_price_sync_that_fails_stops_before_any_model_call(tmp_path: Path) -> None:
    result, seen, out = _generate(tmp_path, "refused", "--sync-prices", models_status=401)
    assert result.exit_code == 2
    assert "prices could not be synced; nothing was sent to a model" in result.output
    assert "--sync-prices: loop:" in result.output and "401" in result.output
    assert seen == ["GET /v1/models"] and not out.exists()
