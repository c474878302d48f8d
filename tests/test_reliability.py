"""Reliability: every public entry point refuses bad input by name, and saves survive SIGKILL.

Each row of the tables below is one bad input given to one public entry point. The
test asserts the exception type, a message that names the argument, the bad value and
what was expected, and that the model's parameters (and optimizer) are untouched by
the refused call. docs/reliability.md lists the same rows; keep the two in step.

Inputs already covered by tests/test_training.py (``test_bad_data_is_refused``,
``test_bad_fit_arguments``, ``test_model_construction_errors``) are not repeated here.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet import _checks
from xpnet.backends import Backend, BackendError
from xpnet.datasets import DatasetError

HAVE_TORCH = "torch" in xn.available_backends()
HAVE_STRICT = "array_api_strict" in xn.available_backends()
HAVE_CUPY = "cupy" in xn.available_backends()

N = 20
X_OK = np.random.default_rng(0).normal(size=(N, 4))
Y_OK = np.arange(N) % 3
Y_REG = np.random.default_rng(1).normal(size=(N, 2))
Y_BIN = (np.arange(N) % 2).astype(np.float64)


def _with(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


def _models():
    return {
        "ce": xn.MLP([4, 8, 3], backend="numpy", seed=0),
        "mse": xn.MLP([4, 8, 2], loss="mse", backend="numpy", seed=0),
        "bce": xn.MLP([4, 8, 1], loss="binary_cross_entropy", backend="numpy", seed=0),
    }


def _snapshot(m):
    return {k: xn.to_numpy(v).copy() for k, v in m.params.items()}, m.optimizer


def _assert_unchanged(m, snap):
    params, opt = snap
    assert set(m.params) == set(params)
    for k, v in params.items():
        assert xn.to_numpy(m.params[k]).tobytes() == v.tobytes(), k
    assert m.optimizer is opt


def _refused(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    # a clear error, not one from deep inside NumPy or the loop
    assert type(info.value).__module__.startswith(("xpnet", "builtins")), type(info.value)
    return info.value


# ------------------------------------------------------------------ model entry points

# (id, model kind, call(m), exception, message regex)
MODEL_CASES = [
    # predict: X
    ("predict-X-1d", "ce", lambda m: m.predict(np.ones(4)),
     ValueError, r"X must be 2-D \(n_samples, n_features\), got shape \(4,\)"),
    ("predict-X-3d", "ce", lambda m: m.predict(np.ones((N, 2, 2))),
     ValueError, r"X must be 2-D .*got shape \(20, 2, 2\); flatten images with "
                 r"X\.reshape\(len\(X\), -1\)"),
    ("predict-X-features", "ce", lambda m: m.predict(np.ones((3, 5))),
     ValueError, r"X has 5 features, the model expects 4"),
    ("predict-X-empty", "ce", lambda m: m.predict(np.ones((0, 4))),
     ValueError, r"X is empty \(0 samples\)"),
    ("predict-X-nan", "ce", lambda m: m.predict(_with(X_OK, (3, 1), np.nan)),
     ValueError, r"X contains 1 NaN or infinite values"),
    ("predict-X-inf", "ce", lambda m: m.predict(_with(X_OK, (0, 0), -np.inf)),
     ValueError, r"X contains 1 NaN or infinite values"),
    ("predict-X-int", "ce", lambda m: m.predict(np.ones((3, 4), np.int64)),
     TypeError, r"X has dtype int64; convert it to floats first, e\.g\. X\.astype\('float32'\)"),
    ("predict-X-uint8", "ce", lambda m: m.predict(np.ones((3, 4), np.uint8)),
     TypeError, r"X has dtype uint8; .*X\.astype\('float32'\) / 255"),
    ("predict-X-bool", "ce", lambda m: m.predict(np.ones((3, 4), bool)),
     TypeError, r"X has dtype bool; convert it to floats first"),
    ("predict-X-complex", "ce", lambda m: m.predict(np.ones((3, 4), np.complex64)),
     TypeError, r"X has complex dtype complex64; xpnet trains on real floats"),
    ("predict-X-strings", "ce", lambda m: m.predict(np.array([["a"] * 4])),
     TypeError, r"X has unsupported dtype .*; expected float32 or float64"),
    ("predict-X-object", "ce", lambda m: m.predict(np.array([[1, 2, 3, 4]], dtype=object)),
     TypeError, r"X has unsupported dtype object"),
    ("predict-X-None", "ce", lambda m: m.predict(None),
     TypeError, r"X must be a 2-D float array, got NoneType"),
    ("predict-X-ragged-list", "ce", lambda m: m.predict([[1.0, 2.0, 3.0, 4.0], [1.0]]),
     ValueError, r"X could not be converted to an array .*rectangular"),
    ("predict-batch_size-0", "ce", lambda m: m.predict(X_OK, batch_size=0),
     ValueError, r"batch_size must be >= 1, got 0"),
    ("predict-batch_size-negative", "ce", lambda m: m.predict(X_OK, batch_size=-5),
     ValueError, r"batch_size must be >= 1, got -5"),
    ("predict-batch_size-bool", "ce", lambda m: m.predict(X_OK, batch_size=True),
     TypeError, r"batch_size must be an int >= 1, got True"),
    ("predict-batch_size-float", "ce", lambda m: m.predict(X_OK, batch_size=2.5),
     TypeError, r"batch_size must be an int >= 1, got 2\.5"),
    # predict_proba / forward
    ("predict_proba-X-1d", "ce", lambda m: m.predict_proba(np.ones(4)),
     ValueError, r"X must be 2-D"),
    ("predict_proba-X-features", "bce", lambda m: m.predict_proba(np.ones((3, 7))),
     ValueError, r"X has 7 features, the model expects 4"),
    ("predict_proba-X-nan", "ce", lambda m: m.predict_proba(_with(X_OK, (1, 1), np.nan)),
     ValueError, r"X contains 1 NaN"),
    ("predict_proba-batch_size-0", "ce", lambda m: m.predict_proba(X_OK, batch_size=0),
     ValueError, r"batch_size must be >= 1, got 0"),
    ("forward-X-features", "ce", lambda m: m.forward(np.ones((3, 2))),
     ValueError, r"X has 2 features, the model expects 4"),
    ("forward-X-int", "ce", lambda m: m.forward(np.ones((3, 4), np.int32)),
     TypeError, r"X has dtype int32; convert it to floats"),
    # evaluate: y for each loss
    ("evaluate-y-length", "ce", lambda m: m.evaluate(X_OK, Y_OK[:-1]),
     ValueError, r"X has 20 samples but y has 19"),
    ("evaluate-y-too-big", "ce", lambda m: m.evaluate(X_OK, np.where(Y_OK == 2, 3, Y_OK)),
     ValueError, r"y has labels in \[0, 3\] but the model has 3 classes "
                 r"\(labels must be in \[0, 2\]\)"),
    ("evaluate-y-negative", "ce", lambda m: m.evaluate(X_OK, Y_OK - 1),
     ValueError, r"y has labels in \[-1, 1\] but the model has 3 classes"),
    ("evaluate-y-float-labels", "ce", lambda m: m.evaluate(X_OK, Y_OK.astype(float)),
     TypeError, r"y has dtype float64; class labels must be integers 0\.\.2 "
                r"\(convert with y\.astype\('int64'\)\)"),
    ("evaluate-y-non-integral", "ce", lambda m: m.evaluate(X_OK, Y_OK + 0.5),
     TypeError, r"y has dtype float64; class labels must be integers"),
    ("evaluate-y-bool-labels", "ce", lambda m: m.evaluate(X_OK, Y_OK > 0),
     TypeError, r"y has dtype bool; class labels must be integers"),
    ("evaluate-y-complex", "ce", lambda m: m.evaluate(X_OK, Y_OK.astype(complex)),
     TypeError, r"y has complex dtype complex128"),
    ("evaluate-y-strings", "mse", lambda m: m.evaluate(X_OK, np.full((N, 2), "a")),
     TypeError, r"y has unsupported dtype"),
    ("evaluate-y-0d", "ce", lambda m: m.evaluate(X_OK, np.array(1)),
     ValueError, r"y must be 1-D or 2-D, got shape \(\)"),
    ("evaluate-y-3d", "ce", lambda m: m.evaluate(X_OK, np.zeros((N, 3, 1))),
     ValueError, r"y must be 1-D or 2-D, got shape \(20, 3, 1\)"),
    ("evaluate-y-2d-wrong-width", "ce", lambda m: m.evaluate(X_OK, np.zeros((N, 2))),
     ValueError, r"y has 2 columns, the model has 3 outputs"),
    ("evaluate-y-probabilities-negative", "ce",
     lambda m: m.evaluate(X_OK, _with(np.eye(3)[Y_OK], (0, 0), -0.5)),
     ValueError, r"y has values in \[-0\.5, 1\]; cross_entropy targets .* must be in \[0, 1\]"),
    ("evaluate-mse-y-nan", "mse", lambda m: m.evaluate(X_OK, _with(Y_REG, (2, 1), np.nan)),
     ValueError, r"y contains NaN or infinite values"),
    ("evaluate-mse-y-inf", "mse", lambda m: m.evaluate(X_OK, _with(Y_REG, (2, 1), np.inf)),
     ValueError, r"y contains NaN or infinite values"),
    ("evaluate-mse-y-wrong-width", "mse", lambda m: m.evaluate(X_OK, np.zeros((N, 3))),
     ValueError, r"y has 3 columns, the model has 2 outputs"),
    ("evaluate-mse-y-1d", "mse", lambda m: m.evaluate(X_OK, np.zeros(N)),
     ValueError, r"y is 1-D but the model has 2 outputs; pass shape \(n, 2\)"),
    ("evaluate-bce-y-out-of-range", "bce", lambda m: m.evaluate(X_OK, Y_BIN * 2),
     ValueError, r"y has values in \[0, 2\]; binary_cross_entropy targets .* in \[0, 1\]"),
    ("evaluate-bce-y-nan", "bce", lambda m: m.evaluate(X_OK, _with(Y_BIN, 4, np.nan)),
     ValueError, r"y contains NaN or infinite values"),
    ("evaluate-X-nan", "ce", lambda m: m.evaluate(_with(X_OK, (0, 0), np.nan), Y_OK),
     ValueError, r"X contains 1 NaN or infinite values"),
    ("evaluate-batch_size-0", "ce", lambda m: m.evaluate(X_OK, Y_OK, batch_size=0),
     ValueError, r"batch_size must be >= 1, got 0"),
    # loss_and_grads
    ("loss_and_grads-loss-unknown", "ce", lambda m: m.loss_and_grads(X_OK, Y_OK, loss="hinge"),
     ValueError, r"unknown loss 'hinge'; choose one of: cross_entropy, mse, "
                 r"binary_cross_entropy"),
    ("loss_and_grads-X-bool", "ce", lambda m: m.loss_and_grads(X_OK > 0, Y_OK),
     TypeError, r"X has dtype bool; convert it to floats first"),
    ("loss_and_grads-y-out-of-range", "ce", lambda m: m.loss_and_grads(X_OK, Y_OK + 5),
     ValueError, r"y has labels in \[5, 7\] but the model has 3 classes"),
    ("loss_and_grads-y-length", "mse", lambda m: m.loss_and_grads(X_OK, Y_REG[:3]),
     ValueError, r"X has 20 samples but y has 3"),
    ("loss_and_grads-mse-y-nan", "mse",
     lambda m: m.loss_and_grads(X_OK, _with(Y_REG, (0, 0), np.nan)),
     ValueError, r"y contains NaN or infinite values"),
    ("loss_and_grads-labels-for-mse", "ce", lambda m: m.loss_and_grads(X_OK, Y_OK, loss="mse"),
     ValueError, r"y is 1-D but the model has 3 outputs; pass shape \(n, 3\)"),
    ("loss_and_grads-y-ragged-list", "ce", lambda m: m.loss_and_grads(X_OK, [[0], [1, 2]]),
     ValueError, r"y could not be converted to an array"),
    # fit: what test_training.py does not already cover
    ("fit-epochs-bool", "ce", lambda m: m.fit(X_OK, Y_OK, epochs=True, verbose=0),
     TypeError, r"epochs must be an int >= 1, got True"),
    ("fit-epochs-negative", "ce", lambda m: m.fit(X_OK, Y_OK, epochs=-3, verbose=0),
     ValueError, r"epochs must be >= 1, got -3"),
    ("fit-batch_size-bool", "ce", lambda m: m.fit(X_OK, Y_OK, batch_size=True, verbose=0),
     TypeError, r"batch_size must be an int >= 1, got True"),
    ("fit-batch_size-float", "ce", lambda m: m.fit(X_OK, Y_OK, batch_size=32.0, verbose=0),
     TypeError, r"batch_size must be an int >= 1, got 32\.0"),
    ("fit-seed-negative", "ce", lambda m: m.fit(X_OK, Y_OK, seed=-1, verbose=0),
     ValueError, r"seed must be >= 0, got -1"),
    ("fit-seed-bool", "ce", lambda m: m.fit(X_OK, Y_OK, seed=True, verbose=0),
     TypeError, r"seed must be an int >= 0, got True"),
    ("fit-seed-float", "ce", lambda m: m.fit(X_OK, Y_OK, seed=1.5, verbose=0),
     TypeError, r"seed must be an int >= 0, got 1\.5"),
    ("fit-validation_split-nan", "ce",
     lambda m: m.fit(X_OK, Y_OK, validation_split=math.nan, verbose=0),
     ValueError, r"validation_split must be finite, got nan"),
    ("fit-validation_split-negative", "ce",
     lambda m: m.fit(X_OK, Y_OK, validation_split=-0.1, verbose=0),
     ValueError, r"validation_split must be >= 0\.0, got -0\.1"),
    ("fit-validation_split-too-small", "ce",
     lambda m: m.fit(X_OK, Y_OK, validation_split=0.01, verbose=0),
     ValueError, r"validation_split=0\.01 leaves 0 validation and 20 training rows"),
    ("fit-validation-X-features", "ce",
     lambda m: m.fit(X_OK, Y_OK, validation_data=(np.ones((3, 5)), Y_OK[:3]), verbose=0),
     ValueError, r"validation X has 5 features, the model expects 4"),
    ("fit-validation-y-labels", "ce",
     lambda m: m.fit(X_OK, Y_OK, validation_data=(X_OK[:3], np.array([0, 1, 9])), verbose=0),
     ValueError, r"validation y has labels in \[0, 9\]"),
    ("fit-verbose", "ce", lambda m: m.fit(X_OK, Y_OK, verbose=5),
     ValueError, r"verbose must be 0, 1 or 2 \(2 is the same as 1\), got 5"),
    ("fit-optimizer-type", "ce", lambda m: m.fit(X_OK, Y_OK, optimizer=3, verbose=0),
     ValueError, r"unknown optimizer 3; choose one of: sgd, adam, adamw, rmsprop"),
    ("fit-callbacks-type", "ce", lambda m: m.fit(X_OK, Y_OK, callbacks=[object()], verbose=0),
     TypeError, r"callbacks must be xpnet Callback objects, got object"),
    ("fit-X-bool", "ce", lambda m: m.fit(X_OK > 0, Y_OK, verbose=0),
     TypeError, r"X has dtype bool; convert it to floats first"),
    ("fit-X-inf", "ce", lambda m: m.fit(_with(X_OK, (5, 2), np.inf), Y_OK, verbose=0),
     ValueError, r"X contains 1 NaN or infinite values"),
    ("fit-mse-y-nan", "mse", lambda m: m.fit(X_OK, _with(Y_REG, (0, 1), np.nan), verbose=0),
     ValueError, r"y contains NaN or infinite values"),
    ("fit-mse-y-wrong-width", "mse", lambda m: m.fit(X_OK, np.zeros((N, 5)), verbose=0),
     ValueError, r"y has 5 columns, the model has 2 outputs"),
    ("fit-bce-y-out-of-range", "bce", lambda m: m.fit(X_OK, Y_BIN - 1, verbose=0),
     ValueError, r"y has values in \[-1, 0\]; binary_cross_entropy targets"),
    ("fit-resume-past-end", "ce", lambda m: m.fit(X_OK, Y_OK, epochs=2, resume={"epoch": 3},
                                                  verbose=0),
     ValueError, r"resume: 3 epochs are already done; ask for epochs > 3"),
    # set_params
    ("set_params-not-dict", "ce", lambda m: m.set_params([1, 2]),
     TypeError, r"params must be a dict of arrays, got list"),
    ("set_params-missing", "ce", lambda m: m.set_params({"0.W": np.zeros((4, 8))}),
     ValueError, r"parameter names differ: expected \['0\.W', '0\.b', '2\.W', '2\.b'\], "
                 r"got \['0\.W'\]"),
    ("set_params-shape", "ce",
     lambda m: m.set_params({**_np_params(m), "0.W": np.zeros((4, 9), np.float32)}),
     ValueError, r"parameter '0\.W' has shape \(4, 9\), expected \(4, 8\)"),
    ("set_params-nan", "ce",
     lambda m: m.set_params({**_np_params(m), "2.b": np.array([0.0, np.nan, 0.0])}),
     ValueError, r"parameter '2\.b' contains NaN or infinite values"),
    ("set_params-int", "ce",
     lambda m: m.set_params({**_np_params(m), "2.b": np.zeros(3, np.int64)}),
     TypeError, r"parameter '2\.b' has dtype int64; expected float32 or float64"),
    ("set_params-not-array", "ce", lambda m: m.set_params({**_np_params(m), "0.b": 3}),
     TypeError, r"parameter '0\.b' must be an array, got int"),
]


def _np_params(m):
    return {k: xn.to_numpy(v).copy() for k, v in m.params.items()}


@pytest.mark.parametrize("case_id,kind,call,exc,match", MODEL_CASES,
                         ids=[c[0] for c in MODEL_CASES])
def test_model_entry_point_refuses(case_id, kind, call, exc, match):
    m = _models()[kind]
    snap = _snapshot(m)
    _refused(lambda: call(m), exc, match)
    _assert_unchanged(m, snap)


def test_set_params_is_all_or_nothing():
    m = _models()["ce"]
    snap = _snapshot(m)
    good = {k: v + 1.0 for k, v in _np_params(m).items()}
    bad = dict(good, **{"2.b": np.array([0.0, np.inf, 0.0], np.float32)})
    with pytest.raises(ValueError, match="'2.b' contains NaN"):
        m.set_params(bad)  # '0.W', '0.b', '2.W' were fine, yet none was replaced
    _assert_unchanged(m, snap)
    m.set_params(good)
    assert float(m.params["0.b"][0]) == 1.0


def test_refused_fit_writes_nothing(tmp_path):
    m = _models()["ce"]
    snap = _snapshot(m)
    callbacks = [xn.ModelCheckpoint(tmp_path / "m.safetensors"), xn.CSVLogger(tmp_path / "l.csv")]
    with pytest.raises(ValueError, match="X has 5 features"):
        m.fit(np.ones((N, 5)), Y_OK, callbacks=callbacks, verbose=0)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        m.fit(X_OK, Y_OK, epochs=0, callbacks=callbacks, verbose=0)
    assert list(tmp_path.iterdir()) == []
    _assert_unchanged(m, snap)


# ------------------------------------------------------------ constructors and loaders

def _tiny_dataset(labels, class_names=None, cap=None):
    """Dataset.from_arrays on 2 + 1 samples of 4 pixels (XPNET_MAX_DATA_BYTES=cap)."""
    old = os.environ.get("XPNET_MAX_DATA_BYTES")
    if cap is not None:
        os.environ["XPNET_MAX_DATA_BYTES"] = cap
    try:
        return xn.datasets.Dataset.from_arrays(
            "t", np.zeros((2, 4), np.uint8), labels, np.zeros((1, 4), np.uint8), [0],
            class_names=class_names)
    finally:
        if cap is not None:
            if old is None:
                del os.environ["XPNET_MAX_DATA_BYTES"]
            else:
                os.environ["XPNET_MAX_DATA_BYTES"] = old


def _lazy_load(path):
    return lambda: xn.load(path, backend="numpy")


# (id, call(), exception, message regex)
CONSTRUCTOR_CASES = [
    # MLP
    ("MLP-sizes-too-short", lambda: xn.MLP([4]),
     ValueError, r"sizes must list at least input and output sizes, got \[4\]"),
    ("MLP-sizes-string", lambda: xn.MLP("43"),
     ValueError, r"sizes must list at least input and output sizes, got '43'"),
    ("MLP-hidden-negative", lambda: xn.MLP([4, -3, 3]),
     ValueError, r"sizes\[1\] must be a positive int, got -3"),
    ("MLP-hidden-float", lambda: xn.MLP([4, 2.5, 3]),
     ValueError, r"sizes\[1\] must be a positive int, got 2\.5"),
    ("MLP-hidden-bool", lambda: xn.MLP([4, True, 3]),
     ValueError, r"sizes\[1\] must be a positive int, got True"),
    ("MLP-output-0", lambda: xn.MLP([4, 8, 0]),
     ValueError, r"sizes\[2\] must be a positive int, got 0"),
    ("MLP-activation-None", lambda: xn.MLP([4, 3], activation=None),
     ValueError, r"unknown activation None; choose one of: relu, leaky_relu, tanh, sigmoid, "
                 r"gelu"),
    ("MLP-loss-type", lambda: xn.MLP([4, 3], loss=3),
     ValueError, r"unknown loss 3; choose one of: cross_entropy, mse, binary_cross_entropy"),
    ("MLP-dropout-negative", lambda: xn.MLP([4, 8, 3], dropout=-0.1),
     ValueError, r"dropout must be >= 0\.0, got -0\.1"),
    ("MLP-dropout-nan", lambda: xn.MLP([4, 8, 3], dropout=math.nan),
     ValueError, r"dropout must be finite, got nan"),
    ("MLP-dropout-string", lambda: xn.MLP([4, 8, 3], dropout="0.5"),
     TypeError, r"dropout must be a number, got '0\.5'"),
    ("MLP-init-unknown", lambda: xn.MLP([4, 3], init="orthogonal"),
     ValueError, r"unknown initializer 'orthogonal'; choose one of: he_normal"),
    ("MLP-dtype-float16", lambda: xn.MLP([4, 3], dtype="float16"),
     ValueError, r"dtype must be 'float32' or 'float64', got 'float16'"),
    ("MLP-seed-negative", lambda: xn.MLP([4, 3], seed=-1),
     ValueError, r"seed must be >= 0, got -1"),
    ("MLP-seed-float", lambda: xn.MLP([4, 3], seed=0.5),
     TypeError, r"seed must be an int >= 0, got 0\.5"),
    ("MLP-backend-unknown", lambda: xn.MLP([4, 3], backend="tensorflow"),
     BackendError, r"unknown backend 'tensorflow'; choose one of: auto, numpy, cupy, torch, "
                   r"array_api_strict, jax"),
    ("MLP-backend-type", lambda: xn.MLP([4, 3], backend=3),
     TypeError, r"backend must be a name such as 'numpy' or an Array API namespace "
                r"module, got int"),
    ("MLP-numpy-on-cuda", lambda: xn.MLP([4, 3], backend="numpy", device="cuda"),
     BackendError, r"backend 'numpy' runs on the CPU only, got device 'cuda'"),
    # Sequential and layers
    ("Sequential-empty", lambda: xn.Sequential([], in_features=3),
     ValueError, r"layers must be a non-empty list of Layer objects"),
    ("Sequential-not-a-layer", lambda: xn.Sequential([xn.Dense(2), 3], in_features=3),
     TypeError, r"layers\[1\] is int, not an xpnet Layer"),
    ("Sequential-in_features-0", lambda: xn.Sequential([xn.Dense(2)], in_features=0),
     ValueError, r"in_features must be >= 1, got 0"),
    ("Sequential-in_features-float", lambda: xn.Sequential([xn.Dense(2)], in_features=3.0),
     TypeError, r"in_features must be an int >= 1, got 3\.0"),
    ("Sequential-loss-unknown", lambda: xn.Sequential([xn.Dense(2)], in_features=3,
                                                      loss="hinge"),
     ValueError, r"unknown loss 'hinge'; choose one of"),
    ("Dense-units-0", lambda: xn.Dense(0),
     ValueError, r"Dense units must be a positive int, got 0"),
    ("Dense-units-negative", lambda: xn.Dense(-4),
     ValueError, r"Dense units must be a positive int, got -4"),
    ("Dropout-rate-1", lambda: xn.Dropout(1.0),
     ValueError, r"dropout rate must be in \[0, 1\), got 1\.0"),
    ("Dropout-rate-negative", lambda: xn.Dropout(-0.2),
     ValueError, r"dropout rate must be in \[0, 1\), got -0\.2"),
    # optimizers
    *[(f"{cls.__name__}-lr-{name}", (lambda cls=cls, lr=lr: cls(lr=lr)), ValueError, match)
      for cls in (xn.SGD, xn.Adam, xn.AdamW, xn.RMSprop)
      for name, lr, match in [
          ("0", 0, r"lr must be in \(0\.0, inf\), got 0"),
          ("negative", -0.1, r"lr must be in \(0\.0, inf\), got -0\.1"),
          ("nan", math.nan, r"lr must be a finite number, got nan"),
          ("inf", math.inf, r"lr must be a finite number, got inf"),
          ("string", "0.1", r"lr must be a positive float or a schedule, got '0\.1'"),
          ("bool", True, r"lr must be a positive float or a schedule, got True"),
      ]],
    ("SGD-momentum-1", lambda: xn.SGD(momentum=1.0),
     ValueError, r"momentum must be in \[0\.0, 1\.0\), got 1\.0"),
    ("SGD-momentum-nan", lambda: xn.SGD(momentum=math.nan),
     ValueError, r"momentum must be a finite number, got nan"),
    ("SGD-nesterov-without-momentum", lambda: xn.SGD(nesterov=True),
     ValueError, r"nesterov=True needs momentum > 0"),
    ("Adam-beta2-1", lambda: xn.Adam(betas=(0.9, 1.0)),
     ValueError, r"betas\[1\] must be in \[0\.0, 1\.0\), got 1\.0"),
    ("Adam-betas-not-a-pair", lambda: xn.Adam(betas=(0.9,)),
     ValueError, r"betas must be a pair of floats, got \(0\.9,\)"),
    ("Adam-eps-0", lambda: xn.Adam(eps=0.0),
     ValueError, r"eps must be in \(0\.0, inf\), got 0\.0"),
    ("AdamW-weight_decay-negative", lambda: xn.AdamW(weight_decay=-0.01),
     ValueError, r"weight_decay must be in \[0\.0, inf\), got -0\.01"),
    ("Adam-clip_norm-0", lambda: xn.Adam(clip_norm=0),
     ValueError, r"clip_norm must be in \(0\.0, inf\), got 0"),
    ("SGD-clip_value-inf", lambda: xn.SGD(clip_value=math.inf),
     ValueError, r"clip_value must be a finite number, got inf"),
    ("RMSprop-alpha-1", lambda: xn.RMSprop(alpha=1.0),
     ValueError, r"alpha must be in \[0\.0, 1\.0\), got 1\.0"),
    # schedules
    ("Constant-lr-0", lambda: xn.Constant(0.0), ValueError, r"lr must be > 0, got 0\.0"),
    ("Constant-lr-nan", lambda: xn.Constant(math.nan),
     ValueError, r"lr must be a finite number, got nan"),
    ("StepDecay-step_size-0", lambda: xn.StepDecay(0.1, step_size=0),
     ValueError, r"step_size must be a positive int, got 0"),
    ("StepDecay-step_size-float", lambda: xn.StepDecay(0.1, step_size=2.5),
     ValueError, r"step_size must be a positive int, got 2\.5"),
    ("StepDecay-gamma-0", lambda: xn.StepDecay(0.1, step_size=10, gamma=0.0),
     ValueError, r"gamma must be > 0, got 0\.0"),
    ("ExponentialDecay-gamma-2", lambda: xn.ExponentialDecay(0.1, gamma=2.0),
     ValueError, r"gamma must be in \(0, 1\], got 2\.0"),
    ("CosineDecay-total_steps-0", lambda: xn.CosineDecay(0.1, total_steps=0),
     ValueError, r"total_steps must be a positive int, got 0"),
    ("CosineDecay-min_lr-above-lr", lambda: xn.CosineDecay(0.1, total_steps=10, min_lr=0.5),
     ValueError, r"min_lr must be <= lr \(0\.1\), got 0\.5"),
    ("CosineDecay-min_lr-negative", lambda: xn.CosineDecay(0.1, total_steps=10, min_lr=-1.0),
     ValueError, r"min_lr must be >= 0, got -1\.0"),
    ("LinearWarmup-warmup_steps-0", lambda: xn.LinearWarmup(0.1, warmup_steps=0),
     ValueError, r"warmup_steps must be a positive int, got 0"),
    ("LinearWarmup-start_factor-2", lambda: xn.LinearWarmup(0.1, warmup_steps=5,
                                                            start_factor=2.0),
     ValueError, r"start_factor must be in \[0, 1\], got 2\.0"),
    ("LinearWarmup-after-negative", lambda: xn.LinearWarmup(-1.0, warmup_steps=5),
     ValueError, r"lr must be > 0, got -1\.0"),
    # callbacks
    ("EarlyStopping-patience-negative", lambda: xn.EarlyStopping(patience=-1),
     ValueError, r"patience must be an int >= 0, got -1"),
    ("EarlyStopping-mode", lambda: xn.EarlyStopping(mode="up"),
     ValueError, r"mode must be 'auto', 'min' or 'max', got 'up'"),
    ("ModelCheckpoint-metadata", lambda: xn.ModelCheckpoint("m.safetensors", metadata=[1]),
     TypeError, r"metadata must be a dict, got list"),
    # xn.load
    ("load-missing-file", _lazy_load("/nonexistent/xpnet/m.safetensors"),
     FileNotFoundError, r"checkpoint /nonexistent/xpnet/m\.safetensors does not exist"),
    ("load-a-folder", _lazy_load(os.path.dirname(__file__)),
     xn.CheckpointError, r"tests is not a file \(a checkpoint is one \.safetensors file\)"),
    ("load-path-type", _lazy_load(3),
     TypeError, r"path must be a str or os\.PathLike, got int"),
    ("load-backend-unknown", lambda: xn.load(__file__, backend="tensorflow"),
     BackendError, r"unknown backend 'tensorflow'; choose one of"),
    ("load-not-a-checkpoint", _lazy_load(__file__),
     xn.CheckpointError, r"test_reliability\.py is not an xpnet checkpoint"),
    # xn.datasets.load
    ("datasets.load-unknown-name", lambda: xn.datasets.load("cifar10"),
     DatasetError, r"unknown dataset 'cifar10'; valid names are 'digits', 'mnist', "
                   r"'fashion-mnist'"),
    ("datasets.load-name-type", lambda: xn.datasets.load(3),
     TypeError, r"dataset name must be a str or a path, got int"),
    ("datasets.load-missing-path", lambda: xn.datasets.load("/nonexistent/data.npz"),
     DatasetError, r"no such file or folder: /nonexistent/data\.npz"),
    # Dataset.from_arrays: class counts are bounded before anything is built from them
    ("from_arrays-label-too-large", lambda: _tiny_dataset([70_000, 0]),
     DatasetError, r"y_train has label 70000 at index 0; labels must be < 65536 "
                   r"\(xpnet\.datasets\.MAX_CLASSES\)"),
    ("from_arrays-classes-beyond-data", lambda: _tiny_dataset([300, 0]),
     DatasetError, r"labels up to 300 give 301 classes but the data has only 3 labelled "
                   r"samples; more classes than samples are allowed only up to 256"),
    ("from_arrays-too-many-class-names",
     lambda: _tiny_dataset([0, 1], class_names=[f"c{i}" for i in range(70_000)]),
     DatasetError, r"70000 class names give 70000 classes; at most 65536 are allowed"),
    ("from_arrays-over-the-data-cap", lambda: _tiny_dataset([0, 1], cap="16"),
     DatasetError, r"t's x_train and x_test would take 48 bytes as float32 \(12 values\), "
                   r"above the 16-byte cap"),
    # backends
    ("get_backend-unknown", lambda: xn.get_backend("mxnet"),
     BackendError, r"unknown backend 'mxnet'; choose one of: auto, numpy, cupy, torch"),
]


@pytest.mark.parametrize("case_id,call,exc,match", CONSTRUCTOR_CASES,
                         ids=[c[0] for c in CONSTRUCTOR_CASES])
def test_constructor_or_loader_refuses(case_id, call, exc, match):
    _refused(call, exc, match)


def test_docs_table_lists_every_case():
    """docs/reliability.md and its inventory keep one row per case of the tables above."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    doc = (docs / "reliability.md").read_text() + \
        (docs / "reference" / "reliability-tests.md").read_text()
    ids = [c[0] for c in MODEL_CASES] + [c[0] for c in CONSTRUCTOR_CASES] + \
        [f"{m}-X:{x}-y:{y}" for m, x, y, _ in MIXED]
    missing = [i for i in ids if f"`{i}`" not in doc]
    assert not missing, f"add these cases to docs/reliability.md: {missing}"
    for name in ("test_sigkill_mid_save_leaves_a_loadable_checkpoint",
                 "test_arrays_on_another_device_are_refused", "test_refused_fit_writes_nothing",
                 "test_lying_manifest_is_refused_cheaply", "HYPOTHESIS_PROFILE=deep",
                 *_tests_in("test_cli_runs.py"), *_tests_in("test_data_limits.py"),
                 *_tests_in("test_files.py")):
        assert name in doc, name
    from test_cli import ERRORS

    missing = [e[0] for e in ERRORS if f"`{e[0]}`" not in doc]
    assert not missing, f"add these command-line cases to docs/reliability.md: {missing}"


