"""``fit``: check every argument, prepare the data, then ``Trainer(...).run()``."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _checks
from .._param_groups import _names
from .._split import split_rows, take_rows
from ..backends import to_numpy
from ..distributed import Communicator, SingleProcess
from ..optimizers import Adam, Optimizer, get_optimizer
from ..store import ParamDict
from ._metrics import check as check_metrics
from ._metrics import resolve as resolve_metrics
from .callbacks import Callback, History
from .guards import ON_NONFINITE
from .state import TrainState
from .trainer import Trainer, _check_batch_rows

__all__ = ["fit"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _on_model_device(f: _F) -> _F:
    """Run ``f(model, ...)`` on the model's device: on CuPy what it makes lands on that GPU."""
    @functools.wraps(f)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        scope = getattr(getattr(model, "backend", None), "device_scope", None)
        with scope() if scope is not None else contextlib.nullcontext():
            return f(model, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


@_on_model_device
def fit(model, X, y, *, epochs: int = 10, batch_size: int | None = 128,
        optimizer: Optimizer | str | None = None, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True,
        callbacks: list[Callback] | None = None, seed: int | None = None, verbose: int = 1,
        on_nonfinite: str = "raise", resume: dict | TrainState | None = None,
        display_interval: float = 0.25, distributed: Communicator | None = None,
        sample_weight: Any = None, class_weight: dict | str | None = None,
        metrics: list | None = None, sync_buffers: bool = False) -> History:
    """Train ``model`` on ``(X, y)``.

    Calling ``fit`` again continues from the current parameters; passing the
    same optimizer object (or none, which reuses ``model.optimizer``)
    continues its state (moments and step count). Every argument is checked
    before the model or the optimizer is changed. Frozen layers
    ([`freeze`][xpnet.model.Sequential.freeze]) are left as they are.

    Parameters
    ----------
    model : Sequential
    X : array of shape (n, in_features)
        NumPy arrays are moved to the model's device once; arrays of the
        model's own backend are used in place. A pandas DataFrame of numeric or
        bool columns, and anything with ``__array__`` or ``__dlpack__``, is
        converted once. A ``numpy.memmap`` (``np.load(path, mmap_mode="r")``) of
        any float or integer dtype is read and converted a batch at a time,
        never whole (validation data too). Features that look unscaled (a
        column mean beyond +-10 or a standard deviation above 10) log one
        warning on the ``"xpnet"`` logger that points to
        [`Normalization`][xpnet.preprocessing.Normalization].
    y : array
        Targets as the model's loss takes them: integer labels for
        classification losses, float targets otherwise.
    epochs : int
        Number of passes over the data (>= 1). With ``resume``, the total
        number of epochs including those already done.
    batch_size : int or None
        Rows per step (per rank with ``distributed``); ``None`` means full
        batch. Values above the number of samples are clipped to it (one
        full-batch step per epoch).
    optimizer : Optimizer or str, optional
        ``"adam"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"`` or an instance.
        Default: the model's last optimizer, else ``Adam(lr=1e-3)``.
    validation_data : (X_val, y_val), optional
    validation_split : float
        Fraction in ``[0, 1)`` of the *last* rows of ``X`` held out for
        validation (ignored when ``validation_data`` is given).
    shuffle : bool
        Reshuffle the rows every epoch (from ``seed``).
    callbacks : list of Callback, optional
    seed : int, optional
        Seed for batch order and dropout. The same seed gives the same batch
        order on every backend. ``None`` (the default) draws one from the model's
        generator (itself seeded by the model's ``seed``, drawn fresh for
        ``seed=None``). The seed used is recorded in ``history.params["seed"]``
        and in the ``training`` record of [`xpnet.ModelCheckpoint`][]'s files, so
        ``fit(..., seed=that)`` from the same parameters repeats the run.
    verbose : {0, 1}
        0 is silent; 1 shows a progress bar and one line per epoch (stderr).
    on_nonfinite : {"raise", "stop", "skip"}
        What to do when a loss or gradient is NaN/inf: raise
        [`NonFiniteLossError`][xpnet.training.NonFiniteLossError] (default), stop
        training quietly, or skip that update and go on. The offending update is
        never applied.
    resume : dict or TrainState, optional
        The ``training`` record of a checkpoint (see [`xpnet.load_checkpoint`][])
        to continue an interrupted run exactly; checked by
        [`TrainState.from_record`][xpnet.training.TrainState.from_record].
    display_interval : float
        Seconds between progress updates and the guard's flag reads (each reads
        from the device). Callbacks' ``on_batch_end`` runs after every step.
    distributed : Communicator, optional
        Train data-parallel over the ranks of [`xpnet.distributed.init`][]:
        every rank calls ``fit`` with the same model, data and settings, takes
        ``batch_size`` rows of each global batch of ``batch_size x ranks``
        rows, and ends with the same parameters, those of one process
        training with the global batch. Rank 0's parameters, optimizer state
        and ``resume`` position are used on every rank; only rank 0 prints and
        runs the callbacks that write files. See [`xpnet.distributed`][].
        A model with [`BatchNorm`][xpnet.layers.BatchNorm] normalises each rank's
        rows with their own statistics and keeps running statistics per rank (the
        checkpoint holds rank 0's): see ``sync_buffers``.
    sample_weight : array of shape (n,), optional
        Non-negative weight of each row of ``X`` (not all zero). Each step
        minimises the batch's weighted mean ``sum(w_i * l_i) / sum(w_i)``;
        integer weights train as if each row were repeated ``w_i`` times. The
        weights of the rows ``validation_split`` holds out are dropped. The
        History's ``loss`` is the mean of the steps' weighted losses (weighted
        by rows, as Keras reports it; exact for full batches), ``accuracy``
        the plain fraction of correct rows.
    class_weight : dict or "balanced", optional
        Weight of each class label, multiplied into ``sample_weight``:
        ``{label: weight}`` (classes not named weigh 1), or ``"balanced"``
        (scikit-learn's ``n_samples / (n_classes * count(label))`` over the
        classes present). Needs class labels: integer labels, or 0/1 targets
        of a single-output ``binary_cross_entropy`` model.
    metrics : list, optional
        More numbers for each epoch's logs and the History: built-in names
        (``"mae"``, ``"rmse"``, ``"r2"`` for regressors; ``"top_k_accuracy"``
        (k=5) or ``"top_3_accuracy"`` for classifiers; ``"accuracy"``, which every
        classifier reports already) or functions ``fn(y_true, y_pred) -> number``
        of the targets and ``model.predict_proba``'s predictions (named by
        ``__name__``, or passed as ``("name", fn)``). Each is computed at the end of
        every epoch on the whole training data (``"r2"``) and the validation data
        (``"val_r2"``) with the epoch's final parameters, in evaluation mode: exact
        for metrics that are not means, at the cost of one more forward pass over
        the training data per epoch. Each metric runs once on a few rows before
        training, so that a failing one stops ``fit`` before any work.
    sync_buffers : bool
        With ``distributed``: at the end of every epoch, before validation and the
        callbacks, replace the layers' buffers (BatchNorm's running statistics) on
        every rank by their mean over the ranks
        ([`xpnet.distributed.average_buffers`][]), so that every rank and the
        checkpoint hold the same. By default (False) each rank keeps its own. The
        statistics a training step normalises with are each rank's own either way.

    Returns
    -------
    History

    Raises
    ------
    ValueError, TypeError
        For bad arguments, before any work starts.
    NonFiniteLossError
        When ``on_nonfinite="raise"`` and a step is not finite (on every rank,
        at the same step, with ``distributed``).
    TrainingInterrupted
        On Ctrl-C or SIGTERM, at the end of the current step.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 4)).astype("float32"); y = (X[:, 0] > 0).astype("int64")
    >>> m = xn.MLP([4, 8, 2], backend="numpy", seed=0)
    >>> h = m.fit(X, y, epochs=3, batch_size=16, verbose=0)
    >>> len(h.history["loss"])
    3
    """
    epochs = _checks.check_int("epochs", epochs)
    batch_size = _checks.check_int("batch_size", batch_size, allow_none=True)
    comm = _check_distributed(distributed)
    callbacks = _check_callbacks(callbacks)
    _check_options(on_nonfinite, verbose, shuffle=shuffle, sync_buffers=sync_buffers)
    display_interval = _checks.check_float("display_interval", display_interval, low=0.0)
    start = _start_state(resume, seed)
    optimizer = get_optimizer(optimizer if optimizer is not None else
                              model.optimizer if model.optimizer is not None else Adam(lr=1e-3))
    _check_trainable(model, comm, weighted=sample_weight is not None
                     or class_weight is not None)
    _check_decay_keys(optimizer, model)
    optimizer.check_groups(model.params)  # a group naming no parameter, or one in two groups
    metric_list = resolve_metrics(metrics, model)
    Xd, yd, wd, validation = _prepare_data(model, X, y, validation_data, validation_split,
                                           sample_weight, class_weight, stream=comm.size == 1)
    check_metrics(metric_list, model, Xd, yd)
    if comm.rank == 0:  # the other ranks' models take rank 0's parameters at the start
        _checks.warn_if_unscaled(model, Xd)
    bs = Xd.shape[0] if batch_size is None else min(batch_size * comm.size, Xd.shape[0])
    steps = math.ceil(Xd.shape[0] / bs)
    _check_batch_rows(model, Xd.shape[0], bs, comm.size)  # BatchNorm: 2 rows per rank
    if start is not None:
        _check_resume(start, epochs, steps)
    else:
        start = TrainState(seed=model.rng.spawn_seed() if seed is None else seed)
    # every check has passed: only now touch the optimizer's state
    _fresh_for(optimizer, model)
    if not _compatible_state(optimizer.state, model.params):
        optimizer.state = optimizer.init(_trainable_params(model))
    elif model.store is not None:
        model.store.adopt(optimizer.state, optimizer.slots)
    trainer = Trainer(model, Xd, yd, optimizer=optimizer, epochs=epochs, batch_size=bs,
                      validation=validation, shuffle=shuffle, callbacks=callbacks,
                      verbose=bool(verbose), on_nonfinite=on_nonfinite, state=start,
                      display_interval=display_interval, distributed=comm, sample_weight=wd,
                      metrics=metric_list, sync_buffers=sync_buffers)
    return trainer.run()


def _check_decay_keys(optimizer: Any, model: Any) -> None:
    """Refuse a weight-decay mask naming keys the model does not have (a typo would turn
    decay off for the parameter meant, silently)."""
    decay = getattr(optimizer, "decay", None)
    if getattr(optimizer, "weight_decay", 0.0) and isinstance(decay, frozenset):
        unknown = sorted(e for e in decay if not any(_names(e, k) for k in model.params))
        if unknown:
            raise ValueError(f"the optimizer's decay mask names {unknown}, which are not "
                             f"parameters of this model (parameters: {list(model.params)})")


def _fresh_for(optimizer: Any, model: Any) -> None:
    """An optimizer last trained on another model starts fresh (its moments and counts
    belong to that model), and says so once."""
    last = getattr(optimizer, "_last_model", None)
    owner = last() if last is not None else None
    if owner is not None and owner is not model and optimizer.state is not None:
        logging.getLogger("xpnet").warning(
            "fit: %s was last used to train another model; starting it fresh (step 0, "
            "zero moments) for this one", type(optimizer).__name__)
        optimizer.state = None
    optimizer._last_model = weakref.ref(model)


def _trainable_params(model: Any) -> dict:
    """The trainable parameters, as views of the model's store where it has one (so
    that the optimizer's slots are allocated there)."""
    params = {k: model.params[k] for k in model.trainable_keys}
    return params if model.store is None else ParamDict(model.store, params)


def _check_trainable(model: Any, comm: Communicator, *, weighted: bool) -> None:
    """Refuse a fit with nothing to train, or with weights over several ranks."""
    if comm.size > 1 and weighted:
        raise ValueError("sample_weight and class_weight are not supported with distributed= "
                         "over several ranks yet (the gradients would be averaged by rows, "
                         "not by weight); train in one process or without weights")
    if not model.trainable_keys:
        raise ValueError("every layer of the model is frozen: nothing to train; unfreeze "
                         "some with model.unfreeze(i)")


def _check_distributed(distributed: Any) -> Communicator:
    if distributed is None:
        return SingleProcess()
    if not isinstance(distributed, Communicator):
        raise TypeError("distributed must be a communicator from xpnet.distributed.init(), "
                        f"got {type(distributed).__name__}")
    return distributed


def _check_callbacks(callbacks: Any) -> list[Callback]:
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects, got "
                        f"{type(callbacks).__name__}")
    for cb in callbacks or []:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be xpnet Callback objects, got {type(cb).__name__}")
    return list(callbacks or [])


