"""Wires everything: config -> model stacks -> a course's metered calls -> pipeline -> report.

The only package that knows every part. `run_course` runs one course for every runner;
`Engine` holds what courses share (stacks, breakers, embedder); `CourseCalls` is where each
model call is reserved, sent, settled, recorded and checkpointed.
"""

from __future__ import annotations

import json

from ..domain import Course, Report
from ._engine import Engine
from .caching import open_response_cache, without_cache
from .calls import Checkpoints, CourseCalls, Runtime, request_digest
from .course import GenerationResult, RevisionResult, course_id_for, run_course
from .stacks import ModelStacks, model_chains

__all__ = [
    "Checkpoints",
    "CourseCalls",
    "Engine",
    "GenerationResult",
    "ModelStacks",
    "RevisionResult",
    "Runtime",
    "course_id_for",
    "dumps",
    "model_chains",
    "open_response_cache",
    "request_digest",
    "run_course",
    "without_cache",
]


def dumps(obj: Course | Report) -> str:
    """A course or report as the JSON the CLI writes (indented, UTF-8)."""
    return json.dumps(obj.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
