"""Our hosted-provider code path against a real OpenAI-compatible server nobody here wrote:
llama.cpp's own `llama-server` (the one the `xllamacpp` wheel embeds), on 127.0.0.1 in a
subprocess, serving the offline 1.5B model. Both structured-output modes are exercised: the
standard `json_schema` and `json_object` with a schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.server_binary]

pytest.importorskip("xllamacpp", reason="needs the local extra (pip install xllamacpp)")

from courseforge.config import load_config  # noqa: E402
from courseforge.domain.drafts import LessonDraft  # noqa: E402
from courseforge.pipeline.lessons import lesson_schema  # noqa: E402
from courseforge.providers import ChatRequest, Message, OutputMode  # noqa: E402
from courseforge.providers.jsontext import extract_json  # noqa: E402
from courseforge.providers.model_files import assemble_model  # noqa: E402
from courseforge.providers.openai_compat import OpenAICompatModel  # noqa: E402

# Loads the model, prints the server's address, serves until its stdin closes.
_SERVE = """
import sys, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx = 4096
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = int(sys.argv[2])
params.verbosity = 0
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_config("offline", env={}).settings
    model = settings.models["qwen2.5-coder-1.5b"]
    assert model.local is not None
    path = assemble_model(model.local, Path(settings.cache_dir).expanduser())
    log = tmp_path_factory.mktemp("llama-server") / "stderr.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(path), str(os.cpu_count() or 2)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),  # a file: an unread pipe fills while the server loads and blocks it
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    # Blocks until the model is loaded, or reads "" if the server died (pytest-timeout guards a hang).
    address = proc.stdout.readline().strip()
    if not address.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"llama-server did not start: {log.read_text(errors='replace')[-2000:]}")
    yield f"{address}/v1"
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("mode", ["json_schema", "json_object"])
async def test_lesson_through_llama_server(llama_server: str, mode: OutputMode) -> None:
    # llama.cpp's own schema-to-grammar converter has crashed on maxLength above ~1,000, so the
    # lesson is bounded to 80-120 words (<= 960 characters) here.
    schema = lesson_schema(80, 120)
    assert schema["properties"]["content"]["maxLength"] <= 1000
    model = OpenAICompatModel(
        model_id="qwen-1.5b", model_name="qwen-1.5b", base_url=llama_server, output_mode=mode
    )
    request = ChatRequest(
        [
            Message("system", "You are an expert teacher. Answer with JSON only."),
            Message(
                "user",
                "Write a short lesson (80-120 words) teaching Python for loops over a list, "
                "with one multiple_choice exercise assessing outcome 1; its answer must be one "
                "of its options; citations is an empty list.",
            ),
        ],
        json_schema=schema,
        schema_name="lesson",
        max_tokens=700,
        temperature=0.2,
    )
    started = time.perf_counter()
    try:
        response = await model.complete(request)
    finally:
        await model.aclose()
    wall = time.perf_counter() - started
    draft = LessonDraft.model_validate(extract_json(response.text))
    assert 80 * 4 <= len(draft.content) <= 960
    assert draft.exercises and all(e.outcome >= 1 for e in draft.exercises)
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    print(
        f"\nllama-server lesson ({mode}): {wall:.1f}s, {response.usage.input_tokens} prompt + "
        f"{response.usage.output_tokens} completion tokens, {len(draft.content.split())} words, "
        f"{len(draft.exercises)} exercise(s)"
    )