def _tests_in(filename: str) -> list[str]:
    """The names of the test functions of a test module (read, not imported)."""
    import re

    text = (Path(__file__).resolve().parent / filename).read_text()
    return re.findall(r"^def (test_\w+)", text, flags=re.MULTILINE)


def test_every_error_class_is_a_valueerror_or_typeerror():
    for cls in (xn.CheckpointError, BackendError, DatasetError, xn.datasets.IDXError):
        assert issubclass(cls, ValueError), cls


def test_numpy_scalars_are_accepted_where_python_numbers_are():
    m = xn.MLP([np.int64(4), np.int32(3)], backend="numpy", seed=0)
    assert m.in_features == 4 and m.out_features == 3
    assert xn.SGD(lr=np.float32(0.5)).learning_rate(0) == 0.5
    assert xn.Constant(np.float32(0.25))(0) == 0.25
    assert xn.StepDecay(1.0, step_size=np.int64(2))(2) == pytest.approx(0.1)


@pytest.mark.skipif(HAVE_CUPY, reason="a GPU is usable here")
def test_cupy_without_gpu_says_why():
    for call in (lambda: xn.MLP([4, 3], backend="cupy"), lambda: xn.get_backend("cupy")):
        _refused(call, BackendError, r"backend 'cupy' is not available: .*"
                 r"(not installed|no CUDA GPU|cannot use a GPU|XPNET_DISABLE_CUPY)")


