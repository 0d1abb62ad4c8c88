"""`index.html` of an eval: one self-contained page (inline CSS and SVG, no script, no font or
CDN, nothing fetched), drawn from the eval document alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..safehtml import esc as _e

__all__ = ["render_html"]

#: Colour-blind-safe palette (Okabe-Ito), one colour per config in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_W, _H, _PAD = 560, 300, 48


def _fmt(x: object, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axis(x0: float, x1: float, y0: float, y1: float, xlabel: str, ylabel: str) -> list[str]:
    return [
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 12}" y2="{_H - _PAD}" class="ax"/>',
        f'<line x1="{_PAD}" y1="12" x2="{_PAD}" y2="{_H - _PAD}" class="ax"/>',
        f'<text x="{(_W + _PAD) / 2}" y="{_H - 8}" class="lbl" text-anchor="middle">{_e(xlabel)}</text>',
        f'<text x="12" y="{(_H - _PAD) / 2}" class="lbl" text-anchor="middle" '
        f'transform="rotate(-90 12 {(_H - _PAD) / 2})">{_e(ylabel)}</text>',
        f'<text x="{_PAD}" y="{_H - _PAD + 16}" class="tick">{_fmt(x0)}</text>',
        f'<text x="{_W - 12}" y="{_H - _PAD + 16}" class="tick" text-anchor="end">{_fmt(x1)}</text>',
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" class="tick" text-anchor="end">{_fmt(y0)}</text>',
        f'<text x="{_PAD - 4}" y="20" class="tick" text-anchor="end">{_fmt(y1)}</text>',
    ]


def _svg(parts: Sequence[str], title: str) -> str:
    return (
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>{"".join(parts)}</svg>'
    )


def _quality_key(doc: Mapping[str, Any]) -> tuple[str, str]:
    """Judge composite when any config has it, else the similarity mean."""
    if any(c["figures"]["judge_composite"]["mean"] is not None for c in doc["configs"].values()):
        return "judge_composite", "reference-judge composite (1-5)"
    return "similarity_mean", "similarity mean"


def cost_quality_plot(doc: Mapping[str, Any]) -> str:
    key, label = _quality_key(doc)
    runs = [r for r in doc["runs"] if r.get(key) is not None]
    configs = list(doc["configs"])
    points = [(r["cost_per_course"], r[key]) for r in runs]
    for c in doc["configs"].values():
        cf, qf = c["figures"]["cost_per_course"], c["figures"][key]
        if cf["low"] is not None and qf["low"] is not None:
            points += [(cf["low"], qf["low"]), (cf["high"], qf["high"])]
    if not points:
        return "<p>No run has a cost and a quality figure yet.</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs) * 0.95, max(xs) * 1.05 or 1.0
    y0, y1 = min(ys) - 0.02 * (abs(min(ys)) or 1), max(ys) + 0.02 * (abs(max(ys)) or 1)
    sx, sy = _scale(x0, x1, _PAD, _W - 12), _scale(y0, y1, _H - _PAD, 12)
    parts = _axis(x0, x1, y0, y1, "cost per course (USD)", label)
    for r in runs:
        colour = PALETTE[configs.index(r["config"]) % len(PALETTE)]
        parts.append(
            f'<circle cx="{sx(r["cost_per_course"]):.1f}" cy="{sy(r[key]):.1f}" r="2.5" fill="{colour}" '
            f'opacity="0.35"><title>{_e(r["config"])} · {_e(r["input"])} r{r["repeat"]}</title></circle>'
        )
    for i, (name, c) in enumerate(doc["configs"].items()):
        cf, qf = c["figures"]["cost_per_course"], c["figures"][key]
        if cf["mean"] is None or qf["mean"] is None:
            continue
        colour, cx, cy = PALETTE[i % len(PALETTE)], sx(cf["mean"]), sy(qf["mean"])
        parts += [
            f'<line x1="{sx(cf["low"]):.1f}" y1="{cy:.1f}" x2="{sx(cf["high"]):.1f}" y2="{cy:.1f}" '
            f'stroke="{colour}" stroke-width="2"/>',
            f'<line x1="{cx:.1f}" y1="{sy(qf["low"]):.1f}" x2="{cx:.1f}" y2="{sy(qf["high"]):.1f}" '
            f'stroke="{colour}" stroke-width="2"/>',
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{colour}" stroke="#fff"/>',
            f'<text x="{cx + 8:.1f}" y="{cy - 8:.1f}" class="name">{_e(name)}</text>',
        ]
    return _svg(parts, f"cost per course against {label}, per config (mean with 95 % CI, runs faint)")


def cost_by_phase_plot(doc: Mapping[str, Any]) -> str:
    configs = doc["configs"]
    phases = list(dict.fromkeys(p for c in configs.values() for p in c["cost_by_phase_mean"]))
    top = max((sum(c["cost_by_phase_mean"].values()) for c in configs.values()), default=0.0) or 1.0
    row_h = 28
    height = 40 + row_h * len(configs) + 24
    sx = _scale(0, top, 120, _W - 80)  # room for the total after the longest bar
    parts: list[str] = []
    for i, (name, c) in enumerate(configs.items()):
        y, x = 20 + i * row_h, 120.0
        parts.append(f'<text x="114" y="{y + 15}" class="name" text-anchor="end">{_e(name)}</text>')
        for j, phase in enumerate(phases):
            value = c["cost_by_phase_mean"].get(phase, 0.0)
            w = sx(value) - 120
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0):.1f}" height="{row_h - 8}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_e(name)} · {_e(phase)}: '
                f"${value:.6f} per course</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 15}" class="tick">${_fmt(sum(c["cost_by_phase_mean"].values()))}</text>'
        )
    legend_y = 28 + row_h * len(configs)
    for j, phase in enumerate(phases):
        lx = 120 + j * 84
        parts += [
            f'<rect x="{lx}" y="{legend_y}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>',
            f'<text x="{lx + 14}" y="{legend_y + 9}" class="tick">{_e(phase)}</text>',
        ]
    return (
        f'<svg role="img" aria-label="mean cost per course by phase" viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>mean cost per course '
        f"by phase</title>{''.join(parts)}</svg>"
    )


def score_histogram(
    doc: Mapping[str, Any], field: str, label: str, lo: float, hi: float, bins: int = 20
) -> str:
    configs = list(doc["configs"])
    counts = {c: [0] * bins for c in configs}
    for r in doc["runs"]:
        for s in r.get("lesson_scores", []):
            v = s.get(field)
            if v is None:
                continue
            b = min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins)))
            counts[r["config"]][b] += 1
    totals = {c: sum(v) for c, v in counts.items()}
    if not any(totals.values()):
        return f"<p>No lesson has a {_e(label)} yet.</p>"
    share = {c: [n / totals[c] if totals[c] else 0.0 for n in v] for c, v in counts.items()}
    top = max(max(v) for v in share.values()) or 1.0
    sy = _scale(0, top, _H - _PAD, 12)
    bw = (_W - 12 - _PAD) / bins
    parts = _axis(lo, hi, 0.0, top, label, "share of lessons")
    for i, c in enumerate(configs):
        w = bw / max(1, len(configs))
        for b, value in enumerate(share[c]):
            if value:
                x = _PAD + b * bw + i * w
                parts.append(
                    f'<rect x="{x:.1f}" y="{sy(value):.1f}" width="{w:.1f}" height="{_H - _PAD - sy(value):.1f}" '
                    f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_e(c)}: {counts[c][b]} lesson(s)</title></rect>'
                )
    return _svg(parts, f"distribution of lesson {label} per config")


def _legend(configs: Sequence[str]) -> str:
    return " ".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{_e(c)}</span>'
        for i, c in enumerate(configs)
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _ci(f: Mapping[str, Any]) -> str:
    if f["mean"] is None:
        return "–"
    return f"{_fmt(f['mean'])} <small>[{_fmt(f['low'])}, {_fmt(f['high'])}]</small>"


def _mix(m: Mapping[str, int]) -> str:
    total = sum(m.values()) or 1
    return ", ".join(f"{_e(k)} {v} ({v / total:.0%})" for k, v in m.items()) or "–"


def _target_rows(configs: Mapping[str, Any]) -> list[list[object]]:
    """One row per seed target (`evals.targets`): goal, then each config's actual, met or missed."""
    per_config = [c.get("seed_targets", []) for c in configs.values()]
    rows: list[list[object]] = []
    for i, first in enumerate(per_config[0] if per_config else []):
        cells: list[object] = [_e(first["target"]), _e(first["goal"])]
        for targets in per_config:
            t = targets[i]
            mark = "" if t["met"] is None else (" met" if t["met"] else " <span class=bad>missed</span>")
            cells.append("–" if t["actual"] is None else f"{_fmt(t['actual'])}{mark}")
        rows.append(cells)
    return rows


