"""The HTTP service: `courseforge serve` (FastAPI + uvicorn), jobs run by the durable engine."""

from .app import ApiError, create_app
from .manager import JobManager
from .metrics import ServiceMetrics

__all__ = ["ApiError", "JobManager", "ServiceMetrics", "create_app", "tokens_from_env"]


def tokens_from_env(var: str = "COURSEFORGE_API_TOKENS") -> list[str]:
    import os

    return [t.strip() for t in os.environ.get(var, "").split(",") if t.strip()]
