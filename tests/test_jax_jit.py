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
    h = m.fit(jnp.asarray(kw.pop("X", X)), jnp.asarray(y), **kw)
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


@pytest.mark.parametrize("policy", ["skip", "raise", "stop"])
@pytest.mark.parametrize("window", [2, 64])
def test_flags_read_in_batches_keep_the_guard_exact(monkeypatch, policy, window):
    """The compiled step's flags are read every ``window`` steps and at the epoch's end,
    not at every step; a step refused in the middle of a window changes nothing (the
    later steps use the right Adam counts and scheduled rate), as on the eager path."""
    reads = []
    real = _jit.JitStep.flush

    def counting(self):
        reads.append(len(self.pending))
        return real(self)

    monkeypatch.setattr(_jit.JitStep, "flush", counting)
    monkeypatch.setattr(_jit.JitStep, "WINDOW", window)
    bad = _data()[0]
    bad[64:128, 2] = 1e25  # batch 2 of 5: Adam's second moment overflows (an update)

    def run(compiled):
        try:
            m, h, opt, _ = _fit(monkeypatch, compiled, fit_kw={
                "on_nonfinite": policy, "shuffle": False, "X": bad, "optimizer": xn.Adam(
                    lr=xn.schedules.StepDecay(1e-2, step_size=3, gamma=0.5))})
        except xn.NonFiniteLossError as exc:
            return str(exc)
        return m, h, opt

    fast, slow = run(True), run(False)
    if policy == "raise":
        assert fast == slow and "update" in fast and "epoch 1, step 2" in fast
        assert reads[0] == min(window, 5)
        return
    (mf, hf, of), (ms, hs, os_) = fast, slow
    _close(mf, ms)
    np.testing.assert_allclose(hf.history.get("loss", []), hs.history.get("loss", []),
                               rtol=1e-5)
    assert hf.history.get("skipped_steps") == hs.history.get("skipped_steps")
    assert of.state["step"] == os_.state["step"] == (12 if policy == "skip" else 1)
    assert of.state["steps"] == os_.state["steps"]
    if policy == "skip":  # one read per window and one at each epoch's end
        assert [n for n in reads if n] == ([2, 2, 1] * 3 if window == 2 else [5, 5, 5])


@pytest.mark.parametrize("donate", [False, True])
def test_fit_donates_only_the_arrays_its_steps_made(monkeypatch, donate):
    """An array held from before ``fit`` keeps its values (fit copies it once); where the
    step donates (a GPU; forced here on the CPU) an array a callback reads during ``fit``
    is donated to the next step (its memory reused), on a CPU it stays valid. The step
    counts a callback reads advance at every step, flags read or not."""
    from xpnet.training import _jit

    monkeypatch.setattr(_jit, "_DONATE_ON_CPU", donate)
    _jit._CACHE.clear()
    seen, steps = [], []

    class Hold(xn.Callback):
        def on_batch_end(self, batch, logs):
            seen.append(self.model.params["0.W"])
            steps.append(opt.state["step"])  # counted before the flags are read

    m, h, opt, _ = _fit(monkeypatch, True, fit_kw={"epochs": 1})
    before = {k: np.asarray(v) for k, v in m.params.items()}
    held = dict(m.params)
    slot = opt.state["exp_avg"]["0.W"]
    m.fit(jnp.asarray(_data()[0]), jnp.asarray(_data()[1]), epochs=1, batch_size=64,
          verbose=0, optimizer=opt, callbacks=[Hold()])
    for k, v in held.items():  # the model's arrays before the fit: untouched
        np.testing.assert_array_equal(np.asarray(v), before[k])
    assert not slot.is_deleted()
    assert [a.is_deleted() for a in seen] == [donate] * 4 + [False]
    assert seen[-1] is m.params["0.W"]
    assert steps == [6, 7, 8, 9, 10] and opt.state["steps"]["0.W"] == 10


@pytest.mark.parametrize("where", ["trace", "masks"])
def test_a_step_that_does_not_compile_hands_the_fit_to_the_eager_step(monkeypatch, where):
    """A first step whose trace fails, or a dropout plan that cannot be recorded, gives
    the fit back to the eager step at once: no compiled step runs, the results are the
    eager fit's."""
    if where == "trace":
        def broken(self, *args, **kwargs):
            raise RuntimeError("no trace")
        monkeypatch.setattr(_jit.JitStep, "_pure", broken)
    else:
        def unrecorded(self, *args):
            raise RuntimeError("a generator call the recorder does not know")
        monkeypatch.setattr(_jit._Recorder, "keep_mask", unrecorded)
    # (masks: a dropout model; a failed trace has made that step's draws, so none here)
    kw = {"model_kw": {"dropout": 0.2}} if where == "masks" else {}
    m, h, opt, ran = _fit(monkeypatch, True, **kw)
    e, he, eopt, _ = _fit(monkeypatch, False, **kw)
    assert ran == 0 and opt.state["step"] == eopt.state["step"] == 15
    assert h.history["loss"] == pytest.approx(he.history["loss"], rel=1e-5)
    _close(m, e)
