"""The origin notebook's exact experiment, in xpnet, with its bugs fixed.

784-10-10 ReLU/softmax, full-batch gradient descent (lr 0.1), 500 iterations,
weights U(-0.5, 0.5) (``init="uniform"``) and zero biases; train accuracy printed
every 50 iterations as the notebook printed it every 10.

    python examples/notebook_config.py --data-dir ~/data/mnist     # MNIST files
    python examples/notebook_config.py                             # digits, 64-10-10
    python examples/notebook_config.py --scrambled                 # the notebook's reshape bug
    python examples/notebook_config.py --fast                      # digits, 300 iterations

``--scrambled`` feeds the network the notebook's ``x.reshape(-1, n)``: every
"image" becomes a mix of rows of different images and accuracy stays near chance.
See docs/notebook.md.
"""

from __future__ import annotations

import argparse
import sys

from example_data import load_example_data

import xpnet as xn


class PrintEvery(xn.Callback):
    """Print the train loss and accuracy every ``every`` epochs (= iterations).

    Like the notebook's, the numbers are those of the forward pass *before* that
    iteration's update.
    """

    def __init__(self, every: int):
        self.every = every
        self.total = 0

    def on_train_begin(self, logs):
        self.total = logs["epochs"]

    def on_epoch_end(self, epoch, logs):
        if epoch % self.every == 0 or epoch + 1 == self.total:
            print(f"iteration {epoch:>3}  loss {logs['loss']:.4f}  "
                  f"train accuracy {logs['accuracy']:.4f}")


def scramble(x, image_shape):
    """The notebook's ``x.reshape(-1, n)`` (then transposed to one row per "sample")."""
    n = x.shape[0]
    images = x.reshape(n, *image_shape)      # back to (n, rows, cols)
    return images.reshape(-1, n).T.copy()   # (features, n) -> (n, features): pixels mixed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files, or an .npz file")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scrambled", action="store_true",
                        help="reproduce the notebook's reshape bug")
    parser.add_argument("--fast", action="store_true",
                        help="bundled digits, at most 300 iterations (a few seconds)")
    args = parser.parse_args(argv)
    iterations = min(args.iterations, 300) if args.fast else args.iterations

    data, note = load_example_data(args.data_dir, fast=args.fast)
    print(note)
    print(data.summary())
    x_train, x_test = data.x_train, data.x_test
    if args.scrambled:
        x_train = scramble(x_train, data.image_shape)
        x_test = scramble(x_test, data.image_shape)
        print("--scrambled: using the notebook's x.reshape(-1, n)")

    # The notebook's network: n_features-10-10, ReLU, softmax + cross-entropy.
    model = xn.MLP([data.n_features, 10, 10], activation="relu", init="uniform",
                   backend="numpy", seed=args.seed)
    # One epoch of one full batch = one iteration of the notebook's gradient_descent.
    model.fit(x_train, data.y_train, epochs=iterations, batch_size=None, shuffle=False,
              optimizer=xn.SGD(lr=args.lr), callbacks=[PrintEvery(50)], verbose=0)

    train = model.evaluate(x_train, data.y_train)
    test = model.evaluate(x_test, data.y_test)
    print(f"train accuracy: {train['accuracy']:.4f}")
    print(f"test accuracy: {test['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
