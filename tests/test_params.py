"""ncf.params: one declared parameter list drives validation, get_params, bundles and CLI flags."""

from __future__ import annotations

import numpy as np
import pytest

from ncf import NCF, split
from ncf.cli import build_parser
from ncf.data.interactions import SplitInfo
from ncf.errors import ConfigError
from ncf.params import Either, Float, Int, IntList, declared, validate
from ncf.synthetic import synthetic_interactions


def test_every_ncf_parameter_is_a_train_flag_and_reaches_the_estimator():
    parser = build_parser()
    names = [f.name for f in declared(NCF)]
    assert names == list(NCF().get_params())  # get_params is the declared list, in order
    argv = [
        "train",
        "--data",
        "x.csv",
        "--out",
        "o",
        "--factors",
        "7",
        "--layers",
        "8,4",
        "--negatives",
        "all",
        "--recency",
        "none",
        "--no-refit",
        "--metric",
        "hr@5",
        "--recency-floor",
        "0.2",
        "--no-sparse",
        "--learning-rate",
        "0.01",
        "--seed",
        "3",
    ]
    args = parser.parse_args(argv)
    given = {n: getattr(args, n) for n in names if hasattr(args, n) and n != "model"}
    assert args.model == "neumf"  # --model has its own flag: it takes every model ncf knows
    assert given == {
        "factors": 7,
        "layers": (8, 4),
        "negatives": "all",
        "recency": None,
        "refit": False,
        "metric": "hr@5",
        "recency_floor": 0.2,
        "sparse": False,
        "learning_rate": 0.01,
        "seed": 3,
    }
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for n in names:  # every parameter has its flag (the README promises it)
        assert "--" + n.replace("_", "-") in help_text, n


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Int(1), [1, np.int64(5)], [0, 1.5, True, "2"]),
        (Float(0.0, 1.0, open_hi=True), [0.0, 0.5], [1.0, -0.1, float("nan"), False]),
        (IntList("8, 4", even_first=True), [(8, 4), [2]], [(), (3, 2), (8, 0), "84"]),
        (Either(Float(0.0, open_lo=True), literals=(None, "auto")), [None, "auto", 2.5], [0, "latest", float("inf")]),
    ],
)
def test_constraints_accept_and_refuse(constraint, good, bad):
    assert all(constraint.ok(v) for v in good)
    assert not any(constraint.ok(v) for v in bad)


def test_validate_names_the_parameter_its_value_and_the_range():
    with pytest.raises(ConfigError, match=r"^factors == 0, must be an integer >= 1$"):
        validate(NCF(factors=0))
    with pytest.raises(ConfigError, match=r"dropout == 1\.0, must be in \[0\.0, 1\.0\)"):
        validate(NCF(dropout=1.0))


def test_the_split_is_a_typed_field_kept_through_subsets():
    data = synthetic_interactions((30, 40, 300), seed=0)
    train, test = split.holdout(data, n=2, by="random", seed=0)
    assert train.split == test.split == SplitInfo("holdout", "random", 2, None)
    assert train.split.random
    sub = train._subset(train.user_idx < 10)
    assert sub.split == train.split  # how the rows were split survives subsetting
    assert data.split is None
