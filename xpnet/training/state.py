"""``TrainState``: where a training run stands, and the one schema of the resume record.

The record a checkpoint stores and ``fit(resume=...)`` takes is written by
[`TrainState.to_record`][xpnet.training.TrainState.to_record], and checked and read back by
[`TrainState.from_record`][xpnet.training.TrainState.from_record]: the checkpoint loader
and ``fit`` use the same code, so a record one of them accepts the other can use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..random import RNG

__all__ = ["TrainState"]

_INTS = ("epoch", "step", "seed", "seen")
_FLOATS = ("run_loss", "run_correct")
_MID_EPOCH = ("epoch_rng", "run_loss", "run_correct", "seen")  # written only when step > 0
# errors a hostile generator state can provoke inside RNG.set_state
_STATE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                 RecursionError)


@dataclass
class TrainState:
    """The position of a training run, enough to continue it exactly.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    step : int
        Steps completed in the current epoch (0 at an epoch boundary).
    seed : int
        The run's seed (batch order and dropout).
    rng : dict or None
        The host generator's state ([`xpnet.RNG.get_state`][xpnet.random.RNG.get_state]).
    epoch_rng : dict or None
        The generator's state at the start of the current epoch; needed to
        redraw its permutation when ``step > 0``.
    run_loss, run_correct : float
        The epoch's running sums of loss x rows and of correct predictions.
    seen : int
        Rows the running sums cover.
    history : dict of str to list of float
        Per-epoch metrics of the completed epochs.

    Examples
    --------
    >>> import xpnet as xn
    >>> s = xn.training.TrainState(epoch=2, seed=7, rng=xn.RNG(7).get_state(),
    ...                            history={"loss": [0.9, 0.5]})
    >>> record = s.to_record()
    >>> sorted(record)
    ['epoch', 'history', 'rng', 'seed', 'step']
    >>> xn.training.TrainState.from_record(record) == s
    True
    >>> try:
    ...     xn.training.TrainState.from_record({"epoch": -5})
    ... except ValueError as exc:
    ...     print(exc)
    training record 'epoch' must be an int >= 0, got -5
    """

    epoch: int = 0
    step: int = 0
    seed: int = 0
    rng: dict | None = None
    epoch_rng: dict | None = None
    run_loss: float = 0.0
    run_correct: float = 0.0
    seen: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    def to_record(self) -> dict:
        """The JSON-serialisable record stored in checkpoints.

        The mid-epoch keys (``epoch_rng``, ``run_loss``, ``run_correct``,
        ``seen``) are written only when ``step > 0``.

        Returns
        -------
        dict

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.training.TrainState(epoch=1, step=3, seen=96).to_record()["seen"]
        96
        """
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "rng": self.rng,
                                  "seed": self.seed,
                                  "history": {k: list(v) for k, v in self.history.items()}}
        if self.step:
            record.update(epoch_rng=self.epoch_rng, run_loss=self.run_loss,
                          run_correct=self.run_correct, seen=self.seen)
        return record

    @classmethod
    def from_record(cls, record: Any) -> TrainState:
        """Check a record (types, ranges, required keys) and build the state from it.

        Parameters
        ----------
        record : dict
            As written by [`to_record`][xpnet.training.TrainState.to_record] (the
            ``training`` entry of a checkpoint). Unknown keys are ignored; the
            mid-epoch keys (``epoch_rng``, ``run_loss``, ``run_correct``, ``seen``)
            must be absent or unset (None, 0) when ``step`` is 0.

        Returns
        -------
        TrainState

        Raises
        ------
        TypeError
            When ``record`` is not a dict.
        ValueError
            Naming the first key that is missing, of the wrong type or out of range.

        Examples
        --------
        >>> import xpnet as xn
        >>> try:
        ...     xn.training.TrainState.from_record({"epoch": 1, "step": 2})
        ... except ValueError as exc:
        ...     print(exc)
        training record has step 2 > 0 but no 'epoch_rng' (the epoch's generator state)
        """
        if not isinstance(record, dict):
            raise TypeError(f"training record must be a JSON object (dict), got "
                            f"{type(record).__name__}")
        if "epoch" not in record:
            raise ValueError("training record has no 'epoch'")
        values: dict[str, Any] = {k: _int(record, k) for k in _INTS if k in record}
        values.update({k: _float(record, k) for k in _FLOATS if k in record})
        values["history"] = _history(record.get("history", {}), values["epoch"])
        for key in ("rng", "epoch_rng"):
            values[key] = _generator_state(record, key)
        if values.get("step", 0) > 0:
            for key, what in (("epoch_rng", "the epoch's generator state"),
                              ("rng", "the generator state")):
                if values[key] is None:
                    raise ValueError(f"training record has step {values['step']} > 0 but no "
                                     f"{key!r} ({what})")
        else:  # at an epoch boundary the mid-epoch keys are unset (to_record omits them)
            for key in _MID_EPOCH:
                if values.get(key) not in (None, 0):
                    raise ValueError(f"training record has step 0 but {key!r} "
                                     f"{record[key]!r}: the mid-epoch keys belong to a "
                                     "record with step > 0")
        return cls(**values)


def _int(record: dict, key: str) -> int:
    v = record[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"training record {key!r} must be an int >= 0, got {v!r}")
    return v


def _float(record: dict, key: str) -> float:
    v = record[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"training record {key!r} must be a finite number, got {v!r}")
    if key == "run_correct" and v < 0:
        raise ValueError(f"training record {key!r} must be >= 0, got {v!r}")
    return float(v)


def _history(hist: Any, epochs: int) -> dict[str, list[float]]:
    if not isinstance(hist, dict):
        raise ValueError(f"training record 'history' must be a dict of lists, got "
                         f"{type(hist).__name__}")
    out: dict[str, list[float]] = {}
    for name, values in hist.items():
        if not isinstance(name, str) or not isinstance(values, list):
            raise ValueError(f"training record 'history' entry {name!r} must be a list of "
                             f"numbers, got {type(values).__name__}")
        if len(values) > epochs:
            raise ValueError(f"training record 'history' entry {name!r} has {len(values)} "
                             f"values for {epochs} epochs")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"training record 'history' entry {name!r} holds {v!r}, "
                                 "not a number")
        out[name] = [float(v) for v in values]
    return out


def _generator_state(record: dict, key: str) -> dict | None:
    state = record.get(key)
    if state is None:
        return None
    try:
        RNG(0).set_state(state)
    except _STATE_ERRORS as exc:
        raise ValueError(f"training record {key!r} is not a generator state: {exc}") from None
    return state
