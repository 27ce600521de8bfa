"""The explorer page in a real browser: Debian's headless Chromium driven by Playwright.

The server is the real app under uvicorn on a free loopback port. Screenshots go to
``test-artifacts/`` (gitignored): ``explorer.png`` (a user, recommendations, similar items),
``explorer-because.png`` (the "because you liked" lines), ``explorer-visitor.png`` (visitor mode). Skips when Chromium or Playwright is absent,
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


def _open(browser, base: str, height: int):
    """The explorer page, loaded and ready, and the list its JavaScript errors are collected in."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready='1']")
    return page, errors


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return build_bundles(tmp_path_factory.mktemp("browser_bundles"))


def test_explorer_pick_user_see_recommendations_and_similar(browser, bundles):
    app = create_app(bundles["int"])
    model = app.state.holder.current.model
    with running_server(app) as base:
        page, errors = _open(browser, base, height=800)
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


def test_explorer_asks_for_the_api_key(browser, bundles):
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


def _because_lines(model, user_or_history, ids: list) -> list[str]:
    """The lines the page should show: titles of model.explain's items (the test data has titles)."""
    return [
        "because you liked " + ", ".join(f"Film {h}" for h, _ in why) for why in model.explain(user_or_history, ids)
    ]


def test_explorer_shows_because_lines(browser, bundles):
    app = create_app(bundles["int"])
    model = app.state.holder.current.model
    with running_server(app) as base:
        page, errors = _open(browser, base, height=900)
        page.select_option("#user-select", "7")
        page.wait_for_selector("#recs li.item .because")
        want_ids = model.recommend(7, k=10)[0].tolist()
        got_ids = [int(x) for x in page.locator("#recs li.item").evaluate_all("els => els.map(e => e.dataset.itemId)")]
        assert got_ids == want_ids
        want = [line for line in _because_lines(model, 7, want_ids) if line != "because you liked "]
        assert page.locator("#recs li.item .because").all_inner_texts() == want
        assert len(want) >= 5  # most items have reasons
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "explorer-because.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert not errors, errors
        page.close()


def test_explorer_visitor_mode(browser, bundles):
    app = create_app(bundles["int"])
    model = app.state.holder.current.model
    with running_server(app) as base:
        page, errors = _open(browser, base, height=900)
        page.click("#mode-visitor")
        assert page.is_visible("#search-input") and not page.is_visible("#user-select")
        page.fill("#search-input", "film 11")
        page.wait_for_selector("#search-results li.hit")
        hits = [
            int(x) for x in page.locator("#search-results li.hit").evaluate_all("e => e.map(x => x.dataset.itemId)")
        ]
        assert sorted(hits) == list(range(110, 120))  # Film 110..119
        picked = hits[:3]
        for n, item in enumerate(picked, 1):
            page.click(f"#search-results li.hit[data-item-id='{item}']")
            page.wait_for_selector(f"body[data-visitor='{n}']")
        assert page.locator("#picks li").count() == 3
        page.wait_for_function("document.querySelectorAll('#recs li.item').length === 10")
        want_ids = model.recommend_history(picked, k=10)[0].tolist()
        got = [int(x) for x in page.locator("#recs li.item").evaluate_all("e => e.map(x => x.dataset.itemId)")]
        assert got == want_ids and not set(picked) & set(got)
        want = [line for line in _because_lines(model, picked, want_ids) if line != "because you liked "]
        assert page.locator("#recs li.item .because").all_inner_texts() == want and want
        assert "for your 3 films" in page.inner_text("#recs-title")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "explorer-visitor.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # Removing a film re-ranks for the other two.
        page.click(f"#picks li[data-item-id='{picked[0]}'] button")
        page.wait_for_selector("body[data-visitor='2']")
        page.wait_for_function(
            f"document.querySelector('#recs li.item').dataset.itemId === "
            f"'{model.recommend_history(picked[1:], k=10)[0][0]}'"
        )
        assert not errors, errors
        page.close()