def test_batch_size_larger_than_data_is_clipped_as_documented():
    assert "clipped" in xn.fit.__doc__
    m = _models()["ce"]
    h = m.fit(X_OK, Y_OK, epochs=1, batch_size=10 * N, verbose=0)
    assert h.params["batch_size"] == N and h.params["steps_per_epoch"] == 1


# ------------------------------------------------------- mixed namespaces and devices

def _arr(kind, a):
    if kind == "numpy":
        return np.asarray(a)
    if kind == "torch":
        import torch

        return torch.asarray(np.asarray(a))
    import array_api_strict as xps

    return xps.asarray(np.asarray(a))


MIXED = [
    # (model backend, X kind, y kind, which argument is refused, regex)
    ("numpy", "torch", None, r"X is a torch array but the model lives on backend 'numpy'; "
                             r"pass a NumPy array, or move the model with model\.to\('torch'\)"),
    ("numpy", "numpy", "torch", r"y is a torch array but the model lives on backend 'numpy'"),
    ("numpy", "array_api_strict", None,
     r"X is an array_api_strict array but the model lives on backend 'numpy'"),
    ("torch", "array_api_strict", None,
     r"X is an array_api_strict array but the model lives on backend 'torch'"),
    ("torch", "torch", "array_api_strict",
     r"y is an array_api_strict array but the model lives on backend 'torch'"),
    ("array_api_strict", "torch", None,
     r"X is a torch array but the model lives on backend 'array_api_strict'"),
    ("array_api_strict", "array_api_strict", "torch",
     r"y is a torch array but the model lives on backend 'array_api_strict'"),
]


