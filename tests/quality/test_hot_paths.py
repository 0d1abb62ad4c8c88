"""The gates' faster hot paths give exactly what the plain versions gave.

- the profanity pre-check (skips the word-list regex when no term can match) must never change
  the findings: compared with the bare regex on randomised texts full of listed words, their
  parts, case variants (including the characters IGNORECASE folds onto ASCII: K, ſ, İ, ı),
  glued punctuation and odd whitespace;
- `cosine` and the hashing embedder's cached feature hashes must give bit-identical numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from importlib import resources

import pytest

from courseforge.providers.embeddings import HashingEmbedder, cosine
from courseforge.quality.safety import DEFAULT_ALLOWED, _profanity_pattern

_NORMAL = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "while",
    "photosynthesis",
    "turns",
    "light",
    "into",
    "leaves",
]
_SPECIALS = ["K", "ſ", "İ", "ı", "ß", "É", "$", "@", "!", "*", "-", "&", "_", "1", "é", "🖕"]
_SEPARATORS = [" ", "  ", "\n", "\n\n", ", ", ". ", "\t", "", "-", "_", "@", "$", "!"]


def _variant(rng: random.Random, word: str) -> str:
    out = []
    for ch in word:
        r = rng.random()
        if r < 0.2:
            ch = ch.upper()
        elif r < 0.23 and ch == "k":
            ch = "K"
        elif r < 0.26 and ch == "s":
            ch = "ſ"
        elif r < 0.29 and ch == "i":
            ch = rng.choice("İı")
        out.append(ch)
    text = "".join(out)
    if " " in text and rng.random() < 0.5:
        text = text.replace(" ", rng.choice(["  ", "\n", "\t "]))
    return text


def test_profanity_precheck_changes_no_finding() -> None:
    matcher = _profanity_pattern(DEFAULT_ALLOWED)
    if matcher is None:
        pytest.skip("glin-profanity not installed")
    raw = resources.files("glin_profanity").joinpath("data/dictionaries/english.json").read_text("utf-8")
    words = json.loads(raw)["words"]
    parts = sorted({p for w in words for p in w.split()})
    rng = random.Random(7)
    skipped = hits = 0
    for _ in range(4000):
        tokens = []
        for _ in range(rng.randint(1, 25)):
            r = rng.random()
            if r < 0.1:
                tokens.append(_variant(rng, rng.choice(words)))
            elif r < 0.35:
                tokens.append(_variant(rng, rng.choice(parts)))
            elif r < 0.45:
                tokens.append(rng.choice(_SPECIALS) + rng.choice(_NORMAL) + rng.choice(["", *_SPECIALS]))
            else:
                tokens.append(rng.choice(_NORMAL))
            tokens.append(rng.choice(_SEPARATORS))
        text = "".join(tokens)
        expected = [(m.span(), m.group()) for m in matcher.pattern.finditer(text)]
        assert [(m.span(), m.group()) for m in matcher.finditer(text)] == expected, text
        hits += bool(expected)
        skipped += not matcher._may_match(text)
    assert hits > 500 and skipped > 200  # both paths were exercised


def test_precheck_skips_ordinary_course_text() -> None:
    matcher = _profanity_pattern(DEFAULT_ALLOWED)
    if matcher is None:
        pytest.skip("glin-profanity not installed")
    text = "A leaf uses light, water and carbon dioxide to make sugar: two inputs, one output."
    assert not matcher._may_match(text)
    assert matcher._may_match(text + " It cost $5.")  # "a$$" could match: the regex decides
    assert not list(matcher.finditer(text + " It cost $5."))
    assert matcher._may_match("What the fuck.") and list(matcher.finditer("What the FUCK."))


def test_cosine_and_hashing_embedder_are_bit_identical() -> None:
    rng = random.Random(3)
    for _ in range(50):
        a = [rng.uniform(-1, 1) for _ in range(384)]
        b = [rng.uniform(-1, 1) for _ in range(384)]
        assert cosine(a, b) == math.fsum(x * y for x, y in zip(a, b, strict=True))

    def plain(text: str, dims: int = 512) -> list[float]:  # the embedder before the hash cache
        from courseforge.providers.embeddings import _features

        vec = [0.0] * dims
        for feature, weight in _features(text):
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            vec[(digest >> 1) % dims] += weight if digest & 1 else -weight
        norm = math.sqrt(sum(x * x for x in vec))
        return [x / norm for x in vec] if norm else vec

    embedder = HashingEmbedder()
    texts = ["Photosynthesis turns light into sugar in the leaf.", "", "the of and", "Leaf leaf LEAF cells"]
    for text in texts * 2:
        assert embedder._embed_one(text) == plain(text)