def _check_options(on_nonfinite: Any, verbose: Any, **flags: Any) -> None:
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 0, 1 or 2 (2 is the same as 1), got {verbose!r}")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")


def _start_state(resume: Any, seed: Any) -> TrainState | None:
    """The resumed position (checked by the one record schema), or None for a new run."""
    if seed is not None:
        seed = _checks.check_int("seed", seed, minimum=0)
    if resume is None:
        return None
    if isinstance(resume, TrainState):
        resume = resume.to_record()
    if not isinstance(resume, dict):
        raise TypeError("resume must be the 'training' dict of a checkpoint "
                        "(xpnet.load_checkpoint(path).training)")
    start = TrainState.from_record(resume)
    if seed is not None and "seed" not in resume:
        start.seed = seed
    return start


def _check_resume(start: TrainState, epochs: int, steps: int) -> None:
    if start.epoch >= epochs:
        raise ValueError(f"resume: {start.epoch} epochs are already done; ask for "
                         f"epochs > {start.epoch}")
    if start.step > steps:
        raise ValueError(f"resume: the record is at step {start.step} of an epoch, but this "
                         f"data gives {steps} steps per epoch; resume with the same data and "
                         "batch size")


def _prepare_data(model: Any, X: Any, y: Any, validation_data: Any, validation_split: Any,
                  sample_weight: Any = None, class_weight: Any = None, *, stream: bool = False
                  ) -> tuple[Any, Any, Any, tuple[Any, Any] | None]:
    """Check X, y, the weights and the validation data; move them to the device once (a
    memory-mapped X with ``stream``: a batch at a time, see ``_checks.HostRows``)."""
    validation_split = _checks.check_float("validation_split", validation_split, low=0.0,
                                           high=1.0)
    if validation_data is not None and not (
            isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError("validation_data must be a pair (X_val, y_val)")
    _checks.check_columns(model, X)
    Xd, yd = _checked(model, X, y, "X", "y", stream)
    names = _checks.frame_columns(X)
    if names is not None:
        model.feature_names_in_ = names
    wd = None if sample_weight is None else _checks.check_sample_weight(
        sample_weight, model.backend, model.dtype_name, Xd.shape[0], model.loss)
    if class_weight is not None:
        wd = class_sample_weight(model, yd, class_weight, wd)
    if validation_data is not None:
        Xv, yv = validation_data
        _checks.check_columns(model, Xv, "validation X")
        return Xd, yd, wd, _checked(model, Xv, yv, "validation X", "validation y", stream)
    train, val = split_rows(Xd.shape[0], validation_split, policy="last")
    if val is not None:
        return (take_rows(Xd, train), take_rows(yd, train),
                None if wd is None else take_rows(wd, train),
                (take_rows(Xd, val), take_rows(yd, val)))
    return Xd, yd, wd, None


def _checked(model: Any, X: Any, y: Any, xname: str, yname: str,
             stream: bool = False) -> tuple[Any, Any]:
    Xd = _checks.check_X(X, model.backend, model.dtype_name, model.in_features, name=xname,
                         stream=stream)
    yd = _checks.check_y(y, model.backend, model.dtype_name, Xd.shape[0], model.loss,
                         model.out_features, name=yname)
    return Xd, yd


def _compatible_state(state: dict | None, params: dict) -> bool:
    """Whether an optimizer state's slots fit the parameters they name (shape, dtype,
    device); slots of parameters frozen or unfrozen since are aligned by the optimizer."""
    if not state or "step" not in state:
        return False
    for slot, values in state.items():
        if slot in ("step", "steps"):
            continue
        if not isinstance(values, dict) or not set(values) <= set(params):
            return False
        for k, v in values.items():
            p = params[k]
            if tuple(v.shape) != tuple(p.shape) or v.dtype != p.dtype \
                    or str(getattr(v, "device", "")) != str(getattr(p, "device", "")):
                return False
    return True


def class_sample_weight(model: Any, yd: Any, class_weight: Any, sample_weight: Any = None) -> Any:
    """Per-row weights from ``class_weight`` (times ``sample_weight`` when given).

    Parameters
    ----------
    model : Sequential
    yd : array
        Checked targets on the model's device (integer labels, or 0/1 targets of a
        single-output binary cross-entropy model).
    class_weight : dict or "balanced"
    sample_weight : array, optional
        Checked weights on the device.

    Returns
    -------
    array of shape (n,) on the model's device, in its dtype

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.training.fitting import class_sample_weight
    >>> m = xn.MLP([2, 3], backend="numpy", dtype="float64")
    >>> y = np.array([0, 0, 0, 1])
    >>> np.round(class_sample_weight(m, y, "balanced"), 4).tolist()   # 4 / (2 * count)
    [0.6667, 0.6667, 0.6667, 2.0]
    >>> class_sample_weight(m, y, {1: 5.0}).tolist()
    [1.0, 1.0, 1.0, 5.0]
    """
    xp, be = model.xp, model.backend
    labels, k = _class_labels(model, yd)
    counts = to_numpy(xp.sum(xp.astype(xp.reshape(labels, (-1, 1)) == xp.arange(
        k, dtype=labels.dtype, device=be.device), model.dtype), axis=0)).astype(float)
    table = [1.0] * k
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        present = int((counts > 0).sum())
        table = [float(labels.shape[0]) / (present * c) if c > 0 else 1.0 for c in counts]
    elif isinstance(class_weight, dict):
        for label, w in class_weight.items():
            if isinstance(label, bool) or not isinstance(label, numbers.Integral) \
                    or not 0 <= int(label) < k:
                raise ValueError(f"class_weight has the label {label!r}; labels are the "
                                 f"integers 0..{k - 1}")
            table[int(label)] = _checks.check_float(f"class_weight[{label}]", w, low=0.0)
    else:
        raise TypeError(f"class_weight must be a dict or 'balanced', got "
                        f"{type(class_weight).__name__}")
    w = xp.take(be.asarray(table, dtype=model.dtype), labels, axis=0)
    if sample_weight is not None:
        w = w * sample_weight
    if not float(xp.max(w)) > 0:
        raise ValueError("class_weight and sample_weight give every row a zero weight")
    return w


def _class_labels(model: Any, yd: Any) -> tuple[Any, int]:
    """Integer labels and the number of classes, for class weights."""
    xp, loss = model.xp, model.loss
    if loss.classification and yd.ndim == 1 and _checks.is_integer_array(yd):
        return yd, model.out_features
    if loss.classification and model.out_features == 1 and (
            yd.ndim == 1 or yd.shape[1] == 1):
        flat = xp.reshape(yd, (-1,))
        if bool(xp.all((flat == 0.0) | (flat == 1.0))):
            return xp.astype(flat, model.backend.index_dtype), 2
    raise ValueError("class_weight needs class labels: 1-D integer labels, or 0/1 targets of "
                     "a single-output binary_cross_entropy model")
