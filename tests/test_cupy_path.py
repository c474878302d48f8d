"""The CuPy path, checked on the CPU: device placement, device resolution, the probe,
the bookkeeping kernels of a device step, the Philox dropout sampler and its resume.

CuPy creates ``zeros``, ``arange``, ``*_like`` and every kernel output on the
*current* GPU, whatever ``device=`` says. Here a recording namespace (NumPy
underneath) notes, for every call, which fake GPU was current; a model on GPU 1
must make every one of them with GPU 1 current. What needs a real GPU is in
``tests/test_cupy_gpu.py``.
"""

from __future__ import annotations

import importlib.machinery
import pickle
import shutil
import signal
import subprocess
import sys
import types

import array_api_compat.numpy as cnp
import numpy as np
import pytest

import xpnet as xn
from xpnet.backends import Backend, BackendError, _cupy_device, _probe_cupy
from xpnet.ops import CupyOps, NumpyOps, Ops, _philox

strict = pytest.importorskip("array_api_strict")


# -- a fake GPU and a namespace that records which one was current ---------------------

class FakeDevice:
    """Compares by id and is unhashable, like ``cupy.cuda.Device``; a context manager."""

    current: list[int] = [0]

    def __init__(self, id: int = 1):
        self.id = id

    def __enter__(self):
        FakeDevice.current.append(self.id)
        return self

    def __exit__(self, *exc):
        FakeDevice.current.pop()

    def synchronize(self):
        pass

    def __eq__(self, other):
        return isinstance(other, FakeDevice) and other.id == self.id

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class Recording(types.ModuleType):
    """``array_api_compat.numpy``, noting (function, current device) for every call."""

    def __init__(self):
        super().__init__("recording_xp")
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name):
        value = getattr(cnp, name)
        if not callable(value) or isinstance(value, type) or name.startswith("_"):
            return value

        def call(*args, **kwargs):
            self.calls.append((name, FakeDevice.current[-1]))
            if isinstance(kwargs.get("device"), FakeDevice):
                del kwargs["device"]  # NumPy underneath: everything is on the host
            return value(*args, **kwargs)
        return call


@pytest.fixture
def gpu1(monkeypatch):
    """A "cupy" backend on fake GPU 1 whose arrays are NumPy arrays, with GPU 0 current;
    NumPy arrays get the CuPy ops (generic code, device scope from the fake)."""
    rec = Recording()
    monkeypatch.setitem(xn.backends._NAMESPACES, np.ndarray, rec)
    monkeypatch.setitem(xn.ops._BY_TYPE, np.ndarray, xn.ops._CUPY)
    monkeypatch.setattr(CupyOps, "scope", lambda self, a: FakeDevice(1))
    monkeypatch.setattr(CupyOps, "uniform", Ops.uniform)  # host draws through backend.asarray
    monkeypatch.setattr(FakeDevice, "current", [0])
    return Backend("cupy", rec, FakeDevice(1)), rec


def _elsewhere(rec):
    return sorted({name for name, dev in rec.calls if dev != 1})


def test_the_recorder_sees_a_call_made_on_the_wrong_gpu(gpu1):
    b, rec = gpu1
    b.xp.zeros(3, dtype=b.xp.float32, device=b.device)
    with b.device_scope():
        b.xp.ones(3, dtype=b.xp.float32, device=b.device)
    assert rec.calls == [("zeros", 0), ("ones", 1)] and _elsewhere(rec) == ["zeros"]


