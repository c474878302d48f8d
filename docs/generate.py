"""Produce the outputs the docs show, or check that the committed ones are current.

    python docs/generate.py                    # regenerate every target
    python docs/generate.py examples cli       # only some targets (list below)
    python docs/generate.py --check            # exit 1 (with a diff) if a shown output changed

Targets:

* ``examples``: every script in ``examples/`` run as the Examples page shows it, its
  output (standard output and standard error, in order) in
  ``docs/generated/examples/<name>.txt`` and its training curves, drawn from the
  ``History`` of the script's first ``fit`` (or ``CallbackList``), in
  ``docs/img/examples/<name>.png``.
* ``cli``: ``xpnet train --out runs/demo`` for Getting started and The command line
  (``docs/generated/xpnet-train.txt``), then ``xpnet evaluate runs/demo`` and
  ``xpnet predict runs/demo digit.png`` on the PNG ``docs/digit_png.py`` writes
  (Pillow); for The command line also the test accuracy
  of seeds 0, 1 and 2, three errors with their one-line messages, a second run refused
  by a busy folder's lock and Ctrl-C on the first (``docs/generated/xpnet-*.txt``).
* ``tables``: Your own data's session on scikit-learn's breast-cancer table written as
  CSV files: ``xpnet train --dataset``, ``evaluate`` and ``predict`` on the held-out
  rows, and two broken tables (``docs/generated/xpnet-table-*.txt``).
* ``performance``: the tables of Performance, and Reliability's long-run memory
  table, from the benchmarks' recorded results (``benchmarks/results/*.json``, through
  ``benchmarks/report_md.py``) into ``docs/generated/performance/``.
* ``onnx``: ``xpnet export`` of a digits run (and of Getting started's ``runs/demo``),
  and its message where ndonnx is not
  installed (the import made to fail), for the ONNX page (``docs/generated/xpnet-export*.txt``).
* ``backends``: the cross-backend table of Backends (``docs/generated/backends-table.md``):
  NumPy vs ``array_api_strict`` vs PyTorch, float32 and float64.
* ``api``: the index of every public name for the API reference
  (``docs/generated/api-index.md``).
* ``notebook``: the measurements of From the notebook (``docs/notebook_xpnet.py`` and
  ``docs/notebook_ablation.py`` on MNIST's test files, about a minute); only where
  the files are: ``$XPNET_MNIST_TEST_DIR``, else ``../shared/data/mnist``.

Every run is pinned so that it gives the same numbers on any machine of the same kind:
one BLAS thread, CuPy hidden (``XPNET_DISABLE_CUPY=1``), an empty dataset cache (so the
examples use the bundled digits), no colour, 88 columns. ``--check`` reruns the
targets into a temporary folder and compares: timings, throughputs and temporary paths
are masked; the backends table's differences must keep their order of magnitude (and
zeros stay zero). ``tests/test_docs_outputs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "docs" / "generated"
IMAGES = ROOT / "docs" / "img" / "examples"
EXAMPLES = ROOT / "examples"

# How the Examples page runs each script: the command a reader can type.
EXAMPLE_RUNS: dict[str, list[str]] = {
    "cpu_mnist": ["--fast"],
    "gpu_mnist": ["--fast", "--allow-cpu"],
    "custom_loop": [],
    "fit_by_hand": [],
    "custom_layer": [],
    "notebook_config": [],
    "distributed_digits": [],
    "residual_digits": ["--fast"],
}
HELPERS = {"example_data"}  # imported by the examples, not run on its own

# Runs a script as ``python examples/<name>.py`` would, and records the ``history`` of
# every History that finishes a training (fit and CallbackList both end with it).
_RECORDER = """
import atexit, json, os, runpy, sys
import xpnet.training.callbacks as _cb
_runs, _out = [], sys.argv[1]
_end = _cb.History.on_train_end
def _record(self, logs):
    _end(self, logs)
    _runs.append({k: [float(v) for v in vals] for k, vals in self.history.items()})
