# NumPy is used here on the host only: the start-of-fit broadcast buffer, seeds, checksums.
"""Data parallelism inside ``fit``: the gradient hook, the agreed start, sharded validation.

The [`Trainer`][xpnet.training.Trainer] uses these when given a communicator with more
than one rank; nothing here imports the training package (the trainer is passed in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import signal
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backends import to_numpy
from ._reduce import make_reducer
from ._sharding import shard_rows

__all__ = ["GradientAllreduce", "agree_start", "average_buffers", "evaluate_sharded",
           "rank_seed"]

#: Control flags summed with every step: SIGINT seen, another signal seen, display due.
_FLAGS = 3


class GradientAllreduce:
    """The gradient hook of data-parallel training: ONE allreduce per step on a flat buffer.

    Each rank's gradients are means over its own rows; they are weighted by
    ``rows / batch_rows`` (the rank's share of the global batch), so the sum
    over ranks is the mean over the whole global batch, also for an uneven last
    batch. The buffer is laid out as::

        [ every gradient, flattened, in parameter order | loss x rows | correct | flags ]

    and the hook replaces the step's values (``trainer.current``) with the
    global ones: the mean loss of the global batch, its correct count, its
    rows, and the control flags summed over ranks (a signal seen by any rank,
    a progress display due on any rank), so that every rank takes the same
    decisions at the same step. All ranks receive the same sum, so they apply
    the same update and their parameters stay bitwise identical.

    Parameters
    ----------
    comm : Communicator
    model : Sequential
        Its parameters fix the buffer's layout.
    reducer : optional
        How to sum (default [`make_reducer`][xpnet.distributed.make_reducer] for the
        model's backend).

    Examples
    --------
    On one process the hook leaves the gradients as they are:

    >>> import numpy as np, xpnet as xn
    >>> from types import SimpleNamespace
    >>> from xpnet.distributed import GradientAllreduce, SingleProcess
    >>> m = xn.MLP([3, 2], backend="numpy", dtype="float64")
    >>> hook = GradientAllreduce(SingleProcess(), m)
    >>> loss, grads = m.loss_and_grads(np.ones((4, 3)), np.array([0, 1, 0, 1]))
    >>> step = xn.training.StepValues(loss=loss, correct=None, rows=4, batch_rows=4)
    >>> out = hook(grads, SimpleNamespace(current=step))
    >>> all(np.array_equal(out[k], grads[k]) for k in grads), hook.size
    (True, 8)
    """

    def __init__(self, comm: Any, model: Any, reducer: Any = None):
        self.comm, self.backend, self.dtype = comm, model.backend, model.dtype
        self.reducer = reducer if reducer is not None else make_reducer(comm, model.backend)
        self._lay_out(model.params)

    def _lay_out(self, arrays: dict) -> None:
        """The buffer's layout for these keys (trained ones: a frozen parameter has no gradient)."""
        bounds = _offsets(arrays.values())
        self.layout = [(key, lo, hi - lo, tuple(p.shape)) for (key, p), lo, hi in
                       zip(arrays.items(), bounds[:-1], bounds[1:], strict=True)]
        self.keys = tuple(arrays)
        #: elements of the gradients in the buffer
        self.size = bounds[-1]

    def _pack(self, grads: dict, cur: Any, flags: list[int]) -> Any:
        if tuple(grads) != self.keys:  # the same on every rank: one model, one freezing
            self._lay_out(grads)
        xp, dev, dt = self.backend.xp, self.backend.device, self.dtype
        flat = xp.empty((self.size + 2 + _FLAGS,), dtype=dt, device=dev)
        share = cur.rows / cur.batch_rows
        for key, off, n, _ in self.layout:
            flat[off:off + n] = xp.reshape(grads[key], (-1,)) * share
        # a rank with no rows of a short last batch computed on a stand-in row: weight 0
        correct = xp.zeros((), dtype=dt, device=dev) if cur.correct is None else \
            xp.astype(cur.correct, dt) * float(cur.rows > 0)
        head = xp.stack([xp.astype(cur.loss, dt) * float(cur.rows), correct])
        tail = xp.asarray(flags, dtype=dt, device=dev) if self.reducer.inline_flags else \
            xp.zeros((_FLAGS,), dtype=dt, device=dev)
        flat[self.size:] = xp.concat([head, tail])
        return flat

    def __call__(self, grads: dict, trainer: Any) -> dict:
        """Sum the weighted gradients and the step's values over the ranks.

        Parameters
        ----------
        grads : dict
            This rank's gradients (means over its rows).
        trainer : Trainer
            Its ``current`` step values are read and replaced.

        Returns
        -------
        dict
            The global batch's mean gradients (views of the summed buffer).
        """
        cur = trainer.current
        sig = cur.signal or 0
        flags = [int(sig == signal.SIGINT), int(sig not in (0, signal.SIGINT)),
                 int(bool(cur.display))]
        flat, flags = self.reducer.allreduce(self._pack(grads, cur, flags), flags,
                                             self.backend)
        xp, n = self.backend.xp, self.size
        out = {key: xp.reshape(flat[off:off + size], shape)
               for key, off, size, shape in self.layout}
        agreed = signal.SIGINT if flags[0] else signal.SIGTERM if flags[1] else 0
        trainer.current = dataclasses.replace(
            cur, loss=xp.reshape(flat[n:n + 1], ()) / float(cur.batch_rows),
            correct=None if cur.correct is None else xp.reshape(flat[n + 1:n + 2], ()),
            rows=cur.batch_rows, signal=agreed, display=flags[2] > 0)
        return out


def _sample_digest(a: Any, backend: Any) -> str:
    """A digest of up to 8 evenly spaced rows: cheap, exact, independent of BLAS."""
    n = a.shape[0]
    rows = sorted({int(i) for i in np.linspace(0, max(n - 1, 0), num=min(n, 8))})
    xp = backend.xp
    idx = xp.asarray(rows, dtype=xp.int64, device=backend.device)
    host = to_numpy(xp.take(a, idx, axis=0))
    return hashlib.sha256(np.ascontiguousarray(host).tobytes()).hexdigest()[:16]


def _describe(model: Any, optimizer: Any, X: Any, y: Any, validation: Any,
              settings: dict) -> dict:
    """What must be the same on every rank for data-parallel training to make sense."""
    b = model.backend
    d = {"backend": b.name, "dtype": model.dtype_name,
         "parameters": [(k, tuple(p.shape)) for k, p in model.params.items()],
         "optimizer": repr(optimizer), "X shape": tuple(X.shape), "y shape": tuple(y.shape),
         "X rows (sampled)": _sample_digest(X, b), "y rows (sampled)": _sample_digest(y, b),
         "validation shape": None if validation is None else tuple(validation[0].shape)}
    if validation is not None:
        d["validation rows (sampled)"] = _sample_digest(validation[0], b)
    d.update(settings)
    return d


def agree_start(comm: Any, model: Any, optimizer: Any, state: Any, *, X: Any, y: Any,
                validation: Any = None, settings: dict | None = None) -> Any:
    """Check that every rank trains the same thing, then start every rank from rank 0.

    Every rank describes its model, optimizer, data (shapes and a digest of
    sampled rows) and ``settings``; if any differs from rank 0's, every rank
    raises the same ``ValueError`` naming the first difference. Then rank 0's
    parameters, layer buffers, optimizer state and training position are broadcast.

    Parameters
    ----------
    comm : Communicator
    model : Sequential
        Its parameters are replaced by rank 0's on the other ranks.
    optimizer : Optimizer
        Its ``state`` (fitting ``model.params``) likewise.
    state : TrainState
        This rank's start position; rank 0's is returned on every rank.
    X, y : arrays
    validation : (X_val, y_val), optional
    settings : dict, optional
        More values that must agree (epochs, global batch size...).

    Returns
    -------
    TrainState
        Rank 0's start position.

    Raises
    ------
    ValueError
        On every rank, when the ranks disagree.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.distributed import SingleProcess, agree_start
    >>> m, opt = xn.MLP([3, 2], backend="numpy"), xn.SGD(lr=0.1)
    >>> opt.state = opt.init(m.params)
    >>> start = agree_start(SingleProcess(), m, opt, xn.training.TrainState(seed=4),
    ...                     X=np.zeros((8, 3), "float32"), y=np.zeros(8, "int64"))
    >>> start.seed
    4
    """
    mine = _describe(model, optimizer, X, y, validation, settings or {})
    everyone = comm.allgather(mine)
    for rank, theirs in enumerate(everyone[1:], start=1):
        for key in everyone[0]:
            if theirs.get(key) != everyone[0][key]:
                raise ValueError(
                    f"the ranks disagree on {key}: rank 0 has {everyone[0][key]!r}, rank "
                    f"{rank} has {theirs.get(key)!r}; every rank must call fit with the "
                    "same model, optimizer, data and settings")
    opt_state = optimizer.state
    record, step, steps = comm.bcast((state.to_record(), int(opt_state["step"]),
                                      dict(opt_state.get("steps", {}))))
    _broadcast_arrays(comm, model, optimizer)
    opt_state["step"], opt_state["steps"] = step, steps
    return type(state).from_record(record)


_BUFFER = object()  # marks a layer buffer among the broadcast arrays


def _broadcast_arrays(comm: Any, model: Any, optimizer: Any) -> None:
    """Rank 0's parameters, layer buffers and optimizer slots on every rank, in one host buffer."""
    if comm.size == 1:
        return
    state, slots = optimizer.state, getattr(optimizer, "slots", ())
    buffers = getattr(model, "buffers", {})
    entries = [(None, k, p) for k, p in model.params.items()] + \
              [(s, k, state[s][k]) for s in slots for k in model.params if k in state[s]] + \
              [(_BUFFER, k, b) for k, b in buffers.items()]
    arrays = [a for _, _, a in entries]
    host = np.empty(_offsets(arrays)[-1], dtype=np.dtype(model.dtype_name))
    if comm.rank == 0 and entries:
        host[:] = _flat_host(arrays)
    comm.bcast_array(host)
    if comm.rank == 0:
        return
    params = {}
    for (slot, key, _), part in zip(entries, _split(host, arrays), strict=True):
        if slot is None:
            params[key] = part
        else:  # a layer buffer or an optimizer slot
            into = buffers if slot is _BUFFER else state[slot]
            into[key] = model.backend.asarray(part.copy(), dtype=model.dtype)
    model.set_params(params)


def _flat_host(arrays: list) -> np.ndarray:
    return np.concatenate([np.reshape(to_numpy(a), (-1,)) for a in arrays])


def _offsets(arrays: Iterable) -> list[int]:
    """Where each array starts in one flat buffer of them all, then the buffer's size."""
    return list(itertools.accumulate((math.prod(a.shape) for a in arrays), initial=0))


def _split(host: np.ndarray, arrays: list) -> list[np.ndarray]:
    """``host`` cut into consecutive views shaped like ``arrays``."""
    bounds = _offsets(arrays)
    return [host[lo:hi].reshape(tuple(a.shape))
            for a, lo, hi in zip(arrays, bounds[:-1], bounds[1:], strict=True)]


def average_buffers(comm: Any, model: Any) -> None:
    """Replace the model's buffers on every rank by their mean over the ranks.

    A collective: every rank calls it at the same point. ``fit(sync_buffers=True)``
    calls it at the end of every epoch, before validation and the callbacks, so that
    every rank, its share of the validation rows and the checkpoint rank 0 writes hold
    the same running statistics (the mean of the ranks' running means and variances,
    as timm's ``distribute_bn``); the batch statistics a training step normalises
    with stay each rank's own. Nothing to do on one process or without buffers.

    Parameters
    ----------
    comm : Communicator
    model : Sequential
        Its ``buffers`` are replaced (on the model's device, in its dtype).

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.distributed import SingleProcess, average_buffers
    >>> m = xn.Sequential([xn.BatchNorm()], in_features=2, backend="numpy")
    >>> average_buffers(SingleProcess(), m)  # one process: the buffers as they are
    >>> m.buffers["0.running_var"].tolist()
    [1.0, 1.0]
    """
    buffers = getattr(model, "buffers", {})
    if comm.size == 1 or not buffers:
        return
    host = _flat_host(list(buffers.values())).astype(np.float64)
    comm.allreduce(host, what="the buffers' average")
    host /= comm.size
    model.buffers = {k: model.backend.asarray(part, dtype=model.dtype) for k, part in
                     zip(buffers, _split(host, list(buffers.values())), strict=True)}


def evaluate_sharded(model: Any, X: Any, y: Any, comm: Any) -> dict[str, float]:
    """``model.evaluate(X, y)``, each rank scoring its contiguous share of the rows.

    The sums are reduced, so every rank gets the same numbers (early stopping
    and best-weight decisions then agree); one process evaluates everything.

    Parameters
    ----------
    model : Sequential
    X, y : arrays
    comm : Communicator

    Returns
    -------
    dict of str to float
        ``loss`` and, for classifiers, ``accuracy``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.distributed import SingleProcess, evaluate_sharded
    >>> m = xn.MLP([3, 2], backend="numpy", seed=0)
    >>> X, y = np.ones((5, 3), "float32"), np.zeros(5, "int64")
    >>> evaluate_sharded(m, X, y, SingleProcess()) == m.evaluate(X, y)
    True
    """
    if comm.size == 1:
        return model.evaluate(X, y)
    n = X.shape[0]
    lo, hi = shard_rows(0, n, comm.rank, comm.size)
    sums = np.zeros(3)
    if hi > lo:
        r = model.evaluate(X[lo:hi, ...], y[lo:hi, ...])
        sums[:] = [r["loss"] * (hi - lo), r.get("accuracy", 0.0) * (hi - lo),
                   float("accuracy" in r)]
    comm.allreduce(sums, what="the validation sums")
    result = {"loss": float(sums[0]) / n}
    if sums[2] > 0:
        result["accuracy"] = float(sums[1]) / n
    return result


def rank_seed(seed: int, rank: int, epoch: int, step: int) -> int:
    """The seed of one rank's dropout stream, from the run's seed and where the run starts.

    With several ranks each rank draws dropout masks for its own rows from its
    own stream, so the batch order (drawn from the run's generator) stays the
    same on every rank.

    Parameters
    ----------
    seed, rank, epoch, step : int

    Returns
    -------
    int

    Examples
    --------
    >>> from xpnet.distributed import rank_seed
    >>> rank_seed(0, 0, 0, 0) == rank_seed(0, 0, 0, 0) != rank_seed(0, 1, 0, 0)
    True
    """
    words = np.random.SeedSequence([seed, rank, epoch, step]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) | (int(words[1]) >> 1)
