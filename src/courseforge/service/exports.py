"""`GET /v1/jobs/{id}/export?format=FORMAT`: a completed job's course in an LMS format (a zip
for folders and packages, the file itself for GIFT and Moodle XML), with the export's issues
(what the format could not hold) as JSON in the `X-Courseforge-Export` header."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from ..config import Settings
from ..errors import UserError
from ..exports import FORMATS, REGISTRY, ExportFormat, check_format, export_course, load_course
from ..files import atomic_zip
from ..storage import Store
from .api_errors import ERRORS
from .tenants import may_see

__all__ = ["export_router"]


def _error(status: int, message: str, problems: Sequence[tuple[str, str]]) -> JSONResponse:
    body = {"error": {"message": message, "problems": [{"path": p, "reason": r} for p, r in problems]}}
    return JSONResponse(body, status_code=status)


def _build(
    course_data: dict[str, Any], fmt: ExportFormat, mastery: float, library: str | None
) -> tuple[bytes, dict[str, Any]]:
    course = load_course(course_data)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        bundle = Path(library) if library else None
        result = export_course(course, fmt, out, mastery_score=mastery, cmi5_library=bundle)
        if fmt.output == "folder":
            packed = Path(tmp) / "export.zip"
            atomic_zip(
                packed,
                {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()},
            )
            out = packed
        return out.read_bytes(), result.to_dict()


def export_router(settings: Settings, store: Store, dependencies: Sequence[Any]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/jobs/{job_id}/export",
        dependencies=list(dependencies),
        response_model=None,
        responses={
            200: {
                "content": {media: {} for media in dict.fromkeys(f.media_type for f in REGISTRY)},
                "description": "the export: a file, or a zip (a folder format zipped)",
            },
            **{code: ERRORS[code] for code in (400, 401, 404, 422, 429, 503)},
        },
    )
    async def export_job(
        job_id: str,
        format: str = Query(description=", ".join(FORMATS), json_schema_extra={"enum": list(FORMATS)}),
    ) -> Response:
        """The job's course exported (404 until it has a course; 400 for an unknown format)."""
        try:
            fmt = check_format(format)
        except UserError as exc:
            return _error(400, str(exc), [("query.format", exc.problems[0][1])])
        job = await store.get_job(job_id)
        if job is None or not may_see(job):  # another tenant's job is not there for this caller
            return _error(404, "no such job", [("path.job_id", f"{job_id!r} not found")])
        course = await store.get_course(job_id)
        if course is None:
            return _error(404, "no course yet", [("path.job_id", "the job has no course")])
        try:
            body, result = await asyncio.to_thread(
                _build, course, fmt, settings.exports.mastery_score, settings.exports.cmi5_library
            )
        except UserError as exc:
            return _error(422, str(exc), exc.problems)
        summary = {k: result[k] for k in ("format", "lessons", "exercises", "skipped", "ungraded", "issues")}
        return Response(
            body,
            media_type=fmt.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{job_id}.{fmt.extension}"',
                "X-Courseforge-Export": json.dumps(summary, ensure_ascii=True),
            },
        )

    return router
