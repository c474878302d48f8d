"""The xpnet runs of the From the notebook page, on MNIST's 10,000 test images.

    python docs/notebook_xpnet.py path/to/mnist   # holds the t10k-* files

Run by ``python docs/generate.py notebook``; the page shows this code and its
output.
"""

# --8<-- [start:code]
import gzip
import sys
from pathlib import Path

import numpy as np

import xpnet as xn

# A folder holding t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
folder = Path(sys.argv[1] if len(sys.argv) > 1 else "data/mnist")
with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16)
images = images.reshape(10000, 28, 28)
with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)

x_train, y_train = images[:8000], labels[:8000]  # train: first 8,000
x_test, y_test = images[8000:], labels[8000:]    # test: last 2,000

# The notebook's reshape: (8000, 28, 28) -> (784, 8000); column j isn't image j
scrambled = (x_train.reshape(-1, len(x_train)) / 255.0).T.astype(np.float32)
# The fix: one row per image (xpnet wants samples as rows).
fixed = (x_train.reshape(len(x_train), -1) / 255.0).astype(np.float32)
fixed_test = (x_test.reshape(len(x_test), -1) / 255.0).astype(np.float32)


def notebook_run(X, init):
    """784-10-10 ReLU, full batch, gradient descent, lr 0.1, 500 iterations."""
    model = xn.MLP([784, 10, 10], init=init, backend="numpy", seed=0)
    model.fit(X, y_train, epochs=500, batch_size=None, shuffle=False,
              optimizer=xn.SGD(lr=0.1), verbose=0)
    return model


def report(name, model, X, test=True):
    line = f"{name:28}: train {model.evaluate(X, y_train)['accuracy']:.4f}"
    if test:
        line += f"  test {model.evaluate(fixed_test, y_test)['accuracy']:.4f}"
    print(line)


report("(a) scrambled, uniform init", notebook_run(scrambled, "uniform"),
       scrambled, test=False)
report("(b) fixed, uniform init", notebook_run(fixed, "uniform"), fixed)
report("(c) fixed, He init", notebook_run(fixed, None), fixed)  # He normal

d = xn.MLP([784, 256, 10], backend="numpy", seed=0)
d.fit(fixed, y_train, epochs=10, batch_size=128, optimizer=xn.Adam(lr=1e-3),
      verbose=0)
report("(d) 784-256-10, Adam", d, fixed)
# --8<-- [end:code]
