"""Our hosted-provider code path against a real OpenAI-compatible server nobody here wrote:
`python -m llama_cpp.server` on 127.0.0.1 serving the offline 1.5B model, structured output in
json_object-with-schema mode (the form that server accepts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.server_binary]

llama_cpp = pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")

from courseforge.config import load_config  # noqa: E402
from courseforge.domain.drafts import LessonDraft  # noqa: E402
from courseforge.pipeline.lessons import lesson_schema  # noqa: E402
from courseforge.providers import ChatRequest, Message  # noqa: E402
from courseforge.providers.jsontext import extract_json  # noqa: E402
from courseforge.providers.model_files import assemble_model  # noqa: E402
from courseforge.providers.openai_compat import OpenAICompatModel  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    settings = load_config("offline", env={}).settings
    model = settings.models["qwen2.5-coder-1.5b"]
    assert model.local is not None
    path = assemble_model(model.local, Path(settings.cache_dir).expanduser())
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "stderr.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            str(os.cpu_count() or 2),
            "--model_alias",
            "qwen-1.5b",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),  # a file: an unread pipe fills while the server loads and blocks it
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("llama_cpp.server did not start in 300 s")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def test_lesson_through_llama_cpp_server_json_object_mode(llama_server: str) -> None:
    # llama.cpp's own schema-to-grammar converter crashes on maxLength above ~1,000, so the
    # lesson is bounded to 80-120 words (<= 960 characters) here.
    schema = lesson_schema(80, 120)
    assert schema["properties"]["content"]["maxLength"] <= 1000
    model = OpenAICompatModel(
        model_id="qwen-1.5b", model_name="qwen-1.5b", base_url=llama_server, output_mode="json_object"
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
        f"\nllama_cpp.server lesson: {wall:.1f}s, {response.usage.input_tokens} prompt + "
        f"{response.usage.output_tokens} completion tokens, {len(draft.content.split())} words, "
        f"{len(draft.exercises)} exercise(s)"
    )
