"""Your own training loop: loss_and_grads, a pure Adam update, a cosine schedule.

    python examples/custom_loop.py            # bundled 8x8 digits
    python examples/custom_loop.py --fast     # fewer epochs

The loop below is what ``fit`` does, written out: the batch order comes from an
``xn.RNG`` seeded like ``fit(seed=...)``, so the last lines check that the loop and
``fit`` end with the same parameters. See docs/custom-loop.md.
"""

from __future__ import annotations

import argparse
import math
import sys

import xpnet as xn


def train_by_hand(data, *, epochs: int, batch_size: int, lr: float, seed: int):
    model = xn.MLP([data.n_features, 128, data.num_classes], backend="numpy", seed=seed)
    xp, backend = model.xp, model.backend
    X = backend.asarray(data.x_train, dtype=model.dtype)   # to the device, once
    y = backend.asarray(data.y_train)
    n = X.shape[0]
    steps = math.ceil(n / batch_size)

    opt = xn.Adam(lr=xn.CosineDecay(lr, total_steps=epochs * steps))
    state = opt.init(model.params)              # {"step": 0, "exp_avg": {...}, ...}
    rng = xn.RNG(seed)                          # batch order, same on every backend

    for epoch in range(epochs):
        perm = rng.permutation(n, backend)      # int64 indices on the device
        total = xp.zeros((), dtype=model.dtype, device=backend.device)
        for step in range(steps):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            xb, yb = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
            loss, grads = model.loss_and_grads(xb, yb)            # loss: 0-d device array
            model.params, state = opt.update(model.params, grads, state)  # pure update
            total = total + loss * float(idx.shape[0])           # stays on the device
        pred = model.predict(data.x_test)
        acc = float(xn.metrics.accuracy(backend.asarray(data.y_test), pred))
        print(f"epoch {epoch + 1}/{epochs}  loss {float(total) / n:.4f}  "   # one read per epoch
              f"lr {opt.learning_rate(state['step'] - 1):.5f}  test accuracy {acc:.4f}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="5 epochs")
    args = parser.parse_args(argv)
    epochs = min(args.epochs, 5) if args.fast else args.epochs

    data = xn.datasets.load("digits")
    print(data.summary())
    model = train_by_hand(data, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed)

    y_true = model.backend.asarray(data.y_test)
    pred = model.predict(data.x_test)
    print(f"test accuracy: {float(xn.metrics.accuracy(y_true, pred)):.4f}")
    cm = xn.metrics.confusion_matrix(y_true, pred, data.num_classes)
    print("confusion matrix diagonal:", xn.to_numpy(cm).diagonal().tolist())

    # The same run through fit: same seed, same schedule, same batch order.
    steps = math.ceil(len(data.y_train) / args.batch_size)
    ref = xn.MLP([data.n_features, 128, data.num_classes], backend="numpy", seed=args.seed)
    ref.fit(data.x_train, data.y_train, epochs=epochs, batch_size=args.batch_size,
            optimizer=xn.Adam(lr=xn.CosineDecay(args.lr, total_steps=epochs * steps)),
            seed=args.seed, verbose=0)
    diff = max(float(abs(xn.to_numpy(model.params[k]) - xn.to_numpy(ref.params[k])).max())
               for k in model.params)
    print(f"largest difference from fit()'s parameters: {diff:.3g}")
    xn.testing.assert_close(model.params["0.W"], ref.params["0.W"], rtol=1e-5, atol=1e-6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
