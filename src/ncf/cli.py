"""`ncf` command line: a thin shell over the library. Errors exit 2 with one line, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ncf.model import NCF
from ncf.params import Bool, Choice, Constraint, declared
from ncf.registry import NCF_MODELS, known_models
from ncf.split import PROTOCOLS as PROTOCOL_CHOICES


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 64,32,16,8, got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user-col", default=None, help="user id column (default: user, or userId/user_id if present)")
    p.add_argument("--item-col", default=None, help="item id column (default: item, or movieId/item_id if present)")
    p.add_argument("--rating-col", default=None, help="rating column (optional)")
    p.add_argument("--timestamp-col", default=None, help="timestamp column (optional)")
    p.add_argument("--min-rating", type=float, default=None, help="keep ratings >= this as positives")
    p.add_argument("--sep", default=None, help="field separator (sniffed when omitted)")


def load_data(spec: str, args: argparse.Namespace) -> Any:
    """The data a command names, read with the data options of :func:`_add_data_args`."""
    from ncf.data.sources import load_data as load

    return load(spec, **_data_options(args))


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data flags as :func:`ncf.data.sources.load_data` keyword arguments."""
    return {
        "user": getattr(args, "user_col", None),
        "item": getattr(args, "item_col", None),
        "rating": getattr(args, "rating_col", None),
        "timestamp": getattr(args, "timestamp_col", None),
        "min_rating": getattr(args, "min_rating", None),
        "sep": getattr(args, "sep", None),
    }


