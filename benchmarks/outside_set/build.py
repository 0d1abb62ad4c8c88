"""Build the outside labelled set (issue 24) from teaching text nobody in this project wrote.

    apt-get install python3-doc r-doc-html debian-history     # or: make outside-set
    python benchmarks/outside_set/build.py [-o tests/quality/data/outside/items.jsonl]

Reads the sections named in `tests/quality/data/outside/authored.yaml` out of the installed
packages (`sources.py`), and writes one JSON line per labelled item:

- `on_topic` (good): a real section with the outcome(s) and exercise written for it;
- `related` (bad, similarity): the same lesson against the next section's outcomes (same source);
- `off_topic` (bad, similarity): a lesson against the outcomes of a section of another source;
- `announce` (bad, teaches): an announcement that never teaches (authored templates);
- `cut` (bad, ending): the lesson stopped at an empty heading, in the middle of a list, or after
  announcing a next part that never comes;
- `wrong_key` (bad, answer_keys): the exercise's key contradicts the text;
- `duplicate` (bad, redundancy) and `distinct` (good) lesson pairs.

Every item records its source section (package, version, licence, file, heading). The items are
deterministic: the same packages give the same file.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sources import Section, debian_history, python_tutorial, r_intro

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "quality" / "data" / "outside"

#: Where each package keeps its text, and its licence (from its copyright file).
PACKAGES: dict[str, dict[str, str]] = {
    "python3-doc": {
        "path": "/usr/share/doc/python3.11/html/_sources/tutorial",
        "licence": "PSF-2.0 (Python Software Foundation License)",
        "work": "The Python Tutorial (Python 3.11)",
    },
    "r-doc-html": {
        "path": "/usr/share/doc/r-doc-html/manual/R-intro.html",
        "licence": "verbatim copying and modified versions permitted (R manuals notice; r-base is GPL-2+)",
        "work": "An Introduction to R (R 4.2.2)",
    },
    "debian-history": {
        "path": "/usr/share/doc/debian-history/docs/project-history.en.txt.gz",
        "licence": "GPL-2+ (freely redistributable and modifiable, changes marked)",
        "work": "A Brief History of Debian (2.28)",
    },
}


def package_version(name: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def load_sections() -> dict[str, list[Section]]:
    return {
        "python3-doc": python_tutorial(Path(PACKAGES["python3-doc"]["path"])),
        "r-doc-html": r_intro(Path(PACKAGES["r-doc-html"]["path"])),
        "debian-history": debian_history(Path(PACKAGES["debian-history"]["path"])),
    }


def _exercise(spec: dict[str, Any], answer: str | None = None) -> dict[str, Any]:
    out = {k: spec[k] for k in ("type", "question", "answer", "explanation") if k in spec}
    if "options" in spec:
        out["options"] = list(spec["options"])
    out["outcomes"] = list(spec.get("outcomes", [1]))
    if answer is not None:
        out["answer"] = answer
    return out


def _cut_empty_heading(text: str, n: int, next_title: str) -> str:
    return text.rstrip() + ("\n\n## 2." if n % 2 == 0 else f"\n\n## {next_title}")


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


def _cut_mid_list(text: str) -> str | None:
    """The text up to the first item of its first list of three or more items."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _LIST_ITEM.match(line) and (i == 0 or not _LIST_ITEM.match(lines[i - 1])):
            run = 0
            while i + run < len(lines) and _LIST_ITEM.match(lines[i + run]):
                run += 1
            if run >= 3:
                return "\n".join(lines[: i + 1])
    return None


_NEXT_PART = [
    "Now let's look at {next}.",
    "In the second part of this lesson we will see {next}.",
    "Next, we will turn to {next}.",
    "We will cover {next} in part 2 below.",
]


