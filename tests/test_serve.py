"""The HTTP service: every endpoint and every documented error, through FastAPI's TestClient,
plus one test of the real server (``ncf serve`` under uvicorn) over loopback HTTP."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("orjson")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ncf.cli import main as cli_main  # noqa: E402
from ncf.errors import BundleError, ConfigError  # noqa: E402
from ncf.loading import load_model  # noqa: E402
from ncf.persist import FORMAT_VERSION  # noqa: E402
from ncf.serve import create_app  # noqa: E402
from serve_helpers import build_bundles, free_port, running_server  # noqa: E402

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return build_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def model(bundles):
    return load_model(bundles["int"])


@pytest.fixture(scope="module")
def client(bundles):
    return TestClient(create_app(bundles["int"]))


@pytest.fixture(scope="module")
def str_client(bundles):
    return TestClient(create_app(bundles["str"]))


@pytest.fixture()
def keyed(bundles):
    return TestClient(create_app(bundles["int"], api_key=KEY))


def err(r, status: int, code: str, *needles: str) -> dict:
    """The response is the documented JSON error: status, code, and a message naming the problem."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code, body
    assert "\n" not in body["message"]
    for n in needles:
        assert n in body["message"], (n, body["message"])
    return body


# -- ops ------------------------------------------------------------------------------------------
def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["model_class"] == "NCF"


def test_ready_is_503_until_the_model_is_loaded(bundles):
    app = create_app(bundles["int"], preload=False)
    c = TestClient(app)  # no lifespan run: nothing loaded yet
    err(c.get("/ready"), 503, "not_ready", "loading")
    err(c.get("/v1/users/1/recommendations"), 503, "not_ready", "retry")
    with TestClient(app) as c:  # start-up loads the bundle in a thread
        deadline = time.monotonic() + 30
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.05)
        assert c.get("/v1/users/1/recommendations").status_code == 200


def test_model_info(client, model):
    info = client.get("/v1/model").json()
    assert info["model_class"] == "NCF" and info["model"] == "neumf"
    assert info["params"]["factors"] == 4 and info["params"]["layers"] == [8, 4]
    assert info["format_version"] == FORMAT_VERSION and info["format"] == "ncf-bundle"
    assert info["data_fingerprint"] == model.train_.fingerprint()
    assert info["created"] == model.created_
    assert isinstance(info["validation_metrics"], dict)
    assert (info["n_users"], info["n_items"]) == (30, 40)
    assert info["user_id_type"] == "int" and info["item_metadata"] is True


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/items",
        "/v1/scores",
        "/v1/model",
        "/v1/admin/reload",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert p in paths


def test_unknown_route_and_method(client):
    err(client.get("/v2/nothing"), 404, "not_found", "/v2/nothing", "/docs")
    err(client.delete("/v1/model"), 405, "method_not_allowed", "DELETE")


# -- recommendations ----------------------------------------------------------------------------------
def test_user_recommendations_match_the_library(client, model):
    body = client.get("/v1/users/7/recommendations?k=5").json()
    ids, scores = model.recommend(7, k=5)
    assert body["user"] == 7 and body["known"] is True and body["fallback"] == "none" and body["k"] == 5
    assert [it["id"] for it in body["items"]] == ids.tolist()
    np.testing.assert_array_equal(np.float32([it["score"] for it in body["items"]]), scores)  # float32 round-trips
    first = body["items"][0]
    assert first["title"] == f"Film {first['id']}" and isinstance(first["year"], int) and first["genres"]


