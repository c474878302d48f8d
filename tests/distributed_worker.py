"""The program ``tests/test_distributed.py`` runs under ``mpiexec -n 2``.

``python tests/distributed_worker.py SCENARIO OUT_DIR`` trains small float64 models on
every rank and writes what it saw to ``OUT_DIR/<scenario>-rank<r>.json`` (and NumPy
files), for the tests to compare with single-process runs. Imported without running
anything (pytest collects it for doctests): nothing below runs at import.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

#: per-rank batch, features, classes and hidden units of every scenario
B, FEATURES, CLASSES, HIDDEN = 8, 5, 3, 7
OPTIMIZERS = {"sgd": ("SGD", {"lr": 0.1}), "momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
              "adam": ("Adam", {"lr": 0.01})}
#: (name, rows, epochs): 320 rows = 20 steps of 16; 313 ends with 9 rows (5 + 4);
#: 305 ends with 1 row (rank 1 takes none)
RUNS = [("sgd", 320, 1), ("momentum", 320, 1), ("adam", 320, 1), ("adam", 313, 2),
        ("sgd", 305, 2)]


def data(n: int, seed: int = 0):
    """A learnable float64 problem, the same on every rank and in the tests."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, FEATURES))
    w = rng.normal(size=(FEATURES, CLASSES))
    y = np.argmax(X @ w + 0.3 * rng.normal(size=(n, CLASSES)), axis=1).astype(np.int64)
    return X, y


def model_and_optimizer(name: str, backend: str = "numpy", device=None):
    import xpnet as xn

    cls, kwargs = OPTIMIZERS[name]
    model = xn.MLP([FEATURES, HIDDEN, CLASSES], backend=backend, device=device,
                   dtype="float64", seed=3)
    return model, getattr(xn, cls)(**kwargs)


def params_digest(model) -> str:
    h = hashlib.sha256()
    for k in sorted(model.params):
        h.update(np.ascontiguousarray(model.params[k]).tobytes())
    return h.hexdigest()


def _write(out: Path, name: str, comm, payload: dict) -> None:
    (out / f"{name}-rank{comm.rank}.json").write_text(json.dumps(payload))