def render_html(doc: Mapping[str, Any]) -> str:
    configs = doc["configs"]
    names = list(configs)
    figures = doc["figures"]
    summary_rows = [
        [f"<b>{_e(name)}</b>", c["runs"], _e(", ".join(f"{k} {v}" for k, v in c["status"].items()))]
        + [_ci(c["figures"][f["name"]]) for f in figures]
        + [_fmt(c["figures"]["cost_per_course"]["p50"]), _fmt(c["figures"]["cost_per_course"]["p95"])]
        for name, c in configs.items()
    ]
    diff_rows = []
    for d in doc["differences"]:
        iv = d["ratio"] or d["difference"]
        if iv is None:
            continue
        what = "ratio" if d["ratio"] else "difference"
        diff_rows.append(
            [
                _e(f"{d['config']} vs {d['against']}"),
                _e(d["label"]),
                what,
                f"{_fmt(iv['value'])} <small>[{_fmt(iv['low'])}, {_fmt(iv['high'])}]</small>",
                iv["n"],
                _e(d["better"]) + " is better",
            ]
        )
    input_head = ["input"] + [f"{n}: {lbl}" for n in names for lbl in ("cost", "sim.", "judge", "lessons")]
    input_rows = []
    for name, row in doc["inputs"].items():
        cells: list[object] = [_e(name)]
        for n in names:
            r = row.get(n)
            cells += (
                ["–"] * 4
                if r is None
                else [
                    _fmt(r["cost_per_course"]),
                    _fmt(r["similarity_mean"]),
                    _fmt(r["judge_composite"]),
                    _e("/".join(str(x) for x in r["lessons"])),
                ]
            )
        input_rows.append(cells)
    mix_rows = [
        [
            f"<b>{_e(n)}</b>",
            _mix(c["lessons_by_tier"]),
            _mix(c["calls_by_model"]),
            _e(", ".join(f"{k} {v}" for k, v in c["gate_failures"].items()) or "none"),
        ]
        for n, c in configs.items()
    ]
    target_rows = _target_rows(configs)
    regress = doc.get("regressions")
    regress_html = ""
    if regress is not None:
        items = "".join(
            f"<li>{_e(r['config'])}: {_e(r['figure'])} {_fmt(r['current'])} vs {_fmt(r['baseline'])}</li>"
            for r in regress
        )
        regress_html = f"<section><h2>Against the baseline</h2>{'<ul class=bad>' + items + '</ul>' if items else '<p>No regression beyond the intervals.</p>'}</section>"
    judge = doc.get("reference_judge") or next(
        (c["judge_model"] for c in configs.values() if c["judge_model"]), ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>courseforge eval: {_e(" vs ".join(names))}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1a1a1a;max-width:1400px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:28px 0 8px}}