def test_every_array_a_model_makes_is_made_on_its_gpu(gpu1, blobs):
    """Construction, fit (dropout, Adam with clipping, validation split, early stopping,
    the device guard), predict, evaluate, loss_and_grads, set_params, a research loop with
    the optimizer alone, and the metrics: every namespace call with GPU 1 current."""
    b, rec = gpu1
    X, y = blobs
    m = xn.MLP([4, 16, 8, 3], dropout=0.2, backend=b, seed=0)
    assert m.backend.is_host is False  # the device guard runs
    opt = xn.Adam(lr=1e-2, clip_norm=5.0, clip_value=1.0)
    h = m.fit(X, y, epochs=3, batch_size=64, optimizer=opt, validation_split=0.2, verbose=0,
              callbacks=[xn.EarlyStopping(patience=5, restore_best_weights=True)])
    assert h.history["loss"][-1] < h.history["loss"][0]
    pred = m.predict(X)
    m.predict_proba(X)
    assert m.evaluate(X, y)["accuracy"] > 0.8
    loss, grads = m.loss_and_grads(X, y)
    params, state = dict(m.params), opt.init(m.params)
    for _ in range(2):
        params, state = opt.update(params, grads, state)
    opt.update_(params, grads, state)
    m.set_params({k: np.asarray(v) for k, v in params.items()})
    xn.metrics.accuracy(y, pred)
    xn.metrics.confusion_matrix(y, pred, 3)
    names = {name for name, _ in rec.calls}
    assert {"zeros", "asarray", "concat", "where", "take", "stack"} <= names
    assert len(rec.calls) > 500
    assert _elsewhere(rec) == []


