"""Token counts: the byte estimate against the generators' own tokenizers, and the Qwen
tokenizer against a real provider's `prompt_tokens`.

    .venv/bin/python benchmarks/token_counts.py            # the estimate against the tokenizers
    .venv/bin/python benchmarks/token_counts.py --local    # + the local Qwen2.5 model's count

Texts: each input of the bundled eval set (`evals/set/*.json`, six languages, four with source
material), its JSON cut to `--chars` characters so that a chat of it fits the local model's
4,096-token context.

- For every text: `ledger.tokens`' estimate (ceil(bytes / 4), or / 2 for non-ASCII text), gpt-oss's
  `o200k_harmony` and Qwen's BPE (`quicktok`); the estimate's ratio to each, mean and range.
- `--local`: the offline-cascade profile's Qwen2.5-Coder-0.5B (llama.cpp, the same tokenizer as
  Qwen3) answers one token to a system + user chat of each text; its `prompt_tokens` (counted
  by llama.cpp from the GGUF's own vocabulary) against quicktok's count of the same ChatML
  rendering. Exact agreement means the counts the router uses are the provider's.

No live OpenRouter key here: gpt-oss's count is checked against no provider (its encoding is
tiktoken's o200k with the harmony special tokens; quicktok's ids match tiktoken's).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from courseforge.ledger.tokens import count_text_tokens

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You write one lesson of a course. Answer in JSON."


def texts(chars: int) -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "evals" / "set").glob("*.json")):
        body = json.loads(path.read_text())
        out.append((path.stem, json.dumps(body, ensure_ascii=False)[:chars]))
    return out


def chatml(system: str, user: str) -> str:
    """Qwen2.5's chat template for a system and a user message, ready for the answer."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def compare(samples: list[tuple[str, str]]) -> None:
    rows = []
    for name, text in samples:
        est = count_text_tokens(text)
        oss = count_text_tokens(text, "openai/gpt-oss-20b")
        qwen = count_text_tokens(text, "qwen/qwen3-max")
        rows.append((name, len(text), est, oss, qwen))
        print(f"{name:28s} chars {len(text):6d}  estimate {est:5d}  o200k_harmony {oss:5d}  qwen {qwen:5d}")
    for label, col in (("o200k_harmony", 3), ("qwen", 4)):
        ratios = [r[2] / r[col] for r in rows]
        print(
            f"estimate / {label}: mean {statistics.mean(ratios):.3f}, "
            f"min {min(ratios):.3f}, max {max(ratios):.3f} over {len(rows)} texts"
        )


def local_check(samples: list[tuple[str, str]]) -> None:
    import quicktok

    from courseforge.config.loader import load_config
    from courseforge.providers.local_engine import EngineConfig, EngineJob, LlamaServerEngine
    from courseforge.providers.model_files import assemble_model

    settings = load_config("offline-cascade", env={}).settings
    model = settings.models["qwen2.5-coder-0.5b"]
    assert model.local is not None
    path = assemble_model(model.local, Path(settings.cache_dir))
    engine = LlamaServerEngine(EngineConfig(path, n_ctx=4096, n_threads=2, n_parallel=1, prefix_cache=False))
    enc = quicktok.get_encoding("qwen3")
    exact = 0
    est_err = []
    try:
        for name, text in samples:
            job = EngineJob(
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                max_tokens=1,
                temperature=0.0,
            )
            provider = engine.run(job).prompt_tokens
            ours = len(enc.encode(chatml(SYSTEM, text), allowed_special="all"))
            estimate = count_text_tokens(SYSTEM) + count_text_tokens(text) + 2 * 4  # context.py's overhead
            exact += provider == ours
            est_err.append(estimate / provider - 1)
            print(
                f"{name:28s} provider prompt_tokens {provider:5d}  quicktok {ours:5d}  estimate {estimate:5d}"
            )
    finally:
        engine.close()
    print(f"quicktok == provider on {exact}/{len(samples)} chats")
    print(
        f"estimate vs provider: mean {statistics.mean(est_err):+.1%}, "
        f"min {min(est_err):+.1%}, max {max(est_err):+.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=6000)
    parser.add_argument("--local", action="store_true", help="check against the local Qwen2.5 model")
    args = parser.parse_args()
    samples = texts(args.chars)
    compare(samples)
    if args.local:
        local_check(samples)


if __name__ == "__main__":
    main()
