"""Parameter groups (a learning-rate scale and a weight decay per group) on every update
path, saved and resumed; register_optimizer for a user's rule; the refusals."""

import numpy as np
import pytest
from test_optimizers import store_paths

import xpnet as xn

SHAPES = {"0.W": (6, 5), "0.b": (5,), "1.W": (5, 3), "1.b": (3,)}
# layer 0 at a tenth of the rate, no decay on the last bias, the rest as configured
GROUPS = [{"params": ["0."], "lr_scale": 0.1}, {"params": ["1.b"], "weight_decay": 0.0}]
# each rule with its settings, and each key's (lr scale, weight decay) under GROUPS
RULES = {
    "sgd-momentum": lambda lr, wd, **kw: xn.SGD(lr=lr, momentum=0.9, nesterov=True,
                                                weight_decay=wd, **kw),
    "adam": lambda lr, wd, **kw: xn.Adam(lr=lr, weight_decay=wd, **kw),
    "adamw": lambda lr, wd, **kw: xn.AdamW(lr=lr, weight_decay=wd, **kw),
    "rmsprop": lambda lr, wd, **kw: xn.RMSprop(lr=lr, momentum=0.5, centered=True,
                                               weight_decay=wd, **kw),
}
WD = 0.05
# the same for an MLP([6, 5, 3]): Dense "0.", ReLU, Dense "2."
MODEL_GROUPS = [{"params": ["0."], "lr_scale": 0.1}, {"params": ["2.b"], "weight_decay": 0.0}]
PER_KEY = {"0.W": (0.1, WD), "0.b": (0.1, WD), "1.W": (1.0, WD), "1.b": (1.0, 0.0)}


def _host_params(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}


def _grads(rng, dtype="float64"):
    return {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}