_MIXED_CALLS = [(entry, *row) for row in MIXED
                for entry in ("fit", "evaluate", "loss_and_grads", "predict")
                if not (entry == "predict" and row[2] is not None)]  # predict takes no y


@pytest.mark.parametrize("entry,model_be,x_kind,y_kind,match", _MIXED_CALLS,
                         ids=[f"{e}-{m}-X:{x}-y:{y}" for e, m, x, y, _ in _MIXED_CALLS])
def test_mixed_namespaces_are_refused(entry, model_be, x_kind, y_kind, match):
    kinds = {model_be, x_kind, y_kind} - {None}
    if "torch" in kinds and not HAVE_TORCH or "array_api_strict" in kinds and not HAVE_STRICT:
        pytest.skip("backend not installed")
    m = xn.MLP([4, 8, 3], backend=model_be, seed=0)
    snap = _snapshot(m)
    X = _arr(x_kind, X_OK.astype(np.float32))
    y = _arr(y_kind or "numpy", Y_OK.astype(np.int64))
    call = {
        "fit": lambda: m.fit(X, y, epochs=1, verbose=0),
        "evaluate": lambda: m.evaluate(X, y),
        "loss_and_grads": lambda: m.loss_and_grads(X, y),
        "predict": lambda: m.predict(X),
    }[entry]
    _refused(call, TypeError, match)
    _assert_unchanged(m, snap)


