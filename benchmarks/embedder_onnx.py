"""MiniLM through torch (the gates' embedder today: 1 thread, batches of 16) against the same
packaged weights exported to ONNX and run by ONNX Runtime (1 thread, the same batches, texts
sorted by length as sentence-transformers sorts them), on paragraphs of our own docs.

Rounds alternate between the two in one process; CPU seconds (process time) per round, and the
cosine of each text's two vectors (1.0: the same embedding, no threshold would move).

Needs `onnx` and `onnxruntime` from PyPI, which are not dependencies of courseforge (this
comparison is why): `pip install onnx onnxruntime` into a scratch environment first. The
export runs once, into a temp directory.

    python benchmarks/embedder_onnx.py [--rounds 3] [--docs docs/architecture.md,docs/operations.md,docs/quality.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _export(model: Any, tokenizer: Any, path: Path) -> None:
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = tokenizer(["hello world", "a longer sentence than that"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        LastHidden(model).eval(),
        tuple(sample[n] for n in names),
        str(path),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )


def _onnx_encoder(path: Path, tokenizer: Any, batch: int) -> Callable[[list[str]], Any]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(texts: list[str]) -> Any:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts = []
        for start in range(0, len(order), batch):
            chunk = [texts[i] for i in order[start : start + batch]]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="np")
            feeds = {n: enc[n].astype(np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = session.run(None, feeds)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            mean = (hidden * mask).sum(1) / mask.sum(1).clip(1e-9)
            parts.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
        stacked = np.vstack(parts)
        out = np.empty_like(stacked)
        out[order] = stacked
        return out

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", default="docs/architecture.md,docs/operations.md,docs/quality.md")
    args = parser.parse_args()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise SystemExit(
            "needs onnx and onnxruntime (pip install onnx onnxruntime; not dependencies)"
        ) from None
    import numpy as np
    import torch

    from courseforge.providers.embeddings import MINILM, _load_model

    model = _load_model(MINILM, 1)
    torch.set_num_threads(1)
    texts = [
        p.strip()
        for f in args.docs.split(",")
        for p in (ROOT / f).read_text("utf-8").split("\n\n")
        if len(p.strip()) > 40
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "minilm.onnx"
        _export(model[0].auto_model, model.tokenizer, path)
        runners: dict[str, Callable[[list[str]], Any]] = {
            "torch": lambda ts: model.encode(
                ts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
            "onnxruntime": _onnx_encoder(path, model.tokenizer, 16),
        }
        cosines = (runners["torch"](texts) * runners["onnxruntime"](texts)).sum(1)
        cpu: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                started = time.process_time()
                run(texts)
                cpu[name].append(time.process_time() - started)
    print(
        f"{len(texts)} texts; cosine torch vs onnxruntime: min {cosines.min():.6f}, median {np.median(cosines):.6f}"
    )
    medians = {name: sorted(v)[len(v) // 2] for name, v in cpu.items()}
    for name, v in cpu.items():
        print(f"{name}: CPU s per round {[round(x, 2) for x in v]}, median {medians[name]:.2f}")
    print(f"onnxruntime / torch: {medians['onnxruntime'] / medians['torch']:.2f}")


if __name__ == "__main__":
    main()
