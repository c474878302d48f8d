"""Optimizers against torch.optim (an independent oracle), schedules and clipping."""

import math

import numpy as np
import pytest

import xpnet as xn

CASES = {
    "sgd": (lambda: xn.SGD(lr=0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    "sgd-wd": (lambda: xn.SGD(lr=0.1, weight_decay=0.01),
               lambda t, p: t.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    "momentum": (lambda: xn.SGD(lr=0.05, momentum=0.9),
                 lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov": (lambda: xn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                 lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                          weight_decay=1e-3)),
    "adam": (lambda: xn.Adam(lr=1e-2), lambda t, p: t.optim.Adam(p, lr=1e-2)),
    "adam-l2": (lambda: xn.Adam(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda t, p: t.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                          weight_decay=0.1)),
    "adamw": (lambda: xn.AdamW(lr=1e-2, weight_decay=0.05),
              lambda t, p: t.optim.AdamW(p, lr=1e-2, weight_decay=0.05)),
    "rmsprop": (lambda: xn.RMSprop(lr=1e-2), lambda t, p: t.optim.RMSprop(p, lr=1e-2)),
    "rmsprop-momentum-wd": (
        lambda: xn.RMSprop(lr=1e-3, momentum=0.5, weight_decay=0.01),
        lambda t, p: t.optim.RMSprop(p, lr=1e-3, momentum=0.5, weight_decay=0.01)),
    "rmsprop-centered": (
        lambda: xn.RMSprop(lr=1e-3, alpha=0.9, centered=True),
        lambda t, p: t.optim.RMSprop(p, lr=1e-3, alpha=0.9, centered=True)),
    # weight-decay masks: torch's parameter groups with weight_decay=0 for the bias "b"
    # (the bitwise tests below have "a", "b", "c": the mask leaves the 1-D "b" alone)
    "sgd-mask": (lambda: xn.SGD(lr=0.05, momentum=0.9, weight_decay=0.01, decay="weights"),
                 lambda t, p: t.optim.SGD([{"params": [p[0]]},
                                           {"params": [p[1]], "weight_decay": 0.0}],
                                          lr=0.05, momentum=0.9, weight_decay=0.01)),
    "adam-l2-mask": (lambda: xn.Adam(lr=1e-2, weight_decay=0.1, decay=lambda k: k != "b"),
                     lambda t, p: t.optim.Adam([{"params": [p[0]]},
                                                {"params": [p[1]], "weight_decay": 0.0}],
                                               lr=1e-2, weight_decay=0.1)),
    "adamw-mask": (lambda: xn.AdamW(lr=1e-2, weight_decay=0.05, decay="weights"),
                   lambda t, p: t.optim.AdamW([{"params": [p[0]]},
                                               {"params": [p[1]], "weight_decay": 0.0}],
                                              lr=1e-2, weight_decay=0.05)),
    "rmsprop-mask": (lambda: xn.RMSprop(lr=1e-3, momentum=0.5, weight_decay=0.01,
                                        decay=["w", "a", "c"]),
                     lambda t, p: t.optim.RMSprop([{"params": [p[0]]},
                                                   {"params": [p[1]], "weight_decay": 0.0}],
                                                  lr=1e-3, momentum=0.5, weight_decay=0.01)),
    "rmsprop-centered-momentum": (
        lambda: xn.RMSprop(lr=1e-3, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
        lambda t, p: t.optim.RMSprop(p, lr=1e-3, alpha=0.9, momentum=0.5, centered=True,
                                     weight_decay=0.01)),
}


def _grad_fn(params):
    """Gradient of sum(sin(p) * p**2) - a nonlinear, parameter-dependent field."""
    return {k: np.cos(v) * v**2 + 2 * v * np.sin(v) for k, v in params.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_for_20_steps(name, backend):
    torch = pytest.importorskip("torch")
    make_xn, make_torch = CASES[name]
    rng = np.random.default_rng(0)
    host = {"w": rng.normal(size=(5, 3)), "b": rng.normal(size=(3,))}
    tparams = [torch.tensor(host["w"], requires_grad=False), torch.tensor(host["b"])]
    topt = make_torch(torch, tparams)
    b = xn.get_backend(backend)
    params = {k: b.asarray(v, dtype=b.xp.float64) for k, v in host.items()}
    opt = make_xn()
    state = opt.init(params)
    for _ in range(20):
        hp = {k: xn.to_numpy(v) for k, v in params.items()}
        grads = _grad_fn(hp)
        for tp, k in zip(tparams, ("w", "b"), strict=True):
            tp.grad = torch.tensor(grads[k])
        topt.step()
        params, state = opt.update(params, {k: b.asarray(v, dtype=b.xp.float64)
                                            for k, v in grads.items()}, state)
    assert state["step"] == 20
    for tp, k in zip(tparams, ("w", "b"), strict=True):
        np.testing.assert_allclose(xn.to_numpy(params[k]), tp.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_update_is_pure(backend):
    b = xn.get_backend(backend)
    p = {"w": b.asarray(np.ones(3), dtype=b.xp.float64)}
    g = {"w": b.asarray(np.full(3, 0.5), dtype=b.xp.float64)}
    opt = xn.Adam(lr=0.1)
    s0 = opt.init(p)
    p1, s1 = opt.update(p, g, s0)
    np.testing.assert_array_equal(xn.to_numpy(p["w"]), np.ones(3))
    assert s0["step"] == 0 and s1["step"] == 1
    np.testing.assert_array_equal(xn.to_numpy(s0["exp_avg"]["w"]), np.zeros(3))
    assert not np.allclose(xn.to_numpy(p1["w"]), 1.0)


def test_clip_by_global_norm(backend):
    b = xn.get_backend(backend)
    rng = np.random.default_rng(0)
    g = {k: b.asarray(rng.normal(size=s) * 10, dtype=b.xp.float64)
         for k, s in (("a", (4, 3)), ("c", (7,)))}
    clipped, norm = xn.clip_by_global_norm(g, 1.0)
    total = math.sqrt(sum(float(np.sum(xn.to_numpy(v) ** 2)) for v in g.values()))
    assert abs(float(norm) - total) < 1e-9
    after = math.sqrt(sum(float(np.sum(xn.to_numpy(v) ** 2)) for v in clipped.values()))
    assert after <= 1.0 + 1e-9 and after > 0.99
    small = {k: v * 1e-3 for k, v in g.items()}
    same, _ = xn.clip_by_global_norm(small, 1.0)
    for k in g:
        np.testing.assert_allclose(xn.to_numpy(same[k]), xn.to_numpy(small[k]))


def test_clip_norm_and_value_in_optimizer_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 4))
    g = rng.normal(size=(4, 4)) * 50
    opt = xn.SGD(lr=0.1, clip_norm=2.0)
    p, _ = opt.update({"w": w}, {"w": g}, opt.init({"w": w}))
    tw = torch.tensor(w)
    tw.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_([tw], 2.0)
    np.testing.assert_allclose(p["w"], w - 0.1 * tw.grad.numpy(), rtol=1e-12)
    opt = xn.SGD(lr=1.0, clip_value=0.5)
    p, _ = opt.update({"w": w}, {"w": g}, opt.init({"w": w}))
    assert np.all(np.abs(p["w"] - w) <= 0.5 + 1e-12)


def test_schedules_values():
    assert xn.Constant(0.3)(0) == 0.3
    s = xn.StepDecay(1.0, step_size=10, gamma=0.5)
    assert [s(0), s(9), s(10), s(25)] == [1.0, 1.0, 0.5, 0.25]
    e = xn.ExponentialDecay(2.0, gamma=0.9)
    assert math.isclose(e(3), 2.0 * 0.9**3)
    c = xn.CosineDecay(1.0, total_steps=100, min_lr=0.1)
    assert c(0) == 1.0 and math.isclose(c(50), 0.55) and math.isclose(c(100), 0.1)
    assert math.isclose(c(1000), 0.1)
    w = xn.LinearWarmup(c, warmup_steps=9)
    ramp = [w(i) for i in range(9)]
    assert all(a < b for a, b in zip(ramp, ramp[1:], strict=False)) and math.isclose(ramp[-1], 0.9)
    assert w(9) == c(0) and w(59) == c(50)


def test_schedule_drives_optimizer_lr():
    opt = xn.SGD(lr=xn.StepDecay(1.0, step_size=1, gamma=0.5))
    p = {"w": np.zeros(1)}
    s = opt.init(p)
    seen = []
    for _ in range(3):
        new, s = opt.update(p, {"w": np.ones(1)}, s)
        seen.append(float(p["w"][0] - new["w"][0]))
    assert seen == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("bad", [
    lambda: xn.Adam(lr=0), lambda: xn.Adam(lr=-1e-3), lambda: xn.SGD(lr=float("nan")),
    lambda: xn.SGD(lr=0.1, momentum=1.0), lambda: xn.SGD(lr=0.1, nesterov=True),
    lambda: xn.Adam(betas=(0.9, 1.0)), lambda: xn.RMSprop(eps=0),
    lambda: xn.CosineDecay(0.1, total_steps=0), lambda: xn.StepDecay(0.1, step_size=-1),
    lambda: xn.SGD(lr=0.1, clip_norm=0),
])
def test_bad_hyperparameters_are_refused(bad):
    with pytest.raises(ValueError, match="must be|needs momentum"):
        bad()


def test_unknown_optimizer_lists_choices():
    with pytest.raises(ValueError, match="choose one of: sgd, adam, adamw, rmsprop"):
        xn.optimizers.get_optimizer("adagrad")


def store_paths(path, monkeypatch):
    """Force the store update's numba kernel or its ufunc kernel; return the list each
    call of the path under test is appended to."""
    from xpnet.ops import _numba, _numpy

    calls: list = []
    monkeypatch.setenv("XPNET_NUM_THREADS", "2")
    if path == "jit":
        if not _numba.installed():
            pytest.skip("numba is not installed (pip install '.[jit]')")
        import numba  # noqa: F401  (imported: every update may compile)

        monkeypatch.setenv("XPNET_JIT", "1")
        real = _numba.run_flat

        def spy(*a):
            out = real(*a)
            if out is not None:  # None: nothing compiled ran
                calls.append(out)
            return out

        monkeypatch.setattr(_numba, "run_flat", spy)
    else:
        monkeypatch.setenv("XPNET_JIT", "0")
        real_run = _numpy._run_chunks
        monkeypatch.setattr(_numpy, "_run_chunks", lambda *a: calls.append(a[0]) or real_run(*a))
    return calls


@pytest.mark.parametrize("path", ["numpy", "jit"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_store_update_is_bitwise_equal_to_pure(name, dtype, path, monkeypatch):
    """The update over a model's flat buffers gives the same bits as update(), on both
    of its paths: the NumPy ufunc kernel over cache-sized chunks and the compiled (numba)
    flat kernel, split over 2 threads (the sizes straddle the chunk size and the
    threshold for threads)."""
    from xpnet.store import ParamStore

    calls = store_paths(path, monkeypatch)
    make_xn, _ = CASES[name]
    rng = np.random.default_rng(0)
    shapes = {"a": (700, 300), "b": (300,), "c": (5, 3)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    store = ParamStore(params, np)
    opt_pure, opt_fast = make_xn(), make_xn()
    sp, sf = opt_pure.init(params), opt_fast.init(store.params)
    pure, fast = dict(params), store.params
    for _ in range(4):
        grads = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
        given = {k: g.copy() for k, g in grads.items()}
        pure, sp = opt_pure.update(pure, grads, sp)
        assert opt_fast.update_(fast, given, sf, check_finite=True) is True
        assert all(given[k].tobytes() == grads[k].tobytes() for k in shapes)  # untouched
    assert sf["step"] == sp["step"] == 4 and sf["steps"] == sp["steps"] == dict.fromkeys(shapes, 4)
    assert len(calls) == 4  # every built-in rule has both kernels: the path under test ran
    assert fast is store.params and all(np.shares_memory(fast[k], store.flat) for k in shapes)
    for k in shapes:
        assert fast[k].tobytes() == pure[k].tobytes(), k
        for slot in opt_pure.slots:
            assert sf[slot][k].tobytes() == sp[slot][k].tobytes(), (slot, k)


@pytest.mark.parametrize("path", ["numpy", "jit"])
@pytest.mark.parametrize("name", list(CASES))
def test_torch_store_update_runs_numpys_kernels_bitwise(name, path, monkeypatch):
    """On PyTorch (CPU) the store's update runs the same NumPy kernels, ufunc or numba,
    over NumPy views of the tensors: the bits of the pure update, written in place into
    the tensors' own memory."""
    torch = pytest.importorskip("torch")
    from xpnet.store import ParamStore

    calls = store_paths(path, monkeypatch)
    make_xn, _ = CASES[name]
    rng = np.random.default_rng(0)
    shapes = {"a": (700, 300), "b": (300,), "c": (5, 3)}
    params = {k: torch.from_numpy(rng.normal(size=s).astype("float32"))
              for k, s in shapes.items()}
    store = ParamStore(params, xn.get_backend("torch").xp)
    opt_pure, opt_fast = make_xn(), make_xn()
    sp, sf = opt_pure.init(params), opt_fast.init(store.params)
    pure = dict(params)
    for _ in range(3):
        grads = {k: torch.from_numpy(rng.normal(size=s).astype("float32"))
                 for k, s in shapes.items()}
        pure, sp = opt_pure.update(pure, grads, sp)
        assert opt_fast.update_(store.params, grads, sf, check_finite=True) is True
    assert len(calls) == 3  # the path under test ran
    for k in shapes:
        assert isinstance(store.params[k], torch.Tensor)
        assert store.params[k].numpy().tobytes() == pure[k].numpy().tobytes(), k
        for slot in opt_pure.slots:
            assert sf[slot][k].numpy().tobytes() == sp[slot][k].numpy().tobytes(), (slot, k)


@pytest.mark.parametrize("clip", [{"clip_value": 0.5}, {"clip_norm": 1.0},
                                  {"clip_value": 0.5, "clip_norm": 1.0}])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clipping_is_applied_once_alike_on_both_paths(clip, dtype):
    """update_ (in place, NumPy kernel) and update (reference rule) clip through the same
    method, so they still give the same bits; the clipped gradient is what the rule sees."""
    rng = np.random.default_rng(2)
    shapes = {"a": (70, 30), "b": (30,)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    opt_pure, opt_fast = xn.Adam(lr=1e-2, **clip), xn.Adam(lr=1e-2, **clip)
    pure, sp = dict(params), opt_pure.init(params)
    fast, sf = {k: v.copy() for k, v in params.items()}, opt_fast.init(params)
    for _ in range(3):
        grads = {k: (rng.normal(size=s) * 10).astype(dtype) for k, s in shapes.items()}
        pure, sp = opt_pure.update(pure, grads, sp)
        opt_fast.update_(fast, {k: g.copy() for k, g in grads.items()}, sf)
        clipped = opt_pure.clip_grads(grads)
        assert all(c.dtype == np.dtype(dtype) for c in clipped.values())
        if "clip_value" in clip and "clip_norm" not in clip:
            assert max(float(np.abs(c).max()) for c in clipped.values()) == 0.5
        if "clip_norm" in clip:
            norm = math.sqrt(sum(float(np.sum(c.astype("float64") ** 2))
                                 for c in clipped.values()))
            assert 0.99 < norm <= 1.0 + 1e-5
    for k in shapes:
        assert fast[k].tobytes() == pure[k].tobytes(), k
        for slot in opt_pure.slots:
            assert sf[slot][k].tobytes() == sp[slot][k].tobytes(), (slot, k)


def test_inplace_update_falls_back_for_immutable_arrays():
    b = xn.get_backend("array_api_strict")
    p = {"w": b.asarray(np.ones(3), dtype=b.xp.float64)}
    opt = xn.Adam(lr=0.1)
    s = opt.init(p)
    ref, _ = opt.update(p, {"w": b.asarray(np.full(3, 0.5), dtype=b.xp.float64)}, s)
    opt.update_(p, {"w": b.asarray(np.full(3, 0.5), dtype=b.xp.float64)}, s)
    assert s["step"] == 1
    np.testing.assert_array_equal(xn.to_numpy(p["w"]), xn.to_numpy(ref["w"]))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_fused_update_is_bitwise_equal_to_the_generic_one(name, dtype, monkeypatch):
    """On CuPy, XPNET_CUPY_FUSED=1 runs one ElementwiseKernel per parameter (SGD, Adam,
    AdamW); it must give the generic update's bits, the keep=False mask included."""
    from xpnet.ops import _cupy
    from xpnet.ops.kernels import kernels_for

    why = xn.backends.backend_status().get("cupy")
    if why is not None:
        pytest.skip(f"backend cupy unavailable: {why}")
    b = xn.get_backend("cupy")
    cp = b.xp
    make_xn, _ = CASES[name]
    rng = np.random.default_rng(0)
    shapes = {"a": (700, 300), "b": (300,), "c": (5, 3)}
    params = {k: b.asarray(rng.normal(size=s).astype(dtype)) for k, s in shapes.items()}
    calls = []
    real = _cupy._compiled
    monkeypatch.setattr(_cupy, "_compiled", lambda spec: calls.append(spec) or real(spec))
    results = []
    for fused in ("0", "1"):
        monkeypatch.setenv("XPNET_CUPY_FUSED", fused)
        opt = make_xn()
        p, s = dict(params), opt.init(params)
        g_rng = np.random.default_rng(1)
        for step in range(5):
            grads = {k: b.asarray(g_rng.normal(size=sh).astype(dtype))
                     for k, sh in shapes.items()}
            keep = cp.asarray(step != 2)  # the third step is discarded on the device
            p, s = opt.update(p, grads, s, keep=keep)
        results.append((p, s, opt))
    (pg, sg, opt), (pf, sf, _) = results
    assert bool(calls) == (kernels_for(opt).cuda is not None)
    assert sg["step"] == sf["step"] == 5
    for k in shapes:
        assert xn.to_numpy(pf[k]).tobytes() == xn.to_numpy(pg[k]).tobytes(), k
        for slot in opt.slots:
            assert xn.to_numpy(sf[slot][k]).tobytes() == xn.to_numpy(sg[slot][k]).tobytes()


def test_a_subclass_with_its_own_rule_never_takes_the_parents_fast_paths(monkeypatch):
    """Overriding only _update_one (the documented way to write an optimizer) must give
    that rule on every path: update, update_ with the NumPy kernel, and update_ with
    numba; the parent's kernels would silently apply Adam's rule instead. Kernels are
    keyed by the exact class, so a subclass has none."""
    from xpnet.ops.kernels import kernels_for

    class SignAdam(xn.Adam):
        def _update_one(self, p, g, slots, lr, t):
            xp = xn.backends.backend_of(p).xp
            return p - lr * xp.sign(g), dict(slots)

    assert kernels_for(xn.Adam()) is not None and kernels_for(xn.AdamW()) is not None
    assert kernels_for(SignAdam()) is None
    for jit in ("0", "1"):
        monkeypatch.setenv("XPNET_JIT", jit)
        opt = SignAdam(lr=0.5)
        p = {"w": np.array([1.0, 2.0, 3.0])}
        s = opt.init(p)
        opt.update_(p, {"w": np.array([0.3, -0.2, 0.0])}, s)
        assert p["w"].tolist() == [0.5, 2.5, 3.0]
        p2, _ = opt.update({"w": np.array([1.0, 2.0, 3.0])}, {"w": np.array([0.3, -0.2, 0.0])},
                           opt.init(p))
        assert p2["w"].tolist() == [0.5, 2.5, 3.0]


def test_a_decay_mask_assigned_later_is_checked_and_used_as_the_constructors():
    opt = xn.AdamW(weight_decay=0.1)
    opt.decay = ["0.W"]  # held as the constructor holds it (a list was called as a function)
    assert opt.decay == frozenset({"0.W"})
    assert (opt.weight_decay_for("0.W", np.ones((2, 2))),
            opt.weight_decay_for("0.b", np.ones(2))) == (0.1, 0.0)
    with pytest.raises(ValueError, match="decay must be 'all', 'weights'"):
        opt.decay = "biases"
    assert opt.decay == frozenset({"0.W"})