@pytest.mark.parametrize("k", [1, 7, 40])
def test_cached_top_equals_live_scoring(bundles, k):
    """The per-model top-N cache answers exactly what scoring each request live answers, for every user."""
    cached_app = create_app(bundles["int"])
    pre = TestClient(cached_app)
    live_app = create_app(bundles["int"], cache_top=0)
    live = TestClient(live_app)
    users = pre.get("/v1/users?limit=1000").json()["users"]
    first = pre.get(f"/v1/users/{users[3]}/recommendations?k={k}").json()  # fills one row
    assert list(cached_app.state.holder.current.top_cache) == [3]
    a = pre.post("/v1/recommendations", json={"users": [*users, users[3]], "k": k}).json()  # the rest, batched
    assert len(cached_app.state.holder.current.top_cache) == len(users)
    b = live.post("/v1/recommendations", json={"users": [*users, users[3]], "k": k}).json()
    assert first == a["results"][3] == a["results"][-1]

    def ids(res):
        return [[it["id"] for it in r["items"]] for r in res["results"]]

    def scores(res):
        return np.float32([it["score"] for r in res["results"] for it in r["items"]])

    assert ids(a) == ids(b)
    # One user scored alone (the cached row) vs in a batch: float32 matmul blocking may differ in the last ulp.
    # The default NCF blends standardised float32 terms of size ~1-10 (ncf.item_item): the cache's
    # batched block and the live single-user row may differ by a few float32 ulps of those terms.
    np.testing.assert_allclose(scores(a), scores(b), rtol=1e-6, atol=2e-6)
    assert pre.get(f"/v1/users/{users[3]}/recommendations?k={k}").json() == first  # from the cache now
    assert not live_app.state.holder.current.top_cache
    assert pre.get("/v1/model").json()["cached_top"] == 40  # min(100, n_items)
    with pytest.raises(ConfigError, match="cache_top"):
        create_app(bundles["int"], cache_top=-1)


def test_user_recommendations_options(client, model):
    seen = set(model.train_.item_map.raw(model.train_.csr[model.user_map_.index([7])[0]].indices).tolist())
    filtered = [it["id"] for it in client.get("/v1/users/7/recommendations?k=40").json()["items"]]
    assert not seen & set(filtered) and len(filtered) == 40 - len(seen)  # padding dropped, not sent as null
    unfiltered = [it["id"] for it in client.get("/v1/users/7/recommendations?k=40&filter_seen=false").json()["items"]]
    assert seen <= set(unfiltered)
    top2 = filtered[:2]
    excl = [
        it["id"] for it in client.get(f"/v1/users/7/recommendations?k=5&exclude={top2[0]},{top2[1]}").json()["items"]
    ]
    assert not set(top2) & set(excl) and excl == model.recommend(7, k=5, exclude=top2)[0].tolist()


def test_unknown_user_404_or_popular_fallback(client, model):
    body = err(client.get("/v1/users/999/recommendations"), 404, "unknown_id", "999", "fallback=popular")
    assert body["ids"] == [999] and body["kind"] == "user"
    err(client.get("/v1/users/abc/recommendations"), 404, "unknown_id", "'abc'", "int ids")
    err(client.get("/v1/users/99999999999999999999999/recommendations"), 404, "unknown_id", "99999999999999999999999")
    body = client.get("/v1/users/999/recommendations?fallback=popular&k=3").json()
    assert body["known"] is False and body["fallback"] == "popular"
    want = np.argsort(-model.train_.item_counts, kind="stable")[:3]
    assert [it["id"] for it in body["items"]] == model.item_map_.raw(want).tolist()


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("k=0", "greater than or equal to 1"),
        ("k=1001", "less than or equal to 1000"),
        ("k=ten", "'k'"),
        ("filter_seen=maybe", "'filter_seen'"),
        ("fallback=random", "'fallback'"),
    ],
)
def test_bad_query_parameters_422(client, query, needle):
    err(client.get(f"/v1/users/7/recommendations?{query}"), 422, "invalid_request", "query parameter", needle)


def test_unknown_excluded_item_404(client):
    err(client.get("/v1/users/7/recommendations?exclude=100,nope"), 404, "unknown_id", "item", "'nope'")


