"""Our hosted-provider code path against a real OpenAI-compatible server nobody here wrote:
llama.cpp's own `llama-server` (the one the `xllamacpp` wheel embeds), on 127.0.0.1 in a
subprocess, serving an embedded model (the offline-cascade profile's 0.5B: the 1.5B decodes about
3x slower, too slow for a test on two shared cores; docs/providers.md has both figures).

- single requests in both structured-output modes (`json_schema`, `json_object` with a schema);
- the whole hosted profile pointed at it (`OPENROUTER_BASE_URL`): its routing options, reasoning
  objects, usage accounting and cache breakpoints are sent as to OpenRouter, and a course's
  metadata and its one lesson come back through the engine, the ledger and the report;
- the server's own errors (a prompt longer than its context, a schema its grammar cannot take,
  a parameter it does not support) as our error tree names them.

What this server taught us that the simulator did not is in docs/providers.md ("llama.cpp's own
server"). Run: `pytest -m local_model tests/providers/test_llama_server_integration.py -s`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.server_binary]

pytest.importorskip("xllamacpp", reason="needs the local extra (pip install xllamacpp)")

from courseforge.config import Settings, load_config  # noqa: E402
from courseforge.config.settings import HedgingSettings, PrioritySettings  # noqa: E402
from courseforge.domain.drafts import LessonDraft  # noqa: E402
from courseforge.engine import Engine, without_cache  # noqa: E402
from courseforge.errors import InvalidRequest  # noqa: E402
from courseforge.jobs import generate_durably  # noqa: E402
from courseforge.pipeline import validate_analysis  # noqa: E402
from courseforge.pipeline.lessons import lesson_schema  # noqa: E402
from courseforge.providers import ChatRequest, Message, OutputMode  # noqa: E402
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder  # noqa: E402
from courseforge.providers.jsontext import extract_json  # noqa: E402
from courseforge.providers.model_files import assemble_model  # noqa: E402
from courseforge.providers.openai_compat import OpenAICompatModel  # noqa: E402
from courseforge.resilience import CallRecorded, ResilienceEvent  # noqa: E402
from courseforge.storage import open_store  # noqa: E402

#: The embedded model served (offline-cascade's cheap tier) and the server's context.
MODEL_PROFILE, MODEL_ID = "offline-cascade", "qwen2.5-coder-0.5b"
N_CTX = 4096
#: One decode thread: on two cores shared with other work, llama.cpp's threads spin-wait for
#: each other at every step, and two of them decoded 17x slower than one (docs/providers.md).
THREADS = 1
#: Each model's output cap in the hosted run: the metadata call asks for 1,090 tokens for one
#: section (pipeline/metadata.py); 700 cut the 0.5B's metadata once (it planned extra sections),
#: 1,100 cut a 250-word lesson with up to four exercises.
MAX_OUTPUT = 1400
#: The lesson's word range (the hosted profile's is 120-900) and one exercise (up to 4): the
#: schema bounds the answer by them, and a grammar-constrained small model fills what it may.
LESSON_WORDS = (120, 200)
#: The hosted profile's 0.7 let the 0.5B ramble to its cap; 0.2 keeps a run short and repeatable.
TEMPERATURE = 0.2

# Loads the model, prints the server's address, serves until its stdin closes.
_SERVE = """
import sys, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx = int(sys.argv[2])
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = int(sys.argv[3])
params.verbosity = 0
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""