_cb.History.on_train_end = _record
atexit.register(lambda: json.dump(_runs, open(_out, "w")))
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def pinned_env(work: Path) -> dict[str, str]:
    """The environment every generated run uses (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "MKL_NUM_THREADS", "XPNET_NUM_THREADS")}
    empty = work / "empty-cache"
    empty.mkdir(exist_ok=True)
    env.update(threads, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", NO_COLOR="1",
               COLUMNS="88", TERM="dumb", XPNET_DISABLE_CUPY="1",
               XPNET_DATA_DIR=str(empty), PYTHONHASHSEED="0")
    return env


def _run(cmd: list[str], work: Path, expect_rc: int = 0) -> str:
    proc = subprocess.run(cmd, cwd=work, env=pinned_env(work), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    if proc.returncode != expect_rc:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}, expected "
                           f"{expect_rc}:\n{proc.stdout}")
    return proc.stdout


def write(path: Path, text: str, exact: bool = False) -> None:
    """Write ``text`` unless the file already says the same up to timings (no churn);
    ``exact``: unless it says exactly the same."""
    if path.exists() and (path.read_text() == text if exact else
                          mask(path.read_text()) == mask(text)):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- examples

def run_example(name: str, work: Path) -> tuple[str, dict[str, list[float]]]:
    """Output and first recorded history of ``examples/<name>.py``."""
    record = work / f"{name}.json"
    out = _run([sys.executable, "-c", _RECORDER, str(record),
                str(EXAMPLES / f"{name}.py"), *EXAMPLE_RUNS[name]], work)
    runs = json.loads(record.read_text())
    if not runs:
        raise RuntimeError(f"examples/{name}.py trained nothing that left a History")
    return out, runs[0]


def plot_history(history: dict[str, list[float]], title: str, path: Path) -> None:
    """Loss and accuracy per epoch, drawn at the size the page shows them (720 px)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2, 2.7), dpi=100, squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        epochs = range(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train", color="#1f77b4")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation", color="#d62728")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Twice the pixels of the shown size, so it stays sharp on high-density screens.
    fig.savefig(path, dpi=200, metadata={"Software": None})
    plt.close(fig)


def command_line(name: str) -> str:
    return " ".join(["python", f"examples/{name}.py", *EXAMPLE_RUNS[name]])


def gen_examples(out_dir: Path, img_dir: Path | None, work: Path) -> None:
    for name in EXAMPLE_RUNS:
        text, history = run_example(name, work)
        (out_dir / "examples").mkdir(parents=True, exist_ok=True)
        write(out_dir / "examples" / f"{name}.txt", f"$ {command_line(name)}\n{text}")
        if img_dir is not None:
            plot_history(history, command_line(name), img_dir / f"{name}.png")


# --------------------------------------------------------------------------- cli

def shorten_train_output(text: str, keep: int = 2) -> str:
    """The header, the first and last ``keep`` epoch lines, and the result table."""
    lines = text.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    if len(epochs) <= 2 * keep:
        return text
    cut = epochs[keep:-keep]
    shown = lines[:cut[0]] + [f"... ({len(cut)} more epochs)"] + lines[cut[-1] + 1:]
    return "\n".join(shown) + "\n"


_XPNET = [sys.executable, "-m", "xpnet"]


def gen_cli(out_dir: Path, work: Path) -> None:
    text = _run([*_XPNET, "train", "--out", "runs/demo"], work)
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "xpnet-train.txt",
          "$ xpnet train --out runs/demo\n" + shorten_train_output(text))
    # Getting started goes on with that run: evaluate it, predict a PNG it never saw.
    text = _run([*_XPNET, "evaluate", "runs/demo"], work)
    write(out_dir / "xpnet-evaluate.txt", f"$ xpnet evaluate runs/demo\n{text}")
    made = _run([sys.executable, str(ROOT / "docs" / "digit_png.py")], work)
    text = _run([*_XPNET, "predict", "runs/demo", "digit.png"], work)
    write(out_dir / "xpnet-predict.txt",
          f"$ python digit_png.py\n{made}$ xpnet predict runs/demo digit.png\n{text}")
    # Without a usable GPU (CuPy is hidden here): the message and exit status 4.
    text = _run([*_XPNET, "train", "--backend", "cupy"], work, expect_rc=4)
    write(out_dir / "xpnet-train-cupy.txt",
          f"$ xpnet train --backend cupy\n{text}$ echo $?\n4\n")
    errors = [(["--hidden", "0,5"], 2), (["--backend", "cupy"], 4),
              (["--optimizer", "sgd", "--lr", "1e4", "--quiet"], 1)]
    shown = "".join(f"$ xpnet train {' '.join(args)}\n"
                    + _run([*_XPNET, "train", *args], work, expect_rc=rc)
                    for args, rc in errors)
    write(out_dir / "xpnet-errors.txt", shown)
    seeds = "for s in 0 1 2; do xpnet train --seed $s --no-save --quiet --json " \
            "| jq .test.accuracy; done"
    accuracies = [json.loads(_run([*_XPNET, "train", "--seed", str(s), "--no-save",
                                   "--quiet", "--json"], work))["test"]["accuracy"]
                  for s in (0, 1, 2)]
    write(out_dir / "xpnet-train-seeds.txt",
          f"$ {seeds}\n" + "".join(f"{a!r}\n" for a in accuracies))
    if os.name == "posix":   # signals and the folder lock as on Linux and macOS
        gen_cli_interrupted(out_dir, work)