def _add_param_flags(p: argparse.ArgumentParser, estimator: type) -> None:
    """One flag per declared hyper-parameter of ``estimator`` (ncf.params), e.g. ``--batch-size``.

    An unset flag leaves no attribute (``argparse.SUPPRESS``), so the estimator's default applies.
    """
    for f in declared(estimator):
        if not f.metadata["flag"]:
            continue
        c, flag = f.metadata["constraint"], "--" + f.name.replace("_", "-")
        text = f"{f.metadata['help']} (default: {_show(f.default)})"
        if isinstance(c, Bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        elif isinstance(c, Choice):
            p.add_argument(flag, choices=c.values, default=argparse.SUPPRESS, help=text)
        else:
            p.add_argument(flag, type=_parser(flag, c), default=argparse.SUPPRESS, metavar=c.metavar, help=text)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else "none" if value is None else str(value)


def _parser(flag: str, c: Constraint) -> Any:
    def parse(text: str) -> Any:
        try:
            return c.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: must be {c.text}") from None

    return parse


def _fmt_metrics(res: dict[str, Any]) -> str:
    keys = [k for k in res if isinstance(res[k], float)]
    return "  ".join(f"{k}={res[k]:.4f}" for k in keys)


def _check_outputs(args: argparse.Namespace, bundle: str = "out", folders: Sequence[str] = ()) -> Path | None:
    """Every place a command will write, checked before any work (a bad --out never costs a training run).

    Returns the bundle file that will be written (None without ``bundle``).
    """
    from ncf.persist import check_output_path

    target = None
    if bundle:
        target = check_output_path(getattr(args, bundle), kind="bundle", flag="--" + bundle.replace("_", "-"))
    for name in folders:
        if getattr(args, name, None) is not None:
            check_output_path(getattr(args, name), kind="folder", flag="--" + name.replace("_", "-"))
    return target


def _check_test_args(args: argparse.Namespace) -> None:
    """`ncf train --test-protocol`: the flags the final evaluation needs, checked before training."""
    from ncf.checks import check_int

    if args.test_protocol:
        check_int("-k", args.k)


def _check_held_out(args: argparse.Namespace, test: Any) -> None:
    """A test split that held nothing out would only fail after training: refuse it now."""
    from ncf.errors import DataError

    if len(test) == 0:
        users_kept = (test.report.get("split") or {}).get("users_train_only")
        why = f" ({users_kept} users have too few interactions to hold any out)" if users_kept else ""
        fix = "lower --holdout-n, " if args.test_protocol == "holdout" else ""
        raise DataError(
            f"--test-protocol {args.test_protocol} held out no test interactions{why}; "
            f"{fix}use more data, or drop --test-protocol"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from ncf import NCF
    from ncf.errors import ConfigError, ModelDivergedError
    from ncf.train import distributed as D

    _check_outputs(args, "out", ("tensorboard", "checkpoint_dir"))
    _check_test_args(args)
    auto_only = [
        f
        for f, on in (
            ("--budget", args.budget is not None),
            ("--candidates", args.candidates),
            ("--folds", args.folds != 1),
            ("--no-blend", args.no_blend),
        )
        if on
    ]
    if auto_only and args.model != "auto":
        raise ConfigError(f"{', '.join(auto_only)}: for --model auto only, not --model {args.model}")

    # Under torchrun (WORLD_SIZE > 1) join the process group: every rank trains on its
    # shard; rank 0 alone prints, saves and evaluates.
    ctx = D.init_from_env(args.device)
    device = D.local_device(args.device)
    say = print if ctx.is_main else (lambda *a, **k: None)
    if ctx.active and getattr(args, "seed", None) is None:
        raise ConfigError("distributed training needs --seed, so every rank builds the same split and model")
    if args.resume and not (Path(args.resume) / "run.json").is_file():
        raise ConfigError(
            f"--resume {args.resume}: no checkpointed run there to continue; "
            f"to start one that checkpoints into that folder use --checkpoint-dir {args.resume}"
        )
    data = load_data(args.data, args)
    test = None
    if args.test_protocol:
        from ncf import split

        data, test = split.by_name(args.test_protocol, data, seed=getattr(args, "seed", None) or 0, n=args.holdout_n)
        _check_held_out(args, test)
        say(f"held out {len(test)} test interactions ({args.test_protocol}); training on {len(data)}")
    params = {f.name: getattr(args, f.name) for f in declared(NCF) if f.metadata["flag"] and hasattr(args, f.name)}
    if args.model not in NCF_MODELS:
        return _train_other(args, data, test, params)
    params = {**_json_params(args.params, args.model), **params, "model": args.model}
    if params.get("compile") and "sparse" not in params:
        params["sparse"] = False  # inductor cannot compile sparse embedding gradients
    model = NCF(**params, device=device, verbose=not args.quiet and ctx.is_main, tensorboard=args.tensorboard)
    ck_dir = args.resume or args.checkpoint_dir
    if args.resume and args.checkpoint_dir and Path(args.resume) != Path(args.checkpoint_dir):
        raise ConfigError("--resume DIR already names the checkpoint folder; drop --checkpoint-dir or make them equal")
    if ck_dir and ctx.active:
        raise ConfigError("--checkpoint-dir/--resume are single-process for now; drop them under torchrun")
    try:
        model.fit(
            data, validation=None if args.no_validation else "auto", checkpoint_dir=ck_dir, resume=bool(args.resume)
        )
    except (KeyboardInterrupt, ModelDivergedError) as e:
        if not ctx.is_main:
            raise
        if getattr(model, "interrupted_", None):
            note = f"saved the best model so far ({model.interrupted_['kept']}) to {model.save(args.out)}"
        else:
            note = "no epoch of the model had finished, nothing saved"
        if ck_dir:
            note += f"; continue with the same command and --resume {ck_dir}"
        if isinstance(e, ModelDivergedError):
            raise ModelDivergedError(f"{e}; {note}") from None
        print(f"ncf: interrupted; {note}", file=sys.stderr)
        return 130
    finally:
        if ctx.active:
            import torch.distributed as dist

            dist.destroy_process_group()
    if not ctx.is_main:
        return 0
    if ctx.active:
        say(f"data-parallel: {ctx.world} ranks, global batch {model.batch_size}")
    out = model.save(args.out)
    print(f"trained {model.model} in {model.fit_seconds_:.1f}s (best epoch {model.best_epoch_}); saved to {out}")
    if model.validation_metrics_:
        print("validation: " + "  ".join(f"{k}={v:.4f}" for k, v in model.validation_metrics_.items()))
    if model.item_item_ > 0:
        parts = model.blend_info()["components"]
        print(
            "item-item term: " + " + ".join(f"{w:g} x {name}" for name, w in parts.items()) + " (standardised scores)"
        )
    _report_test(model, test, args.k)
    return 0


def _report_test(model: Any, test: Any, k: int) -> None:
    """`ncf train --test-protocol`: the held-out part, scored once at the end."""
    from ncf import evaluate

    if test is not None:
        res = evaluate(model, test, k=k)
        print(f"test ({res['protocol']} ranking, seen items excluded, {res['users']} users): {_fmt_metrics(res)}")


def _json_params(text: str | None, model: str) -> dict[str, Any]:
    """--params for one model: a JSON object of its hyper-parameters (inline or a file), or a
    mapping of model names to such objects (the model's entry is taken, as ``ncf benchmark`` reads it)."""
    from ncf.benchmark import read_json_arg
    from ncf.errors import ConfigError

    obj = read_json_arg(text)
    if isinstance(obj, dict) and isinstance(obj.get(model), dict):
        obj = obj[model]
    if not isinstance(obj, dict) or any(isinstance(v, dict) for v in obj.values()):
        raise ConfigError(f"--params must be a JSON object of {model} hyper-parameters, e.g. '{{\"factors\": 64}}'")
    return obj


def _train_other(args: argparse.Namespace, data: Any, test: Any, flags: dict[str, Any]) -> int:
    """``ncf train --model`` for a baseline, or ``auto`` (the best on validation within --budget)."""
    from ncf.errors import ConfigError

    if args.checkpoint_dir or args.resume or args.tensorboard:
        raise ConfigError(f"--checkpoint-dir, --resume and --tensorboard are for NCF models, not --model {args.model}")
    seed = flags.pop("seed", None)
    if args.model == "auto":
        from ncf.auto import DEFAULT_CANDIDATES, select_model

        if flags:
            raise ConfigError(
                f"--model auto tries every candidate with its defaults; set {sorted(flags)} per model "
                "with --params '{\"neumf\": {...}}'"
            )
        if args.budget is None:
            raise ConfigError("--model auto needs --budget SECONDS: how long the candidates may take to fit")
        cands = args.candidates.split(",") if args.candidates else DEFAULT_CANDIDATES
        t0 = time.perf_counter()
        from ncf.benchmark import load_params

        model = select_model(
            data,
            budget=args.budget,
            candidates=cands,
            params=load_params(args.params),
            seed=seed or 0,
            folds=args.folds,
            blend=not args.no_blend,
        )
        for row in model.leaderboard_:
            score = next(
                (
                    f"{k}={v:.4f}  fit {row['fit_seconds']:.1f}s"
                    + (f"  (folds: {', '.join(f'{x:.4f}' for x in row[k + '_folds'])})" if k + "_folds" in row else "")
                    for k, v in row.items()
                    if k.startswith("val_") and not k.endswith("_folds")
                ),
                row["status"],
            )
            if row["model"] == "blend":
                score += f"  {_components(row)}\n      {row['status']}"
            print(f"  {'*' if row.get('chosen') else ' '} {row['model']:<13} {score}")
        top = next(r for r in model.leaderboard_ if r.get("chosen"))
        chosen = top["model"] + (f" ({_components(top)})" if top["model"] == "blend" else "")
        print(f"chose {chosen} on validation; refit on all of train; {time.perf_counter() - t0:.1f}s in all")
    else:
        from ncf.registry import make_model

        model = make_model(args.model, {**_json_params(args.params, args.model), **flags}, seed).fit(data)
        print(f"trained {args.model} in {model.fit_seconds_:.1f}s")
    print(f"saved to {model.save(args.out)}")
    _report_test(model, test, args.k)
    return 0


def _components(row: dict[str, Any]) -> str:
    """A blend row's components and weights, e.g. ``neumf 0.5, ease 0.2, implicit-als 0.3``."""
    return ", ".join(f"{n} {w:.1f}" for n, w in row["params"]["components"].items())


def cmd_update(args: argparse.Namespace) -> int:
    """``ncf update DIR --data NEW --out DIR2``: the model in DIR plus NEW's interactions, saved to DIR2.

    DIR is only read: ``--out`` must name another bundle (checked, like every output, before any work).
    """
    from ncf.errors import ConfigError
    from ncf.loading import load_model
    from ncf.persist import bundle_file

    target = _check_outputs(args, "out")
    if bundle_file(args.model_dir).resolve() == target.resolve():
        raise ConfigError(
            f"--out {args.out} is the bundle being updated; ncf update never changes DIR: give --out a new folder"
        )
    model = load_model(args.model_dir, **({"device": args.device} if args.device else {}))
    new = load_data(args.data, args)
    model.update(new, epochs=args.epochs)
    rec = model.updates_[-1]
    out = model.save(args.out)
    print(
        f"updated {args.model_dir} with {rec['new_interactions']} interactions ({rec['new_users']} new users, "
        f"{rec['new_items']} new items) in {rec['seconds']:.1f}s: {rec['how']}; saved to {out}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ncf import evaluate
    from ncf.loading import load_model

    model = load_model(args.model_dir)
    test = load_data(args.test, args)
    res = evaluate(model, test, k=args.k, protocol=args.protocol, negatives=args.sampled_negatives)
    board = (getattr(model, "bundle_extra_", None) or {}).get("leaderboard")
    if args.json:
        print(json.dumps({**res, "leaderboard": board} if board else res, indent=2))
    else:
        from ncf.evaluation import dropped_note

        print(f"{res['protocol']} protocol, {res['users']} users, {res['test_interactions']} test interactions")
        note = dropped_note(res)
        if note:
            print(note)
        print(_fmt_metrics(res))
        if board:
            chosen = [r["model"] for r in board if r.get("chosen")]
            print(
                f"chosen by --model auto on validation: {chosen[0] if chosen else '?'}; leaderboard: "
                + "; ".join(
                    f"{r['model']} {next((f'{v:.4f}' for k, v in r.items() if k.startswith('val_') and not k.endswith('_folds')), r['status'])}"
                    for r in board
                )
            )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from ncf.batch import check_target, write_recommendations
    from ncf.errors import ConfigError
    from ncf.loading import load_model

    given = [f for f, v in (("--user", args.user), ("--all-users", args.all_users), ("--history", args.history),
                            ("--histories", args.histories)) if v]  # fmt: skip
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of --user ID (repeatable), --all-users, --history ID,ID,... or --histories FILE"
            + (f"; got {' and '.join(given)}" if given else "")
        )
    if args.explain and args.all_users:
        raise ConfigError("--explain works with --user, --history or --histories, not --all-users")
    if args.out is not None:
        check_target(args.out, "--out")
    model = load_model(args.model_dir)
    if args.history is not None or args.histories is not None or args.explain:
        return _recommend_rows(model, args)
    users = None if args.all_users else model.user_map_.coerce(args.user)
    if args.out:
        n = write_recommendations(model, args.out, users=users, k=args.k, filter_seen=not args.include_seen)
        print(f"wrote {n} rows (user,item,rank,score) to {args.out}")
        return 0
    ids, scores = model.recommend(
        users if users is not None else model.user_map_.ids, k=args.k, filter_seen=not args.include_seen
    )
    raw_users = users if users is not None else list(model.user_map_.ids)
    print("user,item,rank,score")
    for u, row_i, row_s in zip(raw_users, ids, scores):
        for r, (i, s) in enumerate(zip(row_i, row_s), 1):
            if i is not None:
                print(f"{u},{i},{r},{s:.6f}")
    return 0


def _read_histories(model: Any, args: argparse.Namespace) -> tuple[list[Any], list[list[Any]], Any]:
    """(names, histories, timestamps or None) from --history or --histories FILE."""
    import numpy as np

    if args.history is not None:
        ids = [v.strip() for v in args.history.split(",") if v.strip()]
        return ["history"], [model.item_map_.coerce(ids)], None
    opts = _data_options(args)
    if opts["timestamp"] is None:  # a "timestamp" column is used when there is one
        import pandas as pd

        from ncf.data.io import PARQUET_SUFFIXES

        path = Path(args.histories)
        try:
            if path.suffix.lower() in PARQUET_SUFFIXES:
                import pyarrow.parquet as pq

                cols = list(pq.read_schema(path).names)
            else:
                cols = list(pd.read_csv(path, sep=opts["sep"], engine="python", nrows=0).columns)
        except Exception:  # noqa: BLE001 - the loader below names the real problem
            cols = []
        opts["timestamp"] = next((c for c in cols if str(c).strip().lower() == "timestamp"), None)
    from ncf.data.sources import load_data as load

    data = load(args.histories, **opts)
    cuts = data.indptr[1:-1]
    items = np.split(data.item_map.raw(data.item_idx), cuts)
    hist = [model.item_map_.coerce(h.tolist()) for h in items]
    stamps = None if data.timestamps is None else [t.tolist() for t in np.split(data.timestamps, cuts)]
    names = data.user_map.ids.tolist()
    return names, hist, stamps


def _recommend_rows(model: Any, args: argparse.Namespace) -> int:
    """--history / --histories / --explain: rows ``user,item,rank,score[,because]`` to stdout or --out."""
    import numpy as np
    import pandas as pd

    from ncf.batch import write_table

    k = args.k
    if args.user:
        names = model.user_map_.coerce(args.user)
        ids, scores = model.recommend(names, k=k, filter_seen=not args.include_seen)
        whos: list[Any] = list(names)
    else:
        names, hist, stamps = _read_histories(model, args)
        profiles, unknown = model.history_profiles(hist, timestamps=stamps, names=names)
        ids, scores = model.recommend_profiles(profiles, k, filter_seen=not args.include_seen)
        whos = hist
        bad = [(n, u) for n, u in zip(names, unknown) if u]
        if bad:
            n_bad = sum(len(u) for _, u in bad)
            shown = "; ".join(f"{n}: {', '.join(map(str, u[:5]))}" for n, u in bad[:5])
            more = f" (and {len(bad) - 5} more histories)" if len(bad) > 5 else ""
            print(f"ncf: note: ignored {n_bad} unknown item id(s): {shown}{more}", file=sys.stderr)
    rows: dict[str, list[Any]] = {"user": [], "item": [], "rank": [], "score": []}
    because: list[str] = []
    for name, who, row_i, row_s in zip(names, whos, ids, scores):
        valid = [j for j, i in enumerate(row_i) if i is not None]
        rows["user"] += [name] * len(valid)
        rows["item"] += [row_i[j] for j in valid]
        rows["rank"] += [j + 1 for j in valid]
        rows["score"] += [float(row_s[j]) for j in valid]
        if args.explain and valid:
            expl = model.explain(who, [row_i[j] for j in valid], n=args.explain_n)
            because += [";".join(str(i) for i, _ in e) for e in expl]
    df = pd.DataFrame(rows)
    df["score"] = df["score"].astype(np.float32)
    if args.explain:
        df["because"] = because
    if args.out:
        n = write_table(df, args.out)
        print(f"wrote {n} rows ({','.join(df.columns)}) to {args.out}")
        return 0
    sys.stdout.write(df.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ncf import NCF, evaluate, split
    from ncf.baselines import Popularity
    from ncf.data.movielens import movielens_100k

    _check_outputs(args)
    t0 = time.perf_counter()
    print("1/4 loading MovieLens-100k (fetched and verified on first use) ...")
    data = movielens_100k()
    train, test = split.leave_one_out(data, by="timestamp")
    print(f"    {data.n_users} users, {data.n_items} items, {len(data)} ratings -> every rating is a positive")
    print(f"    leave-one-out by time: {len(test)} test interactions (each user's latest), {len(train)} for training")
    print("2/4 training NeuMF (a validation item per user is held out of training for early stopping) ...")
    model = NCF(seed=args.seed, verbose=True).fit(train)
    print(f"    {model.fit_seconds_:.1f}s, best epoch {model.best_epoch_}, {model.validation_metrics_}")
    print("3/4 test metrics, full ranking over every item the user has not rated (seen items excluded):")
    pop = Popularity().fit(train)
    rows = []
    for name, m in (("NeuMF", model), ("popularity", pop)):
        r = evaluate(m, test, k=10)
        rows.append((name, r))
    cols = ["hr@10", "ndcg@10", "recall@10", "mrr", "auc", "coverage@10"]
    print("    " + f"{'model':<12}" + "".join(f"{c:>12}" for c in cols))
    for name, r in rows:
        print("    " + f"{name:<12}" + "".join(f"{r[c]:>12.4f}" for c in cols))
    user = data.user_map.ids[0]
    print(f"4/4 user {user}: films they rated highly, and the top 10 NeuMF recommends (none of which they rated)")
    md = data.item_metadata
    df = data.to_frame()
    liked = df[(df["user"] == user)].sort_values(["rating", "timestamp"], ascending=False).head(10)
    ids, scores = model.recommend(user, k=10)

    def title(i: Any) -> str:
        return str(md.loc[i, "title"]) if md is not None and i in md.index else str(i)

    print(f"    {'rated highly':<45} | {'recommended':<45} score")
    for (it, rating), rec, sc in zip(liked[["item", "rating"]].itertuples(index=False), ids, scores):
        print(f"    {title(it)[:38]:<38} ({rating:.0f}/5) | {title(rec)[:45]:<45} {sc:6.2f}")
    out = Path(args.out)
    model.save(out)
    print(f"saved the model to {out}/ ; try: ncf recommend {out} --user {user} -k 5")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_cmd == "fetch":
        from ncf.data.movielens import fetch_movielens_100k

        where = fetch_movielens_100k()
        print(f"MovieLens-100k verified and cached in {where}")
        return 0
    from ncf.data.describe import describe, format_description

    data = load_data(args.source, args)
    print(format_description(describe(data)))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """`ncf bundle upgrade DIR`: check an older bundle completely and re-save it in the current format."""
    from ncf.loading import upgrade_bundle

    if args.out is not None:
        _check_outputs(args)
    target, note = upgrade_bundle(args.model_dir, args.out)
    print(f"{args.model_dir}: {note}; saved to {target}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from ncf.errors import ConfigError

    _check_outputs(args, bundle="", folders=("out",))
    if args.preset == "notebook":
        from ncf.notebook import run_notebook

        run_notebook(out_dir=args.out or "runs/notebook")
        return 0
    from ncf.benchmark import load_params, run_benchmark

    if args.seeds < 1:
        raise ConfigError(f"--seeds == {args.seeds}, must be >= 1 (seeds 0..N-1 are run)")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    bad = [p for p in protocols if p not in PROTOCOL_CHOICES]
    if bad:
        raise ConfigError(f"--protocols: unknown {bad}; pick from {', '.join(PROTOCOL_CHOICES)}")
    res = run_benchmark(
        args.data or ["ml-100k"],
        protocols,
        [m.strip() for m in args.models.split(",") if m.strip()],
        range(args.seeds),
        args.out or "runs/benchmark",
        k=args.k,
        model_params=load_params(args.params),
        data_args=_data_options(args),
        memory=args.memory,
    )
    print()
    print(res["markdown"])
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ncf.serve.run import serve

    return serve(
        args.model_dir,
        host=args.host,
        port=args.port,
        workers=args.workers,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        torch_threads=args.torch_threads,
        cache_top=args.cache_top,
        allowed_hosts=args.allowed_hosts,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
    )


def build_parser() -> argparse.ArgumentParser:
    from ncf._version import __version__

    p = argparse.ArgumentParser(prog="ncf", description="Neural Collaborative Filtering: train, evaluate, recommend.")
    p.add_argument("--version", action="version", version=f"ncf {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_update(sub)
    _add_evaluate_recommend(sub)
    _add_data_commands(sub)
    _add_benchmark(sub)
    _add_serve(sub)
    return p


def _add_train(sub: Any) -> None:
    """ncf train: data options, one flag per declared NCF hyper-parameter, --model (every model, auto)."""
    t = sub.add_parser("train", help="train a model and save its bundle")
    t.add_argument("--data", required=True, help="'ml-100k', a MovieLens zip/folder, or a CSV/TSV/Parquet file")
    _add_data_args(t)
    t.add_argument(
        "--model",
        choices=(*known_models(), "auto"),
        default="neumf",
        help="the model to train (default neumf); 'auto': the best on validation within --budget",
    )
    _add_param_flags(t, NCF)
    t.add_argument(
        "--params",
        default=None,
        metavar="JSON",
        help="hyper-parameters as JSON (inline or a file), e.g. '{\"l2\": 300}' for --model ease",
    )
    t.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="--model auto: seconds the candidates' fits may take (the winner's refit comes on top)",
    )
    t.add_argument(
        "--candidates",
        default=None,
        help="--model auto: comma-separated model names (default: every known model that fits the budget)",
    )
    t.add_argument(
        "--folds",
        type=int,
        default=1,
        metavar="N",
        help="--model auto: validation parts each candidate is scored on, the mean decides (1-10, default 1)",
    )
    t.add_argument(
        "--no-blend",
        action="store_true",
        help="--model auto: choose among single models only (default: a blend of the best three is shipped "
        "when it beats the best one on validation by more than one standard error)",
    )
    t.add_argument("--no-validation", action="store_true", help="train exactly --epochs epochs, no early stopping")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    t.add_argument(
        "--test-protocol",
        choices=PROTOCOL_CHOICES,
        default=None,
        help="hold out a test part first and print test metrics at the end",
    )
    t.add_argument("--holdout-n", type=int, default=10, help="test items per user for --test-protocol holdout")
    t.add_argument("-k", type=int, default=10, help="cutoff for test metrics")
    t.add_argument("--tensorboard", default=None, metavar="DIR", help="write TensorBoard logs to DIR")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--out", required=True, help="folder for the model bundle")
    t.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="write an atomic checkpoint to DIR after every epoch (DIR must be empty or new)",
    )
    t.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run checkpointed in DIR (same data and flags), e.g. after a crash or kill -9",
    )
    t.set_defaults(func=cmd_train)


def _add_update(sub: Any) -> None:
    """ncf update: a saved model plus new interactions, saved to a new bundle."""
    u = sub.add_parser(
        "update",
        help="add new interactions (new users and items too) to a saved model; write a new bundle",
        description="Load the model in MODEL_DIR, add --data's interactions (see ncf.update: NCF models continue "
        "training, EASE/item-kNN/popularity refit, ALS partial-fits), and save to --out. MODEL_DIR is never changed.",
    )
    u.add_argument("model_dir", metavar="MODEL_DIR")
    u.add_argument("--data", required=True, help="the new interactions (same formats and column flags as train)")
    _add_data_args(u)
    u.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs of the update (NCF, BPR, LightFM; default: the model's update default)",
    )
    u.add_argument("--device", default=None, help="NCF: cpu, cuda, cuda:N (default: cpu)")
    u.add_argument("--out", required=True, help="folder for the updated bundle (not MODEL_DIR)")
    u.set_defaults(func=cmd_update)


def _add_evaluate_recommend(sub: Any) -> None:
    """ncf evaluate and ncf recommend."""
    e = sub.add_parser("evaluate", help="evaluate a saved model on held-out data")
    e.add_argument("model_dir")
    e.add_argument("--test", required=True, help="held-out interactions (same formats as train --data)")
    _add_data_args(e)
    e.add_argument("--protocol", choices=("full", "sampled", "full-unfiltered"), default="full")
    e.add_argument("--sampled-negatives", type=int, default=99)
    e.add_argument("-k", type=int, default=10)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("recommend", help="top-k items for users, or for histories of items (fold-in)")
    r.add_argument("model_dir")
    r.add_argument("--user", action="append", help="raw user id (repeatable)")
    r.add_argument("--all-users", action="store_true")
    r.add_argument(
        "--history", default=None, help="comma-separated raw item ids of one new user (rows get user 'history')"
    )
    r.add_argument(
        "--histories",
        default=None,
        help="file of user,item[,timestamp] rows (formats as train --data): one history per user column value",
    )
    _add_data_args(r)
    r.add_argument("-k", type=int, default=10)
    r.add_argument("--out", default=None, help="FILE.csv or FILE.parquet (streams users in chunks)")
    r.add_argument("--include-seen", action="store_true", help="do not filter items seen in training / the history")
    r.add_argument(
        "--explain",
        action="store_true",
        help="add a 'because' column: the history items behind each item, ';'-separated",
    )
    r.add_argument("--explain-n", type=int, default=3, help="most items in 'because' (default 3)")
    r.set_defaults(func=cmd_recommend)


def _add_data_commands(sub: Any) -> None:
    """ncf quickstart, ncf data fetch|describe, ncf bundle upgrade."""
    q = sub.add_parser("quickstart", help="fetch ML-100k, train NeuMF, evaluate against popularity, recommend")
    q.add_argument("--seed", type=int, default=42)
    q.add_argument("--out", default="runs/quickstart")
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("data", help="fetch or describe data")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    f = dsub.add_parser("fetch", help="fetch and verify a built-in dataset")
    f.add_argument("name", choices=("ml-100k",))
    ds = dsub.add_parser("describe", help="users, items, density, count quantiles, rating histogram")
    ds.add_argument("source", help="'ml-100k' or a data file")
    _add_data_args(ds)
    d.set_defaults(func=cmd_data)

    bu = sub.add_parser("bundle", help="maintain saved model bundles")
    busub = bu.add_subparsers(dest="bundle_cmd", required=True)
    up = busub.add_parser("upgrade", help="check an older bundle completely and re-save it in the current format")
    up.add_argument("model_dir")
    up.add_argument("--out", default=None, help="write the upgraded bundle here (default: replace it in place)")
    bu.set_defaults(func=cmd_bundle)


def _add_benchmark(sub: Any) -> None:
    """ncf benchmark."""
    b = sub.add_parser("benchmark", help="fit and evaluate models on shared splits; write a table and a chart")
    b.add_argument(
        "--preset",
        choices=("notebook",),
        default=None,
        help="'notebook': reproduce the seed notebook (Keras NeuMF + LightFM, ML-100k)",
    )
    b.add_argument(
        "--data",
        action="append",
        default=None,
        help="'ml-100k' (default; binarised per protocol: holdout keeps ratings >= 3, the others all "
        "ratings, unless --min-rating is given) or a data file; repeat for several datasets",
    )
    _add_data_args(b)
    b.add_argument(
        "--protocols", default="holdout,leave-one-out", help="comma-separated: " + ",".join(PROTOCOL_CHOICES)
    )
    b.add_argument(
        "--models",
        default="neumf,gmf,mlp,popularity,ease,item-knn,implicit-als,implicit-bpr,lightfm-warp",
        help="comma-separated model names (NCF: neumf, gmf, mlp; baselines by name); default %(default)s",
    )
    b.add_argument("--seeds", type=int, default=3, help="run seeds 0..N-1 (one split per seed)")
    b.add_argument("-k", type=_int_list, default=(5, 10), help="metric cutoffs, e.g. 5,10")
    b.add_argument(
        "--params",
        default=None,
        metavar="JSON",
        help='JSON file or string: model name -> constructor kwargs, e.g. \'{"ease": {"l2": 200}}\'; '
        "a protocol name as key holds such a mapping for that protocol only",
    )
    b.add_argument(
        "--memory",
        choices=("rss", "tracemalloc", "off"),
        default="rss",
        help="rss: sampled resident memory (default); tracemalloc: also trace Python/numpy allocations "
        "(slows Python-heavy fits); off",
    )
    b.add_argument("--out", default=None, help="output folder (default runs/benchmark, or runs/notebook)")
    b.set_defaults(func=cmd_benchmark)


def _add_serve(sub: Any) -> None:
    """ncf serve."""
    s = sub.add_parser("serve", help="HTTP API and explorer page over a saved model")
    s.add_argument("model_dir")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes (each loads the bundle)")
    s.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on every endpoint but /health (default: $NCF_API_KEY)",
    )
    s.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger request bodies get 413 (default 1 MiB)")
    s.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    s.add_argument("--no-access-log", action="store_true", help="do not write JSON access-log lines")
    s.add_argument(
        "--cache-top",
        type=int,
        default=100,
        metavar="N",
        help="keep each user's top-N per loaded model so repeat requests with k <= N skip scoring; 0: off",
    )
    s.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads per worker (default 1: lowest latency for per-request scoring)",
    )
    s.add_argument(
        "--allowed-hosts",
        default=None,
        metavar="HOSTS",
        help="Host header names to answer, comma-separated ('*': any); default: localhost,127.0.0.1,::1 "
        "when --host is loopback (stops DNS rebinding), else any",
    )
    s.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="close a connection whose request headers take longer (408; default 10)",
    )
    s.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="answer 408 to a request body that takes longer to arrive (default 30)",
    )
    s.set_defaults(func=cmd_serve)


