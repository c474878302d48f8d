"""A residual MLP with LayerNorm on the bundled digits, on NumPy and torch: train, save,
load, export to ONNX and check that onnxruntime agrees with predict.

    python examples/residual_digits.py                      # NumPy and torch (if installed)
    python examples/residual_digits.py --backends numpy     # one backend
    python examples/residual_digits.py --fast               # fewer epochs

Each residual block is pre-norm, ``x + Dense(ReLU(Dense(LayerNorm(x))))``, built from
xn.Residual and xn.Block; its parameters are keyed ``"<layer>.<layer in block>.<name>"``
(``"1.1.W"``). See docs/research.md and docs/custom-layer.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap

import numpy as np

import xpnet as xn


def residual_mlp(data: xn.datasets.Dataset, *, width: int, blocks: int, backend: str,
                 seed: int) -> xn.Sequential:
    """Dense(width) -> blocks x Residual(LayerNorm, Dense, ReLU, Dense) -> LayerNorm -> head."""
    layers: list[xn.Layer] = [xn.Dense(width)]
    for _ in range(blocks):
        layers.append(xn.Residual(xn.Block([xn.LayerNorm(), xn.Dense(2 * width), xn.ReLU(),
                                            xn.Dense(width)])))
    layers += [xn.LayerNorm(), xn.Dense(data.num_classes)]
    return xn.Sequential(layers, in_features=data.n_features, backend=backend, seed=seed)


def run(backend: str, data: xn.datasets.Dataset, args: argparse.Namespace,
        tmp: str) -> bool:
    """Train on one backend, then save, load and export; True when every check holds."""
    model = residual_mlp(data, width=args.width, blocks=args.blocks, backend=backend,
                         seed=args.seed)
    if backend == "numpy":
        print(model.summary())
        print(textwrap.fill("parameter keys: " + ", ".join(model.params), width=88,
                            subsequent_indent="  "))
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=64, verbose=0,
              optimizer=xn.AdamW(lr=2e-3, weight_decay=1e-4, decay="weights"))
    accuracy = model.evaluate(data.x_test, data.y_test)["accuracy"]
    print(f"{backend}: test accuracy: {accuracy:.4f}")

    # save and load: the blocks are rebuilt from their config, the weights bit for bit
    path = xn.save(model, os.path.join(tmp, f"residual-{backend}.safetensors"))
    again = xn.load(path, backend=backend)
    same = np.array_equal(xn.to_numpy(again.predict_proba(data.x_test)),
                          xn.to_numpy(model.predict_proba(data.x_test)))
    print(f"{backend}: reloaded model gives identical predictions: {same}")

    # ONNX: the graph is traced from the layers' own forward, then run in onnxruntime
    import onnxruntime as ort

    onnx_path = xn.export_onnx(again, os.path.join(tmp, f"residual-{backend}.onnx"),
                               outputs=["proba", "labels"])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    proba, labels = session.run(None, {"input": data.x_test})
    diff = float(np.abs(proba - xn.to_numpy(model.predict_proba(data.x_test))).max())
    agree = bool(np.array_equal(labels, xn.to_numpy(model.predict(data.x_test)))) \
        and diff < 1e-5
    print(f"{backend}: onnxruntime agrees with predict: {agree} "
          "(the same labels, probabilities within 1e-5)")
    return same and agree and accuracy > 0.85


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch",
                        help="comma-separated backends (uninstalled ones are skipped)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="at most 8 epochs")
    args = parser.parse_args(argv)
    if args.fast:
        args.epochs = min(args.epochs, 8)
    try:
        xn.export.require_onnx()
    except ImportError as exc:
        print(exc)
        return 1

    data = xn.datasets.load("digits")
    print(data.summary())
    status = xn.backends.backend_status()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            why = status.get(backend, f"unknown backend {backend!r}")
            if why is not None:
                print(f"{backend}: skipped ({why})")
                continue
            ok = run(backend, data, args, tmp) and ok
    print("all checks passed" if ok else "a check failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
