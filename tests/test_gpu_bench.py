"""benchmarks/gpu_bench.py and gpu_smoke.py, run here in their CPU modes, so they are ready for a GPU.

The GPU numbers themselves come from running the scripts on one (benchmarks/RESULTS.md);
these tests check that the scripts run against the current API and print every row.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_prints_every_throughput_row_and_the_fit(capsys):
    out = _script("gpu_bench").main(["--device", "cpu", "--quick", "--sections", "throughput,fit"])
    rows = out["throughput"]
    assert [(r["batch"], r["rows"]) for r in rows] == [
        (1024, "distinct"),
        (1024, "all"),
        (8192, "distinct"),
        (8192, "all"),
    ]
    for r in rows:
        assert r["samples_per_s"] > 0 and r["steps"] >= 1 and math.isfinite(r["mean_loss"])
        assert r["epoch_s"] > r["epoch_build_s"] > 0
        assert r["syncs_per_step"] is None and r["peak_gib"] is None  # CUDA-only columns
    # Both rows modes train the same model on the same batches: the same losses.
    for a, b in zip(rows[::2], rows[1::2]):
        assert a["mean_loss"] == pytest.approx(b["mean_loss"], rel=1e-5)
    (fit,) = out["fits"]
    assert fit["data"] == "synthetic ml-100k" and fit["batch"] == out["best"]["batch"]
    assert fit["epochs"] == 1 and 0 < fit["val_ndcg10"] <= 1 and fit["fit_s"] > 0
    printed = capsys.readouterr().out
    assert (
        "| 8,192 | all | " in printed
        and "### 2. Mixed precision" in printed
        and "| synthetic ml-100k | cpu |" in printed
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_asking_for_cuda_without_it_fails_in_one_line():
    with pytest.raises(SystemExit) as e:
        _script("gpu_bench").main([])
    assert "CUDA is not available" in str(e.value) and "\n" not in str(e.value)


def test_ml100k_rows_on_cpu(ml100k):
    (row,) = _script("gpu_bench").main(["--device", "cpu", "--quick", "--sections", "ml100k"])["fits"]
    assert row["device"] == "cpu" and row["epochs"] == 1
    assert 0 < row["val_ndcg10"] < 1 and 0 < row["test_ndcg10"] < 1


def test_gpu_smoke_dry_run_on_cpu(ml100k, capsys):
    _script("gpu_smoke").main(["--device", "cpu", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert "recommend ok (5, 5) similar ok (5,)" in printed
    assert "save/load max |diff| cpu->cpu: 0.0 cpu->cpu: 0.0" in printed