@pytest.mark.skipif(not HAVE_STRICT, reason="array_api_strict not installed")
def test_arrays_on_another_device_are_refused():
    import array_api_strict as xps

    m = xn.MLP([4, 8, 3], backend="array_api_strict", device=xps.Device("device1"), seed=0)
    snap = _snapshot(m)
    X = xps.asarray(X_OK.astype(np.float32))  # on the default CPU_DEVICE
    for call in (lambda: m.predict(X), lambda: m.fit(X, Y_OK, epochs=1, verbose=0)):
        _refused(call, TypeError, r"X is on device .*CPU_DEVICE.* but the model is on "
                                  r".*device1.*; move the data or the model")
    _assert_unchanged(m, snap)


def test_cupy_model_refuses_a_torch_array():
    """The message a CuPy model gives for a torch array (the check itself needs no GPU)."""
    if not HAVE_TORCH:
        pytest.skip("torch not installed")
    import array_api_compat.numpy as xp_np
    import torch

    fake_cupy = Backend("cupy", xp_np, "cuda:0")
    _refused(lambda: _checks.to_backend("X", torch.ones(3, 4), fake_cupy), TypeError,
             r"X is a torch array but the model lives on backend 'cupy'; pass a NumPy array, "
             r"or move the model with model\.to\('torch'\)")


