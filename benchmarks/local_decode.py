"""Local decode speed: 1 vs N sequences, grammar on/off, prefix reuse on/off, and the shapes of
answer the pipeline asks for, all measured against a baseline in the same run.

    .venv/bin/python benchmarks/local_decode.py                  # everything, 3 reps (~25 min)
    .venv/bin/python benchmarks/local_decode.py --only parallel --parallel 1,2,4 --reps 5
    .venv/bin/python benchmarks/local_decode.py --only binding --baseline-python OTHER/bin/python

Sections (`--only`, comma-separated):
- `parallel`: k = 1..N concurrent lesson requests (distinct prompts, nothing cached) on one model
  loaded with n_parallel = N, free text (the prose-first lesson prompt) and under the lesson
  grammar, every request held to the
  same `--max-tokens`: total output tok/s, median latency per request, and the ratio to k = 1.
  The order of k alternates between reps, so load from other processes hits every k alike.
- `batched`: k = 1..N short lesson prompts (distinct topics) through llama.cpp's server directly,
  with its own timings: decode tok/s in all and per sequence (prompt processing apart), the
  ratio to k = 1, prompt tok/s and output tok/s over the wall time.
- `prompt`: prompt processing tok/s (a ~1,100-token prompt, one output token).
- `prefix`: two waves of k requests that share a ~500-token prefix, with the prefix cache on and
  off (the model reloaded between the two): wall time, prompt tokens served from the cache.
- `sharing`: k lessons' first turns as the pipeline sends them (one system message with the
  course's outline and rules, shared byte for byte) on a fresh model, two waves, without and with
  a warm-up request of that system message alone: prompt tokens served from the cache per
  request, i.e. whether the shared prefix is decoded once or once per sequence.
- `shapes`: (a) free-text lesson prose of ~350 words, (b) a grammar-bound JSON of 3 exercises,
  (c) today's whole lesson JSON under the grammar (80-200 words, <= 2 exercises) and (c') one
  lesson JSON of 250-500 words with 3 exercises, each alone and k at once; whether free text
  ends by itself (end of turn) and at a stop string.
- `binding`: the same single-sequence requests through llama-cpp-python (today's binding) in a
  subprocess of `--baseline-python`, alternating with ours: generation tok/s free and under the
  grammar, prompt tok/s. Skipped without `--baseline-python`.
- `speculative`: llama.cpp's speculative decoding (`CommonParamsSpeculative`) against none, one
  sequence, the same prompts alternated: a draft model (the offline-cascade profile's
  Qwen2.5-Coder-0.5B, same tokenizer as the 1.5B) and n-gram drafting (`ngram_mod`), on lesson
  prose and on the exercises' JSON under the grammar: generation tok/s, ratio to none, and the
  share of drafted tokens accepted. `--speculative draft,ngram_mod` picks the kinds.

    .venv/bin/python benchmarks/local_decode.py --only shapes --parallel 1 --reps 2 --max-tokens 120
    .venv/bin/python benchmarks/local_decode.py --only speculative --reps 2 --max-tokens 120

Timings on a shared 2-core machine are noisy: read the ratios, and the medians over `--reps`.
Speed targets live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from courseforge.config.loader import load_config
from courseforge.domain import AnalysisResult, LearningOutcome
from courseforge.domain.drafts import ExerciseDraft, json_schema_of
from courseforge.errors import BadResponse
from courseforge.pipeline.lessons import _prose_first, lesson_schema, lesson_schema_for
from courseforge.pipeline.prompts import lesson_messages
from courseforge.providers.base import ChatRequest, Message, Usage
from courseforge.providers.grammar import gbnf_for_schema
from courseforge.providers.local_engine import EngineJob
from courseforge.providers.local_llama import LocalLlamaModel, release_loaded_models
from courseforge.providers.model_files import assemble_model

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python-basics.json"


def load_avg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else 0.0


def lesson_prompts(
    words: tuple[int, int] = (80, 200),
    exercises: tuple[int, int] = (1, 2),
    prose_first: bool = False,
    outline: bool = False,
) -> list[list[Message]]:
    """Lesson requests as the pipeline builds them, one per (section, lesson); `outline`: with
    the course's outline and rules in a system message every lesson shares."""
    analysis = AnalysisResult.model_validate(json.loads(EXAMPLE.read_text()))
    plan = [
        (s.title, [f"{c.capitalize()} in practice" for c in s.key_concepts[:2]]) for s in analysis.sections
    ]
    prompts = []
    for si, section in enumerate(analysis.sections):
        for li in range(2):
            concept = section.key_concepts[li % len(section.key_concepts)]
            outcome = LearningOutcome(
                id=f"LO{si + 1}", text=f"Explain {concept} with a working example", bloom_level="understand"
            )
            prompts.append(
                lesson_messages(
                    analysis=analysis,
                    course_title="Python Basics for Beginners",
                    section=section,
                    section_summary=f"This section covers {', '.join(section.key_concepts)}.",
                    lesson_title=f"{concept.capitalize()} in practice",
                    outcomes=[(si + 1, outcome)],
                    sibling_titles=["Another lesson"],
                    words=words,
                    style="",
                    exercises=exercises,
                    prose_first=prose_first,
                    outline=plan if outline else (),
                )
            )
    return prompts


