"""ncf.benchmark and the `ncf benchmark` command, on a tiny synthetic dataset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ncf.evaluation
from ncf import benchmark as B
from ncf.cli import main
from ncf.data.io import load_interactions
from ncf.errors import ConfigError

N_USERS, N_ITEMS = 40, 30
MODELS = ["popularity", "ease", "item-knn", "gmf", "implicit-als"]
PARAMS = {
    "gmf": {"epochs": 2, "factors": 4, "batch_size": 256, "device": "cpu"},
    "implicit-als": {"factors": 0},  # invalid on purpose: this model must fail and be reported
}


def _frame() -> pd.DataFrame:
    """40 users x 30 items, 14-20 interactions each, two taste groups, distinct timestamps."""
    rng = np.random.default_rng(0)
    rows = []
    t = 1_000_000
    for u in range(N_USERS):
        group = u % 2
        weights = np.where((np.arange(N_ITEMS) % 2) == group, 3.0, 1.0)
        n = int(rng.integers(14, 21))
        items = rng.choice(N_ITEMS, n, replace=False, p=weights / weights.sum())
        for i in items:
            t += int(rng.integers(1, 100))
            rows.append((f"u{u:02d}", f"i{int(i):02d}", t))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("bench") / "tiny.csv"
    _frame().to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def bench(csv_path, tmp_path_factory):
    """One run_benchmark over 2 protocols x 2 seeds x 5 models; records what evaluate saw."""
    out = tmp_path_factory.mktemp("bench_out")
    seen: list[dict] = []
    real = ncf.evaluation.evaluate

    def spy(model, test, **kw):
        seen.append(
            {
                "model": type(model).__name__,
                "train": model.train_.fingerprint(),
                "test_users": test.user_idx.copy(),
                "test_items": test.item_idx.copy(),
            }
        )
        return real(model, test, **kw)

    lines: list[str] = []
    mp = pytest.MonkeyPatch()
    mp.setattr(ncf.evaluation, "evaluate", spy)
    try:
        res = B.run_benchmark(
            [str(csv_path)],
            ["holdout", "leave-one-out"],
            MODELS,
            [0, 1],
            out,
            model_params=PARAMS,
            progress=lines.append,
            data_args={"timestamp": "timestamp"},
        )
    finally:
        mp.undo()
    return res, out, seen, lines


def test_files_written(bench):
    res, out, _, _ = bench
    for name in ("results.json", "results.md", "chart.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files behind
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 2 * 2 * len(MODELS)
    assert data["config"]["model_params"]["gmf"]["epochs"] == 2
    assert data["config"]["seeds"] == [0, 1]
    assert res["files"]["chart"].endswith("chart.png")


def test_runs_recorded(bench):
    res, _, _, _ = bench
    ok = [r for r in res["runs"] if r["status"] == "ok"]
    assert {r["model"] for r in ok} == {"popularity", "ease", "item-knn", "gmf"}
    for r in ok:
        assert r["evaluation_protocol"] == "full"
        assert 0.0 <= r["metrics"]["ndcg@10"] <= 1.0 and "precision@5" in r["metrics"]
        assert r["fit_seconds"] >= 0 and r["recommend_seconds"] >= 0
        assert r["peak_mb"] >= 0 and r["peak_mb"] == max(r["rss_peak_mb"], r["rss_delta_mb"])
        assert r["traced_peak_mb"] is None  # tracemalloc is opt-in
    gmf = next(r for r in ok if r["model"] == "gmf")
    assert gmf["params"]["epochs"] == 2 and gmf["params"]["model"] == "gmf" and gmf["params"]["seed"] == gmf["seed"]


def test_failing_model_recorded_and_run_continues(bench):
    res, _, _, _ = bench
    failed = [r for r in res["runs"] if r["status"] == "failed"]
    assert len(failed) == 4 and {r["model"] for r in failed} == {"implicit-als"}
    assert all(r["error"].startswith("ConfigError") for r in failed)
    # the models after the failing one in each group still ran
    assert sum(r["status"] == "ok" for r in res["runs"]) == 16


def test_same_seed_same_split_for_every_model(bench):
    res, _, seen, _ = bench
    by_group: dict[tuple, set] = {}
    for r in res["runs"]:
        by_group.setdefault((r["protocol"], r["seed"]), set()).add(
            (r["split"]["train_fingerprint"], r["split"]["test_fingerprint"])
        )
    assert all(len(v) == 1 for v in by_group.values())
    assert by_group[("holdout", 0)] != by_group[("holdout", 1)]  # a different seed is a different split
    # evaluate() got the very same train and test for every model of a group (4 ok models per group)
    assert len(seen) == 16
    for g in range(4):
        chunk = seen[4 * g : 4 * g + 4]
        assert len({c["train"] for c in chunk}) == 1
        for c in chunk[1:]:
            np.testing.assert_array_equal(c["test_users"], chunk[0]["test_users"])
            np.testing.assert_array_equal(c["test_items"], chunk[0]["test_items"])


def test_markdown_table(bench):
    res, out, _, _ = bench
    md = (out / "results.md").read_text()
    assert md == res["markdown"]
    for p in ("holdout", "leave-one-out"):
        assert f"— {p}" in md
    header = "| model | ndcg@10 | recall@10 | hr@10 | precision@5 | recall@5 | fit s | recommend s | peak MB |"
    assert md.count(header) == 2
    assert "**" in md and " ± " in md
    err_rows = [ln for ln in md.splitlines() if ln.startswith("| implicit-als |")]
    assert len(err_rows) == 2 and all("failed: ConfigError" in ln and "factors" in ln for ln in err_rows)
    # each metric column has a bold best entry in each table
    for table in [t for t in md.split("\n## ")[1:] if " — " in t.splitlines()[0]]:
        rows = [ln.split("|")[2:-1] for ln in table.splitlines() if ln.startswith("| ") and "model |" not in ln]
        for col in range(8):
            assert any("**" in r[col] for r in rows), (table, col)


def test_progress_lines(bench):
    _, _, _, lines = bench
    assert any("holdout / seed 0 / gmf" in ln and "ndcg@10=" in ln for ln in lines)
    assert any("implicit-als: FAILED" in ln for ln in lines)
    assert all(ln.startswith("[") for ln in lines)


def test_bold_picks_lowest_time_and_highest_metric():
    runs = []
    for model, ndcg, fit in (("a", 0.5, 9.0), ("b", 0.2, 1.0)):
        for seed in (0, 1):
            runs.append(
                {
                    "dataset": "d",
                    "protocol": "holdout",
                    "seed": seed,
                    "model": model,
                    "status": "ok",
                    "error": None,
                    "split": None,
                    "metrics": {"ndcg@10": ndcg + seed * 0.01},
                    "fit_seconds": fit,
                    "recommend_seconds": 0.1,
                    "peak_mb": 1.0,
                }
            )
    res = {"config": {"k": [5, 10], "seeds": [0, 1], "model_params": {}}, "runs": runs}
    md = B.format_markdown(res)
    row_a = next(ln for ln in md.splitlines() if ln.startswith("| a |"))
    row_b = next(ln for ln in md.splitlines() if ln.startswith("| b |"))
    assert "**0.5050 ± 0.0071**" in row_a and "**1.00 ± 0.00**" in row_b
    assert "**9.00" not in row_a


def test_binarise_rule_applied_to_builtin_ml100k(monkeypatch, csv_path, tmp_path):
    """ml-100k: holdout binarises at 3, leave-one-out keeps every rating; files are loaded as given."""
    import ncf.data.sources as sources

    assert B.binarise_for("holdout") == 3.0
    assert B.binarise_for("leave-one-out") is None
    calls = []

    def fake(min_rating=None, **kw):
        calls.append(min_rating)
        return load_interactions(csv_path, user="user", item="item", timestamp="timestamp")

    monkeypatch.setattr(sources, "movielens_100k", fake)  # where load_data looks it up
    res = B.run_benchmark(["ml-100k"], ["holdout", "leave-one-out"], ["popularity"], [0, 1], tmp_path, progress=None)
    assert calls == [3.0, None]  # loaded once per rule, not once per seed
    assert [r["split"]["min_rating"] for r in res["runs"]] == [3.0, 3.0, None, None]


def test_bad_arguments_fail_fast(csv_path, tmp_path):
    from ncf.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        B.run_benchmark([str(csv_path)], ["holdout"], ["popularity", "nope"], [0], tmp_path, progress=None)
    with pytest.raises(ConfigError, match="not among the models"):
        B.run_benchmark(
            [str(csv_path)],
            ["holdout"],
            ["popularity"],
            [0],
            tmp_path,
            model_params={"ease": {"l2": 1.0}},
            progress=None,
        )
    with pytest.raises(ConfigError, match="protocols"):
        B.run_benchmark([str(csv_path)], ["random"], ["popularity"], [0], tmp_path, progress=None)


def test_cli_benchmark(csv_path, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(
        [
            "benchmark",
            "--data",
            str(csv_path),
            "--timestamp-col",
            "timestamp",
            "--protocols",
            "leave-one-out",
            "--models",
            "popularity,item-knn",
            "--seeds",
            "2",
            "--params",
            '{"item-knn": {"k_neighbors": 5}}',
            "--out",
            str(out),
            "--memory",
            "off",
        ]
    )
    assert rc == 0
    for name in ("results.json", "results.md", "chart.png"):
        assert (out / name).is_file()
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["seeds"] == [0, 1]
    knn = [r for r in data["runs"] if r["model"] == "item-knn"]
    assert len(knn) == 2 and all(r["params"]["k_neighbors"] == 5 and r["status"] == "ok" for r in knn)
    assert all(r["peak_mb"] is None for r in data["runs"])
    stdout = capsys.readouterr().out
    assert "| popularity |" in stdout


def test_cli_params_file_and_errors(csv_path, tmp_path, capsys):
    pfile = tmp_path / "params.json"
    pfile.write_text(json.dumps({"ease": {"l2": 50.0}}))
    out = tmp_path / "o"
    base = ["benchmark", "--data", str(csv_path), "--protocols", "holdout", "--seeds", "1", "--out", str(out)]
    assert main([*base, "--models", "ease", "--params", str(pfile)]) == 0
    assert json.loads((out / "results.json").read_text())["runs"][0]["params"]["l2"] == 50.0
    capsys.readouterr()
    assert main([*base, "--models", "ease,nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncf: error:") and "nope" in err and "Traceback" not in err
    assert main([*base, "--models", "ease", "--params", "{not json"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main([*base, "--models", "ease", "--protocols", "holdout,sideways"]) == 2
    assert main([*base, "--models", "ease", "--seeds", "0"]) == 2


def test_cli_notebook_preset_wiring(monkeypatch, tmp_path):
    import ncf.notebook

    calls = []
    monkeypatch.setattr(ncf.notebook, "run_notebook", lambda **kw: calls.append(kw) or {})
    assert main(["benchmark", "--preset", "notebook", "--out", str(tmp_path / "nb")]) == 0
    assert calls == [{"out_dir": str(tmp_path / "nb")}]


def test_protocol_params_merge_and_errors():
    from ncf.errors import ConfigError

    given = {"ease": {"l2": 10.0}, "item-knn": {"k_neighbors": 5}, "holdout": {"ease": {"l2": 500.0}}}
    got = B.protocol_params(given, ["holdout", "leave-one-out"], ["ease", "item-knn"])
    assert got["holdout"] == {"ease": {"l2": 500.0}, "item-knn": {"k_neighbors": 5}}
    assert got["leave-one-out"] == {"ease": {"l2": 10.0}, "item-knn": {"k_neighbors": 5}}
    assert B.protocol_params(None, ["holdout"], ["ease"]) == {"holdout": {}}
    with pytest.raises(ConfigError, match="not among the models"):
        B.protocol_params({"leave-one-out": {"gmf": {}}}, ["leave-one-out"], ["ease"])
    with pytest.raises(ConfigError, match="protocol 'holdout' must map"):
        B.protocol_params({"holdout": 3}, ["holdout"], ["ease"])


def test_cli_params_per_protocol(csv_path, tmp_path):
    pfile = tmp_path / "tuned.json"
    pfile.write_text(json.dumps({"holdout": {"ease": {"l2": 5.0}}, "leave-one-out": {"ease": {"l2": 50.0}}}))
    out = tmp_path / "pp"
    rc = main(
        [
            "benchmark",
            "--data",
            str(csv_path),
            "--timestamp-col",
            "timestamp",
            "--protocols",
            "holdout,leave-one-out",
            "--models",
            "ease,popularity",
            "--seeds",
            "1",
            "--params",
            str(pfile),
            "--out",
            str(out),
            "--memory",
            "off",
        ]
    )
    assert rc == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    l2 = {r["protocol"]: r["params"]["l2"] for r in runs if r["model"] == "ease"}
    assert l2 == {"holdout": 5.0, "leave-one-out": 50.0}
    assert all(r["status"] == "ok" for r in runs)


def test_every_model_gets_the_same_recency_signal(bench):
    res, _, _, _ = bench
    used = {(r["protocol"], r["model"]): r["recency_used"] for r in res["runs"] if r["status"] == "ok"}
    assert {m for _, m in used} == {"popularity", "ease", "item-knn", "gmf"}
    for (protocol, _model), half_life in used.items():
        assert half_life == (5.0 if protocol == "leave-one-out" else None)  # off on the random holdout


# -- tuning (benchmarks/tune.py) -----------------------------------------------------------
def test_tuning_grids_sized_and_name_real_parameters():
    import inspect

    import ncf.baselines as NB
    from ncf.model import NCF

    for name, grid in B.TUNING_GRIDS.items():
        assert 6 <= len(grid) <= 12, name
        if name in ("neumf", "gmf", "mlp"):
            accepted = set(inspect.signature(NCF.__init__).parameters)
            assert grid[0] == {}  # the defaults come first
        else:
            cls_name, fixed = NB.BASELINES[name]
            accepted = set(inspect.signature(getattr(NB, cls_name).__init__).parameters) - set(fixed)
        for cfg in grid:
            assert set(cfg) <= accepted, (name, cfg)
        assert len({json.dumps(c, sort_keys=True) for c in grid}) == len(grid), f"{name}: duplicate configs"


def test_select_tuned_best_mean_and_earlier_entry_on_ties():
    g = B.TUNING_GRIDS["ease"]
    rows = [
        {
            "protocol": "holdout",
            "model": "ease",
            "config": g[0],
            "seed": 0,
            "ndcg@10": 0.20,
            "recall@10": 0.1,
            "fit_s": 1,
        },
        {
            "protocol": "holdout",
            "model": "ease",
            "config": g[0],
            "seed": 1,
            "ndcg@10": 0.30,
            "recall@10": 0.1,
            "fit_s": 1,
        },
        {
            "protocol": "holdout",
            "model": "ease",
            "config": g[1],
            "seed": 0,
            "ndcg@10": 0.26,
            "recall@10": 0.1,
            "fit_s": 1,
        },
        {
            "protocol": "holdout",
            "model": "ease",
            "config": g[2],
            "seed": 0,
            "ndcg@10": 0.25,
            "recall@10": 0.1,
            "fit_s": 1,
        },
        {"protocol": "holdout", "model": "ease", "config": g[3], "seed": 0, "error": "boom"},
        {
            "protocol": "leave-one-out",
            "model": "ease",
            "config": g[4],
            "seed": 0,
            "ndcg@10": 0.05,
            "recall@10": 0.1,
            "fit_s": 1,
        },
        {
            "protocol": "holdout",
            "model": "ease",
            "config": {"l2": 1.0},
            "seed": 0,
            "ndcg@10": 0.9,
            "recall@10": 0.9,
            "fit_s": 1,
        },  # not in the grid (an earlier round): ignored
    ]
    chosen, table = B.select_tuned(rows)
    assert chosen == {"holdout": {"ease": g[1]}, "leave-one-out": {"ease": g[4]}}
    assert table[0]["n_configs"] == 3 and table[0]["ndcg@10"] == pytest.approx(0.26)
    rows[2]["ndcg@10"] = 0.25  # now a tie with g[0]'s mean (0.25): the earlier entry wins
    assert B.select_tuned(rows)[0]["holdout"]["ease"] == g[0]


def test_tuning_split_drops_the_test_part_and_carves_by_the_protocols_rule(csv_path):
    data = load_interactions(csv_path, user="user", item="item", timestamp="timestamp")
    train, test = B.split_for("leave-one-out", data, 0)
    inner, outer = B.tuning_split("leave-one-out", 0, data)
    assert len(inner) + len(outer) == len(train)
    assert outer.n_users == train.n_users and len(outer) <= train.n_users  # one item per user at most
    test_keys = set(zip(test.user_idx.tolist(), test.item_idx.tolist()))
    for part in (inner, outer):
        assert not test_keys & set(zip(part.user_idx.tolist(), part.item_idx.tolist()))
    with pytest.raises(ConfigError, match="tuning supports"):
        B.tuning_split("temporal", 0, data)


def test_select_tuned_stages_the_recency_half_life_on_leave_one_out_only():
    g = B.TUNING_GRIDS["ease"]
    row = {"model": "ease", "seed": 0, "recall@10": 0.1, "fit_s": 1}
    rows = [
        {**row, "protocol": "leave-one-out", "config": g[0], "ndcg@10": 0.20},
        {**row, "protocol": "leave-one-out", "config": g[1], "ndcg@10": 0.30},
        {**row, "protocol": "leave-one-out", "config": {**g[1], "recency": None}, "ndcg@10": 0.25},
        {**row, "protocol": "leave-one-out", "config": {**g[1], "recency": 10.0}, "ndcg@10": 0.35},
        {**row, "protocol": "leave-one-out", "config": {**g[0], "recency": 25.0}, "ndcg@10": 0.9},  # not staged on g[1]
        {**row, "protocol": "holdout", "config": g[2], "ndcg@10": 0.30},
        {**row, "protocol": "holdout", "config": {**g[2], "recency": 10.0}, "ndcg@10": 0.9},  # no stage 2 there
    ]
    chosen, table = B.select_tuned(rows)
    assert chosen == {"holdout": {"ease": g[2]}, "leave-one-out": {"ease": {**g[1], "recency": 10.0}}}
    assert [t["n_configs"] for t in table] == [1, 4]
    assert B.select_tuned(rows, recency=False)[0]["leave-one-out"]["ease"] == g[1]
    # every model that can weigh interactions gets the same stage-2 candidates; BPR none; holdout none
    stage2 = B.recency_stage("leave-one-out", {"ease": {"l2": 1.0}, "implicit-bpr": {}, "neumf": {}})
    assert set(stage2) == {"ease", "neumf"}
    assert [c["recency"] for c in stage2["ease"]] == list(B.RECENCY_GRID) == [None, 2.0, 5.0, 10.0, 25.0]
    assert B.recency_stage("holdout", {"ease": {"l2": 1.0}}) == {}


def test_tuning_search_smoke(csv_path, tmp_path, monkeypatch):
    """benchmarks/tune.py end to end on tiny data: stage 1, then the recency stage on leave-one-out only."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tune", Path(__file__).parents[1] / "benchmarks" / "tune.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    grids = {"ease": [{"l2": 5.0}, {"l2": 50.0}], "item-knn": [{"k_neighbors": 5}], "popularity": [{}]}
    monkeypatch.setattr(tune, "GRIDS", grids)
    monkeypatch.setattr(B, "HOLDOUT_N", 2)  # tiny users: 2 test + 2 validation items each on the holdout
    data = load_interactions(csv_path, user="user", item="item", timestamp="timestamp")
    out = tmp_path / "rows.jsonl"
    tune.search(["holdout", "leave-one-out"], list(grids), [0], out, data=data)
    rows = tune._read(out)
    assert rows and not [r for r in rows if "error" in r]
    hold = [r for r in rows if r["protocol"] == "holdout"]
    assert len(hold) == 4 and all(r["recency_used"] is None for r in hold)  # recency off on the random holdout
    loo = [r for r in rows if r["protocol"] == "leave-one-out"]
    first = [r for r in loo if "recency" not in r["config"]]
    assert len(first) == 4 and all(r["recency_used"] == 5.0 for r in first)  # "auto": on
    for name in grids:
        staged = [r for r in loo if r["model"] == name and "recency" in r["config"]]
        assert [r["config"]["recency"] for r in staged] == list(B.RECENCY_GRID)
        assert all(r["recency_used"] == r["config"]["recency"] for r in staged)
    chosen, _ = B.select_tuned(rows, grids)
    assert set(chosen["leave-one-out"]) == set(grids) and all("recency" not in c for c in chosen["holdout"].values())
    tune.search(["holdout", "leave-one-out"], list(grids), [0], out, data=data)
    assert len(tune._read(out)) == len(rows)  # resumes: nothing is fitted twice