def gen_cli_interrupted(out_dir: Path, work: Path) -> None:
    """A second run refused by the first's lock, then Ctrl-C (SIGINT) on the first."""
    import signal
    import time

    cmd = ["train", "--out", "runs/a", "--epochs", "1000"]
    first = subprocess.Popen([*_XPNET, *cmd], cwd=work, env=pinned_env(work),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (work / "runs" / "a" / "model.safetensors").exists():
            if first.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"xpnet {' '.join(cmd)} did not finish an epoch:\n"
                                   f"{first.communicate()[1]}")
            time.sleep(0.05)
        second = _run([*_XPNET, "train", "--out", "runs/a"], work, expect_rc=2)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    if first.returncode != 130:
        raise RuntimeError(f"Ctrl-C ended xpnet train with {first.returncode}:\n{err}")
    write(out_dir / "xpnet-train-busy.txt", f"$ xpnet train --out runs/a\n{second}")
    lines = err.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    write(out_dir / "xpnet-train-interrupted.txt",
          f"$ xpnet {' '.join(cmd)}\n... (the header and {len(epochs) - 1} epochs)\n"
          + "\n".join(lines[epochs[-1]:]) + "\n")


# --------------------------------------------------------------------------- tables


def write_cancer_tables(work: Path) -> None:
    """breast-cancer as CSV: cancer.csv (426 rows), cancer-test.csv (143 held-out rows)
    and cancer-new.csv (those rows without the diagnosis); a text column ``size`` added."""
    import csv

    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    area = data.data[:, list(data.feature_names).index("mean area")]
    size = np.array(["small", "medium", "large"])[np.searchsorted(
        np.quantile(area, [1 / 3, 2 / 3]), area)]
    header = [*data.feature_names, "size", "diagnosis"]
    rows = [[*map(repr, x.tolist()), s, data.target_names[t]]
            for x, s, t in zip(data.data, size, data.target, strict=True)]
    train, test = train_test_split(rows, test_size=0.25, random_state=0)
    for name, part, cols in (("cancer.csv", train, None), ("cancer-test.csv", test, None),
                             ("cancer-new.csv", test, -1)):
        with open(work / name, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header[:cols])
            w.writerows(r[:cols] for r in part)