def _cut_announcing(text: str, n: int, next_title: str) -> str:
    """The first half of the text (by paragraphs) and a sentence announcing a next part."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    keep = max(1, len(paragraphs) // 2)
    head = "\n\n".join(paragraphs[:keep])
    if head.count("```") % 2:
        head = "\n\n".join(paragraphs[: keep + 1])
    topic = _plain_title(next_title).rstrip("?")
    return head + "\n\n" + _NEXT_PART[n % len(_NEXT_PART)].format(next=topic[:1].lower() + topic[1:])


def _plain_title(title: str) -> str:
    """A heading without its section number ("4.10. The 9.x Releases" -> "The 9.x Releases")."""
    return re.sub(r"^[\dA]+(?:\.\d+)*\.?\s+", "", title)


def _drop_a_paragraph(text: str) -> str:
    """A near copy: the text without its second prose paragraph (what a repeated lesson looks like)."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    prose = [i for i, p in enumerate(paragraphs) if not p.startswith("```")]
    if len(prose) >= 3:
        del paragraphs[prose[1]]
    return "\n\n".join(paragraphs)


_GATE_OF = {
    "on_topic": "similarity",
    "related": "similarity",
    "off_topic": "similarity",
    "announce": "teaches",
    "cut": "ending",
    "wrong_key": "answer_keys",
    "duplicate": "redundancy",
    "distinct": "redundancy",
}


def build(authored: dict[str, Any], sections: dict[str, list[Section]]) -> list[dict[str, Any]]:
    versions = {name: package_version(name) for name in PACKAGES}
    specs = authored["sections"]
    found: dict[str, Section] = {}
    for spec in specs:
        pool = sections[spec["source"]]
        match = [s for s in pool if s.title == spec["title"] and s.file == spec["file"]]
        if len(match) != 1:
            raise SystemExit(f"{spec['id']}: section {spec['title']!r} found {len(match)} times")
        found[spec["id"]] = match[0]

    def provenance(spec: dict[str, Any]) -> dict[str, str]:
        pkg = spec["source"]
        return {
            "package": pkg,
            "version": versions[pkg],
            "licence": PACKAGES[pkg]["licence"],
            "work": PACKAGES[pkg]["work"],
            "file": spec["file"],
            "section": spec["title"],
        }

    by_source: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_source.setdefault(spec["source"], []).append(spec)
    sources = list(by_source)

    def neighbour(spec: dict[str, Any]) -> dict[str, Any]:
        group = by_source[spec["source"]]
        return group[(group.index(spec) + 1) % len(group)]

    items: list[dict[str, Any]] = []

    def add(kind: str, label: str, spec: dict[str, Any], content: str, **extra: Any) -> None:
        item = {
            "id": f"{kind}:{spec['id']}" + (f":{extra.pop('suffix')}" if "suffix" in extra else ""),
            "kind": kind,
            "label": label,
            "title": found[spec["id"]].title,
            "outcomes": extra.pop("outcomes", spec["outcomes"]),
            "content": content,
            "exercises": extra.pop("exercises", [_exercise(spec["exercise"])]),
            "provenance": provenance(spec),
        }
        item.update(extra)
        # The gate whose label this is (`courseforge calibrate --gate similarity` picks its rows).
        item["gate"] = _GATE_OF[kind]
        items.append(item)

    for n, spec in enumerate(specs):
        text = found[spec["id"]].text
        nxt = neighbour(spec)
        add("on_topic", "good", spec, text)
        add("related", "bad", spec, text, outcomes=nxt["outcomes"], expect="similarity")
        add(
            "wrong_key",
            "bad",
            spec,
            text,
            exercises=[_exercise(spec["exercise"], spec["wrong"]["answer"])],
            expect="answer_keys",
        )
        if n % 2 == 0:
            far_source = sources[(sources.index(spec["source"]) + 1) % len(sources)]
            far = by_source[far_source][n % len(by_source[far_source])]
            add("off_topic", "bad", spec, text, outcomes=far["outcomes"], expect="similarity")
        if n % 3 == 0:
            add(
                "cut",
                "bad",
                spec,
                _cut_empty_heading(text, n, found[nxt["id"]].title),
                expect="ending",
                suffix="heading",
            )
        if n % 3 == 1:
            add(
                "cut",
                "bad",
                spec,
                _cut_announcing(text, n, found[nxt["id"]].title),
                expect="ending",
                suffix="announce",
            )
        mid = _cut_mid_list(text)
        if mid is not None:
            add("cut", "bad", spec, mid, expect="ending", suffix="list")
        if n % 3 == 2:
            add("duplicate", "bad", spec, text, other=_drop_a_paragraph(text), expect="redundancy")
            add("distinct", "good", spec, text, other=found[nxt["id"]].text)
    templates = authored["announce_templates"]
    for n, sid in enumerate(authored["announce_for"]):
        spec = next(s for s in specs if s["id"] == sid)
        title = _plain_title(found[sid].title)
        outcome = spec["outcomes"][0]
        topic = outcome[:1].lower() + outcome[1:]
        content = templates[n % len(templates)].format(title=title, topic=topic).strip()
        add("announce", "bad", spec, content, expect="teaches")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--out", type=Path, default=DATA / "items.jsonl")
    args = parser.parse_args()
    authored = yaml.safe_load((DATA / "authored.yaml").read_text("utf-8"))
    items = build(authored, load_sections())
    args.out.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")
    counts: dict[str, int] = {}
    for item in items:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    print(f"{len(items)} items -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