def scenario_train(comm, out: Path) -> None:
    """Equivalence runs, hashes after every epoch, and a run interrupted by rank 1.

    The step buffers (66 gradients + 5) are reduced in buckets of 16 elements here, so
    the bucketed path of large models is the one compared with one process.
    """
    import xpnet as xn

    xn.distributed._comm.BUCKET = 16

    class Hashes(xn.Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append(comm.allgather(params_digest(self.model)))

    results = {}
    for name, n, epochs in RUNS:
        X, y = data(n)
        model, opt = model_and_optimizer(name)
        hashes = Hashes()
        h = model.fit(X, y, epochs=epochs, batch_size=B, optimizer=opt, seed=11, verbose=0,
                      callbacks=[hashes], distributed=comm)
        key = f"{name}-{n}"
        results[key] = {"hashes": hashes.seen, "loss": h.history["loss"],
                        "steps": int(opt.state["step"])}
        if comm.rank == 0:
            np.savez(out / f"{key}.npz", **model.params)
    _write(out, "train", comm, results)
    _interrupted_run(comm, out)


def _interrupted_run(comm, out: Path) -> None:
    """Adam on 313 rows for 3 epochs; rank 1 gets SIGTERM during epoch 2."""
    import xpnet as xn

    X, y = data(313)
    model, opt = model_and_optimizer("adam")
    model.fit(X, y, epochs=3, batch_size=B, optimizer=opt, seed=11, verbose=0,
              distributed=comm)
    if comm.rank == 0:
        np.savez(out / "uninterrupted.npz", **model.params)

    class Kill(xn.Callback):
        def on_batch_end(self, step, logs):
            if comm.rank == 1 and self.trainer.epoch == 1 and step == 4:
                os.kill(os.getpid(), signal.SIGTERM)

    model, opt = model_and_optimizer("adam")
    ckpt = xn.ModelCheckpoint(out / "ckpt-{epoch}.safetensors")
    try:
        model.fit(X, y, epochs=3, batch_size=B, optimizer=opt, seed=11, verbose=0,
                  callbacks=[Kill(), ckpt], distributed=comm, display_interval=0.0)
        stopped = None
    except xn.TrainingInterrupted as exc:
        stopped = {"epoch": exc.epoch, "step": exc.step, "signum": int(exc.signum),
                   "checkpoint": exc.checkpoint}
    _write(out, "interrupted", comm, {"stopped": stopped, "digest": params_digest(model)})


def scenario_nonfinite(comm, out: Path) -> None:
    """Rank 1 alone sees a NaN loss at its 27th step; every policy, every rank, both guards.

    The device guard (a GPU's: updates masked on the device, flags read at agreed
    points) runs on the CPU by making the backend claim it is not on the host; its
    reductions then go through the host-staged reducer.
    """
    import xpnet as xn

    results = {"host": _nonfinite_policies(comm), "early_stop": _stop_on_one_rank(comm)}
    xn.backends.Backend.is_host = property(lambda self: False)
    results["device"] = _nonfinite_policies(comm)
    _write(out, "nonfinite", comm, results)


def _stop_on_one_rank(comm) -> dict:
    """Rank 1 alone asks to stop at the end of epoch 2: every rank stops there."""
    import xpnet as xn

    class StopOnRankOne(xn.Callback):
        def on_epoch_end(self, epoch, logs):
            if comm.rank == 1 and epoch == 1:
                self.model.stop_training = True

    X, y = data(320)
    model, opt = model_and_optimizer("sgd")
    h = model.fit(X, y, epochs=5, batch_size=B, optimizer=opt, seed=11, verbose=0,
                  callbacks=[StopOnRankOne()], distributed=comm)
    return {"epochs": len(h.epoch), "stopped": h.stopped_early,
            "digest": params_digest(model)}


def _nonfinite_policies(comm) -> dict:
    import xpnet as xn

    X, y = data(320)
    results = {}
    for policy in ("raise", "stop", "skip"):
        model, opt = model_and_optimizer("sgd")
        calls = [0]
        original = model._loss_grads_out  # every step's forward, loss and backward

        def poisoned(*args, _orig=original, _calls=calls, **kwargs):
            value, grads, output = _orig(*args, **kwargs)
            _calls[0] += 1
            if comm.rank == 1 and _calls[0] == 27:  # epoch 2, step 7
                value = value * np.nan
            return value, grads, output

        model._loss_grads_out = poisoned
        entry = {"error": None}
        try:
            h = model.fit(X, y, epochs=3, batch_size=B, optimizer=opt, seed=11, verbose=0,
                          on_nonfinite=policy, distributed=comm)
            entry.update(epochs=len(h.epoch), stopped=h.stopped_early,
                         skipped=h.history.get("skipped_steps"))
        except xn.NonFiniteLossError as exc:
            entry["error"] = [exc.epoch, exc.step]
        entry.update(steps=int(opt.state["step"]), digest=params_digest(model))
        results[policy] = entry
    return results


def scenario_raise(comm, out: Path) -> None:
    """Rank 1 raises in the middle of epoch 2; the job must end (MPI_Abort)."""
    import xpnet as xn

    class Boom(xn.Callback):
        def on_batch_end(self, step, logs):
            if comm.rank == 1 and self.trainer.epoch == 1 and step == 3:
                raise RuntimeError("rank one broke on purpose")

    X, y = data(320)
    model, opt = model_and_optimizer("sgd")
    model.fit(X, y, epochs=50, batch_size=B, optimizer=opt, seed=11, verbose=0,
              callbacks=[Boom()], distributed=comm, display_interval=0.0)


def scenario_leave(comm, out: Path) -> None:
    """Rank 1 catches its own error and leaves the loop; rank 0's watchdog ends the job."""
    import xpnet as xn

    class Leave(xn.Callback):
        def on_epoch_end(self, epoch, logs):
            if comm.rank == 1 and epoch == 0:
                raise RuntimeError("leaving quietly")

    X, y = data(320)
    model, opt = model_and_optimizer("sgd")
    try:
        model.fit(X, y, epochs=50, batch_size=B, optimizer=opt, seed=11, verbose=0,
                  callbacks=[Leave()], distributed=comm)
    except RuntimeError:
        sys.stderr.write("rank 1 left the training loop\n")


def scenario_gpu(comm, out: Path) -> None:
    """Adam on 313 rows with CuPy, one GPU per rank (local rank); the reducer it used."""
    import xpnet as xn

    class Reducer(xn.Callback):
        def on_train_begin(self, logs):
            self.name = self.trainer.grad_hooks[0].reducer.name

    X, y = data(313)
    model, opt = model_and_optimizer("adam", "cupy", xn.distributed.local_device(comm))
    seen = Reducer()
    model.fit(X, y, epochs=2, batch_size=B, optimizer=opt, seed=11, verbose=0,
              callbacks=[seen], distributed=comm)
    if comm.rank == 0:
        np.savez(out / "gpu.npz", **{k: xn.to_numpy(v) for k, v in model.params.items()})
    _write(out, "gpu", comm, {"reducer": seen.name, "digest": params_digest(
        SimpleNamespace(params={k: xn.to_numpy(v) for k, v in model.params.items()}))})


def scenario_batchnorm(comm, out: Path) -> None:
    """BatchNorm first (its input is X, so each rank's statistics can be computed in the
    test): 100 rows in global batches of 16, not shuffled, 2 epochs; running statistics
    per rank, then with sync_buffers=True; rank 0 saves each run."""
    import xpnet as xn

    X, y = data(100)
    results = {}
    for sync in (False, True):
        model = xn.Sequential([xn.BatchNorm(momentum=0.2), xn.Dense(HIDDEN), xn.ReLU(),
                               xn.Dense(CLASSES)], in_features=FEATURES, backend="numpy",
                              dtype="float64", seed=3)
        path = out / f"bn-sync{int(sync)}.safetensors"
        model.fit(X, y, epochs=2, batch_size=B, optimizer=xn.SGD(lr=0.1), seed=11,
                  shuffle=False, verbose=0, distributed=comm, sync_buffers=sync,
                  callbacks=[xn.ModelCheckpoint(path)])
        results[f"sync{int(sync)}"] = {
            "params": params_digest(model),
            "buffers": {k: np.asarray(v).tolist() for k, v in model.buffers.items()}}
    _write(out, "batchnorm", comm, results)


def main() -> None:
    import xpnet as xn

    scenario, out = sys.argv[1], Path(sys.argv[2])
    comm = xn.distributed.init(timeout=float(os.environ.get("WORKER_TIMEOUT", "60")))
    if comm.size < 2:
        raise SystemExit("run me under mpiexec -n 2 (or more)")
    globals()[f"scenario_{scenario}"](comm, out)


if __name__ == "__main__":
    main()
