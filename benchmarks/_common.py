"""Shared helpers for the benchmark scripts (not part of the xpnet package).

Import this module only *after* the thread environment is set (see
:func:`pin_threads_env`): NumPy reads ``OPENBLAS_NUM_THREADS`` once, at import.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MNIST_DIRS = [
    os.environ.get("XPNET_MNIST_DIR", ""),
    str(REPO.parent / "shared" / "data" / "mnist"),
    "/work/shared/data/mnist",
]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_threads_env(threads: int) -> None:
    """Set the BLAS/OpenMP thread variables; call before importing numpy/torch."""
    if "numpy" in sys.modules:
        print("note: numpy was imported before the thread variables were set; "
              "threadpoolctl limits are applied as well", file=sys.stderr)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def limit_threads(threads: int):
    """Apply threadpoolctl limits too (covers already-loaded BLAS); returns the controller."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return None
    return threadpool_limits(limits=threads)


# --------------------------------------------------------------------------- data
def find_mnist() -> Path | None:
    for d in MNIST_DIRS:
        if d and (Path(d) / "t10k-images-idx3-ubyte.gz").is_file() and \
                (Path(d) / "t10k-labels-idx1-ubyte.gz").is_file():
            return Path(d)
    return None


def load_data(n: int, dtype: str = "float32", *, verbose: bool = True):
    """MNIST-shaped data: the real t10k images tiled to ``n`` rows, scaled to [0, 1].

    Falls back to seeded random data (with a printed note) when the files are absent.
    Built in place so the transient memory is one copy of the 10,000 uint8 images.

    Returns
    -------
    X : (n, 784) array of ``dtype``; y : (n,) int64; source : str
    """
    import numpy as np

    d = find_mnist()
    X = np.empty((n, 784), dtype=dtype)
    if d is not None:
        with gzip.open(d / "t10k-images-idx3-ubyte.gz", "rb") as f:
            raw = f.read()
        imgs = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784)
        with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "rb") as f:
            labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
        m = imgs.shape[0]
        for lo in range(0, n, m):
            hi = min(lo + m, n)
            X[lo:hi] = imgs[: hi - lo]
        X /= 255.0
        reps = -(-n // m)
        y = np.tile(labels.astype(np.int64), reps)[:n]
        del raw, imgs
        source = f"MNIST t10k images tiled to {n} rows ({d})"
    else:
        rng = np.random.default_rng(0)
        X[...] = rng.random((n, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=n, dtype=np.int64)
        source = f"seeded random data, {n} rows (MNIST files not found)"
        if verbose:
            print(f"note: MNIST t10k files not found in {[x for x in MNIST_DIRS if x]}; "
                  "using seeded random data", file=sys.stderr)
    return X, y, source


# --------------------------------------------------------------------------- stats
def summarize(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "n": len(s),
            "samples": samples}


def fmt_seconds(t: float | None) -> str:
    if t is None:
        return "-"
    if t >= 1.0:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} µs"


# --------------------------------------------------------------------------- environment
def _lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except Exception:
        pass
    return platform.processor() or "unknown"


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "xpnet"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty(xpnet/)" if dirty else "")
    except Exception:
        return "unknown"


def environment(threads: int) -> dict:
    """Machine, library versions, BLAS kernel and load, for the JSON record."""
    import numpy as np

    info: dict = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": _lscpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xpnet_git": _git_rev(),
        "env": {k: os.environ.get(k) for k in
                (*THREAD_VARS, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "loadavg_start": os.getloadavg(),
    }
    try:
        import xpnet

        info["xpnet"] = xpnet.__version__
    except Exception:  # pragma: no cover
        info["xpnet"] = None
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                   "architecture", "num_threads", "threading_layer")}
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        info["threadpools"] = []
    return info


