"""The origin notebook's own code on MNIST's test images, and its ablation.

    python docs/notebook_ablation.py path/to/mnist   # holds the t10k-* files

Run by ``python docs/generate.py notebook``; From the notebook shows it.
"""

# The notebook seeds NumPy's legacy global generator; so does its replay here.
# ruff: noqa: NPY002

import gzip
import sys
from pathlib import Path

import numpy as np

# --8<-- [start:data]
folder = Path(sys.argv[1] if len(sys.argv) > 1 else "data/mnist")
with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16)
images = images.reshape(10000, 28, 28)
with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
x_train, y_train = images[:8000], labels[:8000]  # train: the first 8,000
# --8<-- [end:data]


# --8<-- [start:notebook]
# The notebook's functions, unchanged (comments and docstrings left out).
def init_params():
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1)
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1)
    return W1, b1, W2, b2


def ReLU(Z):
    return np.maximum(0, Z)


def softmax(Z):
    A = np.exp(Z - np.max(Z)) / np.sum(np.exp(Z - np.max(Z)), axis=0)
    return A


def forward_prop(W1, b1, W2, b2, X):
    Z1 = W1.dot(X) + b1
    A1 = ReLU(Z1)
    Z2 = W2.dot(A1) + b2
    A2 = softmax(Z2)
    return Z1, A1, Z2, A2


def one_hot(Y):
    one_hot_y = np.zeros((Y.size, Y.max() + 1))
    one_hot_y[np.arange(Y.size), Y] = 1
    one_hot_y = one_hot_y.T
    return one_hot_y


def deriv_ReLU(Z):
    return Z > 0


def back_prop(Z1, A1, Z2, A2, W1, W2, X, Y):
    m = Y.size
    one_hot_Y = one_hot(Y)
    dZ2 = 2*(A2 - one_hot_Y)
    dW2 = 1 / m * (dZ2.dot(A1.T))
    db2 = 1 / m * np.sum(dZ2, 1)
    dZ1 = W2.T.dot(dZ2) * deriv_ReLU(Z1)
    dW1 = 1 / m * (dZ1.dot(X.T))
    db1 = 1 / m * np.sum(dZ1, 1)
    return dW1, db1, dW2, db2


def update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha):
    W1 -= alpha * dW1
    b1 -= alpha * np.reshape(db1, (10, 1))
    W2 -= alpha * dW2
    b2 -= alpha * np.reshape(db2, (10, 1))
    return W1, b1, W2, b2


def notebook_accuracy(X, Y, iterations=500, alpha=0.1):
    """The notebook's gradient_descent, then the accuracy of its last A2."""
    np.random.seed(0)
    W1, b1, W2, b2 = init_params()
    for _ in range(iterations):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = back_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2,
                                       dW1, db1, dW2, db2, alpha)
    return np.mean(np.argmax(forward_prop(W1, b1, W2, b2, X)[3], 0) == Y)
# --8<-- [end:notebook]


# --8<-- [start:ablation]
def run(X, Y, zero_bias=False, factor=2.0, global_max=False,
        it=500, alpha=0.1):
    """The notebook's loop, with switches: biases, the 2, the softmax."""
    np.random.seed(0)
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1)
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1)
    if zero_bias:
        b1[:] = 0
        b2[:] = 0
    m = Y.size
    oh = np.zeros((10, m))
    oh[Y, np.arange(m)] = 1
    for _ in range(it):
        Z1 = W1 @ X + b1
        A1 = np.maximum(Z1, 0)
        Z2 = W2 @ A1 + b2
        top = Z2.max() if global_max else Z2.max(axis=0, keepdims=True)
        E = np.exp(Z2 - top)
        A2 = E / E.sum(axis=0)
        dZ2 = factor * (A2 - oh)
        dW2 = dZ2 @ A1.T / m
        db2 = dZ2.sum(1, keepdims=True) / m
        dZ1 = (W2.T @ dZ2) * (Z1 > 0)
        dW1 = dZ1 @ X.T / m
        db1 = dZ1.sum(1, keepdims=True) / m
        W1 -= alpha * dW1
        b1 -= alpha * db1
        W2 -= alpha * dW2
        b2 -= alpha * db2
    Z2 = W2 @ np.maximum(W1 @ X + b1, 0) + b2
    return np.mean(np.argmax(Z2, 0) == Y)


X = x_train.reshape(8000, -1).T / 255.0       # the reshape fixed
print("biases  gradient   softmax max   train accuracy")
for zero_bias, factor, global_max in [(False, 2.0, True), (False, 2.0, False),
                                      (True, 2.0, False), (False, 1.0, False),
                                      (True, 1.0, False)]:
    acc = run(X, y_train, zero_bias, factor, global_max)
    print(f"{'zero' if zero_bias else 'U(0,1)':7} {factor:.0f}*(A2-Y)  "
          f"{'global' if global_max else 'per column':13} {acc}")
# --8<-- [end:ablation]

scrambled = x_train.reshape(-1, 8000) / 255.0   # the notebook's reshape
fixed = x_train.reshape(8000, -1).T / 255.0
print("notebook's own code, scrambled:", notebook_accuracy(scrambled, y_train))
print("notebook's own code, fixed:    ", notebook_accuracy(fixed, y_train))
