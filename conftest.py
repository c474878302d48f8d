"""Collection rules for the whole suite (the fixtures live in tests/conftest.py).

The examples in ``xpnet/export`` run ONNX export, which needs the optional
``xpnet[onnx]`` extra (ndonnx needs Python 3.11 or later); without it their doctests
are not collected. ``tests/test_onnx.py`` skips the same way, with the reason.
"""

import importlib.util

collect_ignore_glob = []
if any(importlib.util.find_spec(m) is None for m in ("ndonnx", "onnx", "onnxruntime")):
    collect_ignore_glob.append("xpnet/export/*.py")
