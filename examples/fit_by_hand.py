"""Everything ``fit`` does, as a short loop of public calls.

    python examples/fit_by_hand.py            # bundled 8x8 digits
    python examples/fit_by_hand.py --fast     # fewer epochs

Validation split, dropout drawn from the run's generator, the running loss and
accuracy summed in float64, the non-finite checks (of the loss and gradients, and of
the update, which is applied only if every new value is finite), the callbacks with
their History, and a resumable checkpoint at the end. The last lines
train the same model with ``fit`` and check that both end with the same bits.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import xpnet as xn


# --8<-- [start:fit_by_hand]
def fit_by_hand(model, X, y, *, epochs, batch_size, seed, val_fraction,
                callbacks):
    xp, backend, loss_fn = model.xp, model.backend, model.loss
    # to the device, once
    X = backend.asarray(X, dtype=model.dtype)
    y = backend.asarray(y)
    # fit holds out the last rows
    n_val = math.floor(X.shape[0] * val_fraction)
    X, y, Xv, yv = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
    n, steps = X.shape[0], math.ceil(X.shape[0] / batch_size)
    opt = xn.Adam(lr=1e-3)
    opt.state = opt.init(model.params)
    model.optimizer = opt                       # saved with the model
    rng = xn.RNG(seed)                          # batch order and dropout
    # History comes first
    cbs = xn.training.CallbackList(callbacks, model=model)
    cbs.on_train_begin({"epochs": epochs, "steps_per_epoch": steps,
                        "samples": n, "batch_size": batch_size,
                        "has_validation": True})
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch, {})
        t0 = time.perf_counter()
        perm = rng.permutation(n, backend)      # int64, on the device
        # float64 sums, as fit keeps
        run_loss, run_correct = 0.0, 0.0
        for k in range(steps):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            xb, yb = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
            loss, grads, out = model.loss_and_grads(
                xb, yb, check_values=False, rng=rng, return_output=True)
            # never apply a bad step: a NaN/inf gradient makes a new
            # value NaN/inf, which the checked update refuses
            if not math.isfinite(float(loss)) or not opt.update_(
                    model.params, grads, opt.state, check_finite=True):
                raise xn.NonFiniteLossError(epoch + 1, k + 1)
            run_loss += float(loss) * idx.shape[0]
            run_correct += float(loss_fn.count_correct(out, yb))
        logs = {"loss": run_loss / n, "accuracy": run_correct / n}
        val = model.evaluate(Xv, yv)
        logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = opt.learning_rate(opt.state["step"] - 1)
        logs["seconds"] = time.perf_counter() - t0
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:                 # e.g. EarlyStopping
            break
    cbs.on_train_end({})
    history = cbs.history.to_dict()["history"]
    state = xn.training.TrainState(epoch=epoch + 1, seed=seed,
                                   rng=rng.get_state(), history=history)
    return cbs.history, state
# --8<-- [end:fit_by_hand]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fast", action="store_true", help="3 epochs")
    args = parser.parse_args(argv)
    epochs = 3 if args.fast else args.epochs
    data = xn.datasets.load("digits")

    def model():
        return xn.MLP([data.n_features, 128, data.num_classes], dropout=0.1,
                      backend="numpy", seed=0)

    mine = model()
    history, state = fit_by_hand(mine, data.x_train, data.y_train, epochs=epochs,
                                 batch_size=64, seed=7, val_fraction=0.1,
                                 callbacks=[xn.ProgressBar()])
    with tempfile.TemporaryDirectory() as tmp:                 # resumable: fit continues it
        path = xn.save(mine, Path(tmp) / "m.safetensors", training=state.to_record())
        ckpt = xn.load_checkpoint(path, backend="numpy")
        more = ckpt.model.fit(data.x_train, data.y_train, epochs=epochs + 1, batch_size=64,
                              validation_split=0.1, resume=ckpt.training, verbose=0)
        print(f"fit(resume=...) continued the run to epoch {len(more.epoch)}")

    ref = model()
    h = ref.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, seed=7,
                optimizer=xn.Adam(lr=1e-3), validation_split=0.1, verbose=0)
    diff = max(float(abs(xn.to_numpy(mine.params[k]) - xn.to_numpy(ref.params[k])).max())
               for k in mine.params)
    print(f"largest difference from fit()'s parameters: {diff:.3g}")
    same = all(history.history[k] == h.history[k] for k in ("loss", "accuracy", "val_loss"))
    print(f"same loss, accuracy and val_loss history as fit(): {same}")
    print(f"test accuracy: {mine.evaluate(data.x_test, data.y_test)['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
