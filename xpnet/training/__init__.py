"""Training: ``fit`` = argument checks + ``Trainer(...).run()``.

* :mod:`~xpnet.training.fitting`: :func:`fit` checks every argument and
  prepares the data before anything changes.
* :mod:`~xpnet.training.trainer`: :class:`Trainer` runs epochs and steps
  through the model's public calls only; gradient hooks plug into its step
  (:class:`StepValues` is what a step produced), and so does data parallelism
  over the ranks of a :mod:`xpnet.distributed` communicator.
* :mod:`~xpnet.training.state`: :class:`TrainState`, the position of a run and
  the one schema of the resume record.
* :mod:`~xpnet.training.guards`: the non-finite policy, on the host or on the device.
* :mod:`~xpnet.training.callbacks`: :class:`CallbackList` (owns :class:`History`
  and the progress bar) and the :class:`Callback` base.
* :mod:`~xpnet.training.interrupt`: SIGINT/SIGTERM turned into a clean stop.
"""

from __future__ import annotations

from .callbacks import Callback, CallbackList, History, ProgressBar
from .fitting import fit
from .guards import ON_NONFINITE, DeviceGuard, HostGuard, NonFiniteLossError
from .interrupt import InterruptFlag, TrainingInterrupted
from .state import TrainState
from .trainer import StepValues, Trainer

__all__ = ["fit", "Trainer", "StepValues", "TrainState", "History", "CallbackList", "Callback",
           "ProgressBar", "NonFiniteLossError", "TrainingInterrupted", "InterruptFlag",
           "HostGuard", "DeviceGuard", "ON_NONFINITE"]