def test_string_ids_stay_strings(str_client):
    body = str_client.get("/v1/users/007/recommendations?k=2").json()
    assert body["user"] == "007" and all(isinstance(it["id"], str) for it in body["items"])
    assert "title" not in body["items"][0]  # this bundle has no item metadata
    err(str_client.get("/v1/users/7/recommendations"), 404, "unknown_id", "'7'")  # "7" is not "007"
    # a JSON number for a string-id model is matched as text
    rows = str_client.post("/v1/recommendations", json={"users": [42, "日本"], "k": 2}).json()["results"]
    assert [r["user"] for r in rows] == ["42", "日本"] and all(r["known"] for r in rows)
    assert str_client.get("/v1/items/film-1/similar?k=2").json()["items"][0]["id"].startswith("film-")


def test_batch_recommendations(client, model):
    r = client.post("/v1/recommendations", json={"users": [7, "8", 999], "k": 3, "fallback": "popular"})
    assert r.status_code == 200
    rows = r.json()["results"]
    assert [row["user"] for row in rows] == [7, 8, 999]  # "8" matched to the model's int ids
    assert [row["known"] for row in rows] == [True, True, False] and rows[2]["fallback"] == "popular"
    ids, _ = model.recommend([7, 8], k=3)
    assert [[it["id"] for it in row["items"]] for row in rows[:2]] == ids.tolist()
    body = err(client.post("/v1/recommendations", json={"users": [7, 998, 999]}), 404, "unknown_id", "998", "999")
    assert body["ids"] == [998, 999]


@pytest.mark.parametrize(
    ("payload", "needles"),
    [
        ({"users": list(range(1001))}, ["'users'", "at most 1000 users", "got 1001", "split"]),
        ({"users": [True]}, ["'users.0'", "integers or strings", "True"]),
        ({"users": [1.5]}, ["'users.0'", "integers or strings"]),
        ({"users": [7], "k": 0}, ["'k'", "greater than or equal to 1"]),
        ({"users": [7], "k": 5000}, ["'k'", "less than or equal to 1000"]),
        ({"users": 7}, ["'users'", "list"]),
        ({"users": [7], "colour": "red"}, ["'colour'", "Extra inputs"]),
    ],
)
def test_batch_bad_bodies_422(client, payload, needles):
    err(client.post("/v1/recommendations", json=payload), 422, "invalid_request", "body field", *needles)


@pytest.mark.parametrize("payload", [{"users": []}, {"k": 3}, {"users": [], "histories": []}])
def test_batch_needs_users_or_histories_422(client, payload):
    err(
        client.post("/v1/recommendations", json=payload),
        422,
        "invalid_request",
        "request body",
        "'users'",
        "'histories'",
    )


def test_malformed_and_missing_bodies_422(client):
    err(
        client.post("/v1/recommendations", content=b"{not json", headers={"content-type": "application/json"}),
        422,
        "invalid_request",
        "not valid JSON",
    )
    err(client.post("/v1/recommendations"), 422, "invalid_request", "body is missing")
    err(client.post("/v1/recommendations", json=[7]), 422, "invalid_request", "must be a JSON object")
    err(
        client.post("/v1/recommendations", content=b'{"users": [7]}'),
        422,
        "invalid_request",
        "Content-Type: application/json",
    )
    err(
        client.post("/v1/recommendations", content=b'{"users": [7]}', headers={"content-length": "x"}),
        400,
        "invalid_request",
        "Content-Length",
    )


# -- visitor histories and explanations (issue 15) ----------------------------------------------------------
def test_history_recommendations_match_the_library(client, model):
    body = {
        "users": [7],
        "histories": [
            {"id": "visitor-1", "items": [100, 105, "nope", 7, 105]},  # unknown items reported, not fatal
            {"items": ["101", "102", "103"], "timestamps": [3, 1, 2.5]},  # ids coerced like users'; no id: null
        ],
        "k": 5,
    }
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [row["user"] for row in out["results"]] == [7]
    h1, h2 = out["histories"]
    assert (h1["history"], h1["unknown_items"], h1["k"]) == ("visitor-1", ["nope", 7], 5)
    assert (h2["history"], h2["unknown_items"]) == (None, [])
    ids1, scores1 = model.recommend_history([100, 105, 105], k=5)
    ids2, _ = model.recommend_history([101, 102, 103], k=5, timestamps=[3, 1, 2.5])
    assert [[it["id"] for it in h["items"]] for h in (h1, h2)] == [ids1.tolist(), ids2.tolist()]
    np.testing.assert_array_equal(np.float32([it["score"] for it in h1["items"]]), scores1)
    assert not {100, 105} & {it["id"] for it in h1["items"]}  # the history's own items are filtered
    assert h1["items"][0]["title"].startswith("Film ") and "because" not in h1["items"][0]
    unfiltered = client.post(
        "/v1/recommendations", json={"histories": [{"items": [100, 105]}], "k": 40, "filter_seen": False}
    ).json()["histories"][0]["items"]
    assert {100, 105} <= {it["id"] for it in unfiltered}


