"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

The service runs on 127.0.0.1 (uvicorn in a thread) against the provider simulator
(`SimServer`, off-topic answers for some lessons so the review queue fills). One walk through:
sign in, submit a job, watch it finish live, open the course and the report, approve one
review item and regenerate another. Screenshots go to `$COURSEFORGE_ARTEFACTS_DIR` (or the
test's tmp dir); the path is printed. A second test shows that pages refuse access without a
session and that the token never appears in a URL, a page's source or a script-readable cookie.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from live_server import live_app
from service_helpers import TOKEN

from courseforge.config import Settings, load_config
from courseforge.engine import Engine
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.service import create_app
from courseforge.sim import FaultRates, ModelProfile, SimProfile, SimServer
from courseforge.storage import open_store
from engine_helpers import example_data

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")


@contextmanager
def simulator(off_topic: float) -> Iterator[str]:
    """The provider simulator (quick answers, a share of them off topic) in a thread."""
    faults = FaultRates(off_topic=off_topic)
    profile = SimProfile(
        name="ui", defaults=ModelProfile(ttft_ms=300, tokens_per_s=1500, jitter=0.1, faults=faults)
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = SimServer(profile, seed=3)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server.base_url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def dashboard(tmp_path: Path, off_topic: float = 0.0) -> Iterator[str]:
    with simulator(off_topic) as sim_url:
        env = {"OPENROUTER_API_KEY": "simulated", "OPENROUTER_BASE_URL": sim_url}
        settings: Settings = load_config("hosted", env=env).settings
        settings = settings.model_copy(
            update={"gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
        )
        engine = Engine(settings, env=env, embedder=CachedEmbedder(HashingEmbedder()))
        store = open_store(f"sqlite:///{tmp_path}/ui.db")
        app = create_app(settings, store=store, engine=engine, tokens=[TOKEN], close_on_shutdown=True)
        with live_app(app) as base:
            yield base


@contextmanager
def browser_page(artefacts: Path) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make deps-system)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("COURSEFORGE_ARTEFACTS_DIR") or tmp_path / "screenshots")
    root.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {root}")
    return root


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/ui/")
    assert page.url == f"{base}/ui/login"
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/ui/")


def test_a_reviewer_walks_through_the_dashboard(tmp_path: Path, artefacts: Path) -> None:
    urls: list[str] = []
    sources: list[str] = []
    with dashboard(tmp_path, off_topic=0.9) as base, browser_page(artefacts) as page:
        page.on("request", lambda r: urls.append(r.url))

        def shot(name: str, full: bool = False) -> None:
            sources.append(page.content())
            page.screenshot(path=str(artefacts / name), full_page=full)
            print(f"  {name}: {page.url}")

        _sign_in(page, base)
        analysis = {**example_data(), "course_id": "browser-walk"}
        page.get_by_label("analysis_result JSON").fill(json.dumps(analysis, indent=1))
        shot("01-jobs-submit.png")
        page.get_by_role("button", name="Submit job").click()
        page.wait_for_url(f"{base}/ui/jobs/job-*")
        # Live: lesson lines arrive over SSE while the job runs (this state exists only before
        # the page reloads itself on the final status).
        page.wait_for_function(
            "() => { const j = document.querySelector('[data-live]');"
            " return j && j.getAttribute('data-live') === 'open'"
            " && document.querySelectorAll('[data-lessons] li').length > 0; }",
            timeout=120_000,
        )
        assert page.locator("[data-status]").inner_text() in ("running", "queued")
        live_lines = page.locator("[data-lessons] li").count()
        shot("02-job-live.png", full=True)
        # The jobs list follows the running job too: its row turns "completed" without a reload.
        job_id = page.url.rsplit("/", 1)[1]
        listing = page.context.new_page()
        listing.goto(f"{base}/ui/")
        row = listing.locator(f'tr[data-live-job="{job_id}"]')
        assert row.count() == 1  # still running when the list loaded
        listing.evaluate("window.notReloaded = true")
        row.locator("[data-status]", has_text="completed").wait_for(timeout=180_000)
        assert listing.evaluate("window.notReloaded === true")
        sources.append(listing.content())
        listing.screenshot(path=str(artefacts / "02b-jobs-list-live.png"))
        listing.close()
        page.get_by_role("link", name="Report", exact=True).wait_for(timeout=180_000)
        assert page.locator("[data-status]").inner_text() == "completed"
        assert page.locator("[data-lessons] li").count() > 0
        shot("03-job-done.png", full=True)

        page.get_by_role("link", name="Course", exact=True).click()
        page.locator("article.lesson").first.wait_for()
        answer = page.locator("details").first
        assert not answer.evaluate("d => d.open")
        answer.locator("summary").focus()
        page.keyboard.press("Enter")  # answers open from the keyboard
        assert answer.evaluate("d => d.open")
        shot("04-course.png")

        page.go_back()
        page.get_by_role("link", name="Report", exact=True).click()
        timeline = page.locator("svg.timeline")
        timeline.wait_for()
        bars = timeline.locator("rect.call").count()
        assert bars > 0 and timeline.locator("rect.critical").count() >= 1
        assert page.locator("svg.gates rect").count() > 0
        critical = timeline.locator("rect.critical").count()
        shot("05-report.png", full=True)

        page.get_by_role("link", name="Review queue", exact=True).click()
        cards = page.locator("article.review")
        targets = [t.split(" ")[0] for t in cards.locator("h2").all_inner_texts()]
        lessons = [t for t in targets if t.startswith("S")]
        assert len(targets) >= 2 and lessons, targets
        shot("06-review-queue.png")
        # Regenerate a lesson; approve another item (lesson or not). A lesson flagged by two
        # gates has two items: every control's name says which item (target and gate) it is for.
        names = cards.get_by_role("button", name=re.compile("^(Approve|Regenerate) ")).all_inner_texts()
        labels = [b.get_attribute("aria-label") for b in cards.get_by_role("button").all()]
        labels = [x for x in labels if x and x.split(" ")[0] in ("Approve", "Regenerate")]
        assert names and len(labels) == len(set(labels)), labels  # no two controls share a name
        regen = next(i for i in range(cards.count()) if cards.nth(i).get_by_label("Feedback").count())
        second = targets[regen]
        action = cards.nth(regen).locator("form[action]").first.get_attribute("action")
        approve = cards.nth(next(i for i in range(cards.count()) if i != regen))
        first = targets[next(i for i in range(cards.count()) if i != regen)]
        approve.get_by_role("button", name=re.compile("^Approve ")).click()
        page.locator(".flash").wait_for()
        assert page.locator(".flash").inner_text().startswith("approve")
        card = page.locator("article.review", has=page.locator(f'form[action="{action}"]'))
        card.get_by_label("Feedback").fill("Stay on the lesson's own topic.")
        card.get_by_role("button", name=re.compile("^Regenerate ")).click()
        page.locator(".flash").wait_for()
        page.get_by_role("link", name="regenerating", exact=True).click()
        shot("07-regenerating.png")
        # The regeneration runs in the background: it ends regenerated, or open again.
        for _ in range(120):
            page.goto(f"{base}/ui/reviews?status=regenerated")
            done = page.locator("article.review h2", has_text=second).count()
            page.goto(f"{base}/ui/reviews?status=open")
            reopened = page.locator("article.review", has_text="regenerated, still flagged").count()
            if done or reopened:
                break
            page.wait_for_timeout(500)
        assert done or reopened
        outcome = "regenerated" if done else "open again (regenerated, still flagged)"
        page.goto(f"{base}/ui/reviews?status=approved")
        assert page.locator("article.review h2", has_text=first).count() == 1
        shot("08-approved.png")

        assert "cf_session" not in page.evaluate("document.cookie")  # HttpOnly
    print(
        f"  live lesson lines before the job ended: {live_lines}; timeline bars {bars}, on the "
        f"critical path {critical}; review items {len(targets)}; approved {first}; regenerated "
        f"{second}: {outcome}; requests {len(urls)}, pages checked for the token {len(sources)}"
    )
    assert urls and sources
    assert not [u for u in urls if TOKEN in u]
    assert not [s for s in sources if TOKEN in s]
    assert len(list(artefacts.glob("*.png"))) >= 9


def test_pages_refuse_without_a_session_and_never_show_the_token(tmp_path: Path, artefacts: Path) -> None:
    with dashboard(tmp_path) as base, browser_page(artefacts) as page:
        for path in ("/ui/", "/ui/reviews", "/ui/evals", "/ui/jobs/job-1/report"):
            page.goto(base + path)
            assert page.url == f"{base}/ui/login", path
            assert page.locator("h1").inner_text() == "Sign in"
        page.screenshot(path=str(artefacts / "09-refused-to-login.png"))
        events = page.evaluate(
            "async (u) => (await fetch(u, {headers: {accept: 'text/event-stream'}})).status",
            f"{base}/ui/jobs/job-1/events",
        )
        assert events == 401
        page.get_by_label("API token").fill("wrong-token")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "That token is not accepted."
        assert page.url == f"{base}/ui/login"
        _sign_in(page, base)
        assert TOKEN not in page.url and TOKEN not in page.content()
        assert "cf_session" not in page.evaluate("document.cookie")
        cookie = next(c for c in page.context.cookies() if c["name"] == "cf_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        # Signing out ends the session: the pages refuse again.
        page.get_by_role("button", name="Sign out").click()
        page.goto(f"{base}/ui/")
        assert page.url == f"{base}/ui/login"
