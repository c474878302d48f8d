"""Training: ``fit`` = argument checks + ``Trainer(...).run()``.

* `fitting`: [`fit`][xpnet.training.fit] checks every argument and
  prepares the data before anything changes.
* `trainer`: [`Trainer`][xpnet.training.Trainer] runs epochs and steps
  through the model's forward, loss and backward; gradient hooks plug into its step
  ([`StepValues`][xpnet.training.StepValues] is what a step produced), and so does data parallelism
  over the ranks of a [`xpnet.distributed`][] communicator.
* `state`: [`TrainState`][xpnet.training.TrainState], the position of a run and
  the one schema of the resume record.
* `guards`: the non-finite policy, on the host or on the device.
* `callbacks`: [`CallbackList`][xpnet.training.CallbackList] (owns
  [`History`][xpnet.training.History] and the progress bar) and the
  [`Callback`][xpnet.training.Callback] base.
* `interrupt`: SIGINT/SIGTERM turned into a clean stop.
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