def test_history_without_known_items_is_404_and_empty_is_422(client):
    body = err(
        client.post("/v1/recommendations", json={"histories": [{"id": "v", "items": [1, "x"]}, {"items": [100]}]}),
        404,
        "unknown_id",
        "history 'v' has no item the model knows",
        "1, 'x'",
    )
    assert body["kind"] == "item" and body["ids"] == [1, "x"] and body["histories"] == ["v"]
    body = err(
        client.post("/v1/recommendations", json={"histories": [{"items": [1]}, {"items": [2]}]}), 404, "unknown_id"
    )
    assert body["histories"] == [0, 1]  # positions where no id was given
    err(
        client.post("/v1/recommendations", json={"histories": [{"id": "v", "items": []}]}),
        422,
        "invalid_request",
        "'histories.0.items'",
        "at least one item",
    )
    err(
        client.post("/v1/recommendations", json={"histories": [{"items": [100, 101], "timestamps": [1]}]}),
        422,
        "invalid_request",
        "'histories.0'",
        "timestamps has 1 values but items has 2",
    )
    # the documented convention, in the OpenAPI document
    doc = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["post"]["responses"]
    assert "history none of whose items the model knows" in doc["404"]["description"]
    assert "an empty history" in doc["422"]["description"]


def _check_because(items, allowed: set, meta_titles: bool = True) -> None:
    for it in items:
        assert 0 < len(it["because"]) <= 3, it
        assert sum(r["weight"] for r in it["because"]) <= 1 + 1e-9
        for r in it["because"]:
            assert set(r) == {"item", "title", "weight"} and 0 <= r["weight"] <= 1
            assert r["item"] in allowed
            assert r["title"] == (f"Film {r['item']}" if meta_titles else None)
        weights = [r["weight"] for r in it["because"]]
        assert weights == sorted(weights, reverse=True)


def test_explain_on_get_and_post(client, model):
    body = client.get("/v1/users/7/recommendations?k=4&explain=true").json()
    seen = set(model.train_.item_map.raw(model.train_.csr[model.user_map_.index([7])[0]].indices).tolist())
    _check_because(body["items"], seen)
    ids = [it["id"] for it in body["items"]]
    want = model.explain(7, ids, n=3)
    assert [[(r["item"], r["weight"]) for r in it["because"]] for it in body["items"]] == [
        [(h, pytest.approx(w)) for h, w in why] for why in want
    ]
    assert "because" not in client.get("/v1/users/7/recommendations?k=4").json()["items"][0]
    out = client.post(
        "/v1/recommendations",
        json={
            "users": [7, 999],
            "fallback": "popular",
            "histories": [{"id": "v", "items": [100, 105, 110]}],
            "k": 3,
            "explain": True,
        },
    ).json()
    assert out["results"][0]["items"] == body["items"][:3]
    assert all(it["because"] == [] for it in out["results"][1]["items"])  # popular fallback: nothing to explain
    _check_because(out["histories"][0]["items"], {100, 105, 110})
    err(client.post("/v1/recommendations?explain=true", json={"users": [7]}), 422, "invalid_request", '"explain": true')
    err(client.get("/v1/users/7/recommendations?explain=maybe"), 422, "invalid_request", "'explain'")


