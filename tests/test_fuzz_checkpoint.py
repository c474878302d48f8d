"""Fuzzing the checkpoint loader: random bytes and mutations of valid checkpoints.

Whatever the file holds, ``xn.load_checkpoint`` either returns a usable model or
raises :class:`xpnet.CheckpointError` (a ``ValueError``); nothing else escapes
(no ``MemoryError``, ``KeyError``, ``RecursionError``...), and loading never
allocates much more than the file size justifies (traced with ``tracemalloc``:
peak < 10 x file size + 1 MiB).

Budget: about 1,500 examples in all, well under a minute on two cores. For a
deeper run, ``HYPOTHESIS_PROFILE=deep`` multiplies every example count by 20
(``XPNET_FUZZ_SCALE=<n>`` sets the multiplier directly), e.g.::

    HYPOTHESIS_PROFILE=deep python -m pytest tests/test_fuzz_checkpoint.py tests/test_idx.py \
        -k fuzz -p no:warnings --hypothesis-show-statistics
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import xpnet as xn

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ_SCALE = int(os.environ.get("XPNET_FUZZ_SCALE", "20" if _PROFILE == "deep" else "1"))


def fuzz_settings(examples: int):
    """Settings for one fuzz test: ``examples`` in CI, times FUZZ_SCALE on demand."""
    return settings(max_examples=examples * FUZZ_SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


MEMORY_FACTOR = 10
MEMORY_SLACK = 2**20


# ----------------------------------------------------------------------- seed files

@functools.cache
def _seed_files() -> tuple[bytes, ...]:
    """Three valid checkpoints: with optimizer + training record, float64, nested schedule."""
    d = Path(tempfile.mkdtemp(prefix="xpnet-fuzz-seed-"))
    try:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(40, 6))
        y = np.arange(40) % 3
        a = xn.MLP([6, 5, 3], backend="numpy", seed=0)
        ck = xn.ModelCheckpoint(d / "a.safetensors", metadata={"run": "fuzz", "n": [1, 2]})
        a.fit(X, y, epochs=1, batch_size=16, callbacks=[ck], verbose=0)
        b = xn.MLP([6, 4, 4, 2], activation="tanh", dropout=0.25, dtype="float64",
                   loss="mse", backend="numpy", seed=1)
        xn.save(b, d / "b.safetensors")
        c = xn.MLP([6, 3], activation="leaky_relu", loss="binary_cross_entropy",
                   backend="numpy", seed=2)
        opt = xn.SGD(lr=xn.LinearWarmup(xn.CosineDecay(0.1, total_steps=50), warmup_steps=5),
                     momentum=0.9, nesterov=True, clip_norm=1.0)
        c.fit(X, (X[:, :3] > 0).astype(float), epochs=1, batch_size=20, optimizer=opt,
              verbose=0)
        gen = xn.RNG(3).get_state()  # a mid-epoch record needs both generator states
        xn.save(c, d / "c.safetensors", training={"epoch": 1, "step": 1, "seen": 20,
                                                   "run_loss": 0.5, "history": {},
                                                   "rng": gen, "epoch_rng": gen})
        return tuple((d / f"{n}.safetensors").read_bytes() for n in "abc")
    finally:
        shutil.rmtree(d)


def _split(blob: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(h)) + h + data


# ------------------------------------------------------------------- the property

@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="xpnet-fuzz-"))
    path = d / "fuzz.safetensors"
    for blob in _seed_files():  # warm up: lazy imports are not the loader's allocations
        path.write_bytes(blob)
        xn.load_checkpoint(path, backend="numpy").model.predict(np.zeros((1, 6)))
    yield path
    shutil.rmtree(d, ignore_errors=True)


def _check_load(path: Path, blob: bytes) -> None:
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            ck = xn.load_checkpoint(path, backend="numpy")
        except xn.CheckpointError as exc:
            assert str(path) in str(exc)
            _event("refused: " + _reason(str(exc)))
            ck = None
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_FACTOR * len(blob) + MEMORY_SLACK, (peak, len(blob))
    if ck is None:
        return
    _event("loaded")
    m = ck.model
    assert isinstance(m, xn.Sequential)
    cfg = m.get_config()
    assert cfg["in_features"] == m.in_features
    for v in m.params.values():
        assert v.dtype == np.dtype(m.dtype_name) and np.isfinite(v).all()
    if ck.optimizer is not None and ck.optimizer.state is not None:
        for slot in ck.optimizer.slots:
            assert set(ck.optimizer.state[slot]) == set(m.params)
    assert ck.training is None or isinstance(ck.training, dict)
    out = m.predict(np.zeros((2, m.in_features), np.float32))  # a loaded model is usable
    assert out.shape[0] == 2


def _event(label: str) -> None:
    try:
        event(label)
    except InvalidArgument:  # called outside a Hypothesis test
        pass


def _reason(msg: str) -> str:
    """A short, stable label for Hypothesis statistics."""
    for key in ("header length", "not a valid", "not an xpnet", "format version", "missing or "
                "not JSON", "architecture", "has shape", "dtype", "NaN", "optimizer",
                "training record", "too short", "not a file"):
        if key in msg:
            return key
    return "other"


# -------------------------------------------------------------------- strategies

json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-2**70, 2**70),
    st.sampled_from([0, 1, -1, 2, 3, 5, 6, 10**9, 2**31, 2**63, -2**63, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "xpnet",
                     "Dense", "ReLU", "Dropout", "Sequential", "Adam", "SGD", "Constant",
                     "LinearWarmup", "PCG64", "float32", "float64", "mse", "exp_avg",
                     "params/0.W", "params/2.b", "optimizer/exp_avg/0.W"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)


def _nodes(tree, path=()):
    """Every (path, value) in a header tree, metadata JSON strings opened up."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _nodes(v, (*path, i))