def _data(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = ((X[:, 0] > 0).astype("int64") + (X[:, 1] > 0.5)).astype("int64")
    return X, y


@pytest.mark.parametrize("rule", list(RULES))
def test_groups_equal_each_parameter_updated_at_its_own_rate_and_decay(backend, rule):
    """The oracle, computed parameter by parameter: an optimizer without groups whose
    learning rate is the scheduled rate times the group's scale and whose weight decay is
    the group's. Same backend, same arithmetic: the same bits."""
    b = xn.get_backend(backend)
    make = RULES[rule]
    lr = xn.StepDecay(0.05, step_size=2, gamma=0.5)
    grouped = make(lr, WD, groups=GROUPS)
    host = _host_params()
    params = {k: b.asarray(v, dtype=b.xp.float64) for k, v in host.items()}
    state = grouped.init(params)
    oracles = {k: make(xn.StepDecay(0.05 * s, step_size=2, gamma=0.5), wd)
               for k, (s, wd) in PER_KEY.items()}
    ref = {k: {k: params[k]} for k in SHAPES}
    ref_state = {k: oracles[k].init(ref[k]) for k in SHAPES}
    rng = np.random.default_rng(1)
    for _ in range(5):
        g = {k: b.asarray(v, dtype=b.xp.float64) for k, v in _grads(rng).items()}
        params, state = grouped.update(params, g, state)
        for k in SHAPES:
            ref[k], ref_state[k] = oracles[k].update(ref[k], {k: g[k]}, ref_state[k])
    for k in SHAPES:
        got, want = xn.to_numpy(params[k]), xn.to_numpy(ref[k][k])
        assert got.tobytes() == want.tobytes(), k
        assert not np.allclose(got, host[k])
    # the scale and the group's decay changed the result: without groups it differs
    plain = make(lr, WD)
    p2, _ = plain.update({k: b.asarray(v, dtype=b.xp.float64) for k, v in host.items()},
                         {k: b.asarray(np.ones(s), dtype=b.xp.float64)
                          for k, s in SHAPES.items()}, plain.init(params))
    p1, _ = make(lr, WD, groups=GROUPS).update(
        {k: b.asarray(v, dtype=b.xp.float64) for k, v in host.items()},
        {k: b.asarray(np.ones(s), dtype=b.xp.float64) for k, s in SHAPES.items()},
        make(lr, WD, groups=GROUPS).init(params))
    assert not np.array_equal(xn.to_numpy(p1["0.W"]), xn.to_numpy(p2["0.W"]))


def test_sgd_group_step_by_hand(backend):
    b = xn.get_backend(backend)
    opt = xn.SGD(lr=0.5, weight_decay=0.1,
                 groups=[{"params": "weights", "lr_scale": 0.2},
                         {"params": ["0.b"], "weight_decay": 0.0}])
    p = {"0.W": b.asarray(np.ones((2, 2)), dtype=b.xp.float64),
         "0.b": b.asarray(np.ones(2), dtype=b.xp.float64),
         "1.b": b.asarray(np.ones(2), dtype=b.xp.float64)}
    g = {k: b.asarray(np.ones(v.shape), dtype=b.xp.float64) for k, v in p.items()}
    new, _ = opt.update(p, g, opt.init(p))
    # W: 1 - 0.5*0.2*(1 + 0.1*1); 0.b: 1 - 0.5*1; 1.b: 1 - 0.5*(1 + 0.1)
    assert xn.to_numpy(new["0.W"]).tolist() == [[1 - 0.5 * 0.2 * 1.1] * 2] * 2
    assert xn.to_numpy(new["0.b"]).tolist() == [0.5, 0.5]
    assert xn.to_numpy(new["1.b"]).tolist() == [1 - 0.5 * 1.1] * 2


@pytest.mark.parametrize("path", ["numpy", "jit"])
@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_store_update_with_groups_is_bitwise_equal_to_pure(rule, dtype, path, monkeypatch):
    """The flat NumPy kernels (ufunc chunks, numba) take each segment's own rate and decay."""
    from xpnet.store import ParamStore

    calls = store_paths(path, monkeypatch)
    make = RULES[rule]
    params = _host_params(dtype)
    store = ParamStore(params, np)
    opt_pure, opt_fast = make(1e-2, WD, groups=GROUPS), make(1e-2, WD, groups=GROUPS)
    sp, sf = opt_pure.init(params), opt_fast.init(store.params)
    pure, fast = dict(params), store.params
    rng = np.random.default_rng(2)
    for _ in range(4):
        grads = _grads(rng, dtype)
        pure, sp = opt_pure.update(pure, grads, sp)
        assert opt_fast.update_(fast, {k: v.copy() for k, v in grads.items()}, sf,
                                check_finite=True) is True
    assert len(calls) == 4  # the path under test ran
    for k in SHAPES:
        assert fast[k].tobytes() == pure[k].tobytes(), k
        for slot in opt_pure.slots:
            assert sf[slot][k].tobytes() == sp[slot][k].tobytes(), (slot, k)


@pytest.mark.parametrize("groups", [MODEL_GROUPS, [{"params": ["0."], "lr_scale": 0.1}]],
                         ids=["rate-and-decay", "rate-only"])
def test_model_store_update_with_groups_is_bitwise_equal_to_pure(backend, groups):
    """A model's update_ in place (NumPy's kernels; elsewhere the flat-buffer rule, which
    runs only where every segment shares its rate and decay) gives update()'s bits."""
    b = xn.get_backend(backend)
    m = xn.MLP([6, 5, 3], backend=backend, seed=0, dtype="float64")
    opt_fast = xn.Adam(1e-2, weight_decay=WD, groups=groups)
    opt_pure = xn.Adam(1e-2, weight_decay=WD, groups=groups)
    pure = {k: b.asarray(xn.to_numpy(v), dtype=b.xp.float64) for k, v in m.params.items()}
    sf, sp = opt_fast.init(m.params), opt_pure.init(pure)
    rng = np.random.default_rng(3)
    for _ in range(3):
        g = {k: b.asarray(rng.normal(size=tuple(v.shape)), dtype=b.xp.float64)
             for k, v in pure.items()}
        assert opt_fast.update_(m.params, g, sf, check_finite=True) is True
        pure, sp = opt_pure.update(pure, g, sp)
    for k in pure:
        assert xn.to_numpy(m.params[k]).tobytes() == xn.to_numpy(pure[k]).tobytes(), k
    assert opt_fast.lr_scale_for("0.W", pure["0.W"]) == 0.1


@pytest.mark.parametrize("rule", list(RULES))
def test_cuda_kernel_hyper_parameters_take_each_groups_rate_and_decay(rule):
    """What the fused CuPy update passes each parameter's kernel (computed on the host)."""
    from xpnet.ops._base import cast_hyper, hypers
    from xpnet.ops.kernels import kernels_for

    opt = RULES[rule](0.05, WD, groups=GROUPS)
    kernels = kernels_for(opt)
    params = _host_params("float32")
    ts = {"0.W": 3, "0.b": 3, "1.W": 3, "1.b": 1}
    got = hypers(kernels, opt, 0.05, ts, params)
    for k, (scale, wd) in PER_KEY.items():
        want = cast_hyper(kernels.hyper(opt, 0.05 * scale, ts[k], wd), np.float32)
        assert got[k] == want, k
    assert got["0.W"] != got["1.W"] != got["1.b"]


@pytest.mark.parametrize("rule", list(RULES))
def test_fused_cupy_update_with_groups_gives_the_reference_bits(rule, monkeypatch):
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver or no GPU
        pytest.skip("no CUDA GPU")
    from xpnet.ops import _cupy

    b = xn.get_backend("cupy")
    host = _host_params("float32")
    make = RULES[rule]
    rng = np.random.default_rng(4)
    g = {k: b.asarray(v, dtype=b.xp.float32) for k, v in _grads(rng, "float32").items()}
    out = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("XPNET_CUPY_FUSED", fused)
        assert _cupy.fused_enabled() == (fused == "1")
        opt = make(1e-2, WD, groups=GROUPS)
        p = {k: b.asarray(v, dtype=b.xp.float32) for k, v in host.items()}
        state = opt.init(p)
        for _ in range(3):
            p, state = opt.update(p, g, state)
        out[fused] = {k: xn.to_numpy(v) for k, v in p.items()}
    for k in SHAPES:
        assert out["1"][k].tobytes() == out["0"][k].tobytes(), k


TORCH_CASES = {
    "adam": (lambda lr, **kw: xn.Adam(lr=lr, weight_decay=0.1, **kw),
             lambda t, groups: t.optim.Adam(groups, lr=1e-2, weight_decay=0.1)),
    "sgd-momentum": (lambda lr, **kw: xn.SGD(lr=lr, momentum=0.9, weight_decay=0.1, **kw),
                     lambda t, groups: t.optim.SGD(groups, lr=1e-2, momentum=0.9,
                                                   weight_decay=0.1)),
    "adamw": (lambda lr, **kw: xn.AdamW(lr=lr, weight_decay=0.1, **kw),
              lambda t, groups: t.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_groups_match_torch_param_groups_under_a_schedule(backend, name):
    """torch.optim's param groups (a rate and a decay of their own) with LambdaLR scaling
    every group's rate: the same numbers for 20 steps."""
    torch = pytest.importorskip("torch")
    make_xn, make_torch = TORCH_CASES[name]
    host = _host_params()
    tp = {k: torch.tensor(v) for k, v in host.items()}
    topt = make_torch(torch, [{"params": [tp["0.W"], tp["0.b"]], "lr": 1e-2 * 0.1},
                              {"params": [tp["1.W"]]},
                              {"params": [tp["1.b"]], "weight_decay": 0.0}])
    sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: 0.5 ** (e // 5))
    b = xn.get_backend(backend)
    opt = make_xn(xn.StepDecay(1e-2, step_size=5, gamma=0.5), groups=GROUPS)
    params = {k: b.asarray(v, dtype=b.xp.float64) for k, v in host.items()}
    state = opt.init(params)
    for _ in range(20):
        hp = {k: xn.to_numpy(v) for k, v in params.items()}
        grads = {k: np.cos(v) * v**2 + 2 * v * np.sin(v) for k, v in hp.items()}
        for k, t in tp.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
        sched.step()
        params, state = opt.update(params, {k: b.asarray(v, dtype=b.xp.float64)
                                            for k, v in grads.items()}, state)
    for k in SHAPES:
        np.testing.assert_allclose(xn.to_numpy(params[k]), tp[k].numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=k)


def _jax_fit(monkeypatch, compiled, opt, m=None, epochs=2):
    from xpnet.training import _jit

    jnp = pytest.importorskip("jax.numpy")
    monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
    ran = []
    real = _jit.JitStep.step

    def counting(self, k, perm):
        out = real(self, k, perm)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(_jit.JitStep, "step", counting)
    X, y = _data()
    m = m if m is not None else xn.MLP([6, 5, 3], backend="jax", seed=1)
    m.fit(jnp.asarray(X), jnp.asarray(y), epochs=epochs, batch_size=40, verbose=0,
          optimizer=opt)
    return m, sum(ran)


@pytest.mark.parametrize("rule", list(RULES))
def test_compiled_jax_step_honours_groups_as_the_eager_step(monkeypatch, rule):
    pytest.importorskip("jax")
    lr = xn.StepDecay(1e-2, step_size=3, gamma=0.5)
    fast, ran = _jax_fit(monkeypatch, True, RULES[rule](lr, WD, groups=MODEL_GROUPS))
    assert ran == 2 * 3  # every step ran compiled
    slow, ran_slow = _jax_fit(monkeypatch, False, RULES[rule](lr, WD, groups=MODEL_GROUPS))
    assert ran_slow == 0
    plain, _ = _jax_fit(monkeypatch, False, RULES[rule](lr, WD))
    for k in fast.params:
        a, b = np.asarray(fast.params[k]), np.asarray(slow.params[k])
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=k)
    assert not np.allclose(np.asarray(fast.params["0.W"]), np.asarray(plain.params["0.W"]),
                           rtol=1e-4, atol=1e-5)


def test_compiled_jax_step_is_retraced_for_other_groups(monkeypatch):
    """A rate of zero holds a layer exactly; the next fit of the same model with the other
    layer held must not reuse the step traced for the first groups."""
    pytest.importorskip("jax")
    m = xn.MLP([6, 5, 3], backend="jax", seed=1)
    before = {k: np.asarray(v).copy() for k, v in m.params.items()}
    m, ran = _jax_fit(monkeypatch, True, xn.Adam(1e-2, groups=[{"params": ["0."],
                                                                "lr_scale": 0.0}]), m)
    assert ran == 6
    assert all(np.array_equal(np.asarray(m.params[k]), before[k]) for k in ("0.W", "0.b"))
    assert not np.array_equal(np.asarray(m.params["2.W"]), before["2.W"])
    mid = {k: np.asarray(v).copy() for k, v in m.params.items()}
    m, ran = _jax_fit(monkeypatch, True, xn.Adam(1e-2, groups=[{"params": ["2."],
                                                                "lr_scale": 0.0}]), m)
    assert ran == 6
    assert all(np.array_equal(np.asarray(m.params[k]), mid[k]) for k in ("2.W", "2.b"))
    assert not np.array_equal(np.asarray(m.params["0.W"]), mid["0.W"])


def test_groups_are_saved_loaded_and_resumed_bit_for_bit(tmp_path):
    X, y = _data()

    def opt():
        return xn.AdamW(xn.CosineDecay(1e-2, total_steps=40), weight_decay=0.1,
                        groups=[{"params": ["0."], "lr_scale": 0.1},
                                {"params": ["2.b"], "weight_decay": 0.0}])

    straight = xn.MLP([6, 5, 3], backend="numpy", seed=0)
    straight.fit(X, y, epochs=4, batch_size=32, seed=3, verbose=0, optimizer=opt())
    first = xn.MLP([6, 5, 3], backend="numpy", seed=0)
    first.fit(X, y, epochs=2, batch_size=32, seed=3, verbose=0, optimizer=opt(),
              callbacks=[xn.ModelCheckpoint(tmp_path / "last.safetensors")])
    c = xn.load_checkpoint(tmp_path / "last.safetensors", backend="numpy")
    assert c.optimizer.groups == opt().groups and c.optimizer.get_config() == opt().get_config()
    assert repr(c.optimizer) == repr(opt())
    c.model.fit(X, y, epochs=4, batch_size=32, verbose=0, optimizer=c.optimizer,
                resume=c.training)
    for k in straight.params:
        assert c.model.params[k].tobytes() == straight.params[k].tobytes(), k
    # the same resume without the groups does not give these bits
    c2 = xn.load_checkpoint(tmp_path / "last.safetensors", backend="numpy")
    c2.optimizer.groups = None
    c2.model.fit(X, y, epochs=4, batch_size=32, verbose=0, optimizer=c2.optimizer,
                 resume=c2.training)
    assert c2.model.params["0.W"].tobytes() != straight.params["0.W"].tobytes()


def test_a_function_selector_cannot_be_saved(tmp_path):
    m = xn.MLP([6, 3], backend="numpy", seed=0)
    m.optimizer = xn.Adam(groups=[{"params": lambda k: k.endswith(".b"), "lr_scale": 2.0}])
    m.optimizer.state = m.optimizer.init(m.params)
    with pytest.raises(ValueError, match=r"parameter group 0 selects its parameters with the "
                                         r"function <lambda>, which cannot be saved"):
        xn.save(m, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_a_bad_groups_config_in_a_checkpoint_is_refused(tmp_path):
    import json

    from xpnet.checkpoint import CheckpointError

    m = xn.MLP([6, 3], backend="numpy", seed=0)
    m.optimizer = xn.Adam(groups=[{"params": ["0.W"], "lr_scale": 0.5}])
    m.optimizer.state = m.optimizer.init(m.params)
    path = xn.save(m, tmp_path / "m.safetensors")
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    opt_meta = json.loads(header["__metadata__"]["optimizer"])
    opt_meta["config"]["groups"][0]["lr_scale"] = -1.0
    header["__metadata__"]["optimizer"] = json.dumps(opt_meta)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + raw[8 + n:])
    with pytest.raises(CheckpointError, match="lr_scale must be a finite number >= 0"):
        xn.load_checkpoint(path, backend="numpy")


# -- register_optimizer ----------------------------------------------------------------------
@xn.register_optimizer
class VelocitySGD(xn.Optimizer):
    """SGD with a velocity slot: v = mu v + g; p -= lr v."""

    def __init__(self, lr=0.01, mu=0.9, **kw):
        super().__init__(lr, **kw)
        self.mu = mu
        self.slots = ("velocity",)

    def _update_one(self, p, g, slots, lr, t):
        v = self.mu * slots["velocity"] + g
        return p - lr * v, {"velocity": v}

    def _extra_config(self):
        return {"mu": self.mu}


def test_a_registered_optimizer_checkpoints_and_resumes_bit_for_bit(tmp_path):
    X, y = _data()
    straight = xn.MLP([6, 5, 3], backend="numpy", seed=0)
    straight.fit(X, y, epochs=4, batch_size=32, seed=3, verbose=0,
                 optimizer=VelocitySGD(0.05, mu=0.8, groups=MODEL_GROUPS))
    first = xn.MLP([6, 5, 3], backend="numpy", seed=0)
    first.fit(X, y, epochs=2, batch_size=32, seed=3, verbose=0,
              optimizer=VelocitySGD(0.05, mu=0.8, groups=MODEL_GROUPS),
              callbacks=[xn.ModelCheckpoint(tmp_path / "last.safetensors")])
    c = xn.load_checkpoint(tmp_path / "last.safetensors", backend="numpy")
    assert type(c.optimizer) is VelocitySGD and c.optimizer.mu == 0.8
    assert c.optimizer.groups == MODEL_GROUPS and c.optimizer.state["step"] == 2 * 4
    assert c.optimizer.state["velocity"]["0.W"].tobytes() == \
        first.optimizer.state["velocity"]["0.W"].tobytes()
    c.model.fit(X, y, epochs=4, batch_size=32, verbose=0, optimizer=c.optimizer,
                resume=c.training)
    for k in straight.params:
        assert c.model.params[k].tobytes() == straight.params[k].tobytes(), k


def test_an_unregistered_or_unfaithful_optimizer_is_refused_before_writing(tmp_path):
    class Unregistered(VelocitySGD):
        pass

    class Forgetful(xn.Optimizer):  # mu is not in its config
        def __init__(self, lr=0.01, mu=0.9):
            super().__init__(lr)
            self.mu = mu

        def _update_one(self, p, g, slots, lr, t):
            return p - lr * self.mu * g, {}

    xn.register_optimizer(Forgetful)
    m = xn.MLP([6, 3], backend="numpy", seed=0)
    for opt, match in [(Unregistered(), r"is not registered; register it with "
                                         r"xpnet.register_optimizer\(Unregistered\)"),
                       (Forgetful(mu=0.5), r"Forgetful\(\) takes 'mu', which "
                                           r"Forgetful.get_config\(\) does not return")]:
        opt.state = opt.init(m.params)
        with pytest.raises(ValueError, match=match):
            xn.save(m, tmp_path / "m.safetensors", optimizer=opt)
    assert not list(tmp_path.iterdir())


def test_register_optimizer_refusals():
    with pytest.raises(TypeError, match="expects a Optimizer subclass"):
        xn.register_optimizer(int)

    class NoRule(xn.Optimizer):
        pass

    with pytest.raises(TypeError, match="NoRule defines no _update_one"):
        xn.register_optimizer(NoRule)

    class Adam(xn.Optimizer):
        def _update_one(self, p, g, slots, lr, t):
            return p, {}

    with pytest.raises(ValueError, match="optimizer name 'Adam' is taken by "
                                         "xpnet.optimizers.Adam"):
        xn.register_optimizer(Adam)
    with pytest.raises(ValueError, match="unknown optimizer class 'Nope'; register custom "
                                         "optimizers with xpnet.register_optimizer"):
        xn.optimizers.optimizer_from_config("Nope", {"lr": 0.1})


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("groups, match", [
    ([{"params": ["0.W"]}, {"params": ["0.W", "1.b"]}],
     r"parameter groups 0 and 1 both name '0.W'"),
    ([{"params": ["1."]}, {"params": ["1.b"]}], r"parameter groups 0 and 1 both name '1.b'"),
    ([{"params": ["0.W"], "lr": 0.1}], r"give 'lr_scale'"),
    ([{"params": ["0.W"], "lr_sclae": 0.1}], r"takes 'lr_scale' and 'weight_decay', got "
                                             r"the keys \['lr_sclae', 'params'\]"),
    ([{"lr_scale": 0.1}], r"needs 'params'"),
    ([{"params": []}], r"'params' must be"),
    ([{"params": [0]}], r"'params' must be"),
    ([{"params": ["0.W", "0.W"]}], r"lists a key twice"),
    ([{"params": ["0.W"], "lr_scale": float("nan")}], r"lr_scale must be a finite number"),
    ([{"params": ["0.W"], "lr_scale": True}], r"lr_scale must be a finite number"),
    ([{"params": ["0.W"], "weight_decay": -0.1}], r"weight_decay must be a finite number"),
    ({"params": ["0.W"]}, r"groups must be a list of dicts"),
])
def test_bad_groups_are_refused_when_given_and_when_assigned(groups, match):
    with pytest.raises(ValueError, match=match):
        xn.Adam(groups=groups)
    opt = xn.Adam()
    with pytest.raises(ValueError, match=match):
        opt.groups = groups
    assert opt.groups == []


@pytest.mark.parametrize("groups, match", [
    ([{"params": ["0.w"], "lr_scale": 0.5}], r"parameter group 0 names \['0.w'\], which are "
                                             r"not parameters of this model"),
    ([{"params": ["4."]}], r"parameter group 0 names \['4.'\]"),
    ([{"params": lambda k: k == "9.W", "weight_decay": 0.0}],
     r"parameter group 0 \(<lambda>\) holds no parameter"),
    ([{"params": "weights", "lr_scale": 0.5}, {"params": ["2.W"]}],
     r"parameter '2.W' is in parameter groups 0 and 1"),
])
def test_groups_that_do_not_fit_the_model_are_refused_at_fits_start(groups, match):
    X, y = _data()
    m = xn.MLP([6, 5, 3], backend="numpy", seed=0)
    before = {k: v.copy() for k, v in m.params.items()}
    opt = xn.Adam(groups=groups)
    with pytest.raises(ValueError, match=match):
        m.fit(X, y, epochs=1, verbose=0, optimizer=opt)
    assert opt.state is None
    assert all(np.array_equal(m.params[k], before[k]) for k in before)


def test_a_parameter_in_two_groups_is_refused_by_init_in_a_custom_loop():
    opt = xn.SGD(lr=0.1, groups=[{"params": "weights"}, {"params": lambda k: "W" in k}])
    with pytest.raises(ValueError, match="parameter '0.W' is in parameter groups 0 and 1"):
        opt.init({"0.W": np.ones((2, 2)), "0.b": np.ones(2)})


@pytest.mark.parametrize("path", ["numpy", "jit"])
def test_a_groups_decay_overrides_the_mask_and_a_zero_decay(path, monkeypatch):
    """Decay on a bias the mask leaves out, and on an optimizer without decay, on the flat
    kernels: each key as the rule without groups at the group's decay."""
    from xpnet.store import ParamStore

    calls = store_paths(path, monkeypatch)
    cases = [(lambda wd, decay="weights", **kw: xn.Adam(1e-2, weight_decay=wd, decay=decay,
                                                        **kw), 0.1,
              {"0.W": 0.1, "0.b": 0.2, "1.W": 0.1, "1.b": 0.0}),
             (lambda wd, **kw: xn.SGD(1e-2, momentum=0.9, weight_decay=wd, **kw), 0.0,
              {"0.W": 0.0, "0.b": 0.2, "1.W": 0.0, "1.b": 0.0})]
    for make, wd, per_key in cases:
        opt = make(wd, groups=[{"params": ["0.b"], "weight_decay": 0.2}])
        params = _host_params()
        store = ParamStore(params, np)
        state = opt.init(store.params)
        oracles = {k: make(w, decay="all") for k, w in per_key.items()}
        ref = {k: ({k: params[k]}, oracles[k].init({k: params[k]})) for k in SHAPES}
        rng = np.random.default_rng(5)
        for _ in range(3):
            g = _grads(rng)
            assert opt.update_(store.params, {k: v.copy() for k, v in g.items()}, state)
            ref = {k: oracles[k].update(ref[k][0], {k: g[k]}, ref[k][1]) for k in SHAPES}
        for k in SHAPES:
            assert store.params[k].tobytes() == ref[k][0][k].tobytes(), (k, per_key[k])
    assert len(calls) == 6  # the path under test ran


def test_layer_prefixes_reach_nested_keys():
    opt = xn.SGD(lr=0.1, groups=[{"params": ["2."], "lr_scale": 0.5},
                                 {"params": ["3.0."], "weight_decay": 0.3}])
    w = np.ones((2, 2))
    assert [opt.lr_scale_for(k, w) for k in ("2.W", "2.0.W", "2.1.b", "12.W", "0.W")] == \
        [0.5, 0.5, 0.5, 1.0, 1.0]
    assert [opt.weight_decay_for(k, w) for k in ("3.0.W", "3.1.W")] == [0.3, 0.0]
    opt.check_groups({"2.0.W": w, "3.0.b": w[0]})
    with pytest.raises(ValueError, match=r"parameter group 1 names \['3.0.'\]"):
        opt.check_groups({"2.0.W": w, "3.1.b": w[0]})