@pytest.mark.skipif(not (HAVE_CUPY and HAVE_TORCH), reason="needs a GPU with CuPy and torch")
def test_real_cupy_model_refuses_a_torch_array():  # pragma: no cover - needs a GPU
    import torch

    m = xn.MLP([4, 8, 3], backend="cupy", seed=0)
    snap = _snapshot(m)
    _refused(lambda: m.predict(torch.ones(3, 4)), TypeError,
             r"X is a torch array but the model lives on backend 'cupy'")
    _assert_unchanged(m, snap)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_numpy_data_is_accepted_by_every_model():
    """NumPy is the host format: a torch model takes NumPy X with torch y (copied once)."""
    import torch

    m = xn.MLP([4, 8, 3], backend="torch", seed=0)
    h = m.fit(X_OK, torch.asarray(Y_OK), epochs=1, verbose=0)
    assert len(h.epoch) == 1


# --------------------------------------------------------------- SIGKILL during saves

_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    import xpnet as xn

    path, first = sys.argv[1], int(sys.argv[2])
    m = xn.MLP([784, 512, 10], backend="numpy", seed=0)
    base = {k: np.asarray(v).copy() for k, v in m.params.items()}
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts the next saver early and says "go" later
    i = first
    while True:
        m.params = {k: v + np.float32(i) for k, v in base.items()}
        xn.save(m, path, metadata={"index": i})
        print(i, flush=True)  # save number i has returned: it is on disk
        i += 1
