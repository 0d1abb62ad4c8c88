"""The distributed engine: the same pipeline as a Temporal workflow whose model calls and
embedding batches are activities (`courseforge worker --temporal HOST:PORT`).

Imported only by the CLI and the service, and only when Temporal is configured: the in-process
engine stays the default and needs no Temporal.
"""

from .client import TemporalJobRunner, activity_options, generate_on_temporal, start_course, wait_for_course
from .workflow import ActivityOptions, CourseWorkflow, temporal_runtime

__all__ = [
    "ActivityOptions",
    "CourseWorkflow",
    "TemporalJobRunner",
    "activity_options",
    "generate_on_temporal",
    "start_course",
    "temporal_runtime",
    "wait_for_course",
]
