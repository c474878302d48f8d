"""Larger than memory: one epoch of ``fit`` on a 1 GB+ memory-mapped float64 array.

Writes a float64 ``.npy`` of ``--gib`` GiB (default 1.25: 1,677,722 rows x 100 features)
into a temporary folder, chunk by chunk, opens it with ``np.load(path, mmap_mode="r")``
and trains a float32 ``MLP([100, 64, 2])`` on it for one epoch (Adam, batch 1024,
shuffled, 5 % of the rows held out for validation), then evaluates on the whole file. A
thread samples the process's anonymous resident memory (``RssAnon`` in
``/proc/self/status``: the resident set less the file-backed pages of the memory map,
which the kernel can drop at will) every 10 ms.

The figure of merit is the peak growth of ``RssAnon`` over its value just before
``fit``: what training and evaluation hold beyond the labels and the model. The target
(issue "Your own data") is under 400 MB; converting the array whole to float32, as
``fit`` did before, takes 0.6 GiB for the default file, and loading it takes 1.25 GiB.

Usage::

    python benchmarks/bench_memmap.py                # 1.25 GiB file
    python benchmarks/bench_memmap.py --gib 0.1      # a quick run

The temporary file is deleted at the end (also on an error or Ctrl-C). Writes
``benchmarks/results/memmap.json`` (``--out DIR`` to change). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import environment, write_json  # noqa: E402

TARGET_MB = 400.0
FEATURES = 100
CHUNK_ROWS = 65536


def rss_anon_bytes() -> int:
    """Anonymous resident memory of this process (``RssAnon``), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon is not in /proc/self/status (Linux 4.5 or later needed)")


class Sampler:
    """The peak of ``RssAnon`` while a block runs, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self.peak = rss_anon_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_bytes())


def write_file(path: Path, rows: int, seed: int):
    """A float64 .npy of ``rows`` x FEATURES written in chunks, and its int64 labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = rng.normal(size=FEATURES)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64,
                                   shape=(rows, FEATURES))
    y = np.empty(rows, dtype=np.int64)
    for lo in range(0, rows, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, rows)
        block = rng.normal(size=(hi - lo, FEATURES))
        mm[lo:hi] = block
        y[lo:hi] = block @ w > 0
    mm.flush()
    del mm
    return y


def run(gib: float, batch: int, seed: int, tmp: Path) -> dict:
    import numpy as np

    import xpnet as xn

    rows = int(gib * 2**30 / (8 * FEATURES))
    path = tmp / "features.npy"
    t0 = time.perf_counter()
    y = write_file(path, rows, seed)
    write_s = time.perf_counter() - t0
    X = np.load(path, mmap_mode="r")
    model = xn.MLP([FEATURES, 64, 2], backend="numpy", dtype="float32", seed=seed)
    before = rss_anon_bytes()
    t0 = time.perf_counter()
    with Sampler() as fit_mem:
        history = model.fit(X, y, epochs=1, batch_size=batch, validation_split=0.05,
                            optimizer=xn.Adam(lr=1e-3), verbose=0, seed=seed)
    fit_s = time.perf_counter() - t0
    with Sampler() as eval_mem:
        result = model.evaluate(X, y)
    return {
        "file_bytes": path.stat().st_size, "rows": rows, "features": FEATURES,
        "dtype": "float64 file, float32 model", "batch_size": batch,
        "write_seconds": write_s, "fit_seconds": fit_s,
        "rss_anon_before_mb": before / 1e6,
        "fit_growth_mb": (fit_mem.peak - before) / 1e6,
        "evaluate_growth_mb": (eval_mem.peak - before) / 1e6,
        "val_accuracy": history.history["val_accuracy"][-1],
        "accuracy": result["accuracy"], "target_mb": TARGET_MB,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=1.25, help="file size in GiB (default 1.25)")
    p.add_argument("--batch", type=int, default=1024, help="batch size (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", type=Path, default=None,
                   help="folder for the temporary file (default: the system's)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="xpnet-memmap-", dir=args.tmp))
    try:
        result = run(args.gib, args.batch, args.seed, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["environment"] = environment(1)
    write_json(args.out / "memmap.json", result)
    ok = result["fit_growth_mb"] < TARGET_MB and result["evaluate_growth_mb"] < TARGET_MB
    print(f"file: {result['file_bytes'] / 2**30:.2f} GiB float64 ({result['rows']:,} x "
          f"{FEATURES}), written in {result['write_seconds']:.1f} s")
    print(f"fit, 1 epoch (batch {args.batch}, 5 % validation): {result['fit_seconds']:.1f} s, "
          f"RssAnon +{result['fit_growth_mb']:.0f} MB (target < {TARGET_MB:.0f} MB)")
    print(f"evaluate on the whole file: RssAnon +{result['evaluate_growth_mb']:.0f} MB; "
          f"accuracy {result['accuracy']:.3f}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
