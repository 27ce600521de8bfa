"""The explorer page in a real browser: Debian's headless Chromium driven by Playwright.

The server is the real app under uvicorn on a free loopback port. The screenshot goes to
``test-artifacts/explorer.png`` (gitignored). Skips when Chromium or Playwright is absent,
except where ``NCF_REQUIRE_BROWSER=1`` (``.ci/run`` sets it after installing both), so CI cannot
pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from ncf.serve import create_app  # noqa: E402
from serve_helpers import build_bundles, running_server  # noqa: E402

CHROMIUM = os.environ.get("NCF_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Without the background-networking flags Chromium stalls on a closed network.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("NCF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="module")
def browser():
    _need(f"Chromium at {CHROMIUM}", Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright package", False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=60_000)
        yield b
        b.close()


def test_explorer_pick_user_see_recommendations_and_similar(browser, tmp_path):
    bundles = build_bundles(tmp_path)
    app = create_app(bundles["int"])
    model = app.state.holder.current.model
    with running_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert "NCF (neumf)" in page.inner_text("#model-info")
        page.select_option("#user-select", "7")
        page.wait_for_selector("#recs li.item")
        titles = page.locator("#recs li.item .title").all_inner_texts()
        want = model.recommend(7, k=10)[0].tolist()
        assert [t.split(" (")[0] for t in titles] == [f"Film {i}" for i in want]
        assert page.locator("#recs li.item .score").count() == 10
        history = page.locator("#history li.item").count()
        assert history == min(30, int(model.train_.user_counts[model.user_map_.index([7])[0]]))
        assert "user 7" in page.inner_text("#recs-title")
        # Click the top recommendation: its similar items appear.
        page.locator("#recs li.item").first.click()
        page.wait_for_selector("#similar li.item")
        sim = model.similar_items(want[0], k=10)[0].tolist()
        got = [t.split(" (")[0] for t in page.locator("#similar li.item .title").all_inner_texts()]
        assert got == [f"Film {i}" for i in sim]
        assert f"Film {want[0]}" in page.inner_text("#similar-title")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "explorer.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # An unknown user shows the API's message instead of a blank page.
        page.fill("#user-input", "99999")
        page.click("#go")
        page.wait_for_selector("#status.error")
        assert "unknown user id(s): 99999" in page.inner_text("#status")
        assert not errors, errors
        page.close()


def test_explorer_asks_for_the_api_key(browser, tmp_path):
    bundles = build_bundles(tmp_path)
    with running_server(create_app(bundles["int"], api_key="k-123")) as base:
        page = browser.new_page()
        page.set_default_timeout(20_000)
        page.goto(base + "/")
        page.wait_for_selector("#key-box:not(.hidden)")
        assert "API key" in page.inner_text("#status")
        page.fill("#api-key", "k-123")
        page.click("#save-key")
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#status") == ""  # the key worked: the error is gone
        page.select_option("#user-select", "7")
        page.wait_for_selector("#recs li.item")
        assert page.locator("#recs li.item").count() == 10
        page.close()
