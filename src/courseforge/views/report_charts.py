"""The generation report as pictures (inline SVG): cost by phase and by model, the call
timeline (every call a bar on its task's lane, the critical path outlined, retries,
escalations, fallbacks, cache hits and replays coloured), gate scores per lesson, and the
headline figures. The dashboard's report page and `courseforge report --html` both render
through `report_html`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from ..domain import CallRecord, Report, Totals
from ..pipeline.report_builder import critical_path
from .markup import document, esc

__all__ = ["CALL_KINDS", "call_kinds", "report_document", "report_html"]

#: Call kind -> legend text. A call's kind comes from its record alone (see `call_kinds`).
CALL_KINDS: dict[str, str] = {
    "first": "first try",
    "retry": "retry on the same tier",
    "escalation": "escalation to another tier",
    "fallback": "fallback to the next model of the chain",
    "error": "provider error / budget block",
    "cache": "prompt-cache hit",
    "replayed": "replayed from a checkpoint (not paid again)",
}


def _lane(task: str) -> str:
    """The task without its self-consistency sample: one lane per lesson (or phase task)."""
    return task.split("#", 1)[0]


def call_kinds(calls: Sequence[CallRecord]) -> list[str]:
    """Each call's kind, in order: replayed > cache > error > fallback (a later model within
    one attempt) > escalation (a later attempt on another tier than the one before) > retry (a
    later attempt on the same tier) > first."""
    kinds: list[str] = []
    seen_attempt: set[tuple[str, int]] = set()
    tier_of_attempt: dict[tuple[str, int], str] = {}
    for c in calls:
        lane = _lane(c.task)
        key = (c.task, c.attempt)
        earlier = [a for (ln, a) in tier_of_attempt if ln == lane and a < c.attempt]
        if c.replayed:
            kind = "replayed"
        elif c.cache_hit:
            kind = "cache"
        elif c.outcome in ("error", "budget_blocked"):
            kind = "error"
        elif key in seen_attempt:
            kind = "fallback"
        elif earlier:
            before = tier_of_attempt[(lane, max(earlier))]
            kind = "escalation" if before != c.tier else "retry"
        else:
            kind = "first"
        seen_attempt.add(key)
        tier_of_attempt.setdefault((lane, c.attempt), c.tier)
        kinds.append(kind)
    return kinds


def _usd(value: Decimal | float) -> str:
    return f"${float(value):.4f}"


def _bars(figure_id: str, title: str, rows: Mapping[str, Totals]) -> str:
    """Horizontal bars of cost, one per row, with calls and tokens in each bar's tooltip."""
    if not rows:
        return f'<p class="empty">No calls, so no {esc(title.lower())}.</p>'
    label_w, bar_w, row_h = 220, 520, 26
    top = max(float(t.cost_usd) for t in rows.values()) or 1.0
    height = row_h * len(rows) + 10
    parts = [
        f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 110} {height}" role="img" '
        f'aria-labelledby="{figure_id}-t"><title id="{figure_id}-t">{esc(title)}</title>'
    ]
    for i, (name, t) in enumerate(rows.items()):
        y = 5 + i * row_h
        w = max(1.0, bar_w * float(t.cost_usd) / top)
        thought = f" ({t.reasoning_tokens} reasoning)" if t.reasoning_tokens else ""
        tip = (
            f"{name}: {_usd(t.cost_usd)}, {t.calls} calls, {t.input_tokens} in / {t.output_tokens} out"
            f"{thought} tokens"
        )
        parts.append(
            f"<g><title>{esc(tip)}</title>"
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="label">{esc(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" class="bar"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" class="value">{esc(_usd(t.cost_usd))} '
            f"· {t.calls}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _timeline(report: Report) -> str:
    calls = report.calls
    if not calls:
        return '<p class="empty">No calls recorded.</p>'
    kinds = call_kinds(calls)
    _, path = critical_path(calls, report.decisions)
    on_path = set(path)
    lanes: list[str] = []
    for c in calls:
        if _lane(c.task) not in lanes:
            lanes.append(_lane(c.task))
    end = max(c.started_ms + c.latency_ms for c in calls) or 1.0
    label_w, plot_w, lane_h, axis_h = 200, 740, 16, 24
    height = axis_h + lane_h * len(lanes) + 6
    scale = plot_w / end
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {label_w + plot_w + 20} {height}" role="img" '
        'aria-labelledby="timeline-t"><title id="timeline-t">Call timeline: one lane per task, '
        "one bar per call</title>"
    ]
    for k in range(6):
        x = label_w + plot_w * k / 5
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_h - 6}" x2="{x:.1f}" y2="{height}" class="grid"/>'
            f'<text x="{x:.1f}" y="{axis_h - 10}" text-anchor="middle" class="axis">'
            f"{end * k / 5 / 1000:.1f} s</text>"
        )
    for i, lane in enumerate(lanes):
        y = axis_h + i * lane_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" class="lane">{esc(lane)}</text>'
        )
    row = {lane: i for i, lane in enumerate(lanes)}
    for i, (c, kind) in enumerate(zip(calls, kinds, strict=True)):
        y = axis_h + row[_lane(c.task)] * lane_h + 2
        x = label_w + c.started_ms * scale
        w = max(1.5, c.latency_ms * scale)
        classes = (
            f"call k-{kind}"
            + (" critical" if i in on_path else "")
            + (" rejected" if c.outcome == "rejected" else "")
        )
        tip = (
            f"{c.task} attempt {c.attempt}: {c.model} ({c.tier}), {c.outcome}, {c.latency_ms:.0f} ms, "
            f"{_usd(c.cost_usd)}, {CALL_KINDS[kind]}"
            + (", on the critical path" if i in on_path else "")
            + (f" — {c.reason}" if c.reason else "")
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 4}" class="{classes}">'
            f"<title>{esc(tip)}</title></rect>"
        )
    parts.append("</svg>")
    counts = {k: kinds.count(k) for k in CALL_KINDS}
    legend = "".join(
        f'<li><span class="swatch k-{k}" aria-hidden="true"></span>{esc(text)} ({counts[k]})</li>'
        for k, text in CALL_KINDS.items()
    )
    legend += (
        f'<li><span class="swatch critical-swatch" aria-hidden="true"></span>critical path '
        f"({len(on_path)} calls, {report.critical_path_s:.2f} s)</li>"
        f'<li><span class="swatch rejected-swatch" aria-hidden="true"></span>answer rejected by a gate '
        f"or the schema ({sum(1 for c in calls if c.outcome == 'rejected')})</li>"
    )
    rows = "".join(
        f'<tr><th scope="row">{esc(c.task)}</th><td>{c.attempt}</td><td>{esc(c.model)}</td><td>{esc(c.tier)}</td>'
        f"<td>{esc(c.outcome)}</td><td>{esc(CALL_KINDS[kind])}</td><td>{c.started_ms / 1000:.2f}</td>"
        f"<td>{c.latency_ms:.0f}</td><td>{esc(_usd(c.cost_usd))}</td><td>{'yes' if i in on_path else ''}</td></tr>"
        for i, (c, kind) in enumerate(zip(calls, kinds, strict=True))
    )
    table = (
        '<details class="calls"><summary>Every call as a table</summary><div class="scroll"><table>'
        '<thead><tr><th scope="col">task</th><th scope="col">attempt</th><th scope="col">model</th>'
        '<th scope="col">tier</th><th scope="col">outcome</th><th scope="col">kind</th>'
        '<th scope="col">start s</th><th scope="col">ms</th><th scope="col">cost</th>'
        f'<th scope="col">critical path</th></tr></thead><tbody>{rows}</tbody></table></div></details>'
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>{table}'


def _gates(report: Report) -> str:
    if not report.lessons:
        return '<p class="empty">No lesson was gated.</p>'
    gates: list[str] = []
    for lg in report.lessons:
        for g in lg.gates:
            if g.gate not in gates:
                gates.append(g.gate)
    label_w, col_w, row_h, head_h = 130, 104, 22, 60
    width = label_w + col_w * len(gates) + 230
    height = head_h + row_h * len(report.lessons) + 6
    parts = [
        f'<svg class="chart gates" viewBox="0 0 {width} {height}" role="img" aria-labelledby="gates-t">'
        '<title id="gates-t">Gate scores per lesson (green passed, red failed)</title>'
    ]
    for j, gate in enumerate(gates):
        x = label_w + j * col_w + col_w / 2
        parts.append(
            f'<text x="{x:.0f}" y="{head_h - 10}" text-anchor="middle" class="axis">{esc(gate.replace("_", " "))}</text>'
        )
    parts.append(f'<text x="{label_w + col_w * len(gates) + 8}" y="{head_h - 10}" class="axis">lesson</text>')
    for i, lg in enumerate(report.lessons):
        y = head_h + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="lane">{esc(lg.lesson_id)}</text>'
        )
        by_gate = {g.gate: g for g in lg.gates}
        for j, gate in enumerate(gates):
            found = by_gate.get(gate)
            x = label_w + j * col_w
            if found is None:
                continue
            g = found
            score = (
                "pass" if g.score is None and g.passed else "fail" if g.score is None else f"{g.score:.2f}"
            )
            tip = (
                f"{lg.lesson_id} {gate}: {'passed' if g.passed else 'failed'}, score {score}"
                + (f" (threshold {g.threshold:.2f})" if g.threshold is not None else "")
                + (f" — {'; '.join(g.reasons)[:300]}" if g.reasons else "")
            )
            parts.append(
                f'<g><title>{esc(tip)}</title><rect x="{x + 2}" y="{y + 1}" width="{col_w - 4}" '
                f'height="{row_h - 3}" class="{"pass" if g.passed else "fail"}"/>'
                f'<text x="{x + col_w / 2:.0f}" y="{y + 15}" text-anchor="middle" class="cell">{esc(score)}</text></g>'
            )
        status = lg.status or "—"
        parts.append(
            f'<text x="{label_w + col_w * len(gates) + 8}" y="{y + 15}" class="value">'
            f"{esc(status)} · {esc(lg.final_tier or '')} · {lg.attempts}×</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _figures(report: Report) -> str:
    q = report.quality
    rows: list[tuple[str, str]] = [
        ("status", report.status + (f" ({report.failure_reason})" if report.failure_reason else "")),
        ("cost", f"{_usd(report.total_cost_usd)} of {_usd(report.budget_usd)} budget"),
        ("calls", str(len(report.calls))),
        ("escalations", str(report.escalations)),
        ("retries", str(report.retries)),
        ("cache hits", str(report.cache_hits)),
        ("review flags", str(report.review_flags)),
        ("wall time", f"{report.wall_time_s:.2f} s"),
        ("critical path", f"{report.critical_path_s:.2f} s"),
        ("sum of call latency", f"{report.sum_call_latency_s:.2f} s"),
    ]
    if q is not None:
        for name in ("similarity_mean", "composite_mean", "first_attempt_pass_rate", "escalation_rate"):
            value = getattr(q, name, None)
            rows.append((name.replace("_", " "), "—" if value is None else f"{value:.3f}"))
    reasoning = sum(t.reasoning_tokens for t in report.by_model.values())
    if reasoning:
        output = sum(t.output_tokens for t in report.by_model.values()) or 1
        per_model = ", ".join(
            f"{m} {t.reasoning_tokens}" for m, t in report.by_model.items() if t.reasoning_tokens
        )
        rows.append(
            (
                "reasoning tokens",
                f"{reasoning} ({reasoning / output:.0%} of output, billed as output): {per_model}",
            )
        )
    checked = report.summary.get("price_check") or {}
    if checked:
        rows.append(
            (
                "billed vs price table",
                ", ".join(
                    f"{m} {_usd(r['billed_usd'])} vs {_usd(r['price_table_usd'])} ({r['calls']} calls)"
                    for m, r in checked.items()
                ),
            )
        )
    if report.faults:
        rows.append(("provider faults", ", ".join(f"{k} {v}" for k, v in report.faults.items())))
    opened = [m for m, b in report.breakers.items() if b.opens]
    if opened:
        rows.append(("breakers opened", ", ".join(f"{m} ×{report.breakers[m].opens}" for m in opened)))
    return '<dl class="figures">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows) + "</dl>"


def report_html(report: Report) -> str:
    """The report's views as an HTML fragment (sections with headings)."""
    return (
        f'<section aria-labelledby="fig-h"><h2 id="fig-h">Figures</h2>{_figures(report)}</section>'
        f'<section aria-labelledby="phase-h"><h2 id="phase-h">Cost by phase</h2>'
        f"{_bars('by-phase', 'Cost by phase', report.by_phase)}</section>"
        f'<section aria-labelledby="model-h"><h2 id="model-h">Cost by model</h2>'
        f"{_bars('by-model', 'Cost by model', report.by_model)}</section>"
        f'<section aria-labelledby="tl-h"><h2 id="tl-h">Call timeline</h2>'
        '<p class="hint">Hover a bar for its call (or open the table below it); the black-outlined bars are the critical path.</p>'
        f"{_timeline(report)}</section>"
        f'<section aria-labelledby="gates-h"><h2 id="gates-h">Gate scores per lesson</h2>{_gates(report)}</section>'
    )


def report_document(report: Report) -> str:
    """One self-contained HTML file: the report's views with the stylesheet inlined."""
    body = f"<main><h1>Report: {esc(report.course_id)}</h1>{report_html(report)}</main>"
    return document(f"courseforge report — {report.course_id}", body, inline_css=True)
