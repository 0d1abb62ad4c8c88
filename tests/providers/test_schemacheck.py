"""The light schema check and the safe repairs by the schema."""

from __future__ import annotations

from courseforge.providers.schemacheck import repair_to_schema, schema_errors

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "citations"],
    "properties": {
        "summary": {"type": "string", "minLength": 10, "maxLength": 40},
        "citations": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
    },
}


def test_items_past_max_items_unknown_keys_and_long_strings_are_repaired_and_named() -> None:
    value = {
        "summary": "Plants make sugar. They use light. And water, lots of it.",
        "citations": ["a", "b", "c"],
        "extra": True,
    }
    assert schema_errors(value, SCHEMA)
    repaired, repairs = repair_to_schema(value, SCHEMA)
    assert repaired == {"summary": "Plants make sugar. They use light.", "citations": ["a"]}
    assert schema_errors(repaired, SCHEMA) == []
    assert repairs == [
        "$.summary: trimmed from 57 to 34 characters (maxLength 40)",
        "$.citations: dropped 2 item(s) past maxItems 1",
        "$: dropped unknown key 'extra'",
    ]
    assert value["citations"] == ["a", "b", "c"]  # the input is not changed


def test_a_string_without_a_sentence_end_is_cut_at_a_word() -> None:
    repaired, _ = repair_to_schema(
        {"summary": "one two three four five six seven eight nine", "citations": []}, SCHEMA
    )
    assert repaired["summary"] == "one two three four five six seven eight"


def test_what_cannot_be_repaired_stays_an_error() -> None:
    value = {"summary": 3, "citations": [1]}
    repaired, repairs = repair_to_schema(value, SCHEMA)
    assert repairs == []
    assert schema_errors(repaired, SCHEMA) == [
        "$.summary: expected string, got int",
        "$.citations[0]: expected string, got int",
    ]


def test_a_trim_below_min_length_is_not_made() -> None:
    schema = {"type": "string", "minLength": 30, "maxLength": 40}
    repaired, repairs = repair_to_schema("Short. " + "x" * 50, schema)
    assert repairs == [] and schema_errors(repaired, schema)
