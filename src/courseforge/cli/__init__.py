"""courseforge: generate whole courses through a quality-gated cascade of LLMs.

Sync only at this edge. Each command lives in the module named for what it does and registers
on `app`: `generate` (generate.py), `check` and `calibrate` (quality.py), the long-running
`serve`, `worker` and `sim serve` (servers.py), `validate`, `schema` and `config show`
(inspect.py), `report` (report_command.py), `export` and `export-training` (exports.py), `eval`
(evals.py), `plan` (plans.py), `models sync` (models.py).

Exit codes: 0 done (the course's status says approved or needs_review); 1 `check` flagged
something, or `eval` found a regression; 2 invalid input or config (no model called, nothing
written); 3 generation failed (the report is written, the course is not).
"""

from __future__ import annotations

import sys

from ..errors import CourseforgeError
from . import evals, exports, generate, inspect, models, plans, quality, report_command, servers
from ._common import EXIT_FAILED, app, err, write_atomic

__all__ = [
    "app",
    "evals",
    "exports",
    "generate",
    "inspect",
    "main",
    "models",
    "plans",
    "quality",
    "report_command",
    "servers",
    "write_atomic",
]


def main() -> None:
    try:
        app()
    except CourseforgeError as exc:  # a run-time failure that escaped: still exit 3, never a traceback
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