def gen_tables(out_dir: Path, work: Path) -> None:
    write_cancer_tables(work)
    out_dir.mkdir(parents=True, exist_ok=True)

    def here(cmd: list[str], expect_rc: int = 0) -> str:
        """The output, with files named as given: the working folder is a temporary one."""
        return _run(cmd, work, expect_rc).replace(f"{work}{os.sep}", "")

    train = ["train", "--dataset", "cancer.csv", "--target", "diagnosis", "--out",
             "runs/cancer"]
    lines = here([*_XPNET, *train]).splitlines()
    # the epoch lines left out: which fields fit 88 columns depends on the timings' width
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    lines[epochs[0]:epochs[-1] + 1] = [f"... ({len(epochs)} epoch lines: loss, accuracy, "
                                       "validation loss and accuracy)"]
    write(out_dir / "xpnet-table-train.txt",
          f"$ xpnet {' '.join(train)}\n" + "\n".join(lines) + "\n")
    text = here([*_XPNET, "evaluate", "runs/cancer", "cancer-test.csv"])
    write(out_dir / "xpnet-table-evaluate.txt",
          f"$ xpnet evaluate runs/cancer cancer-test.csv\n{text}")
    text = here([*_XPNET, "predict", "runs/cancer", "cancer-new.csv", "--proba"])
    write(out_dir / "xpnet-table-predict.txt",
          "$ xpnet predict runs/cancer cancer-new.csv --proba | head -4\n"
          + "".join(text.splitlines(keepends=True)[:4]))
    (work / "broken.csv").write_text("age,weight,smoker\n34,71.5,no\n51,80.2,yes\n"
                                     "47,eighty,no\n29,66.0,yes\n")
    errors = [["--dataset", "cancer.csv", "--target", "outcome"],
              ["--dataset", "broken.csv", "--target", "smoker"]]
    write(out_dir / "xpnet-table-errors.txt",
          "".join(f"$ xpnet train {' '.join(args)}\n"
                  + here([*_XPNET, "train", *args], expect_rc=3) for args in errors))


# --------------------------------------------------------------------------- onnx

# ``xpnet export`` as it answers where ndonnx is not installed: the import fails.
_WITHOUT_NDONNX = ("import sys; sys.modules['ndonnx'] = None; from xpnet.cli import main; "
                   "sys.exit(main())")


def onnx_installed() -> bool:
    """Whether the ONNX extra's packages are importable here."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))


def gen_onnx(out_dir: Path, work: Path) -> None:
    _run([*_XPNET, "train", "--out", "runs/digits", "--quiet"], work)
    export = ["export", "runs/digits", "digits.onnx", "--outputs", "proba,labels"]
    text = _run([*_XPNET, *export], work)
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "xpnet-export.txt",
          f"$ xpnet train --out runs/digits\n$ xpnet {' '.join(export)}\n{text}")
    # Getting started's last step: the run it trained, exported with the defaults.
    if not (work / "runs" / "demo" / "model.safetensors").exists():   # the cli target's
        _run([*_XPNET, "train", "--out", "runs/demo", "--quiet"], work)
    text = _run([*_XPNET, "export", "runs/demo", "digits.onnx"], work)
    write(out_dir / "xpnet-export-demo.txt", f"$ xpnet export runs/demo digits.onnx\n{text}")
    missing = ["export", "runs/latest", "model.onnx"]
    text = _run([sys.executable, "-c", _WITHOUT_NDONNX, *missing], work, expect_rc=2)
    write(out_dir / "xpnet-export-no-ndonnx.txt", f"$ xpnet {' '.join(missing)}\n{text}")


# --------------------------------------------------------------------------- backends

_MEASURE = """
import json, sys
import numpy as np
import xpnet as xn

data = xn.datasets.load("digits")
X, y = data.x_train, data.y_train

def host(d):
    return {k: np.array(xn.to_numpy(v), copy=True) for k, v in d.items()}  # fit updates in place

def run(backend, dtype):
    model = xn.MLP([64, 256, 10], backend=backend, dtype=dtype, seed=0)
    init = host(model.params)
    perm = xn.to_numpy(xn.RNG(0).permutation(len(y), model.backend))
    _, grads = model.loss_and_grads(X[:64], y[:64], train=False)
    h = model.fit(X, y, epochs=5, batch_size=64, optimizer=xn.Adam(lr=1e-3), seed=0,
                  verbose=0)
    return init, perm, host(grads), h.history["loss"], host(model.params)

def rel(a, b):
    scale = max(float(np.max(np.abs(v))) for v in b.values())
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a) / scale

