#!/usr/bin/env python
"""Tables through the command against scikit-learn on the same split.

Two real tables bundled with scikit-learn, written as CSV files:

  breast-cancer  569 rows, the 30 raw features (areas in the hundreds, smoothness in
                 hundredths) plus a text column ``size`` (small / medium / large, from the
                 tertiles of ``mean area``); target ``diagnosis`` (malignant / benign)
  diabetes       442 rows, the 10 raw features (``scaled=False``: age in years, sex 1/2,
                 blood pressure...); target ``progression``, a number

Each is split once (75 % / 25 %, ``random_state=0``: 426 / 143 and 331 / 111 rows) into
a training file and a held-out file. For each seed, xpnet trains with the command's
defaults (``xpnet train --dataset train.csv --target ...``) and is scored with
``xpnet evaluate RUN test.csv``; scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` with
their defaults train behind a ``StandardScaler`` (the text column one-hot encoded; the
regression target standardized too, ``TransformedTargetRegressor``; also without that,
as scikit-learn's defaults leave it), and ``RidgeCV`` behind the same scaler. Reported:
the median over the seeds of the held-out accuracy or R² (and each seed's), written to
``benchmarks/results/tables.json`` and, as the Markdown table docs/own-data.md includes,
to ``docs/generated/bench-tables.md`` (`render`; tests/test_tables_cli.py checks that
the two agree).

    python benchmarks/bench_tables.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_tables(folder: Path, split_seed: int = 0) -> dict[str, dict]:
    """The two tables as train/test CSV files in `folder`; name -> paths and target."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.model_selection import train_test_split

    bc = load_breast_cancer(as_frame=True)
    frame = bc.data.copy()
    frame["size"] = pd.qcut(frame["mean area"], 3, labels=["small", "medium", "large"]
                            ).astype(str)
    frame["diagnosis"] = np.asarray(bc.target_names)[bc.target]
    db = load_diabetes(as_frame=True, scaled=False)
    dframe = db.data.copy()
    dframe["progression"] = db.target.astype(float)
    out = {}
    for name, df, target in (("breast-cancer", frame, "diagnosis"),
                             ("diabetes", dframe, "progression")):
        train, test = train_test_split(df, test_size=0.25, random_state=split_seed)
        paths = {}
        for part, data in (("train", train), ("test", test)):
            paths[part] = folder / f"{name}-{part}.csv"
            data.to_csv(paths[part], index=False)
        out[name] = {"train": paths["train"], "test": paths["test"], "target": target,
                     "rows": (len(train), len(test)),
                     "task": "classification" if name == "breast-cancer" else "regression"}
    return out


def _cli(*argv: str) -> dict:
    """Run the command in this process; its one JSON object."""
    from xpnet.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"xpnet {' '.join(argv)} ended with {code}")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def xpnet_score(table: dict, seed: int, folder: Path, extra: list[str]) -> float:
    """Held-out accuracy or R² of ``xpnet train`` with its defaults (plus `extra`)."""
    run = folder / f"run-{table['train'].stem}-{seed}"
    _cli("train", "--dataset", str(table["train"]), "--target", table["target"],
         "--seed", str(seed), "--out", str(run), "--overwrite", "--quiet", "--json", *extra)
    result = _cli("evaluate", str(run), str(table["test"]), "--json")
    return result["accuracy"] if table["task"] == "classification" else result["r2"]