def test_explain_budget_and_models_without_fold_in(bundles, monkeypatch):
    import ncf.serve.schemas as S

    app = create_app(bundles["int"])
    c = TestClient(app)
    monkeypatch.setattr(S, "MAX_EXPLAIN_ITEMS", 3)
    err(
        c.get("/v1/users/7/recommendations?explain=true"),
        422,
        "invalid_request",
        "explain takes at most 3 history items per request",
        "user 7 has",
    )
    h = {"histories": [{"id": "a", "items": [100, 101]}, {"id": "b", "items": [102, 103]}], "explain": True}
    err(c.post("/v1/recommendations", json=h), 422, "invalid_request", "got 4", "history 'a' has 2")
    assert c.post("/v1/recommendations", json={**h, "explain": False}).status_code == 200
    err(
        c.post("/v1/recommendations", json={"users": list(range(1, 102)), "explain": True}),
        422,
        "invalid_request",
        "with explain at most 100 users and histories",
    )
    app.state.holder.current.info["fold_in"] = False  # a model class without history_scores
    err(c.post("/v1/recommendations", json={"histories": [{"items": [100]}]}), 501, "not_supported", "'histories'")
    err(c.get("/v1/users/7/recommendations?explain=true"), 501, "not_supported", "'explain'", "fold_in")
    assert c.get("/v1/users/7/recommendations").status_code == 200


def test_item_search(client, str_client, model):
    body = client.get("/v1/items?q=FILM 10&limit=3").json()
    assert body["q"] == "FILM 10" and body["n_matches"] == 10  # Film 100..109, any case
    pop = model.train_.item_counts[model.item_map_.index(list(range(100, 110)))]
    by_pop = [100 + j for j in np.argsort(-pop, kind="stable")][:3]
    assert [it["id"] for it in body["items"]] == by_pop
    assert body["items"][0] == {"id": by_pop[0], **client.get(f"/v1/items/{by_pop[0]}/similar?k=1").json()["item"]}
    first = client.get("/v1/items?q=1").json()["items"]  # titles starting with the text come first
    assert first and all("1" in it["title"] for it in first)
    assert client.get("/v1/items?q=nothing like it").json() == {"q": "nothing like it", "n_matches": 0, "items": []}
    assert str_client.get("/v1/items?q=FILM-3").json()["items"] == [{"id": "film-3"}]  # no titles: ids
    err(client.get("/v1/items?q=%20%20"), 422, "invalid_request", "'q'", "some text")
    err(client.get("/v1/items"), 422, "invalid_request", "'q'")
    err(client.get("/v1/items?q=" + "x" * 201), 422, "invalid_request", "'q'", "200")
    err(client.get("/v1/items?q=a&limit=101"), 422, "invalid_request", "'limit'")


# -- similar items and scores ---------------------------------------------------------------------------
def test_similar_items(client, model):
    body = client.get("/v1/items/105/similar?k=4").json()
    ids, scores = model.similar_items(105, k=4)
    assert body["item"] == {"id": 105, "title": "Film 105", "year": 1995, "genres": ["Comedy", "Action"]}
    assert [it["id"] for it in body["items"]] == ids.tolist() and 105 not in ids.tolist()
    np.testing.assert_array_equal(np.float32([it["score"] for it in body["items"]]), scores)
    err(client.get("/v1/items/5/similar"), 404, "unknown_id", "item", "5")
    err(client.get("/v1/items/105/similar?k=0"), 422, "invalid_request", "'k'")


def test_similar_items_501_without_embeddings(bundles):
    c = TestClient(create_app(bundles["pop"]))
    err(c.get("/v1/items/105/similar"), 501, "not_supported", "Popularity", "no item embeddings")
    assert c.get("/v1/users/7/recommendations").status_code == 200  # the rest works for any bundle


