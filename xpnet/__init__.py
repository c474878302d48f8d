"""xpnet: multilayer perceptrons with one Array API code path.

NumPy on a CPU, CuPy on a CUDA GPU, and (tested) PyTorch and
``array_api_strict``: the same training loop and, from the same seed, the same
initial weights and batch order everywhere.

Examples
--------
>>> import numpy as np, xpnet as xn
>>> X = np.random.default_rng(0).normal(size=(200, 8)).astype("float32")
>>> y = (X[:, 0] > 0).astype("int64")
>>> model = xn.MLP([8, 16, 2], backend="numpy", seed=0)
>>> history = model.fit(X, y, epochs=10, batch_size=32, optimizer=xn.Adam(lr=0.01), verbose=0)
>>> model.evaluate(X, y)["accuracy"] > 0.9
True
"""

from __future__ import annotations

from . import (
    backends,
    blocks,
    datasets,
    distributed,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    preprocessing,
    schedules,
    testing,
    training,
)
from ._version import __version__
from .backends import available_backends, get_backend, to_numpy
from .blocks import Block, Residual
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
)
from .checkpoint import Checkpoint, CheckpointError, load, load_checkpoint, save
from .export import export_onnx
from .layers import (
    GELU,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
    register_layer,
)
from .losses import (
    BinaryCrossEntropy,
    Loss,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    register_loss,
)
from .model import MLP, Sequential
from .optimizers import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_by_global_norm,
    register_optimizer,
)
from .preprocessing import Normalization
from .random import RNG
from .schedules import Constant, CosineDecay, ExponentialDecay, LinearWarmup, StepDecay
from .training import History, NonFiniteLossError, TrainingInterrupted, fit

__all__ = [
    "__version__",
    # modules
    "backends", "blocks", "datasets", "distributed", "initializers", "layers", "losses",
    "metrics", "optimizers", "preprocessing", "schedules", "testing", "training",
    # backends
    "available_backends", "get_backend", "to_numpy",
    # model
    "MLP", "Sequential", "fit", "History", "NonFiniteLossError", "TrainingInterrupted",
    # layers
    "Layer", "Dense", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "Dropout",
    "LayerNorm", "BatchNorm", "register_layer", "Normalization", "Block", "Residual",
    # losses
    "Loss", "SoftmaxCrossEntropy", "MeanSquaredError", "BinaryCrossEntropy", "register_loss",
    # optimizers and schedules
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_by_global_norm", "register_optimizer",
    "Constant", "StepDecay", "ExponentialDecay", "CosineDecay", "LinearWarmup",
    # callbacks
    "Callback", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "ProgressBar",
    "CSVLogger",
    # checkpoints
    "save", "load", "load_checkpoint", "Checkpoint", "CheckpointError",
    "export_onnx",
    "RNG",
]
