"""A custom layer with its own backward: define it, gradient-check it, train it, save it.

    python examples/custom_layer.py           # bundled 8x8 digits
    python examples/custom_layer.py --fast    # fewer epochs

The layer is PReLU (He et al., 2015): ``x`` for positive inputs, ``a * x`` otherwise,
with one learned slope ``a`` per feature. See docs/custom-layer.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

import xpnet as xn


@xn.register_layer  # so that checkpoints using PReLU can be loaded
class PReLU(xn.Layer):
    """Parametric ReLU with one learned negative slope per feature."""

    def __init__(self, init: float = 0.25):
        self.init_slope = float(init)

    def init(self, in_features, rng, *, backend, dtype):
        # Parameters are created here, on the model's backend, device and dtype.
        xp = backend.xp
        return {"a": xp.full((in_features,), self.init_slope, dtype=dtype,
                             device=backend.device)}

    def forward(self, params, x, *, train=False):
        xp = xn.backends.backend_of(x).xp
        y = xp.where(x > 0, x, params["a"] * x)
        return y, x                     # the cache: what backward needs

    def backward(self, params, cache, dy):
        x = cache
        xp = xn.backends.backend_of(dy).xp
        dx = xp.where(x > 0, dy, params["a"] * dy)
        da = xp.sum(xp.where(x > 0, 0.0, x * dy), axis=0)   # sum over the batch
        return dx, {"a": da}            # same keys as params

    def out_features(self, in_features):
        return in_features

    def get_config(self):
        return {"init": self.init_slope}    # constructor arguments, JSON


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", default="numpy",
                        help="numpy, torch, array_api_strict, cupy (if installed)")
    parser.add_argument("--fast", action="store_true", help="5 epochs")
    args = parser.parse_args(argv)
    epochs = min(args.epochs, 5) if args.fast else args.epochs

    # 1. Check the backward pass against central finite differences in float64.
    x = np.random.default_rng(0).normal(size=(6, 5))
    errors = xn.testing.check_gradients(PReLU(), x, backend=args.backend)
    print("gradient check passed; largest relative errors:",
          {k: f"{v:.1e}" for k, v in errors.items()})

    # ... and inside a model (every parameter, through the loss); the model must be float64.
    small = xn.Sequential([xn.Dense(8), PReLU(), xn.Dense(3)], in_features=5,
                          backend=args.backend, dtype="float64", seed=0)
    xn.testing.check_gradients(small, x, np.array([0, 1, 2, 0, 1, 2]))
    print("model gradient check passed")

    # 2. Train it like any built-in layer.
    data = xn.datasets.load("digits")
    model = xn.Sequential([xn.Dense(128), PReLU(), xn.Dense(data.num_classes)],
                          in_features=data.n_features, backend=args.backend, seed=0)
    print(model.summary())
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64,
              optimizer=xn.Adam(lr=2e-3), verbose=0)
    result = model.evaluate(data.x_test, data.y_test)
    print(f"test accuracy: {result['accuracy']:.4f}")
    slopes = xn.to_numpy(model.params["1.a"])
    print(f"learned slopes: mean {slopes.mean():.3f}, min {slopes.min():.3f}, "
          f"max {slopes.max():.3f}")

    # 3. Save and load: register_layer (above) lets load() rebuild PReLU from its config.
    with tempfile.TemporaryDirectory() as tmp:
        path = xn.save(model, os.path.join(tmp, "prelu.safetensors"))
        again = xn.load(path, backend="numpy")
        same = np.array_equal(xn.to_numpy(again.params["1.a"]), slopes)
        print(f"reloaded {type(again.layers[1]).__name__} with identical slopes: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