.meta{{color:#555}} table{{border-collapse:collapse;margin:8px 0}} td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}
th{{background:#f2f2f2}} td:first-child,th:first-child{{text-align:left}} small{{color:#666}}
.plots{{display:flex;flex-wrap:wrap;gap:18px}} figure{{margin:0}} figcaption{{color:#555;font-size:12px}}
svg .ax{{stroke:#444}} svg .lbl{{font-size:12px;fill:#333}} svg .tick{{font-size:10px;fill:#555}} svg .name{{font-size:12px;font-weight:600}}
.key{{margin-right:12px}} .key i{{display:inline-block;width:10px;height:10px;margin-right:4px}} .bad{{color:#b00020}}
</style></head><body>
<h1>courseforge eval</h1>
<p class="meta">{len(doc["runs"])} runs · {len(doc["inputs"])} inputs · configs {_e(", ".join(names))} ·
repeat {_e(doc.get("repeat", ""))} · reference judge {_e(judge or "none")} · {_e(doc.get("provider_note", ""))}
· created {_e(doc.get("created_at", ""))}</p>
<p>{_legend(names)}</p>
{regress_html}
<section><h2>Per config</h2><p class="meta">mean [95 % bootstrap CI]; cost p50 and p95 at the end.</p>
{_table(["config", "runs", "status", *[f["label"] for f in figures], "cost p50", "cost p95"], summary_rows)}</section>
<section><h2>Differences (against {_e(names[0])}, paired by input)</h2>
{_table(["configs", "figure", "", "value [95 % CI]", "inputs", ""], diff_rows) if diff_rows else "<p>One config: nothing to compare.</p>"}</section>
<section><h2>Plots</h2><div class="plots">
<figure>{cost_quality_plot(doc)}<figcaption>Cost against quality: big dot = config mean with 95 % CIs; faint dots = runs.</figcaption></figure>
<figure>{cost_by_phase_plot(doc)}<figcaption>Mean cost per course, by phase.</figcaption></figure>
<figure>{score_histogram(doc, "composite", "reference-judge composite", 1.0, 5.0)}<figcaption>Lesson scores by the reference judge.</figcaption></figure>
<figure>{score_histogram(doc, "similarity", "similarity", -0.2, 1.0)}<figcaption>Lesson similarity to its outcomes (each config's own embedder).</figcaption></figure>
</div></section>
<section><h2>Seed targets vs actual</h2><p class="meta">The success metrics to track; tier 1 = cheap + mid, tier 2 = premium, tier 3 = long_context (docs/seed-rules.md).</p>
{_table(["target", "goal", *names], target_rows)}</section>
<section><h2>Model and tier mix, failures by gate</h2>
{_table(["config", "lessons by final tier", "calls by model", "gate failures (lessons)"], mix_rows)}</section>
<section><h2>Per input</h2>{_table(input_head, input_rows)}</section>
</body></html>
"""