""")


def _version_of(model, base) -> int:
    """The save index a loaded model holds; asserts it is one complete save, bit for bit."""
    i = int(round(float(xn.to_numpy(model.params["2.b"])[0] - base["2.b"][0])))
    for k, v in base.items():
        assert xn.to_numpy(model.params[k]).tobytes() == (v + np.float32(i)).tobytes(), (k, i)
    return i


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a real process that saves in a loop, many times; the file is always whole."""
    path = tmp_path / "ckpt.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    ref = xn.MLP([784, 512, 10], backend="numpy", seed=0)
    base = {k: np.asarray(v).copy() for k, v in ref.params.items()}
    ref.params = {k: v + np.float32(-1) for k, v in base.items()}
    xn.save(ref, path, metadata={"index": -1})
    on_disk = -1
    rng = np.random.default_rng(20261128)
    kills, stats = 25, {"saves": 0, "last_completed": 0, "in_flight_renamed": 0,
                        "stray_tmp": 0, "stray_tmp_complete": 0}
    def start(run):
        return subprocess.Popen([sys.executable, str(script), str(path), str(1000 * (run + 1))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    t_start = time.monotonic()
    upcoming = start(0)
    try:
        for run in range(kills):
            first = 1000 * (run + 1)
            proc, upcoming = upcoming, (start(run + 1) if run + 1 < kills else None)
            try:
                ready, _, _ = select.select([proc.stdout], [], [], 60)
                assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read()
                proc.stdin.write("go\n")
                proc.stdin.flush()
                time.sleep(float(rng.uniform(0.0, 0.25)))
            finally:
                proc.send_signal(signal.SIGKILL)
                out, _ = proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            done = [int(line) for line in out.splitlines(keepends=True) if line.endswith("\n")]
            assert done == list(range(first, first + len(done)))
            stats["saves"] += len(done)
            last = done[-1] if done else on_disk
            in_flight = first + len(done)

            ck = xn.load_checkpoint(path, backend="numpy")  # never a partial file
            version = _version_of(ck.model, base)
            assert ck.metadata["user"]["index"] == version
            assert version in (last, in_flight), (version, last, in_flight)
            stats["last_completed" if version == last else "in_flight_renamed"] += 1
            on_disk = version

            # temp files of a killed save stay behind; load never looks at them
            others = [p for p in tmp_path.iterdir() if p.name not in (path.name, script.name)]
            for p in others:
                assert p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp"), p.name
            for p in others:
                try:
                    stray = xn.load(p, backend="numpy")
                except xn.CheckpointError:
                    stats["stray_tmp"] += 1
                else:  # written in full, killed before os.replace: still one whole version
                    assert _version_of(stray, base) == in_flight
                    stats["stray_tmp_complete"] += 1
                p.unlink()
    finally:  # a failed run must not leave the next saver waiting on its stdin
        if upcoming is not None:
            upcoming.kill()
            upcoming.communicate()
    elapsed = time.monotonic() - t_start
    print(f"\nSIGKILL test: {kills} kills in {elapsed:.1f} s, {stats}")
    # the kills landed while saves were running, and some inside the write itself
    assert stats["saves"] >= kills
    assert stats["stray_tmp"] + stats["stray_tmp_complete"] >= 1