rows = []
for dtype in ("float32", "float64"):
    ref = run("numpy", dtype)
    for name in ("array_api_strict", "torch"):
        if xn.backends.backend_status()[name] is not None:
            continue
        r = run(name, dtype)
        rows.append({
            "backend": name, "dtype": dtype,
            "init": all(np.array_equal(r[0][k], ref[0][k]) for k in ref[0]),
            "order": bool(np.array_equal(r[1], ref[1])),
            "grads": rel(r[2], ref[2]),
            "losses": max(abs(a - b) / abs(b) for a, b in zip(r[3], ref[3])),
            "params": rel(r[4], ref[4]),
        })
json.dump(rows, sys.stdout)
"""


def _sci(x: float) -> str:
    if x == 0:
        return "0"
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def gen_backends(out_dir: Path, work: Path) -> None:
    rows = json.loads(_run([sys.executable, "-c", _MEASURE], work))
    same = {True: "bitwise identical", False: "**differ**"}
    lines = ["| backend | dtype | initial parameters, batch order | one batch's gradients "
             "| epoch losses | parameters after 5 epochs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['backend']}` | {r['dtype']} | {same[r['init'] and r['order']]} "
                     f"| {_sci(r['grads'])} | {_sci(r['losses'])} | {_sci(r['params'])} |")
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "backends-table.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- performance

def gen_performance(out_dir: Path, work: Path) -> None:
    """The tables of Performance, from the results the benchmarks recorded."""
    tables = work / "performance-tables"
    _run([sys.executable, str(ROOT / "benchmarks" / "report_md.py"), "--write", str(tables)],
         work)
    for table in sorted(tables.glob("*.md")):
        write(out_dir / "performance" / table.name, table.read_text(), exact=True)


# --------------------------------------------------------------------------- api

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
# A cross-reference in a docstring, [`name`][identifier] or [`name`][]: the index shows
# the last part of the name as code, as for a role, so that a summary stays one short
# line of the table.
_XREF = re.compile(r"\[`([^`]+)`\]\[[\w.]*\]")


def api_modules() -> list[str]:
    """The modules the API pages document (their ``::: module`` directives), in nav order."""
    import yaml

    def find(entries: list) -> list | None:
        """The "API reference" section, at any depth of the navigation."""
        for item in entries:
            if isinstance(item, dict):
                for title, value in item.items():
                    if title == "API reference":
                        return value
                    if isinstance(value, list) and (found := find(value)) is not None:
                        return found
        return None

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!ENV", ""))["nav"]
    section = find(nav)
    if section is None:
        raise RuntimeError("mkdocs.yml's nav has no 'API reference' section")
    pages = [next(iter(e.values())) if isinstance(e, dict) else e for e in section]
    found = []
    for page in pages:
        text = (ROOT / "docs" / page).read_text()
        found += re.findall(r"^::: (xpnet[\w.]*)", text, flags=re.M)
    return found


def _summary(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if not doc or isinstance(obj, (int, float, str, tuple, dict, list, frozenset)):
        return ""
    first = doc.split("\n\n")[0].replace("\n", " ")
    first = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", first)
    first = _XREF.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", first)
    first = re.sub(r"``([^`]+)``", r"`\1`", first)
    # A table cell: a pipe outside code is escaped; inside code it is literal (the tables
    # extension does not split there, and a backslash would show).
    return "".join(part if part.startswith("`") else part.replace("|", "\\|")
                   for part in re.split(r"(`[^`]*`)", first))


def _kind(obj) -> str:
    if isinstance(obj, type):
        return "exception" if issubclass(obj, BaseException) else "class"
    return "function" if callable(obj) else "constant"


def gen_api(out_dir: Path, work: Path) -> None:
    """An index of every public name: a link to its entry, its kind, its summary."""
    import importlib
    import types

    sys.path.insert(0, str(ROOT))
    xn = importlib.import_module("xpnet")
    modules = api_modules()
    where: dict[int, str] = {}   # id(object) -> the qualified name it is documented as
    lines = ["## By module", ""]
    for mod_name in modules:
        mod = importlib.import_module(mod_name)
        page = mod_name.split(".")[1]
        lines += [f"### [`{mod_name}`]({page}.md)", "", "| name | kind | summary |",
                  "|---|---|---|"]
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                continue
            kind = _kind(obj)
            documented = kind != "constant"   # constants have no docstring, so no entry
            label = f"[`{name}`][{mod_name}.{name}]" if documented else f"`{name}`"
            if documented and getattr(obj, "__module__", "").startswith(mod_name):
                where[id(obj)] = f"{mod_name}.{name}"
            where.setdefault(id(obj), f"{mod_name}.{name}")
            lines.append(f"| {label} | {kind} | {_summary(obj)} |")
        lines.append("")
    by_module: dict[str, list[str]] = {}
    for name in xn.__all__:
        obj = getattr(xn, name)
        if name.startswith("__") or isinstance(obj, types.ModuleType):
            continue
        target = where[id(obj)]
        by_module.setdefault(target.rsplit(".", 1)[0], []).append(f"[`{name}`][{target}]")
    top = ["## `import xpnet as xn`", "",
           "The names the package exports at the top level, by the module that documents "
           "them:", "", "| `xn.` names | documented in |", "|---|---|"]
    for mod_name, links in by_module.items():
        top.append(f"| {', '.join(links)} | [`{mod_name}`]({mod_name.split('.')[1]}.md) |")
    submodules = [m for m in xn.__all__ if isinstance(getattr(xn, m), types.ModuleType)]
    top += ["", "Modules reachable as attributes: "
            + ", ".join(f"[`xn.{m}`]({m}.md)" for m in submodules) + ".", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "api-index.md", "\n".join(top + lines))


# --------------------------------------------------------------------------- notebook

def mnist_test_dir() -> Path | None:
    """The folder with MNIST's t10k-* files, or None where they are not."""
    env = os.environ.get("XPNET_MNIST_TEST_DIR")
    folder = Path(env) if env else ROOT.parent / "shared" / "data" / "mnist"
    found = (folder / "t10k-images-idx3-ubyte.gz").is_file()
    return folder.resolve() if found else None


