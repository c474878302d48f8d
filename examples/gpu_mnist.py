"""Train an MLP on MNIST on a CUDA GPU with CuPy: the same code as on the CPU.

    pip install ".[cuda12]"                                # or ".[cuda13]"
    python examples/gpu_mnist.py --data-dir ~/data/mnist
    python examples/gpu_mnist.py --fast --allow-cpu        # no GPU: run it on NumPy

Without a usable GPU the script says why and stops, unless ``--allow-cpu`` is given,
in which case it runs the same code on NumPy. It shows that the initial parameters
are bitwise identical to NumPy's for the same seed, trains with large batches, then
moves the model to the host with ``model.to("numpy")``. See docs/gpu.md.
"""

from __future__ import annotations

import argparse
import sys

from example_data import load_example_data

import xpnet as xn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files, or an .npz file")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on NumPy when CuPy or a GPU is not available")
    parser.add_argument("--fast", action="store_true",
                        help="train on the bundled 8x8 digits (a few seconds)")
    args = parser.parse_args(argv)

    if "cupy" in xn.available_backends():
        backend = "cupy"
    else:
        why = xn.backends.backend_status()["cupy"]
        print(f"the cupy backend is not available: {why}")
        if not args.allow_cpu:
            print("pass --allow-cpu to run this example on NumPy instead", file=sys.stderr)
            return 2
        print("--allow-cpu: running the same code on the numpy backend")
        backend = "numpy"

    data, note = load_example_data(args.data_dir, fast=args.fast)
    print(note)
    print(data.summary())
    batch_size = min(args.batch_size, 128) if args.fast else args.batch_size

    sizes = [data.n_features, 512, 256, data.num_classes]
    model = xn.MLP(sizes, backend=backend, seed=args.seed)
    print(f"backend {model.backend.name} on {model.backend.device_name}")

    # Same seed, same initial parameters on every backend, bit for bit: they are drawn
    # on the host from one PCG64 generator and copied to the device once.
    reference = xn.MLP(sizes, backend="numpy", seed=args.seed)
    identical = all((xn.to_numpy(model.params[k]) == reference.params[k]).all()
                    for k in model.params)
    print(f"initial parameters bitwise identical to NumPy's: {identical}")

    # NumPy arrays are copied to the device once; each batch is a take() on the device,
    # and the running loss is read only at display intervals.
    history = model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=batch_size,
                        optimizer=xn.Adam(lr=args.lr), validation_split=0.1, seed=args.seed,
                        verbose=1)
    seconds = history.params["train_seconds"]
    samples = history.params["samples"] * len(history.epoch)
    print(f"trained {len(history.epoch)} epochs in {seconds:.1f} s "
          f"({samples / seconds:,.0f} samples/s)")

    result = model.evaluate(data.x_test, data.y_test)
    print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f})")

    labels = model.predict(data.x_test[:10])            # an array on the model's device
    print("first predictions:", xn.to_numpy(labels).tolist())   # the explicit host copy

    model.to("numpy")                                   # same weights, now on the host
    on_host = model.evaluate(data.x_test, data.y_test)
    print(f"after model.to('numpy'): test accuracy {on_host['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
