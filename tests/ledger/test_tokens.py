"""Token counts: the generators' own tokenizers where a package ships them, else the estimate."""

from __future__ import annotations

import pytest

from courseforge.ledger.tokens import ESTIMATE, count_text_tokens, counted_by, tokenizer_for


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-oss-20b", "o200k_harmony"),
        ("openai/gpt-oss-120b", "o200k_harmony"),
        ("qwen/qwen3-max", "qwen3"),
        ("qwen2.5-coder-1.5b-instruct-q4_k_m", "qwen3"),
        ("google/gemini-2.5-flash", None),
        (None, None),
    ],
)
def test_each_model_family_is_counted_with_its_own_tokenizer(model: str | None, encoding: str | None) -> None:
    assert tokenizer_for(model) == encoding
    assert counted_by(model) == (f"tokenizer {encoding}" if encoding else ESTIMATE)


def test_the_tokenizers_count_what_the_providers_count() -> None:
    # "Hello, world!" is [13225, 11, 2375, 0] in o200k and [9707, 11, 1879, 0] in Qwen's BPE;
    # a long German compound splits into more tokens than its bytes / 4.
    assert count_text_tokens("Hello, world!", "openai/gpt-oss-20b") == 4
    assert count_text_tokens("Hello, world!", "qwen/qwen3-max") == 4
    word = "Donaudampfschifffahrtsgesellschaftskapitän"
    assert count_text_tokens(word) == 11  # the estimate: 44 bytes, mostly ASCII
    assert count_text_tokens(word, "qwen/qwen3-max") != count_text_tokens(word)


def test_special_token_strings_count_as_plain_text() -> None:
    assert count_text_tokens("<|im_start|>", "qwen/qwen3-max") > 1
    assert count_text_tokens("<|start|>", "openai/gpt-oss-20b") > 1


def test_without_a_model_the_estimate_counts() -> None:
    assert count_text_tokens("") == 0
    assert count_text_tokens("abcd" * 10) == 10
    assert count_text_tokens("日本語のテキスト") == 12  # 24 bytes, non-ASCII: / 2