def _open_metadata(header: dict) -> dict:
    tree = copy.deepcopy(header)
    meta = tree.get("__metadata__", {})
    for k, v in list(meta.items()):
        try:
            meta[k] = {"__json__": json.loads(v)}
        except (TypeError, ValueError):
            pass
    return tree


def _close_metadata(tree: dict) -> dict:
    meta = tree.get("__metadata__")
    if isinstance(meta, dict):
        for k, v in list(meta.items()):
            if isinstance(v, dict) and set(v) == {"__json__"}:
                meta[k] = json.dumps(v["__json__"])
    return tree


def _nearby(value, draw):
    """A value close to the original: the kind of lie a buggy writer would tell."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, 0, -1, value * 2, value * 1000,
                                     2**40, 10**12, -value]))
    if isinstance(value, float):
        return draw(st.sampled_from([0.0, -value, value * 1e6, 1.0, 2.0, 1e308]))
    if isinstance(value, list):
        if value and draw(st.booleans()):
            return value[:-1]
        return [*value, value[-1] if value else 0]
    if isinstance(value, str):
        return draw(st.sampled_from(["", value + "x", value.upper(), "F64", "I32", "BOOL",
                                     "Dense", "Tanh", "Adam", "float64", "cross_entropy"]))
    return draw(json_values)


def _edit(tree, path, how, new):
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "delete":
        del parent[key]
    else:
        parent[key] = new


# --------------------------------------------------------------------------- tests

@fuzz_settings(300)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(scratch, blob):
    _check_load(scratch, blob)


@fuzz_settings(200)
@given(st.integers(2, 400), json_values, st.binary(max_size=200))
def test_fuzz_plausible_header_random_json(scratch, claimed, value, tail):
    """A header length that fits the file, then random JSON: reaches the safetensors parser."""
    h = json.dumps({"__metadata__": {"format": "xpnet"}, "x": value}).encode()
    blob = struct.pack("<Q", min(claimed, len(h) + len(tail))) + h + tail
    _check_load(scratch, blob)


@fuzz_settings(350)
@given(st.sampled_from(range(3)),
       st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                min_size=1, max_size=6),
       st.booleans())
def test_fuzz_byte_flips(scratch, which, flips, header_only):
    """Overwrite random bytes (mostly in the header, where they matter most)."""
    blob = bytearray(_seed_files()[which])
    n = struct.unpack("<Q", blob[:8])[0] + 8
    span = n if header_only else len(blob)
    for where, value in flips:
        blob[int(where * span)] = value
    _check_load(scratch, bytes(blob))


@fuzz_settings(150)
@given(st.sampled_from(range(3)), st.floats(0, 1), st.binary(max_size=64))
def test_fuzz_truncated_or_extended(scratch, which, frac, tail):
    seed = _seed_files()[which]
    cut = int(frac * len(seed))
    _check_load(scratch, seed[:cut] + (tail if frac > 0.5 else b""))


@fuzz_settings(500)
@given(st.sampled_from(range(3)), st.data())
def test_fuzz_header_edits(scratch, which, data):
    """Edit the header's JSON (shapes, dtypes, offsets, metadata, the manifests inside it)."""
    header, payload = _split(_seed_files()[which])
    tree = _open_metadata(header)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        nodes = [(p, v) for p, v in _nodes(tree) if p and p[-1] != "__json__"]
        # two edits in three go to the manifests: tensor-table edits mostly stop in the
        # safetensors parser, manifest edits reach xpnet's own checks
        inside = [(p, v) for p, v in nodes if len(p) > 2 and p[0] == "__metadata__"]
        if inside and data.draw(st.integers(0, 2), label="region"):
            nodes = inside
        if not nodes:
            break
        path, value = data.draw(st.sampled_from(nodes), label="node")
        how = data.draw(st.sampled_from(["nearby", "nearby", "random", "delete"]), label="how")
        new = None
        if how == "nearby":
            new = _nearby(value, data.draw)
        elif how == "random":
            new = data.draw(json_values, label="value")
        _edit(tree, path, how, new)
        where = (f"manifest {path[1]}" if path[0] == "__metadata__" and len(path) > 1
                 else f"tensor {path[1] if len(path) > 1 else 'entry'}")
        _event(f"edit: {how} {where}")
    tree = _close_metadata(tree)
    if data.draw(st.integers(0, 7), label="payload-cut") == 0:
        payload = payload[: data.draw(st.integers(0, len(payload)), label="cut")]
    _check_load(scratch, _join(tree, payload))