def test_a_cupy_backend_is_hashable():
    a, b = Backend("cupy", cnp, FakeDevice(1)), Backend("cupy", cnp, FakeDevice(1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Backend("cupy", cnp, FakeDevice(2)) != a


def test_float64_data_is_cast_on_the_host_before_upload(gpu1):
    b, _ = gpu1
    sent = []
    real = b.asarray
    object.__setattr__(b, "asarray", lambda data, dtype=None: sent.append(data.dtype)
                       or real(data, dtype))
    xn._checks.check_X(np.ones((5, 4)), b, "float32", 4)
    xn._checks.check_float_targets(np.ones((5, 2)), b, "float32", 2)
    assert sent == [np.float32, np.float32]


# -- which GPU a name means ---------------------------------------------------------------

def _fake_cupy(count=2, current=1):
    cupy = types.SimpleNamespace()
    cupy.cuda = types.SimpleNamespace(
        Device=lambda i=None: FakeDevice(current if i is None else i),
        runtime=types.SimpleNamespace(getDeviceCount=lambda: count))
    return cupy


@pytest.mark.parametrize("device,expected", [(None, 1), ("cuda", 1), ("", 1), (0, 0),
                                             ("cuda:0", 0), ("1", 1), (FakeDevice(0), 0)])
def test_the_default_gpu_is_the_current_one(device, expected):
    assert _cupy_device(_fake_cupy(current=1), device).id == expected


@pytest.mark.parametrize("device,match", [
    (2, r"there is no GPU 2 on this machine \(it has GPUs 0-1\)"),
    (-1, "there is no GPU -1"),
    ("cuda:7", "there is no GPU 7"),
    (True, "bad device True"),
    ("gpu0", "bad device 'gpu0'"),
])
def test_a_gpu_this_machine_lacks_is_refused(device, match):
    with pytest.raises(BackendError, match=match):
        _cupy_device(_fake_cupy(count=2), device)
    with pytest.raises(BackendError, match=r"it has one GPU \(0\)"):
        _cupy_device(_fake_cupy(count=1, current=0), 1)


def test_the_probe_runs_cub_cublas_and_nvrtc():
    """The probe reduces, multiplies matrices and compiles a kernel; a component that
    fails (a missing cuBLAS, say) makes CuPy unavailable with its message."""
    used = []

    class Arr(np.ndarray):
        def __matmul__(self, other):
            used.append("cublas")
            return np.matmul(self, other).view(Arr)

    cupy = types.SimpleNamespace(float32=np.float32)
    cupy.arange = lambda n, dtype: np.arange(n, dtype=dtype).view(Arr)
    cupy.ElementwiseKernel = lambda ins, outs, body, name, options: (
        used.append(("nvrtc", options)) or (lambda x: x + x))
    _probe_cupy(cupy)
    assert used == [("nvrtc", ("--fmad=false",)), "cublas"]

    def no_cublas(self, other):
        raise ImportError("libcublas.so.12: cannot open shared object file")

    Arr.__matmul__ = no_cublas
    with pytest.raises(ImportError, match="libcublas"):
        _probe_cupy(cupy)


def test_a_broken_component_makes_cupy_unavailable_with_its_reason(monkeypatch):
    mod = types.ModuleType("cupy")
    mod.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    mod.float32 = np.float32
    mod.arange = lambda n, dtype: np.arange(n, dtype=dtype)

    def nvrtc_missing(*a, **k):
        raise RuntimeError("CuPy failed to load libnvrtc.so.12\nmore detail")

    mod.ElementwiseKernel = nvrtc_missing
    monkeypatch.setitem(sys.modules, "cupy", mod)
    monkeypatch.delenv("XPNET_DISABLE_CUPY", raising=False)
    why = xn.backends._probe.__wrapped__("cupy")
    assert why == "CuPy is installed but cannot use a GPU: CuPy failed to load libnvrtc.so.12"


# -- the bookkeeping kernels of one device step ---------------------------------------------

_NOT_KERNELS = {"reshape", "result_type", "isdtype", "finfo", "iinfo", "can_cast"}
_OPERATORS = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__pow__", "__neg__", "__abs__", "__and__",
              "__rand__", "__or__", "__ror__", "__invert__", "__xor__", "__gt__", "__ge__",
              "__lt__", "__le__", "__eq__", "__ne__", "__matmul__")


def step_bookkeeping(monkeypatch, sizes, optimizer, policy="raise"):
    """Kernels of one device-path training step on array_api_strict (namespace calls and
    array operators), less those of the forward/backward pass and of the update rule."""
    monkeypatch.setattr(Backend, "is_host", property(lambda self: False))
    count = {"n": 0, "on": False}
    for name in dir(strict):
        f = getattr(strict, name)
        if callable(f) and not isinstance(f, type) and not name.startswith("_") \
                and name not in _NOT_KERNELS:
            monkeypatch.setattr(strict, name, _counted(f, count))
    array_type = type(strict.asarray(0.0))
    for op in _OPERATORS:
        monkeypatch.setattr(array_type, op, _counted(getattr(array_type, op), count))
    rng = np.random.default_rng(0)
    b = xn.get_backend("array_api_strict")
    X = b.asarray(rng.normal(size=(256, sizes[0])).astype("float32"))
    y = b.asarray(rng.integers(0, sizes[-1], size=256))
    m = xn.MLP(sizes, backend="array_api_strict", seed=0)
    optimizer.state = optimizer.init(m.params)
    t = xn.training.Trainer(m, X, y, optimizer=optimizer, epochs=1, batch_size=32,
                            on_nonfinite=policy, state=xn.training.TrainState(seed=0))
    assert isinstance(t.guard, xn.training.DeviceGuard)
    for obj, name in ((m, "_loss_grads_out"), (optimizer, "update")):
        monkeypatch.setattr(obj, name, _paused(getattr(obj, name), count))
    perm = t.begin_epoch(0)
    t.step(0, perm)
    t.step(1, perm)  # the live parameters are now views of the guard's buffer
    count["on"] = True
    t.step(2, perm)
    return count["n"]


def _counted(f, count):
    def g(*a, **k):
        if count["on"]:
            count["n"] += 1
        return f(*a, **k)
    return g


def _paused(f, count):
    def g(*a, **k):
        on, count["on"] = count["on"], False
        try:
            return f(*a, **k)
        finally:
            count["on"] = on
    return g


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_a_device_step_makes_a_dozen_bookkeeping_kernels_whatever_the_size(monkeypatch,
                                                                          policy):
    """Batch gather (2), accuracy count (4: argmax, ==, astype, sum), one flag for the loss,
    the gradients and every new value (concat, sum, isfinite; & for raise/stop), one where
    for the parameters and slots together, the running sums (stack, *, where, +): 15 with
    raise/stop, 14 with skip, for every net. Counted the same way (the rule's own kernels
    left out), the guard before this change made 53 for the 2-layer net with Adam, 89 for
    the 5-layer one and 53 for the 3-layer one with SGD (3 kernels per gradient for the
    flag, one where per parameter and slot, 16 for its flags and counters)."""
    small = step_bookkeeping(monkeypatch, [20, 16, 3], xn.Adam(lr=1e-3), policy)
    monkeypatch.undo()
    big = step_bookkeeping(monkeypatch, [20, 32, 16, 16, 8, 3], xn.Adam(lr=1e-3), policy)
    monkeypatch.undo()
    sgd = step_bookkeeping(monkeypatch, [20, 32, 16, 3], xn.SGD(lr=0.1), policy)
    assert small == big == sgd == (15 if policy == "raise" else 14)


# -- the Philox dropout sampler ---------------------------------------------------------------

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.mark.parametrize("ctr,key,expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                   0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_matches_random123_known_answers(ctr, key, expected):
    out = _philox.philox4x32(np.array(ctr, np.uint32).reshape(4, 1), key)[:, 0]
    assert tuple(int(w) for w in out) == expected


@pytest.mark.skipif(CXX is None, reason="no C++ compiler on this machine")
@pytest.mark.parametrize("dtype,ctype", [("float32", "float"), ("float64", "double")])
def test_the_cuda_sampler_source_draws_the_host_numbers(tmp_path, dtype, ctype):
    """The kernel's preamble and body, compiled as C++ with CuPy's ``i`` and ``T``, give
    the NumPy reference's draws bit for bit (a key and counter above 2**32 included)."""
    key, counter, n = 0x0123456789ABCDEF, 2**32 + 5, 1000
    src = ("#define __device__\n#include <cstdio>\n" + _philox.PREAMBLE
           + f"typedef {ctype} T;\nint main() {{ unsigned int k0 = {key & 0xFFFFFFFF}u, "
           f"k1 = {key >> 32}u, s0 = {counter & 0xFFFFFFFF}u, s1 = {counter >> 32}u; "
           f"for (long i = 0; i < {n}; ++i) {{ T u; {_philox.BODY} "
           'printf("%a\\n", (double)u); } }\n')
    (tmp_path / "u.cpp").write_text(src)
    subprocess.run([CXX, "-O2", "-ffp-contract=off", "-o", str(tmp_path / "u"),
                    str(tmp_path / "u.cpp")], check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "u")], check=True, capture_output=True, text=True)
    got = np.array([float.fromhex(v) for v in out.stdout.split()], dtype=dtype)
    ref = _philox.uniform_host(key, counter, (n,), dtype)
    assert got.tobytes() == ref.tobytes()
    assert 0.0 <= ref.min() and ref.max() < 1.0 and abs(float(ref.mean()) - 0.5) < 0.05


