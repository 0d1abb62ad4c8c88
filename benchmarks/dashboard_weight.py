"""Dashboard page weight and time to first render, in headless chromium against a running service.

The service (uvicorn on 127.0.0.1, in a thread) runs one course against the provider simulator
first, so every page has content. Then, for each page, a fresh load with the browser cache off:
the bytes of every response the load fetched (document, CSS, script), the number of requests,
and from the browser's performance timing the response end, DOMContentLoaded and first
contentful paint. Each figure is also printed as a ratio against the sign-in page, the
smallest page, measured in the same run.

    python benchmarks/dashboard_weight.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-not-secret"
#: The last size seen of each URL's last path segment (the shared assets are the same on every page).
ASSETS: dict[str, int] = {}
# First contentful paint can be reported after the load event: wait for it (up to 5 s).
TIMING = """async () => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = () => performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
  for (let i = 0; i < 100 && !fcp(); i++) { await new Promise(r => setTimeout(r, 50)); }
  const paint = fcp();
  return {response_end: nav.responseEnd, dom_loaded: nav.domContentLoadedEventEnd,
          fcp: paint ? paint.startTime : null};
}"""


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop


def _serve(tmp: Path) -> tuple[str, str, Any]:
    from courseforge.config import load_config
    from courseforge.engine import Engine
    from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
    from courseforge.service import create_app
    from courseforge.sim import SimServer, load_profile
    from courseforge.storage import open_store

    loop = _thread_loop()
    sim = SimServer(load_profile("ideal"), seed=1)
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    env = {"OPENROUTER_API_KEY": "simulated", "OPENROUTER_BASE_URL": sim.base_url}
    settings = load_config("hosted", env=env).settings
    settings = settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
    )
    engine = Engine(settings, env=env, embedder=CachedEmbedder(HashingEmbedder()))
    app = create_app(
        settings,
        store=open_store(f"sqlite:///{tmp}/bench.db"),
        engine=engine,
        tokens=[TOKEN],
        close_on_shutdown=True,
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    analysis = json.loads((ROOT / "examples" / "python-basics.json").read_text("utf-8"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    job = httpx.post(f"{base}/v1/jobs", json=analysis, headers=auth).json()
    while httpx.get(f"{base}/v1/jobs/{job['id']}", headers=auth).json()["status"] not in (
        "completed",
        "failed",
    ):
        time.sleep(0.2)
    return base, job["id"], server


def _load(page: Any, url: str) -> dict[str, Any]:
    sizes: list[int] = []

    def on_response(response: Any) -> None:
        try:
            sizes.append(len(response.body()))
        except Exception:  # a response without a body (a redirect)
            sizes.append(0)
        ASSETS[response.url.rsplit("/", 1)[-1]] = sizes[-1]

    page.on("response", on_response)
    page.goto(url, wait_until="load")
    timing = page.evaluate(TIMING)
    page.remove_listener("response", on_response)
    return {"bytes": sum(sizes), "requests": len(sizes), **timing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="loads of each page (median reported)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found (make deps-system)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base, job_id, server = _serve(Path(tmp))
        pages = {
            "jobs": "/ui/",
            "job": f"/ui/jobs/{job_id}",
            "course": f"/ui/jobs/{job_id}/course",
            "report": f"/ui/jobs/{job_id}/report",
            "reviews": "/ui/reviews",
            "evals": "/ui/evals",
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            context = browser.new_context()
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
            rows: dict[str, dict[str, float]] = {}

            def measure(name: str, path: str) -> None:
                runs = [_load(page, base + path) for _ in range(args.repeat)]
                rows[name] = {
                    key: statistics.median(r[key] for r in runs if r[key] is not None)
                    for key in ("bytes", "requests", "response_end", "dom_loaded", "fcp")
                    if any(r[key] is not None for r in runs)
                }

            measure("sign-in", "/ui/login")  # before signing in: signed in, it redirects
            page.goto(f"{base}/ui/login")
            page.get_by_label("API token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/ui/")
            for name, path in pages.items():
                measure(name, path)
            browser.close()
        server.should_exit = True
    baseline_name = "sign-in"
    baseline = rows[baseline_name]
    shared = {k: v for k, v in ASSETS.items() if k in ("views.css", "dashboard.css", "app.js")}
    print("assets every page fetches: " + ", ".join(f"{k} {v} B" for k, v in shared.items()))
    print(
        f"dashboard pages, median of {args.repeat} cold loads (cache off); ratios against '{baseline_name}'"
    )
    print(
        f"{'page':<9} {'bytes':>9} {'req':>4} {'resp ms':>8} {'DCL ms':>8} {'FCP ms':>8}   ratio bytes / FCP"
    )
    for name, r in rows.items():
        fcp = r.get("fcp")
        ratio_fcp = f"{fcp / baseline['fcp']:.2f}" if fcp and baseline.get("fcp") else "-"
        print(
            f"{name:<9} {r['bytes']:>9.0f} {r['requests']:>4.0f} {r['response_end']:>8.1f} "
            f"{r['dom_loaded']:>8.1f} {fcp if fcp is not None else float('nan'):>8.1f}   "
            f"{r['bytes'] / baseline['bytes']:.2f} / {ratio_fcp}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