# ------------------------------------------------------ targeted regressions found by fuzzing

def _lie(blob: bytes, edit) -> bytes:
    header, payload = _split(blob)
    tree = _open_metadata(header)
    edit(tree)
    return _join(_close_metadata(tree), payload)


def _set_model(key, value):
    def edit(tree):
        tree["__metadata__"]["model"]["__json__"][key] = value
    return edit


def _set_units(value):
    def edit(tree):
        tree["__metadata__"]["model"]["__json__"]["layers"][0]["config"]["units"] = value
    return edit


def _set_opt(key, value):
    def edit(tree):
        tree["__metadata__"]["optimizer"]["__json__"][key] = value
    return edit


def _set_training(value):
    def edit(tree):
        tree["__metadata__"]["training"]["__json__"] = value
    return edit


def _set_raw(key, value):
    def edit(tree):
        tree["__metadata__"][key] = value
    return edit


def _deep_schedule(tree):
    depth = 5000  # deeper than any JSON parser will follow
    lr = ('{"class": "LinearWarmup", "config": {"warmup_steps": 1, "after": ' * depth
          + '{"class": "Constant", "config": {"lr": 0.1}}' + "}}" * depth)
    tree["__metadata__"]["optimizer"] = '{"class": "SGD", "config": {"lr": ' + lr + "}}"