def gen_notebook(out_dir: Path, work: Path) -> None:
    folder = mnist_test_dir()
    if folder is None:
        raise RuntimeError("the notebook target needs MNIST's t10k-* files; set "
                           "XPNET_MNIST_TEST_DIR to their folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("notebook_xpnet", "notebook_ablation"):
        text = _run([sys.executable, str(ROOT / "docs" / f"{name}.py"), str(folder)], work)
        write(out_dir / f"{name.replace('_', '-')}.txt", text)


# --------------------------------------------------------------------------- check

_VOLATILE = [
    (re.compile(r"\d[\d,]*(\.\d+)? ?samples/s"), "<N> samples/s"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|us|s)/step"), "<T>/step"),
    (re.compile(r"\b\d+(\.\d+)? ?s\b"), "<T> s"),
    (re.compile(r"(samples/s\s*│\s*)[\d,]+"), r"\1<N>"),
    (re.compile(r"/tmp\w*/tmp\w+"), "<TMP>"),
    (re.compile(r"[A-Za-z]:?[\\/][^\s]*[\\/]tmp\w+"), "<TMP>"),
    # Why CuPy is unavailable depends on the machine (not installed, or hidden).
    (re.compile(r"((?:backend '?cupy'?|cupy backend) is not available: ).*?(?=; run|$)",
                re.M), r"\1<why>"),
    # The ONNX libraries' versions (the check runs with whatever is installed).
    (re.compile(r"\b(onnxruntime|ndonnx) \d+\.\d+\.\d+"), r"\1 <version>"),
    # Who holds a run folder's lock, and since when.
    (re.compile(r"pid \d+, started [\d\-T:+]+"), "pid <PID>, started <TIME>"),
]
# Where Ctrl-C lands: the epoch and step it interrupted, and the lines before it.
_INTERRUPTED = [
    (re.compile(r"^\.\.\. \(the header and \d+ epochs\)$", re.M), "... (<N> epochs)"),
    (re.compile(r"^epoch .*$", re.M), "epoch <the last finished epoch>"),
    (re.compile(r"epoch \d+(/\d+|, step \d+) is saved"), "epoch <E> is saved"),
]


def mask(text: str) -> str:
    """``text`` with timings, throughputs and temporary paths replaced by placeholders."""
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return re.sub(r" +", " ", text)  # a shorter number may shift a column


_NUMBER = re.compile(r"\d+(?:\.\d+)?e-?\d+|\b0\b")


def same_magnitudes(shown: str, fresh: str) -> list[str]:
    """Problems where ``fresh`` differs from ``shown`` beyond the backends table's tolerance.

    The words must be equal; each measured difference must be within a factor of 10 of
    the shown one, and a shown 0 must stay 0.
    """
    if _NUMBER.sub("#", shown) != _NUMBER.sub("#", fresh):
        return ["the table's text changed"]
    problems = []
    for a, b in zip(_NUMBER.findall(shown), _NUMBER.findall(fresh), strict=True):
        x, y = float(a), float(b)
        if (x == 0) != (y == 0) or (x and abs(math.log10(y / x)) > 1):
            problems.append(f"shown {a}, measured now {b}")
    return problems


def compare(name: str, shown: str, fresh: str) -> list[str]:
    """Problems where the ``fresh`` output of file ``name`` differs from the ``shown`` one."""
    exact = name.startswith("performance/")   # from recorded results: nothing varies
    name = name.rsplit("/", 1)[-1]
    if name == "backends-table.md":
        return [f"{name}: {p}" for p in same_magnitudes(shown, fresh)]
    if name == "xpnet-train-interrupted.txt":
        for pattern, repl in _INTERRUPTED:
            shown, fresh = pattern.sub(repl, shown), pattern.sub(repl, fresh)
    if not exact:
        shown, fresh = mask(shown), mask(fresh)
    if shown == fresh:
        return []
    diff = difflib.unified_diff(shown.splitlines(), fresh.splitlines(),
                                f"shown {name}", f"fresh {name}", lineterm="")
    return [f"{name} changed:\n" + "\n".join(diff)]

TARGETS = ("examples", "cli", "tables", "onnx", "performance", "backends", "api",
           "notebook")


def generate(targets: tuple[str, ...], out_dir: Path, img_dir: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "examples" in targets:
            gen_examples(out_dir, img_dir, work)
        if "cli" in targets:
            gen_cli(out_dir, work)
        if "tables" in targets:
            gen_tables(out_dir, work)
        if "onnx" in targets:
            gen_onnx(out_dir, work)
        if "performance" in targets:
            gen_performance(out_dir, work)
        if "backends" in targets:
            gen_backends(out_dir, work)
        if "api" in targets:
            gen_api(out_dir, work)
        if "notebook" in targets:
            gen_notebook(out_dir, work)


def check(targets: tuple[str, ...]) -> list[str]:
    """Regenerate ``targets`` into a temporary folder; the differences from the shown ones."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp) / "generated"
        generate(targets, fresh_dir, None)
        problems = []
        for fresh in sorted(fresh_dir.rglob("*.*")):
            rel = fresh.relative_to(fresh_dir)
            shown = GENERATED / rel
            if not shown.exists():
                problems.append(f"{rel}: not generated yet")
                continue
            problems += compare(rel.as_posix(), shown.read_text(), fresh.read_text())
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed outputs instead of writing them")
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    targets = tuple(args.targets) or TARGETS
    if not args.targets and mnist_test_dir() is None:
        print("MNIST's test files not found: skipping the notebook target", file=sys.stderr)
        targets = tuple(t for t in targets if t != "notebook")
    if not args.targets and not onnx_installed():
        print("ndonnx, onnx or onnxruntime not installed: skipping the onnx target",
              file=sys.stderr)
        targets = tuple(t for t in targets if t != "onnx")
    if args.check:
        problems = check(targets)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("\nIf the change is intended: python docs/generate.py", file=sys.stderr)
        return 1 if problems else 0
    generate(targets, GENERATED, IMAGES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