#: One section, one lesson: the smallest course the hosted pipeline runs whole.
ANALYSIS = {
    "schema_version": 1,
    "course_id": "llama-server-loops",
    "topic": "Python for loops",
    "target_audience": "Adults new to programming",
    "language": "en",
    "difficulty": "beginner",
    "goals": ["Repeat work over a list with a for loop"],
    "min_lessons": 1,
    "sections": [
        {
            "title": "Repeating work",
            "key_concepts": ["for loops", "range"],
            "lesson_count": 1,
            "section_type": "concept",
            "complexity": 3,
        }
    ],
}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_config(MODEL_PROFILE, env={}).settings
    model = settings.models[MODEL_ID]
    assert model.local is not None
    path = assemble_model(model.local, Path(settings.cache_dir).expanduser())
    log = tmp_path_factory.mktemp("llama-server") / "stderr.log"
    proc = subprocess.Popen(
        ["nice", "-n", "10", sys.executable, "-c", _SERVE, str(path), str(N_CTX), str(THREADS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),  # a file: an unread pipe fills while the server loads and blocks it
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        # Blocks until the model is loaded, or reads "" if the server died (pytest-timeout guards a hang).
        address = proc.stdout.readline().strip()
        if not address.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"llama-server did not start: {log.read_text(errors='replace')[-2000:]}")
        yield f"{address}/v1"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_context(base_url: str) -> int:
    """llama-server's `/v1/models` is not OpenRouter's list: no `context_length`, no `pricing`;
    its context is `data[0].meta.n_ctx`, and its `id` is the model file's path."""
    with urllib.request.urlopen(f"{base_url}/models", timeout=30) as resp:
        body = json.loads(resp.read())
    (entry,) = body["data"]
    assert "pricing" not in entry and "context_length" not in entry
    return int(entry["meta"]["n_ctx"])


@pytest.mark.parametrize("mode", ["json_schema", "json_object"])
async def test_lesson_through_llama_server(llama_server: str, mode: OutputMode) -> None:
    # llama.cpp's schema-to-grammar converter has crashed on maxLength above ~1,000, so the
    # lesson is bounded to 80-120 words (<= 960 characters) here.
    # One exercise at most: the 0.5B fills every item a schema allows (four ran past 800 tokens).
    schema = lesson_schema(80, 120, max_exercises=1)
    assert schema["properties"]["content"]["maxLength"] <= 1000
    model = OpenAICompatModel(
        model_id="qwen-0.5b", model_name="qwen-0.5b", base_url=llama_server, output_mode=mode
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
        max_tokens=800,
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


def hosted_on(base_url: str, n_ctx: int) -> Settings:
    """The bundled hosted profile with `OPENROUTER_BASE_URL` at the server (every OpenRouter
    extension still sent: `openrouter: true`), changed only where one small local model on a
    loaded machine needs it: the served context and an output cap, lessons of at most 200 words
    and one exercise, a low temperature, one attempt per task with no timeout, no retry, no
    hedge (each would be minutes of CPU), the hashing embedder."""
    env = {"OPENROUTER_API_KEY": "llama-server-takes-any", "OPENROUTER_BASE_URL": base_url}
    settings = load_config("hosted", env=env).settings
    models = {
        k: m.model_copy(update={"context_window": n_ctx, "max_output_tokens": MAX_OUTPUT})
        for k, m in settings.models.items()
    }
    once = PrioritySettings(max_attempts=1, retries=0, timeout_s=None, escalate=False)
    routing = settings.routing.model_copy(
        update={
            "priorities": {p: once for p in ("critical", "standard", "supplementary")},
            "metadata_max_attempts": 1,
            "hedging": HedgingSettings(enabled=False),
            "completeness_rounds": 0,
            "temperature": TEMPERATURE,
        }
    )
    consistency = settings.gates.consistency.model_copy(update={"critical": False, "section_types": []})
    gates = settings.gates.model_copy(
        update={
            "embedding_model": "hashing",
            "consistency": consistency,
            "spot_check_rate": 0.0,
            "lesson_min_words": LESSON_WORDS[0],
            "lesson_max_words": LESSON_WORDS[1],
            "min_exercises": 1,
            "max_exercises": 1,
        }
    )
    return without_cache(settings.model_copy(update={"models": models, "routing": routing, "gates": gates}))


async def test_the_hosted_profile_writes_a_course_metadata_and_lesson_through_llama_server(
    llama_server: str, tmp_path: Path
) -> None:
    n_ctx = served_context(llama_server)
    assert n_ctx == N_CTX
    settings = hosted_on(llama_server, n_ctx)
    env = {"OPENROUTER_API_KEY": "llama-server-takes-any"}
    analysis = validate_analysis(ANALYSIS)
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await store.init()
    engine = Engine(settings, env=env, embedder=CachedEmbedder(HashingEmbedder()))

    def show(event: ResilienceEvent) -> None:  # progress on a slow machine (-s)
        if isinstance(event, CallRecorded):
            r = event.record
            print(
                f"  {r.phase}/{r.task} {r.model}: {r.outcome} {r.input_tokens}+{r.output_tokens} tokens,"
                f" {r.latency_ms / 1000:.0f}s, finish {r.finish_reason!r} {r.reason[:120]}",
                flush=True,
            )

    engine.add_hook(show)
    started = time.perf_counter()
    try:
        course, report = await generate_durably(
            settings, analysis, job_id="llama", engine=engine, store=store, say=lambda _: None
        )
    finally:
        await engine.aclose()
        await store.close()
    wall = time.perf_counter() - started
    sent = [c for c in report.calls if c.outcome in ("ok", "rejected", "error")]
    print(
        f"\nhosted profile on llama-server: {len(sent)} calls, {wall:.0f}s, status {report.status},"
        f" {sum(c.input_tokens for c in sent)} prompt + {sum(c.output_tokens for c in sent)} completion"
        f" tokens ({sum(c.cached_tokens for c in sent)} cached), ${report.total_cost_usd} at the table"
    )
    for flag in course.review if course else []:
        print(f"  review: {flag.target} [{flag.gate}] {flag.reason[:200]}")
    # Metadata and the lesson came back through the hosted path (whether the 0.5B's lesson
    # passes every gate is the model's business, not the contract's).
    assert course is not None, report.summary
    assert course.metadata.learning_outcomes and len(course.lessons()) == 1
    (lesson,) = course.lessons()
    assert lesson.content.strip() and lesson.exercises
    print(f"  lesson: {len(lesson.content.split())} words, {len(lesson.exercises)} exercise(s)")
    # Each phase was answered: a call a gate turned down afterwards is "rejected", never "error".
    assert {"metadata", "lessons"} <= {c.phase for c in sent}
    # What a plain OpenAI-compatible server reports: usage without cost or reasoning, no
    # native_finish_reason; the request's OpenRouter objects (reasoning, provider, usage) are
    # ignored without an error, so nothing says whether they were honoured.
    for c in sent:
        assert c.cost_source == "price_table" and c.cost_usd > 0  # priced from the table
        assert c.reasoning_tokens == 0 and c.native_finish_reason == ""
        assert c.finish_reason in ("stop", "length")
        assert c.outcome != "error", c.reason
    assert report.summary["reasoning_tokens"] == 0
    assert report.summary["price_check"] == {}  # nothing billed by the provider to compare
    assert report.total_cost_usd == sum((c.cost_usd for c in report.calls), Decimal(0))


async def test_the_servers_own_errors_name_what_was_wrong(llama_server: str) -> None:
    model = OpenAICompatModel(model_id="qwen-0.5b", model_name="qwen-0.5b", base_url=llama_server)
    try:
        # A prompt longer than the server's context: a 400 (llama.cpp's `exceed_context_size_error`,
        # with `n_prompt_tokens` and `n_ctx`), named as the prompt's fault.
        long = ChatRequest([Message("user", "word " * (N_CTX + 500))], max_tokens=8)
        with pytest.raises(InvalidRequest) as overlong:
            await model.complete(long)
        assert overlong.value.field == "messages" and overlong.value.context_overflow
        assert "exceeds the available context size" in str(overlong.value)
        # A schema its grammar converter cannot take: a 400 that says "JSON schema", which the
        # structured-output downgrade must read as a refusal of `response_format`.
        bad_schema = ChatRequest(
            [Message("user", "hi")], json_schema={"$ref": "#/$defs/missing"}, schema_name="x", max_tokens=8
        )
        with pytest.raises(InvalidRequest) as schema:
            await model.complete(bad_schema)
        assert schema.value.field == "response_format"
        # A parameter it does not support (n > 1): the field its message names.
        picky = OpenAICompatModel(
            model_id="qwen-0.5b", model_name="qwen-0.5b", base_url=llama_server, extra_body={"n": 2}
        )
        try:
            with pytest.raises(InvalidRequest) as unsupported:
                await picky.complete(ChatRequest([Message("user", "hi")], max_tokens=4))
        finally:
            await picky.aclose()
        assert unsupported.value.field == "n"
    finally:
        await model.aclose()
