"""The compiled JAX step (xpnet/training/_jit.py) against the eager step as its oracle:
the same weights, history and step counts; the same refusal of a non-finite step; and
the fallbacks (a layer that reads values on the host, dropout) training as before."""

import numpy as np
import pytest

import xpnet as xn
from xpnet.training import _jit

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


def _data(n=300, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0.5)
    return X, y


def _fit(monkeypatch, compiled, *, model_kw=None, fit_kw=None, prepare=None):
    """A fit on JAX with the compiled step on or off; returns the model, history,
    optimizer and how many compiled steps ran."""
    monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
    ran = []
    real = _jit.JitStep.step

    def counting(self, k, perm):
        out = real(self, k, perm)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(_jit.JitStep, "step", counting)
    X, y = _data()
    m = xn.MLP([6, 16, 8, 3], backend="jax", seed=1, **(model_kw or {}))
    if prepare is not None:
        prepare(m)
    kw = {"epochs": 3, "batch_size": 64, "verbose": 0,
          "optimizer": xn.Adam(lr=xn.schedules.StepDecay(1e-2, step_size=4, gamma=0.5))}
    kw.update(fit_kw or {})
    h = m.fit(jnp.asarray(X), jnp.asarray(y), **kw)
    return m, h, kw["optimizer"], sum(ran)


def _close(a, b, tol=2e-5):
    for k in a.params:
        np.testing.assert_allclose(np.asarray(a.params[k]), np.asarray(b.params[k]),
                                   rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("case", ["adam", "sgd_momentum", "adamw_mask_clip", "rmsprop",
                                  "frozen", "weighted", "dropout"])
def test_compiled_step_matches_the_eager_step(monkeypatch, case):
    fit_kw: dict = {}
    model_kw = {"dropout": 0.3} if case == "dropout" else {}
    prepare = None
    if case == "sgd_momentum":
        fit_kw["optimizer"] = xn.SGD(lr=0.05, momentum=0.9, nesterov=True)
    elif case == "adamw_mask_clip":
        fit_kw["optimizer"] = xn.AdamW(lr=1e-2, weight_decay=0.1, decay="weights",
                                       clip_norm=0.5)
    elif case == "rmsprop":
        fit_kw["optimizer"] = xn.RMSprop(lr=1e-3, momentum=0.5, centered=True)
    elif case == "frozen":
        def prepare(m):
            m.freeze(0)
    elif case == "weighted":
        fit_kw["sample_weight"] = jnp.asarray(
            np.random.default_rng(3).uniform(0.1, 2.0, size=300).astype("float32"))
    fast, h_fast, opt_fast, ran = _fit(monkeypatch, True, fit_kw=dict(fit_kw),
                                       prepare=prepare, model_kw=model_kw)
    assert ran == 3 * 5  # every step of the three epochs ran compiled
    if "optimizer" in fit_kw:  # a fresh optimizer of the same settings for the oracle
        opt = fit_kw["optimizer"]
        fit_kw["optimizer"] = xn.optimizers.optimizer_from_config(type(opt).__name__,
                                                                  opt.get_config())
    slow, h_slow, opt_slow, ran_slow = _fit(monkeypatch, False, fit_kw=fit_kw,
                                            prepare=prepare, model_kw=model_kw)
    assert ran_slow == 0
    _close(fast, slow)
    np.testing.assert_allclose(h_fast.history["loss"], h_slow.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_fast.history["accuracy"], h_slow.history["accuracy"])
    assert opt_fast.state["step"] == opt_slow.state["step"] == 15
    assert opt_fast.state["steps"] == opt_slow.state["steps"]
    if case == "frozen":
        assert sorted(opt_fast.state["steps"]) == ["2.W", "2.b", "4.W", "4.b"]


def _poisoned(m):
    """Weights so large that a step's update overflows float32 (the loss stays finite)."""
    p = dict(m.params)
    p["4.b"] = jnp.full_like(p["4.b"], 3e38)
    m.params = p


@pytest.mark.parametrize("policy", ["skip", "raise", "stop"])
def test_a_non_finite_step_is_refused_as_on_the_eager_path(monkeypatch, policy):
    big = {"optimizer": xn.SGD(lr=1e38), "on_nonfinite": policy, "epochs": 2}

    def run(compiled):
        try:
            m, h, opt, _ = _fit(monkeypatch, compiled, fit_kw=dict(big, optimizer=xn.SGD(
                lr=1e38)), prepare=_poisoned)
        except xn.NonFiniteLossError as exc:
            return ("raised", exc.epoch, exc.step, str(exc))
        return m, h, opt

    fast, slow = run(True), run(False)
    if policy == "raise":
        assert fast == slow and fast[0] == "raised"
        return
    (mf, hf, of), (ms, hs, os_) = fast, slow
    for k in mf.params:  # nothing non-finite was ever applied, on either path
        assert bool(jnp.all(jnp.isfinite(mf.params[k]))), k
    _close(mf, ms, tol=1e-3)  # huge values: rounding differs in the last digits
    assert of.state["step"] == os_.state["step"]
    assert hf.history.get("skipped_steps") == hs.history.get("skipped_steps")
    if policy == "skip":
        assert hf.history["skipped_steps"][0] > 0


class HostReading(xn.Layer):
    """A layer that reads a value on the host in forward: it cannot be traced."""

    def forward(self, params, x, *, train=False):
        if float(x[0, 0]) > 1e30:
            raise AssertionError("unreachable")
        return x, None

    def backward(self, params, cache, dy):
        return dy, {}


def test_a_layer_that_cannot_be_traced_trains_eagerly(monkeypatch):
    def build(compiled):
        monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
        X, y = _data()
        m = xn.Sequential([xn.Dense(8), HostReading(), xn.ReLU(), xn.Dense(3)],
                          in_features=6, backend="jax", seed=2)
        m.fit(jnp.asarray(X), jnp.asarray(y), epochs=2, batch_size=64, verbose=0,
              optimizer=xn.Adam(lr=1e-2))
        return m

    _close(build(True), build(False), tol=1e-6)


class Noisy(xn.Layer):
    """A stochastic layer that asks its generator for something other than a dropout mask."""

    stochastic = True

    def forward(self, params, x, *, train=False, rng=None):
        if not train:
            return x, None
        noise = rng.uniform(tuple(x.shape), -0.01, 0.01, xn.backends.backend_of(x), x.dtype)
        return x + noise, None

    def backward(self, params, cache, dy):
        return dy, {}


def test_other_generator_calls_and_host_data_keep_the_eager_step(monkeypatch):
    monkeypatch.setenv("XPNET_JAX_JIT", "1")
    X, y = _data()
    ran = []
    real = _jit.JitStep.step
    monkeypatch.setattr(_jit.JitStep, "step",
                        lambda self, k, perm: ran.append(1) or real(self, k, perm))
    m = xn.Sequential([xn.Dense(8), Noisy(), xn.ReLU(), xn.Dense(3)], in_features=6,
                      backend="jax", seed=2)
    h = m.fit(jnp.asarray(X), jnp.asarray(y), epochs=2, batch_size=64, verbose=0)
    assert len(h.history["loss"]) == 2
    assert len(ran) == 1  # the recorder refused at the first step: eager after that
    trainer = xn.training.Trainer(m, X, y, optimizer=xn.SGD(lr=0.1), epochs=1, batch_size=32)
    assert trainer._jit is None  # NumPy data: it would be copied in at every step
