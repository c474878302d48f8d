"""split_rows: the one validation-split helper, one test per policy and its caller's old code."""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet._split import split_rows, take_rows


@pytest.mark.parametrize("n, fraction", [(10, 0.2), (300, 0.3), (7, 0.5), (1437, 0.1)])
def test_last_is_fit_s_tail_slices(n, fraction):
    X = np.arange(n * 2).reshape(n, 2)
    train, val = split_rows(n, fraction, policy="last")
    n_val = int(math.floor(n * fraction))  # fit(validation_split=) until now: X[-n_val:]
    assert isinstance(train, slice) and isinstance(val, slice)
    np.testing.assert_array_equal(take_rows(X, val), X[-n_val:])
    np.testing.assert_array_equal(take_rows(X, train), X[:-n_val])


@pytest.mark.parametrize("n, fraction, seed", [(10, 0.2, 0), (60000, 0.1, 0), (7, 0.5, 9)])
def test_random_is_the_cli_split(n, fraction, seed):
    train, val = split_rows(n, fraction, policy="random", seed=seed)
    # `xpnet train --val-split` until now: a seeded permutation, both parts sorted
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(math.floor(n * fraction))
    np.testing.assert_array_equal(val, np.sort(perm[:n_val]))
    np.testing.assert_array_equal(train, np.sort(perm[n_val:]))


def test_stratified_is_sklearn_train_test_split():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import train_test_split

    labels = np.repeat([0, 1, 2], [50, 30, 20])
    for strata in (labels, None):
        train, val = split_rows(100, 0.1, policy="stratified", seed=3, labels=strata)
        want = train_test_split(np.arange(100), test_size=0.1, random_state=3, stratify=strata)
        np.testing.assert_array_equal(train, want[0])
        np.testing.assert_array_equal(val, want[1])
    train, val = split_rows(100, 0.1, policy="stratified", seed=3, labels=labels)
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]  # the class shares are kept


@pytest.mark.parametrize("policy", ["last", "random", "stratified"])
def test_zero_fraction_keeps_every_row(policy):
    if policy == "stratified":
        pytest.importorskip("sklearn")
    train, val = split_rows(5, 0.0, policy=policy, seed=0)
    assert val is None and np.arange(5)[train].tolist() == [0, 1, 2, 3, 4]


def test_take_rows_on_every_backend(backend):
    b = xn.get_backend(backend)
    X = b.asarray(np.arange(12.0).reshape(6, 2), dtype=b.dtype("float32"))
    for rows in (np.array([5, 0, 2]), slice(4, 6)):
        got = take_rows(X, rows)
        assert b.owns(got)
        np.testing.assert_array_equal(xn.to_numpy(got), np.arange(12.0).reshape(6, 2)[rows])


@pytest.mark.parametrize("call, match", [
    (lambda: split_rows(10, 0.05, policy="last"),
     r"validation_split=0\.05 leaves 0 validation and 10 training rows; both must be >= 1"),
    (lambda: split_rows(10, 0.05, policy="random", seed=0, name="--val-split"),
     r"--val-split=0\.05 leaves 0 validation and 10 training rows"),
    (lambda: split_rows(10, 1.0, policy="last"), r"validation_split must be < 1\.0"),
    (lambda: split_rows(10, 0.5, policy="first"), r"policy must be one of"),
    (lambda: split_rows(10, 0.5, policy="last", labels=np.zeros(10)), r"'stratified' policy"),
])
def test_refusals_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_stratified_refusal_names_the_fraction():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"validation_fraction=0\.05: cannot split off .* "
                                         r"greater or equal to the number of classes"):
        split_rows(20, 0.05, policy="stratified", seed=0, labels=np.arange(20) % 3,
                   name="validation_fraction")


def test_random_needs_an_int_seed():
    with pytest.raises(TypeError, match="seed must be an int"):
        split_rows(10, 0.2, policy="random")