def test_scores(client, model):
    pairs = [{"user": 7, "item": 105}, {"user": "8", "item": "100"}]
    body = client.post("/v1/scores", json={"pairs": pairs}).json()
    want = model.score([7, 8], [105, 100])
    assert [(s["user"], s["item"]) for s in body["scores"]] == [(7, 105), (8, 100)]
    np.testing.assert_array_equal(np.float32([s["score"] for s in body["scores"]]), want)
    err(client.post("/v1/scores", json={"pairs": [{"user": 7, "item": 5}]}), 404, "unknown_id", "item", "5")
    err(client.post("/v1/scores", json={"pairs": [{"user": 999, "item": 100}]}), 404, "unknown_id", "user", "999")
    err(client.post("/v1/scores", json={"pairs": []}), 422, "invalid_request", "at least one")
    err(client.post("/v1/scores", json={"pairs": [{"user": 7}]}), 422, "invalid_request", "'pairs.0.item'")
    many = [{"user": 7, "item": 100}] * 10_001
    err(client.post("/v1/scores", json={"pairs": many}), 422, "invalid_request", "at most 10000 pairs")


# -- explorer endpoints and page -----------------------------------------------------------------------------
def test_users_and_history(client, model):
    page = client.get("/v1/users?offset=2&limit=3").json()
    assert page == {"n_users": 30, "offset": 2, "users": model.user_map_.ids[2:5].tolist()}
    body = client.get("/v1/users/7/history?limit=100").json()
    tr = model.train_
    u = int(model.user_map_.index([7])[0])
    lo, hi = tr.indptr[u], tr.indptr[u + 1]
    latest_first = tr.item_idx[lo:hi][np.argsort(-tr.timestamps[lo:hi], kind="stable")]
    assert body["n_items"] == hi - lo and [it["id"] for it in body["items"]] == tr.item_map.raw(latest_first).tolist()
    assert "score" not in body["items"][0] and body["items"][0]["title"].startswith("Film ")
    err(client.get("/v1/users/999/history"), 404, "unknown_id", "999")
    err(client.get("/v1/users?limit=0"), 422, "invalid_request", "'limit'")


def test_explorer_page_is_served_from_package_data(client):
    from importlib import resources

    assert resources.files("ncf.serve").joinpath("static/index.html").is_file()
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "ncf explorer" in r.text and 'id="recs"' in r.text