def blas_line(env: dict) -> str:
    parts = []
    for p in env.get("threadpools", []):
        if p.get("user_api") == "blas":
            parts.append(f"{p.get('internal_api')} {p.get('version')} "
                         f"kernel={p.get('architecture')} threads={p.get('num_threads')} "
                         f"({p.get('prefix')})")
    core = env["env"].get("OPENBLAS_CORETYPE")
    s = "; ".join(parts) or "no BLAS found by threadpoolctl"
    if core:
        s += f"; OPENBLAS_CORETYPE={core} is set (forces that kernel)"
    return s


def warn_coretype() -> None:
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print("note: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they can force an older, "
              "slower OpenBLAS kernel. For a benchmark of current NumPy run:\n"
              "  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python "
              + " ".join(sys.argv), file=sys.stderr)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine load
def _busy_seconds() -> float | None:
    """CPU seconds all processes have used (user+nice+system+irq+softirq+steal)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _runqueue_wait() -> float | None:
    """Seconds this process's live threads spent runnable but waiting for a core."""
    import glob

    total = 0
    try:
        for f in glob.glob("/proc/self/task/*/schedstat"):
            try:
                with open(f) as fh:
                    total += int(fh.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    return total / 1e9


class LoadMeter:
    """Measures how many cores *other* processes used while a block ran.

    On a shared machine a benchmark sample is only meaningful when nothing else
    competes for the cores; ``foreign`` is (all CPU time - this process's CPU
    time) / wall time, in cores (None where /proc/stat is unavailable), and
    ``waited`` the time this process's threads sat runnable on a run queue
    (``/proc/self/task/*/schedstat``) / wall time.
    """

    def __enter__(self):
        self.w0 = _runqueue_wait()
        self.b0, self.c0, self.t0 = _busy_seconds(), _own_cpu(), __import__("time").perf_counter()
        return self

    def __exit__(self, *exc):
        import time as _t

        self.wall = _t.perf_counter() - self.t0
        b1, c1 = _busy_seconds(), _own_cpu()
        w1 = _runqueue_wait()
        # runnable-but-waiting time of our threads, as a fraction of the wall time
        self.waited = None if self.w0 is None or w1 is None or self.wall <= 0 else \
            max(0.0, (w1 - self.w0) / self.wall)
        if self.b0 is None or b1 is None or self.wall <= 0:
            self.foreign = None
        else:
            self.foreign = max(0.0, ((b1 - self.b0) - (c1 - self.c0)) / self.wall)
        return False


WAIT_BUDGET = {"left": float("inf"), "spent": 0.0}


def set_wait_budget(seconds: float) -> None:
    """Cap the total time :func:`wait_quiet` may sleep in this process."""
    WAIT_BUDGET["left"] = seconds


def wait_quiet(threshold: float, max_wait: float, window: float = 0.5) -> float | None:
    """Sleep until other processes use less than ``threshold`` cores (or ``max_wait`` s,
    or the process-wide budget of :func:`set_wait_budget` is spent).

    Returns the last measured foreign load.
    """
    import time as _t

    t0 = _t.perf_counter()
    deadline = t0 + min(max_wait, WAIT_BUDGET["left"])
    while True:
        with LoadMeter() as m:
            _t.sleep(window)
        if m.foreign is None or m.foreign < threshold or _t.perf_counter() > deadline:
            spent = _t.perf_counter() - t0
            WAIT_BUDGET["left"] -= spent
            WAIT_BUDGET["spent"] += spent
            return m.foreign


def quiet_budget_left() -> bool:
    return WAIT_BUDGET["left"] > 0


def publish_chart(png: Path, name: str, *, quick: bool, custom_out: bool) -> None:
    """Copy a chart of a full run to ``docs/img/<name>`` (not for --quick or --out runs)."""
    import shutil

    if not png.exists():
        return
    if quick or custom_out:
        log(f"chart: {png}")
        return
    dst = REPO / "docs" / "img" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, dst)
    log(f"chart: {png} (copied to {dst})")