def _os_error(e: OSError) -> str:
    from ncf.errors import one_line

    what = one_line(e.strerror or e)
    where = " ".join(f"{f!s}" for f in (e.filename, e.filename2) if f is not None)
    if not where:
        return f"{what} ({type(e).__name__})"
    return f"{what}: {where} (check the path, its permissions and the free space)"


def main(argv: Sequence[str] | None = None) -> int:
    from ncf.errors import NcfError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NcfError as e:
        print(f"ncf: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a vanished file, a permission: one line, never a traceback
        print(f"ncf: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ncf: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``ncf`` command (and ``python -m ncf``): :func:`main`, then a fast exit.

    A finished command has already written, fsynced and closed everything it makes (bundles,
    reports, checkpoints are atomic writes). What is left at exit is the interpreter tearing
    down torch, numba and pandas: ~0.4 s of a ~5 s ``ncf train`` on ML-100k here, for nothing
    (benchmarks/RESULTS.md, "ncf train wall time"). So once the standard streams and logging
    are flushed the process leaves with ``os._exit``. If another thread is still running (none
    of ours is; a library's might), or a profiler or tracer is attached, it takes the normal exit.
    """
    import logging
    import threading

    code = main()
    # a profiler or tracer (cProfile, coverage) writes its results at the normal exit
    if threading.active_count() > 1 or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`ncf ... | head`): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