# -- limits, auth, failures --------------------------------------------------------------------------------
def test_body_size_limit_413(bundles):
    c = TestClient(create_app(bundles["int"], max_body_bytes=2048))
    big = json.dumps({"users": list(range(1000))}).encode()
    err(
        c.post("/v1/recommendations", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
        "2048-byte limit",
    )

    def chunks():  # no Content-Length: the limit is enforced while reading
        for s in range(0, len(big), 1000):
            yield big[s : s + 1000]

    err(
        c.post("/v1/recommendations", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
        "2048-byte limit",
    )
    assert c.post("/v1/recommendations", json={"users": [7]}).status_code == 200
    with pytest.raises(ConfigError, match="max_body_bytes"):
        create_app(bundles["int"], max_body_bytes=10)


def test_api_key(keyed):
    assert keyed.get("/health").status_code == 200  # liveness stays open
    assert keyed.get("/").status_code == 200  # the static page asks for the key itself
    for path in ("/ready", "/v1/model", "/metrics", "/v1/users/7/recommendations"):
        r = err(keyed.get(path), 401, "unauthorized", "Authorization: Bearer")
        assert r and keyed.get(path).headers["www-authenticate"] == "Bearer"
        assert keyed.get(path, headers=AUTH).status_code == 200
    err(keyed.get("/v1/model", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized", "wrong API key")
    err(keyed.get("/v1/model", headers={"Authorization": KEY}), 401, "unauthorized")  # no "Bearer"
    err(keyed.post("/v1/scores", json={"pairs": []}), 401, "unauthorized")  # auth before validation
    err(keyed.post("/v1/admin/reload"), 401, "unauthorized")


def test_admin_needs_a_configured_key(client):
    err(client.post("/v1/admin/reload"), 403, "forbidden", "--api-key", "SIGHUP")


def test_reload_swaps_atomically_and_keeps_old_on_failure(bundles):
    app = create_app(bundles["int"], api_key=KEY)
    c = TestClient(app)
    holder = app.state.holder
    old = holder.current
    before = c.get("/v1/users/7/recommendations?k=5", headers=AUTH).json()
    r = c.post("/v1/admin/reload", headers=AUTH, json={"path": str(bundles["int_b"])})
    assert r.status_code == 200 and r.json()["generation"] == 2
    assert holder.current is not old and not holder.current.top_cache  # a new model starts a fresh cache
    # A request that started on the old model keeps it: the object is untouched by the swap.
    assert old.model.recommend(7, k=5)[0].tolist() == [it["id"] for it in before["items"]]
    new = c.get("/v1/users/7/recommendations?k=5", headers=AUTH).json()
    assert new["items"] != before["items"]  # a different model (other seed, one epoch) now answers
    assert c.get("/v1/model", headers=AUTH).json()["bundle"] == str(bundles["int_b"])
    body = err(
        c.post("/v1/admin/reload", headers=AUTH, json={"path": str(bundles["int"] / "missing")}),
        409,
        "reload_failed",
        "still serving the previous model",
        "no model bundle",
    )
    assert body and holder.current.generation == 2
    assert c.get("/v1/users/7/recommendations?k=5", headers=AUTH).json() == new
    assert c.post("/v1/admin/reload", headers=AUTH).json()["generation"] == 3  # no body: same path again
    metrics = c.get("/metrics", headers=AUTH).text
    assert 'ncf_model_reloads_total{result="ok"} 2' in metrics
    assert 'ncf_model_reloads_total{result="failed"} 1' in metrics
    assert "ncf_model_generation 3" in metrics


def test_bad_bundle_fails_at_start(tmp_path):
    with pytest.raises(BundleError, match="no model bundle"):
        create_app(tmp_path)


def test_internal_errors_answer_500_and_the_worker_survives(bundles, monkeypatch):
    app = create_app(bundles["int"])
    c = TestClient(app)
    model = app.state.holder.current.model

    def boom(*a, **kw):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(model, "recommend", boom)
    body = err(
        c.get("/v1/users/7/recommendations?filter_seen=false", headers={"X-Request-ID": "req-1"}),
        500,
        "internal",
        "req-1",
    )
    assert body and "kaboom" not in body["message"]  # no internals leak to clients
    monkeypatch.undo()
    assert c.get("/v1/users/7/recommendations").status_code == 200


def test_metrics_exposition(bundles):
    c = TestClient(create_app(bundles["int"]))
    for _ in range(3):
        c.get("/v1/users/7/recommendations")
    c.get("/v1/users/999/recommendations")
    text = c.get("/metrics").text
    route = 'route="/v1/users/{user_id}/recommendations"'
    assert f'ncf_http_requests_total{{method="GET",{route},status="200"}} 3' in text
    assert f'ncf_http_requests_total{{method="GET",{route},status="404"}} 1' in text
    assert f'ncf_http_request_duration_seconds_bucket{{{route},le="+Inf"}} 4' in text
    assert f"ncf_http_request_duration_seconds_count{{{route}}} 4" in text
    assert "# TYPE ncf_http_request_duration_seconds histogram" in text


def test_structured_access_log(client, caplog):
    with caplog.at_level(logging.INFO, logger="ncf.serve.access"):
        client.get("/v1/users/7/recommendations?k=2", headers={"X-Request-ID": "abc123"})
    rec = json.loads([r for r in caplog.records if r.name == "ncf.serve.access"][-1].getMessage())
    assert rec["path"] == "/v1/users/7/recommendations" and rec["query"] == "k=2" and rec["status"] == 200
    assert rec["route"] == "/v1/users/{user_id}/recommendations" and rec["request_id"] == "abc123"
    assert rec["duration_ms"] >= 0


# -- the real server -----------------------------------------------------------------------------------
def test_real_server_in_process(bundles, model):
    """uvicorn on a free loopback port, spoken to over HTTP; reloads under concurrent load fail nothing."""
    app = create_app(bundles["int"], api_key=KEY)
    with running_server(app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=10) as http:
        body = http.get("/v1/users/7/recommendations", params={"k": 3}).json()
        assert [it["id"] for it in body["items"]] == model.recommend(7, k=3)[0].tolist()
        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=base, headers=AUTH, timeout=10) as h:
                while not stop.is_set():
                    statuses.append(h.get("/v1/users/7/recommendations").status_code)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        paths = [bundles["int_b"], bundles["int"]] * 3
        reloads = [http.post("/v1/admin/reload", json={"path": str(p)}).status_code for p in paths]
        stop.set()
        for t in threads:
            t.join()
        assert reloads == [200] * 6
        assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {sorted(set(statuses))}"
        assert http.get("/ready").json()["generation"] == 7


def test_cli_serve_subprocess_sighup_and_errors(bundles, tmp_path, capsys):
    """`ncf serve` as users run it: real process, loopback HTTP, SIGHUP reload, one-line errors."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    port = free_port()
    cmd = [sys.executable, "-m", "ncf", "serve", str(bundles["int"]), "--port", str(port), "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "ncf serve did not become ready"
            time.sleep(0.1)
        assert httpx.get(f"{base}/v1/users/7/recommendations").json()["user"] == 7
        # Port taken (by this very server): exit 2 with one line, before loading anything.
        assert cli_main(["serve", str(bundles["int"]), "--port", str(port)]) == 2
        assert "already in use" in capsys.readouterr().err
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/ready").json()["generation"] != 2:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)
        assert httpx.get(f"{base}/v1/users/7/recommendations").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for args, needle in (
        ([str(tmp_path / "nothing")], "no model bundle"),
        ([str(bundles["int"]), "--workers", "0"], "--workers == 0"),
        ([str(bundles["int"]), "--port", "70000"], "--port == 70000"),
    ):
        assert cli_main(["serve", *args]) == 2
        line = capsys.readouterr().err
        assert needle in line and line.count("\n") == 1 and "Traceback" not in line, line


def test_a_blend_bundle_serves_like_any_model(tmp_path):
    """A blend (ncf.blend; what --model auto ships when a blend validates clearly better) is one
    bundle: GET /v1/model shows its components and weights, and recommendations, histories and
    explanations match the library's."""
    from ncf.baselines import EASE
    from ncf.blend import Blend
    from serve_helpers import int_data, tiny_ncf

    data = int_data()
    blend = Blend([("neumf", tiny_ncf(data)), ("ease", EASE(l2=10.0).fit(data))], [0.7, 0.3])
    blend.leaderboard_ = [{"model": "blend", "status": "ok", "chosen": True}]
    blend.save(tmp_path / "b")
    c = TestClient(create_app(tmp_path / "b"))
    info = c.get("/v1/model").json()
    assert info["model_class"] == "Blend" and info["blend"]["components"] == {"neumf": 0.7, "ease": 0.3}
    assert info["fold_in"] and not info["similar_items"] and info["leaderboard"] == blend.leaderboard_
    assert [x["model"] for x in info["params"]["components"]] == ["neumf", "ease"]
    got = c.get("/v1/users/7/recommendations?k=4&explain=true").json()["items"]
    ids, _ = blend.recommend(7, k=4)
    assert [it["id"] for it in got] == ids.tolist()
    _check_because(got, set(blend.train_.item_map.raw(blend.train_.csr[blend.user_map_.index([7])[0]].indices)))
    h = c.post("/v1/recommendations", json={"histories": [{"items": [101, 102, 103], "timestamps": [3, 1, 2]}], "k": 5})
    hist_ids, _ = blend.recommend_history([101, 102, 103], k=5, timestamps=[3, 1, 2])
    assert [it["id"] for it in h.json()["histories"][0]["items"]] == hist_ids.tolist()
    err(c.get("/v1/items/101/similar"), 501, "not_supported")
