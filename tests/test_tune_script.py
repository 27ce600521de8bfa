"""benchmarks/tune.py: the grids are valid for their models and selection picks the best mean."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

from ncf.model import NCF

_SPEC = importlib.util.spec_from_file_location("tune", Path(__file__).parents[1] / "benchmarks" / "tune.py")
tune = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tune)


def test_grids_sized_and_name_real_parameters():
    import ncf.baselines as NB

    for name, grid in tune.GRIDS.items():
        assert 6 <= len(grid) <= 12, name
        if name == "neumf":
            accepted = set(inspect.signature(NCF.__init__).parameters)
            assert grid[0] == {}  # the defaults come first
        else:
            cls_name, fixed = NB.BASELINES[name]
            accepted = set(inspect.signature(getattr(NB, cls_name).__init__).parameters) - set(fixed)
        for cfg in grid:
            assert set(cfg) <= accepted, (name, cfg)
        assert len({tuple(sorted(c.items())) for c in grid}) == len(grid), f"{name}: duplicate configs"


def test_select_best_mean_and_earlier_entry_on_ties():
    g = tune.GRIDS["ease"]
    rows = [
        {"protocol": "holdout", "model": "ease", "config": g[0], "seed": 0, "ndcg@10": 0.20, "recall@10": 0.1, "fit_s": 1},
        {"protocol": "holdout", "model": "ease", "config": g[0], "seed": 1, "ndcg@10": 0.30, "recall@10": 0.1, "fit_s": 1},
        {"protocol": "holdout", "model": "ease", "config": g[1], "seed": 0, "ndcg@10": 0.26, "recall@10": 0.1, "fit_s": 1},
        {"protocol": "holdout", "model": "ease", "config": g[2], "seed": 0, "ndcg@10": 0.25, "recall@10": 0.1, "fit_s": 1},
        {"protocol": "holdout", "model": "ease", "config": g[3], "seed": 0, "error": "boom"},
        {"protocol": "leave-one-out", "model": "ease", "config": g[4], "seed": 0, "ndcg@10": 0.05, "recall@10": 0.1,
         "fit_s": 1},
        {"protocol": "holdout", "model": "ease", "config": {"l2": 1.0}, "seed": 0, "ndcg@10": 0.9, "recall@10": 0.9,
         "fit_s": 1},  # not in the grid (an earlier round): ignored
    ]  # fmt: skip
    chosen, table = tune.select(rows)
    assert chosen == {"holdout": {"ease": g[1]}, "leave-one-out": {"ease": g[4]}}
    assert table[0]["n_configs"] == 3 and table[0]["ndcg@10"] == pytest.approx(0.26)
    rows[2]["ndcg@10"] = 0.25  # now a tie with g[0]'s mean (0.25): the earlier entry wins
    assert tune.select(rows)[0]["holdout"]["ease"] == g[0]
