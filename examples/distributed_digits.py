"""Data-parallel training of the bundled digits: the same script on one or many processes.

    python examples/distributed_digits.py                    # one process
    mpiexec -n 4 python examples/distributed_digits.py       # 4 ranks, 32 rows each per step

Every rank loads the data, builds the model and calls ``fit`` with the same arguments;
``distributed=comm`` makes them one run: each step takes ``--batch-size`` rows on every
rank, so the global batch is ``--batch-size x ranks``. The learning rate follows the
linear scaling rule (base rate x ranks, reached after a warm-up). Rank 0 alone prints
and saves. Needs ``pip install ".[mpi]"`` for more than one process.
"""

from __future__ import annotations

import argparse
import math

import xpnet as xn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32, help="rows per rank per step")
    p.add_argument("--lr", type=float, default=2e-3, help="rate of one rank; x ranks")
    p.add_argument("--save", metavar="FILE", help="save the model here (rank 0)")
    p.add_argument("--fast", action="store_true", help="3 epochs")
    args = p.parse_args()
    comm = xn.distributed.init()  # a SingleProcess outside mpiexec/srun

    data = xn.datasets.load("digits")
    model = xn.MLP([64, 128, 10], backend="numpy", seed=0)
    epochs = 3 if args.fast else args.epochs
    steps = math.ceil(0.9 * data.x_train.shape[0] / (args.batch_size * comm.size))
    lr = xn.LinearWarmup(args.lr * comm.size, warmup_steps=steps)  # one epoch of warm-up
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=args.batch_size,
              optimizer=xn.Adam(lr=lr), validation_split=0.1, seed=1,
              verbose=1 if comm.is_root else 0, distributed=comm)

    result = model.evaluate(data.x_test, data.y_test)  # every rank holds the same model
    if comm.is_root:
        print(f"ranks: {comm.size}, global batch: {args.batch_size * comm.size}")
        print(f"test accuracy: {result['accuracy']:.4f}")
        if args.save:
            xn.save(model, args.save)


if __name__ == "__main__":
    main()