class PhiloxNumpyOps(NumpyOps):
    """NumPy ops whose dropout draws come from the device stream, as CuPy's do."""

    def uniform(self, rng, shape, dtype, backend):
        key, counter = rng.device_stream()
        return _philox.uniform_host(key, counter, shape, xn.backends.dtype_name(dtype))


def test_a_resumed_run_draws_the_same_masks_and_batches(monkeypatch, blobs, tmp_path):
    """Interrupted mid-epoch and resumed from its checkpoint, a run whose dropout draws
    from the counter-based stream ends with the uninterrupted run's bits: the stream's
    key and counter are in the record, so masks and later batch orders are the same."""
    ops = PhiloxNumpyOps()
    monkeypatch.setitem(xn.ops._BY_NAME, "numpy", ops)
    monkeypatch.setitem(xn.ops._BY_TYPE, np.ndarray, ops)
    X, y = blobs
    kw = dict(batch_size=32, seed=3, verbose=0)

    def model():
        return xn.MLP([4, 32, 3], dropout=0.5, backend="numpy", seed=0)

    full = model()
    full.fit(X, y, epochs=3, optimizer=xn.Adam(lr=1e-2), **kw)

    class StopAt(xn.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.optimizer.state["step"] == 14:  # epoch 2, step 4: as Ctrl-C does
                self.trainer._interrupt.signum = signal.SIGINT

    part = model()
    ckpt = xn.ModelCheckpoint(tmp_path / "m.safetensors")
    with pytest.raises(xn.TrainingInterrupted):
        part.fit(X, y, epochs=3, optimizer=xn.Adam(lr=1e-2), callbacks=[StopAt(), ckpt],
                 display_interval=0.0, **kw)
    c = xn.load_checkpoint(tmp_path / "m.safetensors", backend="numpy")
    assert c.training["step"] == 4 and "device_stream" in c.training["rng"]
    c.model.fit(X, y, epochs=3, resume=c.training, optimizer=c.optimizer, **kw)
    for k, v in full.params.items():
        assert c.model.params[k].tobytes() == v.tobytes(), k


def test_a_model_pickles_after_a_training_forward(blobs):
    X, y = blobs
    m = xn.MLP([4, 16, 3], dropout=0.3, backend="numpy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    m.forward(X, train=True)
    twin = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(twin.predict(X), m.predict(X))


def test_the_device_stream_is_part_of_the_generator_state():
    rng = xn.RNG(4)
    assert "device_stream" not in rng.get_state()
    key, c0 = rng.device_stream()
    state = rng.get_state()
    assert state["device_stream"] == [key, 1] and c0 == 0
    assert rng.device_stream() == (key, 1)
    fresh = xn.RNG(0)
    fresh.set_state(state)
    assert fresh.device_stream() == (key, 1) and fresh.get_state() == rng.get_state()
    for bad in ([1], [1, -1], [1, 2**64], ["1", 2], [True, 0]):
        with pytest.raises(ValueError, match="device_stream"):
            fresh.set_state({**state, "device_stream": bad})


# -- the GPU benchmark's xpnet runner is the Trainer's own step ----------------------------

def test_the_gpu_benchmark_times_the_trainers_own_step(blobs):
    """bench_gpu.py builds its xpnet loop from ``Trainer.begin_epoch`` and ``Trainer.step``
    (no copy of the step to drift); run here on NumPy, the loop trains."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    X, y = blobs
    spec = {"sizes": [4, 16, 3], "opt": "adam", "lr": 1e-2, "batch": 32}
    r = bench_gpu.XpnetGpu(xn, spec, X.astype("float32"), y, 3, None, backend="numpy")
    r.warmup()
    first = r.loss
    r.run()
    r.warmup()
    assert r.loss < first and r.trainer.optimizer.state["step"] == 3 * 10 * 3
    step = bench_gpu.trainer_steps(r)
    before = r.trainer.optimizer.state["step"]
    for i in range(12):
        step(i)
    assert r.trainer.optimizer.state["step"] == before + 12
    args = bench_gpu.parse_args([])
    assert args.workloads == ["W1", "W2", "W3", "large"] and args.device == 0
    if xn.backends.backend_status()["cupy"] is not None:
        assert bench_gpu.main(args) == 2  # says why and stops


@pytest.mark.parametrize("device_path", [False, True], ids=["host", "device"])
def test_running_sums_are_exact_beyond_float32s_2_to_the_24(device_path, monkeypatch):
    """A float32 accumulator stops counting at 2**24 correct predictions per epoch
    (2**24 + 1 rounds to 2**24); the guards sum in float64."""
    if device_path:
        monkeypatch.setattr(Backend, "is_host", property(lambda self: False))
    m = xn.MLP([2, 2], backend="numpy", seed=0)
    opt = xn.SGD(lr=1e-3)
    opt.state = opt.init(m.params)
    X, y = np.ones((4, 2), "float32"), np.zeros(4, "int64")
    t = xn.training.Trainer(m, X, y, optimizer=opt, epochs=1, batch_size=4,
                            state=xn.training.TrainState(seed=0))
    t.begin_epoch(0)
    _, grads = m.loss_and_grads(X, y)
    for count in (2.0**24, 1.0):
        value = np.asarray(0.5, "float32")
        t.guard.apply(0, value, dict(grads), np.asarray(count, "float32"), 4)
    sums = t.guard.running()
    assert sums["run_correct"] == 2**24 + 1 and sums["seen"] == 8 and sums["run_loss"] == 4.0