def fresh(messages: list[Message]) -> list[Message]:
    """The same request with a nonce first, so no prefix cache can serve it."""
    first = messages[0]
    return [Message(first.role, f"[request {uuid.uuid4().hex[:8]}] {first.content}"), *messages[1:]]


LESSON_SCHEMA = lesson_schema_for(lesson_schema(80, 200, 2), [1], [])
TARGET_LESSON_SCHEMA = lesson_schema_for(lesson_schema(250, 500, 3), [1], [])
TARGET_LESSON_SCHEMA["properties"]["exercises"]["minItems"] = 3
#: What the offline profile sends today (`local.prose_first`): content unbounded by a grammar.
PROSE_FIRST_SCHEMA = lesson_schema_for(lesson_schema(250, 500, 3, 3, bound_content=False), [1], [])
EXERCISE = json_schema_of(ExerciseDraft)
EXERCISE["properties"]["outcome"] = {"type": "integer", "enum": [1]}
EXERCISES_SCHEMA = {
    "type": "object",
    "properties": {"exercises": {"type": "array", "items": EXERCISE, "minItems": 3, "maxItems": 3}},
    "required": ["exercises"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    usage: Usage
    finish_reason: str
    latency_s: float


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        settings = load_config(args.profile, env={}).settings
        ms = settings.models[args.model]
        assert ms.local is not None, f"{args.model} is not a local model"
        self.path = assemble_model(ms.local, Path(settings.cache_dir).expanduser())
        self.n_ctx = ms.local.n_ctx
        self.args = args
        self.prompts = lesson_prompts()
        self.prose_prompts = lesson_prompts((250, 500), (3, 3), prose_first=True)
        #: As the pipeline sends them: the course's outline and rules in one shared system message.
        self.course_prompts = lesson_prompts((250, 500), (3, 3), prose_first=True, outline=True)
        self.rows: list[dict[str, Any]] = []

    def model(
        self, n_parallel: int, prefix_cache: bool = True, threads: int | None = None
    ) -> LocalLlamaModel:
        release_loaded_models(self.path)
        return LocalLlamaModel(
            self.args.model,
            self.path,
            n_ctx=self.n_ctx,
            n_threads=threads or self.args.threads[0],
            max_output_tokens=4096,
            n_parallel=n_parallel,
            prefix_cache=prefix_cache,
        )

    async def wave(self, model: LocalLlamaModel, requests: list[ChatRequest]) -> tuple[float, list[Answer]]:
        """All `requests` at once; each answer's latency runs from the wave's start to its end."""
        started = time.perf_counter()

        async def one(request: ChatRequest) -> Answer | None:
            try:
                r = await model.complete(request)
                usage, text, finish = r.usage, r.text, r.finish_reason
            except BadResponse as exc:  # a grammar answer cut at max_tokens still decoded its tokens
                if exc.kind != "truncated" or not isinstance(exc.usage, Usage):
                    print(f"  ! {exc}", flush=True)
                    return None
                usage, text, finish = exc.usage, exc.text, "length"
            return Answer(text, usage, finish, time.perf_counter() - started)

        answers = await asyncio.gather(*(one(r) for r in requests))
        return time.perf_counter() - started, [a for a in answers if a is not None]

    # -- sections ------------------------------------------------------------------------------

    async def parallel(self) -> None:
        top = max(self.args.parallel)
        results: dict[tuple[int, int, bool], list[tuple[float, float]]] = {}
        for rep in range(self.args.reps):
            threads = self.args.threads if rep % 2 == 0 else list(reversed(self.args.threads))
            for th in threads:
                model = self.model(top, threads=th)
                await model.complete(ChatRequest(fresh(self.prompts[0]), max_tokens=8))  # load, warm up
                order = self.args.parallel if rep % 2 == 0 else list(reversed(self.args.parallel))
                for k in order:
                    for grammar in (False, True)[: 1 if self.args.free_only else 2]:
                        prompts = self.prompts if grammar else self.prose_prompts
                        requests = [
                            ChatRequest(
                                # free: the prose-first lesson prompt the offline profile sends
                                fresh(prompts[(rep * top + i) % len(prompts)]),
                                json_schema=LESSON_SCHEMA if grammar else None,
                                max_tokens=self.args.max_tokens,
                                temperature=0.2,
                            )
                            for i in range(k)
                        ]
                        wall, answers = await self.wave(model, requests)
                        tokens = sum(a.usage.output_tokens for a in answers)
                        latency = statistics.median(a.latency_s for a in answers) if answers else 0.0
                        results.setdefault((th, k, grammar), []).append((tokens / wall, latency))
                        print(
                            f"  rep {rep} threads={th} k={k} grammar={grammar}: {tokens} tok in {wall:.1f}s "
                            f"= {tokens / wall:.2f} tok/s, median latency {latency:.1f}s (load {load_avg():.1f})",
                            flush=True,
                        )
        base_free = statistics.median(
            t for t, _ in results[(self.args.threads[0], self.args.parallel[0], False)]
        )
        for th in self.args.threads:
            for grammar in (False, True)[: 1 if self.args.free_only else 2]:
                base = statistics.median(t for t, _ in results[(th, self.args.parallel[0], grammar)])
                for k in self.args.parallel:
                    tps = statistics.median(t for t, _ in results[(th, k, grammar)])
                    lat = statistics.median(lat for _, lat in results[(th, k, grammar)])
                    self.rows.append(
                        {
                            "section": "parallel",
                            "case": f"threads={th} k={k} {'grammar' if grammar else 'free'}",
                            "total_tok_s": round(tps, 2),
                            "per_seq_tok_s": round(tps / k, 2),
                            "latency_s": round(lat, 1),
                            "vs_k1": round(tps / base, 2),
                            "vs_first_row": round(tps / base_free, 2),
                        }
                    )

    async def prompt(self) -> None:
        model = self.model(1)
        long = [Message("system", "You are a careful teacher."), Message("user", self.long_text(700))]
        await model.complete(ChatRequest(fresh(self.prompts[0]), max_tokens=4))
        rates = []
        for rep in range(self.args.reps):
            answer = await model.complete(ChatRequest(fresh(long), max_tokens=1, temperature=0.0))
            rates.append(answer.usage.input_tokens / (answer.latency_ms / 1000))
            print(f"  rep {rep}: {answer.usage.input_tokens} prompt tok, {rates[-1]:.1f} tok/s", flush=True)
        self.rows.append(
            {
                "section": "prompt",
                "case": "~1,100-token prompt",
                "prompt_tok_s": round(statistics.median(rates), 1),
            }
        )

    def long_text(self, words: int) -> str:
        brief = json.dumps(json.loads(EXAMPLE.read_text()), indent=1)
        text = f"Here is a course brief.\n{brief}\n"
        while len(text.split()) < words:
            text += "Every lesson must be accurate, concrete and kind to beginners. "
        return text + "\nSummarise the brief in one sentence."

    async def prefix(self) -> None:
        k = max(self.args.parallel)
        shared = self.long_text(350)
        figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for rep in range(self.args.reps):
            for cache in (True, False) if rep % 2 == 0 else (False, True):
                model = self.model(k, prefix_cache=cache)
                await model.complete(ChatRequest([Message("user", "Say OK.")], max_tokens=2))
                session = uuid.uuid4().hex[:8]  # nothing from an earlier rep can be reused
                total_wall, prompt_tokens, cached = 0.0, 0, 0
                for wave in range(2):
                    requests = [
                        ChatRequest(
                            [
                                Message("system", f"Session {session}. You are a careful teacher."),
                                Message(
                                    "user",
                                    f"{shared}\nNow write lesson {wave * k + i + 1} of it in one sentence.",
                                ),
                            ],
                            max_tokens=self.args.max_tokens // 4,
                            temperature=0.2,
                        )
                        for i in range(k)
                    ]
                    wall, answers = await self.wave(model, requests)
                    total_wall += wall
                    prompt_tokens += sum(a.usage.input_tokens for a in answers)
                    cached += sum(a.usage.cached_tokens for a in answers)
                figures[cache].append((total_wall, cached / max(prompt_tokens, 1)))
                print(
                    f"  rep {rep} prefix_cache={cache}: 2 waves of {k} in {total_wall:.1f}s, "
                    f"{cached}/{prompt_tokens} prompt tokens from the cache (load {load_avg():.1f})",
                    flush=True,
                )
        off = statistics.median(w for w, _ in figures[False])
        for cache in (False, True):
            wall = statistics.median(w for w, _ in figures[cache])
            share = statistics.median(s for _, s in figures[cache])
            self.rows.append(
                {
                    "section": "prefix",
                    "case": f"2 waves of {k}, cache {'on' if cache else 'off'}",
                    "wall_s": round(wall, 1),
                    "cached_share": round(share, 2),
                    "ratio": round(off / wall, 2),
                }
            )

    async def sharing(self) -> None:
        """Is the prefix every lesson of a course shares (its system message: outline, outcomes,
        rules) decoded once or once per sequence? k lessons' first turns at once on a fresh model
        (n_parallel = k), then k more, each answering a few tokens so prompt processing is what is
        timed: prompt tokens served from the cache per request, and the wall time of each wave.
        With `--warm`, one request of the shared system message alone goes first."""
        k = max(self.args.parallel)
        for warm in (False, True):
            model = self.model(k)
            session = uuid.uuid4().hex[:8]
            prompts = [
                [Message("system", f"Session {session}. {p[0].content}"), p[1]] for p in self.course_prompts
            ]
            if warm:
                started = time.perf_counter()
                a = await model.complete(
                    ChatRequest([prompts[0][0], Message("user", "Say OK.")], max_tokens=1)
                )
                print(
                    f"  warm-up: {a.usage.input_tokens} prompt tok in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            for wave in range(2):
                requests = [
                    ChatRequest(prompts[(wave * k + i) % len(prompts)], max_tokens=4, temperature=0.2)
                    for i in range(k)
                ]
                wall, answers = await self.wave(model, requests)
                print(
                    f"  warm={warm} wave {wave}: {wall:.1f} s, prompt/cached tokens per request "
                    + ", ".join(f"{a.usage.input_tokens}/{a.usage.cached_tokens}" for a in answers)
                    + f" (load {load_avg():.1f})",
                    flush=True,
                )
                self.rows.append(
                    {
                        "section": "sharing",
                        "case": f"{'warm, ' if warm else ''}wave {wave} of {k}",
                        "wall_s": round(wall, 1),
                        "prompt_tokens": sum(a.usage.input_tokens for a in answers),
                        "cached_tokens": sum(a.usage.cached_tokens for a in answers),
                    }
                )

    async def shapes(self) -> None:
        k = max(self.args.parallel)
        model = self.model(k)
        prose = [
            Message("system", "You are an expert teacher writing for beginners."),
            Message(
                "user",
                "Write the lesson 'For loops over lists' for a beginner Python course: about 350 "
                "words of markdown with one short code example. End with a one-sentence summary.",
            ),
        ]
        exercises = [
            Message("system", "You are an expert teacher. Answer with JSON only."),
            Message(
                "user",
                "Write 3 exercises (a multiple_choice with 4 options whose answer is one option, a "
                "true_false, a short_answer) on Python for loops over lists; outcome 1 for each.",
            ),
        ]
        plan = _prose_first([1], (3, 3), [], (250, 500), 1600)
        shapes: list[tuple[str, list[Message] | None, dict[str, Any] | None, int]] = [
            ("(a) prose ~350 words", prose, None, 900),
            ("(b) 3 exercises JSON", exercises, EXERCISES_SCHEMA, 900),
            ("(c) lesson JSON 80-200w <=2 (issue 13)", None, LESSON_SCHEMA, 1600),
            ("(c') lesson JSON 250-500w x3", None, TARGET_LESSON_SCHEMA, 1600),
            ("(d) prose-first lesson 250-500w x3", None, PROSE_FIRST_SCHEMA, 1600),
        ]
        await model.complete(ChatRequest(fresh(prose), max_tokens=4))
        for name, messages, schema, max_tokens in shapes:
            prose_first = schema is PROSE_FIRST_SCHEMA
            pool = self.prose_prompts if prose_first else self.prompts
            for n in sorted(set(self.args.parallel) & {1, k} or {1}):
                figures = []
                for rep in range(self.args.reps):
                    requests = [
                        ChatRequest(
                            fresh(messages or pool[(rep * k + i) % len(pool)]),
                            json_schema=schema,
                            max_tokens=max_tokens,
                            temperature=0.2,
                            prose_first=plan if prose_first else None,
                        )
                        for i in range(n)
                    ]
                    wall, answers = await self.wave(model, requests)
                    tokens = sum(a.usage.output_tokens for a in answers)
                    words = statistics.median(len(self.words_of(a, schema).split()) for a in answers)
                    ended = sum(a.finish_reason == "stop" for a in answers)
                    figures.append(
                        (
                            tokens / wall,
                            statistics.median(a.latency_s for a in answers),
                            tokens / n,
                            words,
                            ended,
                        )
                    )
                    print(
                        f"  {name} k={n} rep {rep}: {tokens / wall:.2f} tok/s, {tokens / n:.0f} tok/answer, "
                        f"{words:.0f} words, {ended}/{n} ended by themselves (load {load_avg():.1f})",
                        flush=True,
                    )
                self.rows.append(
                    {
                        "section": "shapes",
                        "case": f"{name} k={n}",
                        "total_tok_s": round(statistics.median(f[0] for f in figures), 2),
                        "latency_s": round(statistics.median(f[1] for f in figures), 1),
                        "tok_per_answer": round(statistics.median(f[2] for f in figures)),
                        "words": round(statistics.median(f[3] for f in figures)),
                        "ended_by_itself": f"{sum(f[4] for f in figures)}/{n * len(figures)}",
                    }
                )
        await self.stops(model, prose)

    @staticmethod
    def words_of(answer: Answer, schema: dict[str, Any] | None) -> str:
        if schema is None:
            return answer.text
        try:
            data = json.loads(answer.text, strict=False)
        except ValueError:
            return ""
        return str(data.get("content", "")) if isinstance(data, dict) else ""

    async def stops(self, model: LocalLlamaModel, prose: list[Message]) -> None:
        """Free text ending at a stop string, through the engine (ChatRequest has no stop yet)."""
        engine = (await model._model()).engine
        job = EngineJob(
            messages=[{"role": m.role, "content": m.content} for m in fresh(prose)],
            max_tokens=900,
            temperature=0.2,
            stop=("\n\n",),
        )
        result = await asyncio.to_thread(engine.run, job)
        self.rows.append(
            {
                "section": "shapes",
                "case": "stop string '\\n\\n'",
                "finish_reason": result.finish_reason,
                "tok_per_answer": result.completion_tokens,
                "ends_with": result.text[-40:],
            }
        )

    def server_params(self, n_parallel: int) -> Any:
        """xllamacpp's server parameters for this model with `n_parallel` sequences (each of
        the model's n_ctx), on `--threads`' first count, quiet and on no port of its own."""
        import secrets

        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = str(self.path)
        p.n_parallel, p.n_ctx, p.kv_unified = n_parallel, self.n_ctx * n_parallel, False
        p.cpuparams.n_threads = p.cpuparams_batch.n_threads = self.args.threads[0]
        p.fit_params, p.verbosity, p.ui, p.n_threads_http = False, 0, False, 1
        p.api_keys = [secrets.token_urlsafe(16)]
        return p

    def timed_chat(self, srv: Any, messages: list[Message], grammar: str | None = None) -> dict[str, float]:
        """One streamed chat completion on an xllamacpp server (`--max-tokens`, nothing
        cached: `fresh`): llama.cpp's own timings of it (decode and prompt tok/s, tokens, drafts)."""
        import threading

        from courseforge.providers.local_engine import _StreamReader

        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in fresh(messages)],
            "max_tokens": self.args.max_tokens,
            "temperature": 0.2,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if grammar:
            request["grammar"] = grammar
        timings: dict[str, float] = {}
        reader = _StreamReader(threading.Event())

        def on_chunk(chunk: Any) -> bool:
            timings.update(chunk.get("timings") or {})
            return reader.on_chunk(chunk)

        srv.handle_chat_completions(request, on_chunk)
        reader.result()
        return timings

    async def speculative(self) -> None:
        """Speculative decoding against none, through xllamacpp's server directly (the engine
        does not expose it: no kind paid for itself here, see docs/offline.md)."""
        import xllamacpp

        cascade = load_config("offline-cascade", env={}).settings
        draft_local = cascade.models["qwen2.5-coder-0.5b"].local
        assert draft_local is not None
        draft_path = assemble_model(draft_local, Path(cascade.cache_dir).expanduser())
        kinds = ["none", *self.args.speculative.split(",")]

        def server(kind: str) -> Any:
            p = self.server_params(n_parallel=1)
            types = xllamacpp.common_speculative_type
            if kind == "draft":
                p.speculative.types = [types.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
                p.speculative.draft.mparams.path = str(draft_path)
                p.speculative.draft.n_max, p.speculative.draft.p_min = 8, 0.6
                p.speculative.draft.cpuparams.n_threads = self.args.threads[0]
                p.speculative.draft.cpuparams_batch.n_threads = self.args.threads[0]
            elif kind != "none":
                p.speculative.types = [getattr(types, f"COMMON_SPECULATIVE_TYPE_{kind.upper()}")]
            return xllamacpp.Server(p)

        servers = {kind: server(kind) for kind in kinds}
        prose = [
            Message("system", "You are an expert teacher writing for beginners."),
            Message(
                "user", "Teach Python functions (def, parameters, return) in markdown with a worked example."
            ),
        ]
        exercises = [
            Message("system", "You are an expert teacher. Answer with JSON only."),
            Message("user", "Write 3 exercises on Python functions; outcome 1 for each."),
        ]
        cases = [
            ("prose, free", prose, None),
            ("3 exercises JSON, grammar", exercises, gbnf_for_schema(EXERCISES_SCHEMA)),
        ]
        got: dict[tuple[str, str], list[dict[str, float]]] = {}
        for rep in range(self.args.reps):
            for name, messages, grammar in cases:
                for kind in kinds if rep % 2 == 0 else kinds[::-1]:
                    t = self.timed_chat(servers[kind], messages, grammar)
                    got.setdefault((name, kind), []).append(t)
                    print(
                        f"  rep {rep} {name} {kind}: {t.get('predicted_per_second', 0):.2f} tok/s, "
                        f"drafted {t.get('draft_n', 0)}, accepted {t.get('draft_n_accepted', 0)} "
                        f"(load {load_avg():.1f})",
                        flush=True,
                    )
        for name, _, _ in cases:
            base = [t["predicted_per_second"] for t in got[(name, "none")]]
            for kind in kinds:
                runs = got[(name, kind)]
                tps = [t["predicted_per_second"] for t in runs]
                drafted = sum(t.get("draft_n", 0) for t in runs)
                self.rows.append(
                    {
                        "section": "speculative",
                        "case": f"{name}, {kind}",
                        "gen_tok_s": round(statistics.median(tps), 2),
                        "vs_none": round(statistics.median(a / b for a, b in zip(tps, base, strict=True)), 2),
                        "accepted": f"{sum(t.get('draft_n_accepted', 0) for t in runs)}/{drafted}"
                        if drafted
                        else "",
                    }
                )
        servers.clear()

    async def batched(self) -> None:
        """k short lesson prompts (distinct topics) decoded at once in one llama.cpp context (n_parallel = the
        largest k), through xllamacpp's server directly so that llama.cpp's own timings separate
        decoding from prompt processing: per request its decode rate while batched
        (`predicted_per_second`); the aggregate is their sum (the k sequences share every decode
        step). The order of k alternates between reps."""
        import threading

        import xllamacpp

        top = max(self.args.parallel)
        p = self.server_params(n_parallel=top)
        p.cont_batching = True
        srv = xllamacpp.Server(p)

        def run(messages: list[Message], out: list[dict[str, float]]) -> None:
            out.append(self.timed_chat(srv, messages))

        # Short prompts, one topic each: the decode rate is what is compared, and ~900-token lesson
        # prompts would make prompt processing most of the run on a loaded machine.
        topics = ["functions", "for loops", "dictionaries", "if statements", "lists", "while loops"]
        short = [
            [
                Message("system", "You are an expert teacher writing for beginners."),
                Message("user", f"Teach Python {t} in markdown, about 330 words, with a worked example."),
            ]
            for t in topics
        ]
        got: dict[int, list[tuple[float, float, float]]] = {}
        for rep in range(self.args.reps):
            for k in self.args.parallel if rep % 2 == 0 else self.args.parallel[::-1]:
                out: list[dict[str, float]] = []
                prompts = [short[(rep * top + i) % len(short)] for i in range(k)]
                threads = [threading.Thread(target=run, args=(m, out)) for m in prompts]
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - started
                decode = sum(t.get("predicted_per_second", 0.0) for t in out)
                prompt_tps = statistics.median(t.get("prompt_per_second", 0.0) for t in out)
                tokens = sum(t.get("predicted_n", 0) for t in out)
                got.setdefault(k, []).append((decode, prompt_tps, tokens / wall))
                print(
                    f"  rep {rep} k={k}: decode {decode:.2f} tok/s in all "
                    f"({decode / k:.2f} per sequence), prompt {prompt_tps:.1f} tok/s, "
                    f"{tokens} tok in {wall:.1f} s wall (load {load_avg():.1f})",
                    flush=True,
                )
        base = statistics.median(d for d, _, _ in got[self.args.parallel[0]])
        for k in self.args.parallel:
            decode = statistics.median(d for d, _, _ in got[k])
            self.rows.append(
                {
                    "section": "batched",
                    "case": f"k={k} lesson prose, free",
                    "decode_tok_s": round(decode, 2),
                    "per_seq_tok_s": round(decode / k, 2),
                    "vs_k1": round(decode / base, 2),
                    "prompt_tok_s": round(statistics.median(p for _, p, _ in got[k]), 1),
                    "wall_tok_s": round(statistics.median(w for _, _, w in got[k]), 2),
                }
            )

    async def binding(self) -> None:
        if not self.args.baseline_python:
            print("  skipped: no --baseline-python")
            return
        gbnf = gbnf_for_schema(LESSON_SCHEMA)
        model = self.model(1)
        await model.complete(ChatRequest(fresh(self.prompts[0]), max_tokens=8))
        ours: dict[str, list[float]] = {"free": [], "grammar": [], "prompt": []}
        theirs: dict[str, list[float]] = {"free": [], "grammar": [], "prompt": []}
        for rep in range(self.args.reps):
            batch = [
                [
                    {"role": m.role, "content": m.content}
                    for m in fresh(self.prompts[(rep + i) % len(self.prompts)])
                ]
                for i in range(2)
            ]
            for side in ("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours"):
                if side == "theirs":
                    got = self.baseline_run(batch, gbnf)
                    for key in theirs:
                        theirs[key].append(got[key])
                else:
                    for key, schema in (("free", None), ("grammar", LESSON_SCHEMA)):
                        msgs = [Message(m["role"], m["content"]) for m in batch[0 if key == "free" else 1]]
                        _, (prompt_only,) = await self.wave(
                            model, [ChatRequest(fresh(msgs), max_tokens=1, temperature=0.2)]
                        )
                        request = ChatRequest(
                            fresh(msgs), json_schema=schema, max_tokens=self.args.max_tokens, temperature=0.2
                        )
                        _, (answer,) = await self.wave(model, [request])
                        gen_s = answer.latency_s - prompt_only.latency_s
                        ours[key].append((answer.usage.output_tokens - 1) / gen_s)
                        if key == "free":
                            ours["prompt"].append(prompt_only.usage.input_tokens / prompt_only.latency_s)
                print(
                    f"  rep {rep} {side}: "
                    + json.dumps(
                        {k: round(v[-1], 2) for k, v in (ours if side == "ours" else theirs).items()}
                    ),
                    flush=True,
                )
        for key, label in (
            ("prompt", "prompt tok/s"),
            ("free", "generation tok/s, free"),
            ("grammar", "generation tok/s, grammar"),
        ):
            new, old = statistics.median(ours[key]), statistics.median(theirs[key])
            self.rows.append(
                {
                    "section": "binding",
                    "case": label,
                    "llama-cpp-python": round(old, 2),
                    "xllamacpp": round(new, 2),
                    "ratio": round(new / old, 2),
                }
            )

    def baseline_run(self, batch: list[list[dict[str, str]]], gbnf: str) -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "spec.json"
            spec.write_text(
                json.dumps(
                    {
                        "path": str(self.path),
                        "batch": batch,
                        "gbnf": gbnf,
                        "max_tokens": self.args.max_tokens,
                        "threads": self.args.threads[0],
                    }
                )
            )
            done = subprocess.run(
                [self.args.baseline_python, "-c", _BASELINE, str(spec)],
                capture_output=True,
                text=True,
                timeout=1800,
            )
        if done.returncode != 0:
            raise RuntimeError(f"baseline failed: {done.stderr[-1500:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# llama-cpp-python, one sequence, streamed: prompt tok/s from the first token's arrival, generation
# tok/s from the tokens after it. Runs in its own interpreter (it bundles its own llama.cpp).
_BASELINE = r"""
import json, sys, time, llama_cpp
spec = json.load(open(sys.argv[1]))
llm = llama_cpp.Llama(model_path=spec["path"], n_ctx=4096, n_threads=spec["threads"],
                      n_threads_batch=spec["threads"], verbose=False)
grammar = llama_cpp.LlamaGrammar.from_string(spec["gbnf"], verbose=False)
def prompt_rate(messages):
    t0 = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.2)
    return out["usage"]["prompt_tokens"] / (time.perf_counter() - t0)
def gen_rate(messages, g):
    first = last = None; n = 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=spec["max_tokens"],
                                            temperature=0.2, stream=True, grammar=g):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter(); n += 1
            first = first or last
    return (n - 1) / (last - first)
llm.create_chat_completion(messages=[{"role": "user", "content": "Say OK."}], max_tokens=2)
prompt = prompt_rate(spec["batch"][0])
print(json.dumps({"prompt": prompt, "free": gen_rate(spec["batch"][0], None),
                  "grammar": gen_rate(spec["batch"][1], grammar)}))
"""


def print_table(rows: list[dict[str, Any]]) -> None:
    for section in dict.fromkeys(r["section"] for r in rows):
        part = [r for r in rows if r["section"] == section]
        keys = [k for k in dict.fromkeys(k for r in part for k in r) if k != "section"]
        print(f"\n## {section}\n")
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in part:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--parallel", default="1,2,3,4", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument(
        "--threads",
        default=[os.cpu_count() or 1],
        type=lambda s: [int(x) for x in s.split(",")],
        help="llama.cpp threads; a list (1,2) compares them in the parallel section",
    )
    parser.add_argument("--only", default="parallel,prompt,prefix,shapes,binding")
    parser.add_argument(
        "--free-only", action="store_true", help="parallel section: free text only (no lesson grammar)"
    )
    parser.add_argument("--baseline-python", default="", help="a Python with llama-cpp-python installed")
    parser.add_argument("--speculative", default="draft,ngram_mod", help="kinds for the speculative section")
    args = parser.parse_args()
    bench = Bench(args)
    print(f"model {args.model}, threads {args.threads}, load {load_avg():.1f}", flush=True)
    for section in args.only.split(","):
        print(f"# {section}", flush=True)
        await getattr(bench, section)()
    release_loaded_models()
    print_table(bench.rows)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