def sklearn_scores(table: dict, seed: int) -> dict[str, float]:
    """Held-out scores of scikit-learn's MLP (default settings) and RidgeCV, scaled."""
    import warnings

    import pandas as pd
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, test = pd.read_csv(table["train"]), pd.read_csv(table["test"])
    target = table["target"]
    Xtr, ytr = train.drop(columns=[target]), train[target]
    Xte, yte = test.drop(columns=[target]), test[target]
    text = [c for c in Xtr.columns if not pd.api.types.is_numeric_dtype(Xtr[c])]
    numeric = [c for c in Xtr.columns if c not in text]

    def scaler():
        return ColumnTransformer([("num", StandardScaler(), numeric),
                                  ("txt", OneHotEncoder(handle_unknown="ignore"), text)])

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if table["task"] == "classification":
            mlp = make_pipeline(scaler(), MLPClassifier(random_state=seed))
            out["sklearn MLP"] = float(mlp.fit(Xtr, ytr).score(Xte, yte))
        else:
            mlp = TransformedTargetRegressor(make_pipeline(scaler(), MLPRegressor(
                random_state=seed)), transformer=StandardScaler())
            out["sklearn MLP"] = float(mlp.fit(Xtr, ytr).score(Xte, yte))
            raw = make_pipeline(scaler(), MLPRegressor(random_state=seed))
            out["sklearn MLP, target unscaled"] = float(raw.fit(Xtr, ytr).score(Xte, yte))
            ridge = make_pipeline(scaler(), RidgeCV())
            out["RidgeCV"] = float(ridge.fit(Xtr, ytr).score(Xte, yte))
    return out


def run(seeds: list[int], extra: list[str] | None = None, split_seed: int = 0) -> dict:
    """Every table and seed; the scores and their medians."""
    results: dict = {"seeds": seeds, "split": f"75/25, random_state={split_seed}",
                     "tables": {}}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        tables = write_tables(folder, split_seed)
        for name, table in tables.items():
            per: dict[str, list[float]] = {}
            for seed in seeds:
                per.setdefault("xpnet", []).append(xpnet_score(table, seed, folder,
                                                               extra or []))
                for impl, score in sklearn_scores(table, seed).items():
                    per.setdefault(impl, []).append(score)
            results["tables"][name] = {
                "metric": "accuracy" if table["task"] == "classification" else "R²",
                "rows": list(table["rows"]), "target": table["target"],
                "scores": per, "median": {k: statistics.median(v) for k, v in per.items()}}
    return results


def render(results: dict) -> str:
    """The Markdown table of docs/own-data.md, from the results."""
    impls = ["xpnet", "sklearn MLP", "sklearn MLP, target unscaled", "RidgeCV"]
    head = {"xpnet": "xpnet train (defaults)", "sklearn MLP": "MLP + StandardScaler",
            "sklearn MLP, target unscaled": "MLP, target unscaled",
            "RidgeCV": "RidgeCV + StandardScaler"}
    lines = ["| table (train / held-out rows) | metric | " + " | ".join(head[i] for i in impls)
             + " |", "|---|---|" + "---:|" * len(impls)]
    for name, r in results["tables"].items():
        cells = []
        for impl in impls:
            if impl not in r["median"]:
                cells.append("-")
                continue
            seeds = ", ".join(f"{v:.3f}" for v in r["scores"][impl])
            cells.append(f"**{r['median'][impl]:.3f}** ({seeds})")
        rows = " / ".join(map(str, r["rows"]))
        lines.append(f"| {name} ({rows}) | {r['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tables.json")
    parser.add_argument("--table", type=Path,
                        default=HERE.parent / "docs" / "generated" / "bench-tables.md")
    parser.add_argument("--flags", default="", help="extra `xpnet train` flags (trials)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="random_state of the train/test split (trials)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from _common import pin_threads_env

    pin_threads_env(1)  # before numpy is imported (run() imports it)
    results = run(args.seeds, args.flags.split() if args.flags else None, args.split_seed)
    for name, r in results["tables"].items():
        line = ", ".join(f"{k} {v:.4f}" for k, v in r["median"].items())
        print(f"{name} ({r['metric']}, median of {len(args.seeds)} seeds): {line}")
    if not args.flags and args.split_seed == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        args.table.write_text(render(results))
        print(f"wrote {args.out} and {args.table}")


if __name__ == "__main__":
    main()
