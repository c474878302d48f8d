"""The compiled JAX step (xpnet/training/_jit.py) against the eager step as its oracle:
the same weights, history and step counts (dropout included); the same refusal of a
non-finite step; and the user's own classes and host data keeping the eager step."""

import numpy as np
import pytest
from test_training import _Explode

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


# a layer with Python state (it counts its calls and explodes at one): a trace would run
# that code once, so the fit must keep the eager step
Counting = _Explode


def test_user_classes_keep_the_eager_step(monkeypatch):
    def build(compiled, layer):
        monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
        X, y = _data()
        m = xn.Sequential([xn.Dense(8), layer, xn.ReLU(), xn.Dense(3)], in_features=6,
                          backend="jax", seed=2)
        h = m.fit(jnp.asarray(X), jnp.asarray(y), epochs=2, batch_size=64, verbose=0,
                  optimizer=xn.SGD(lr=0.1), on_nonfinite="skip")
        return m, h

    (fast, hf), (slow, hs) = build(True, Counting(at=3)), build(False, Counting(at=3))
    _close(fast, slow, tol=1e-6)
    assert hf.history["skipped_steps"][0] == hs.history["skipped_steps"][0] == 1

    class MyAdam(xn.Adam):
        pass

    monkeypatch.setenv("XPNET_JAX_JIT", "1")
    X, y = _data()
    cases = [(xn.Sequential([xn.Dense(3), Counting(at=0)], in_features=6, backend="jax"),
              xn.SGD(lr=0.1), False),                        # the user's layer
             (xn.MLP([6, 3], backend="jax"), MyAdam(), False),  # the user's optimizer
             (xn.MLP([6, 3], backend="jax"), xn.SGD(lr=0.1), True)]
    for model, opt, compiled in cases:
        trainer = xn.training.Trainer(model, jnp.asarray(X), jnp.asarray(y), optimizer=opt,
                                      epochs=1, batch_size=32)
        assert (trainer._jit is not None) is compiled
    m = xn.MLP([6, 3], backend="jax")
    trainer = xn.training.Trainer(m, X, y, optimizer=xn.SGD(lr=0.1), epochs=1, batch_size=32)
    assert trainer._jit is None  # NumPy data: it would be copied in at every step
