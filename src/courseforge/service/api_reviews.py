"""/v1/reviews: the review queue and a reviewer's action on an item, through the one reviews
service (`jobs.review_service.ReviewService`); its refusals answered 404, 409, 412 or 422."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.params import Depends
from pydantic import BaseModel

from ..errors import ActionRefused, Conflict, NotFound, StaleVersion
from ..jobs.review_service import ReviewAction, ReviewService
from ..storage import ReviewItem
from .api_errors import ERRORS, from_domain
from .tenants import current_caller

__all__ = ["ReviewList", "ReviewView", "add_review_routes"]

ReviewId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,300}$", description="Review item id")]
#: Where each field a review refusal names sits in the request.
_WHERE = {
    "review_id": "path.review_id",
    "content": "body.content",
    "note": "body.note",
    "course_version": "header.If-Match",
}


class ReviewView(BaseModel):
    id: str
    job_id: str
    target: str
    reason: str
    gate: str
    uncertainty: float
    status: str
    resolution: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, item: ReviewItem) -> ReviewView:
        return cls(**{k: getattr(item, k) for k in cls.model_fields})


class ReviewList(BaseModel):
    reviews: list[ReviewView]


def add_review_routes(router: APIRouter, reviews: ReviewService, auth: list[Depends]) -> None:
    """The /v1/reviews routes on `router` (the app's own: each route listed in `app.routes`)."""

    @router.get("/v1/reviews", response_model=ReviewList, dependencies=auth, responses=ERRORS)
    async def list_reviews(
        status: Annotated[
            Literal["open", "approved", "edited", "regenerating", "regenerated"], Query()
        ] = "open",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> ReviewList:
        """Flagged lessons, most uncertain gate verdicts first."""
        items = await reviews.listing(status=status, limit=limit, tenant=current_caller().scope())
        return ReviewList(reviews=[ReviewView.of(i) for i in items])

    @router.post("/v1/reviews/{review_id}", response_model=ReviewView, dependencies=auth, responses=ERRORS)
    async def act_on_review(
        review_id: ReviewId,
        action: ReviewAction,
        if_match: Annotated[str | None, Header(max_length=100)] = None,
    ) -> ReviewView:
        """approve / edit answer the item at once; regenerate answers 200 with the item
        "regenerating" and generates the lesson again in the background (poll the item: it ends
        "regenerated", or "open" again with the new reason when the new version is still flagged).

        Each action is atomic: of concurrent actions on one item one wins and the others get 409;
        concurrent edits of different lessons of one course all land. `If-Match` with the course's
        `ETag` (from GET .../course) makes the action conditional on the course not having changed
        since (412 when it has)."""
        try:
            item = await reviews.act(review_id, action, tenant=current_caller().scope(), if_version=if_match)
        except (NotFound, Conflict, StaleVersion, ActionRefused) as exc:
            raise from_domain(exc, _WHERE) from None
        return ReviewView.of(item)
