"""Durable course jobs: runners (in-process and on Temporal, one protocol), progress, and the
human-review queue."""

from .plans import PlanRefused, approve_plan, edit_plan, gate_edit, job_plan
from .progress import ProgressTracker, tracked_run
from .review_service import ReviewAction, ReviewService
from .reviews import review_items, revise_review, unanswered_reviews
from .runner import (
    InProcessRunner,
    JobRunner,
    generate_durably,
    input_digest,
    job_bank,
    job_mode,
    new_job,
    plan_control,
    resolve_job,
    run_job,
    save_run,
)

__all__ = [
    "InProcessRunner",
    "JobRunner",
    "PlanRefused",
    "ProgressTracker",
    "ReviewAction",
    "ReviewService",
    "approve_plan",
    "edit_plan",
    "gate_edit",
    "generate_durably",
    "input_digest",
    "job_bank",
    "job_mode",
    "job_plan",
    "new_job",
    "plan_control",
    "resolve_job",
    "review_items",
    "revise_review",
    "run_job",
    "save_run",
    "tracked_run",
    "unanswered_reviews",
]
