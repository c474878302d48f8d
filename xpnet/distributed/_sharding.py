"""Which rows of a global batch each rank takes: contiguous, as even as possible."""

from __future__ import annotations

__all__ = ["shard_rows"]


def shard_rows(lo: int, hi: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous slice ``[start, stop)`` of rows ``[lo, hi)`` that ``rank`` takes.

    The ``m = hi - lo`` rows are split into ``size`` contiguous parts whose
    lengths differ by at most one: the first ``m % size`` ranks take
    ``m // size + 1`` rows, the others ``m // size`` (the split of
    ``numpy.array_split``). Every rank takes a full ``b`` rows of a full global
    batch of ``b * size`` rows; only the last, partial batch of an epoch is
    uneven, and when it has fewer rows than there are ranks the last ranks take
    none.

    Parameters
    ----------
    lo, hi : int
        The global batch: rows ``lo`` to ``hi - 1`` of the epoch's order.
    rank, size : int
        This process's rank and the number of ranks.

    Returns
    -------
    tuple of int
        ``(start, stop)`` with ``lo <= start <= stop <= hi``.

    Examples
    --------
    A last batch of 10 rows over 4 ranks:

    >>> from xpnet.distributed import shard_rows
    >>> [shard_rows(100, 110, r, 4) for r in range(4)]
    [(100, 103), (103, 106), (106, 108), (108, 110)]
    >>> [shard_rows(0, 2, r, 3) for r in range(3)]
    [(0, 1), (1, 2), (2, 2)]
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    if hi < lo:
        raise ValueError(f"empty range: hi {hi} < lo {lo}")
    base, extra = divmod(hi - lo, size)
    start = lo + rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