REGRESSIONS = [
    # a manifest that claims a huge layer in a small file must not be built
    ("in_features-1e12", _set_model("in_features", 10**12), r"needs \(1000000000000, 5\)"),
    ("units-1e12", _set_units(10**12), r"needs \(6, 1000000000000\)"),
    ("in_features-string", _set_model("in_features", "6"), r"in_features must be an int"),
    ("layers-not-dicts", _set_model("layers", ["Dense", 3]), r"layer config must be a dict"),
    ("layers-missing", _set_model("layers", None), r"'layers' list"),
    ("model-not-object", _set_raw("model", "[1, 2]"), r"'layers' list"),
    ("model-deeply-nested", _set_raw("model", "[" * 100_000 + "]" * 100_000),
     r"metadata 'model' is missing or not JSON"),
    ("model-huge-int", _set_raw("model", "1" * 5000), r"metadata 'model' is missing or not JSON"),
    ("optimizer-step-string", _set_opt("step", "3"), r"step must be an int >= 0, got '3'"),
    ("optimizer-step-negative", _set_opt("step", -1), r"step must be an int >= 0, got -1"),
    ("optimizer-slots-repeated", _set_opt("slots", ["exp_avg"] * 10_000), r"slots"),
    ("optimizer-slots-unknown", _set_opt("slots", ["momentum_buffer"]), r"slots"),
    ("optimizer-not-object", _set_raw("optimizer", "3"), r"bad optimizer metadata"),
    ("optimizer-deep-schedule", _deep_schedule, r"'optimizer' is missing or not JSON"),
    ("training-not-object", _set_training([1, 2]), r"training record must be a JSON object"),
    ("training-epoch-float", _set_training({"epoch": 1.5}), r"'epoch' must be an int >= 0"),
    ("training-rng-garbage", _set_training({"epoch": 1, "rng": {"bit_generator": "PCG64"}}),
     r"'rng' is not a generator state"),
]


@pytest.mark.parametrize("name,edit,match", REGRESSIONS, ids=[r[0] for r in REGRESSIONS])
def test_lying_manifest_is_refused_cheaply(scratch, name, edit, match):
    blob = _lie(_seed_files()[0], edit)
    scratch.write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(xn.CheckpointError, match=match):
            xn.load_checkpoint(scratch, backend="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_FACTOR * len(blob) + MEMORY_SLACK


def test_seed_files_load(scratch):
    for blob in _seed_files():
        _check_load(scratch, blob)
    ck = xn.load_checkpoint(scratch, backend="numpy")
    assert isinstance(ck.optimizer, xn.SGD) and ck.training["step"] == 1


def test_missing_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        xn.load_checkpoint(tmp_path / "none.safetensors", backend="numpy")
    with pytest.raises(xn.CheckpointError, match="is not a file"):
        xn.load_checkpoint(tmp_path, backend="numpy")


# -- the training record and the optimizer slots ------------------------------------------
_record_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
    st.text(max_size=5), st.lists(st.floats(allow_nan=True), max_size=4),
    st.dictionaries(st.text(max_size=4), st.lists(st.integers(0, 3), max_size=3),
                    max_size=3))
_records = st.dictionaries(
    st.sampled_from(["epoch", "step", "seed", "seen", "run_loss", "run_correct", "history",
                     "rng", "epoch_rng", "extra"]), _record_values, max_size=8)


@fuzz_settings(300)
@given(_records)
def test_fuzz_training_records_are_accepted_or_refused_by_name(record):
    """Any record: TrainState accepts it (and then it round-trips) or names the problem."""
    from xpnet.training import TrainState

    try:
        state = TrainState.from_record(record)
    except (TypeError, ValueError) as exc:
        assert "training record" in str(exc)
        return
    assert TrainState.from_record(state.to_record()) == state


@fuzz_settings(60)
@given(st.sampled_from(["exp_avg", "exp_avg_sq"]),
       st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_fuzz_optimizer_slot_values(slot, value):
    """A checkpoint's Adam slot holding any value loads only if it is valid for that slot."""
    import tempfile
    from pathlib import Path

    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        m = xn.MLP([3, 2], backend="numpy", seed=0)
        m.fit(np.ones((4, 3), "float32"), np.zeros(4, "int64"), epochs=1, verbose=0)
        path = xn.save(m, Path(tmp) / "m.safetensors")
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        tensors[f"optimizer/{slot}/0.W"][0, 0] = value
        save_file(tensors, str(path), metadata=meta)
        valid = np.isfinite(value) and (slot != "exp_avg_sq" or value >= 0)
        if valid:
            assert xn.load_checkpoint(path, backend="numpy").optimizer.state["step"] == 1
        else:
            with pytest.raises(xn.CheckpointError, match="optimizer tensor"):
                xn.load_checkpoint(path, backend="numpy")
