"""Export a trained model to ONNX by tracing the layers' own forward code.

xpnet's layers are written against the Python Array API standard, and ndonnx is an Array
API namespace whose arrays record an ONNX graph instead of computing. So
[`export_onnx`][xpnet.export.export_onnx] runs every layer's
``forward(params, x, train=False)`` with an ``ndonnx`` input and the parameters as
``ndonnx`` constants: no layer has a second, hand-written ONNX implementation, and a
custom layer that sticks to the standard exports as it is. ``pip install ndonnx onnx
onnxruntime`` (or ``pip install ".[onnx]"`` in a clone of xpnet) brings them (Python 3.11
or later).

The graph's input is ``"input"`` (the model's dtype, shape ``(batch, in_features)``) and
its outputs are any of ``"proba"``, ``"logits"`` and ``"labels"``; the names, dtypes,
shapes, the xpnet version, the architecture and, when known, the dataset and its class
names are stored in the model's ``metadata_props`` (see ``docs/onnx.md``).

Examples
--------
>>> import os, tempfile, xpnet as xn
>>> tmp = tempfile.TemporaryDirectory()
>>> model = xn.MLP([4, 8, 3], backend="numpy", seed=0)
>>> path = xn.export_onnx(model, os.path.join(tmp.name, "model.onnx"), outputs="labels")
>>> path.name
'model.onnx'
>>> tmp.cleanup()
"""

from __future__ import annotations

from ._onnx import (
    BATCH_DIM,
    INPUT_NAME,
    OUTPUTS,
    ExportError,
    export_onnx,
    require_onnx,
)

__all__ = ["export_onnx", "ExportError", "require_onnx", "INPUT_NAME", "OUTPUTS", "BATCH_DIM"]
