"""Train a 784-256-10 MLP on MNIST on the CPU with NumPy, save it and load it back.

    python examples/cpu_mnist.py --data-dir ~/data/mnist   # the four MNIST files
    python examples/cpu_mnist.py                           # MNIST from xpnet's cache, else digits
    python examples/cpu_mnist.py --fast                    # bundled 8x8 digits, a few seconds

A folder holding only the MNIST test files (t10k-*) also works: the first 8,000 test
images train, the last 2,000 test. See docs/getting-started.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from example_data import load_example_data

import xpnet as xn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files, or an .npz file")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--hidden", type=int, default=256, help="hidden layer width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="where to write the model (default: a temporary file)")
    parser.add_argument("--fast", action="store_true",
                        help="train on the bundled 8x8 digits (a few seconds)")
    args = parser.parse_args(argv)

    data, note = load_example_data(args.data_dir, fast=args.fast)
    print(note)
    print(data.summary())

    model = xn.MLP([data.n_features, args.hidden, data.num_classes], backend="numpy",
                   seed=args.seed)
    print(model.summary())
    history = model.fit(data.x_train, data.y_train, epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=xn.Adam(lr=args.lr),
                        validation_split=0.1, seed=args.seed, verbose=1)

    h = history.history
    best = max(range(len(h["val_accuracy"])), key=h["val_accuracy"].__getitem__)
    print(f"best validation accuracy {h['val_accuracy'][best]:.4f} after epoch {best + 1}; "
          f"trained in {history.params['train_seconds']:.1f} s")

    result = model.evaluate(data.x_test, data.y_test)
    print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f})")

    # Save, load back, and check the reloaded model predicts exactly the same labels.
    with tempfile.TemporaryDirectory() as tmp:
        path = args.save or os.path.join(tmp, "cpu_mnist.safetensors")
        xn.save(model, path)
        same = xn.load(path, backend="numpy")
        agree = bool((same.predict(data.x_test) == model.predict(data.x_test)).all())
        print(f"saved to {path}; reloaded model gives the same predictions: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
