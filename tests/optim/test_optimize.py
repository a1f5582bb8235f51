"""Many-seed optimiser and polishing: vmap == loop, dtype, recompilation, per-seed failure flags."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ufm
from ufm.optim.optimize import _run_chunk


def _spec(**kw):
    base = dict(K=3, n=2, d=3, loss="ce", bias="free", lambda_W=5e-3, lambda_H=1e-2)
    base.update(kw)
    return ufm.UFMSpec(**base)


def test_vmap_equals_python_loop():
    spec = _spec()
    p0 = ufm.init_batch(spec, jax.random.key(3), 5)
    opt = ufm.momentum(0.3, 0.9)
    batch = ufm.optimize(spec, p0, optimizer=opt, max_steps=300, tol=1e-9, chunk=100)
    for i in range(5):
        single = jax.tree_util.tree_map(lambda x: x[i : i + 1], p0)
        one = ufm.optimize(spec, single, optimizer=opt, max_steps=300, tol=1e-9, chunk=100)
        np.testing.assert_allclose(one.params.W[0], batch.params.W[i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(one.params.H[0], batch.params.H[i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(one.loss[0], batch.loss[i], rtol=1e-13)
        assert int(one.steps[0]) == int(batch.steps[i])


def test_gd_step_matches_manual_gradient_descent():
    spec = _spec(loss="mse", bias="none")
    p0 = ufm.init_batch(spec, jax.random.key(0), 2)
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(0.1), max_steps=7, tol=0.0, chunk=7)
    p = jax.tree_util.tree_map(lambda x: x[1], p0)
    for _ in range(7):
        g = jax.grad(ufm.loss, argnums=1)(spec, p)
        p = jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)
    np.testing.assert_allclose(res.params.W[1], p.W, rtol=1e-13)
    assert res.steps.tolist() == [7, 7]
    assert res.status.tolist() == [ufm.Status.MAX_STEPS] * 2  # RUNNING never leaves optimize
    assert res.trace_steps.tolist() == [0, 7]


def test_float32_in_float32_out():
    spec = _spec(dtype="float32")
    p0 = ufm.init_batch(spec, jax.random.key(0), 3)
    assert p0.W.dtype == jnp.float32
    res = ufm.optimize(spec, p0, max_steps=50, chunk=25)
    assert res.params.W.dtype == jnp.float32 and res.params.b.dtype == jnp.float32
    assert res.loss.dtype == jnp.float32 and res.grad_norm.dtype == jnp.float32
    assert res.trace["loss"].dtype == np.float32


def test_no_recompilation_for_new_lambdas_or_seeds():
    spec = _spec(K=4, n=3, d=4)
    opt = ufm.gd(0.5)
    kw = dict(optimizer=opt, max_steps=40, chunk=20)
    ufm.optimize(spec, ufm.init_batch(spec, jax.random.key(0), 6), **kw)
    before = _run_chunk._cache_size()
    spec2 = spec.replace(lambda_W=2e-2, lambda_H=3e-3)
    ufm.optimize(spec2, ufm.init_batch(spec2, jax.random.key(7), 6), **kw)
    ufm.optimize(
        spec,
        ufm.init_batch(spec, jax.random.key(9), 6),
        optimizer=ufm.gd(0.5),
        max_steps=40,
        chunk=20,
    )
    assert _run_chunk._cache_size() == before


def test_divergence_and_nan_are_flagged_per_seed():
    spec = _spec(loss="mse", bias="none")
    p0 = ufm.init_batch(spec, jax.random.key(1), 3)
    # seed 1 starts far out, where gd(0.9) diverges; the others must be unaffected
    p0 = p0._replace(W=p0.W.at[1].multiply(300.0), H=p0.H.at[1].multiply(300.0))
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(0.9), max_steps=4000, tol=1e-8, chunk=200)
    st = res.status.tolist()
    assert st[1] in (ufm.Status.DIVERGED, ufm.Status.NAN)
    assert st[0] == st[2] == ufm.Status.CONVERGED
    assert np.all(np.isfinite(np.asarray(res.params.W[1])))  # frozen at a finite point
    ref = ufm.optimize(
        spec,
        jax.tree_util.tree_map(lambda x: x[::2], p0),
        optimizer=ufm.gd(0.9),
        max_steps=4000,
        tol=1e-8,
        chunk=200,
    )
    np.testing.assert_allclose(ref.params.W, res.params.W[::2], rtol=1e-12)


def test_early_stop_when_all_converged_and_budget():
    spec = _spec(loss="mse", bias="free")
    p0 = ufm.init_batch(spec, jax.random.key(2), 4)
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=100_000, tol=1e-6, chunk=100)
    assert res.converged.all()
    assert res.trace_steps[-1] < 100_000
    assert np.all(np.asarray(res.grad_norm) <= 1e-6)
    short = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=150, tol=1e-12, chunk=100)
    assert short.steps.tolist() == [150] * 4 and short.trace_steps.tolist() == [0, 100, 150]


def test_any_optax_optimizer_and_record_fn():
    spec = _spec()
    p0 = ufm.init_batch(spec, jax.random.key(0), 2)

    def record(spec, params):
        return {"normW": jnp.linalg.norm(params.W)}

    res = ufm.optimize(
        spec, p0, optimizer=optax.adam(1e-2), max_steps=60, chunk=30, record_every=10, record=record
    )
    assert res.trace["normW"].shape == (7, 2)
    np.testing.assert_allclose(res.trace["normW"][0], np.linalg.norm(p0.W, axis=(1, 2)))
    np.testing.assert_allclose(res.trace["normW"][-1], np.linalg.norm(res.params.W, axis=(1, 2)))


@pytest.mark.parametrize(
    "bad", [dict(max_steps=0), dict(chunk=-1), dict(tol=-1.0), dict(chunk=10, record_every=3)]
)
def test_bad_arguments(bad):
    spec = _spec()
    with pytest.raises(
        ValueError, match=next(iter(bad)) if "record_every" not in bad else "multiple"
    ):
        ufm.optimize(spec, ufm.init_batch(spec, jax.random.key(0), 1), **bad)


def test_make_optimizer_errors():
    with pytest.raises(ValueError, match="optimizer"):
        ufm.make_optimizer("nonsense", 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        ufm.make_optimizer("gd", -1.0)


@pytest.mark.parametrize("loss,bias", [("ce", "none"), ("ce", "free"), ("mse", "regularized")])
def test_polish_newton_and_lbfgs_agree_at_minima(loss, bias):
    lb = 0.01 if bias == "regularized" else 0.0
    spec = _spec(loss=loss, bias=bias, lambda_b=lb)
    p0 = ufm.init_batch(spec, jax.random.key(5), 3)
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=1500, tol=1e-6)
    newton = ufm.polish(spec, res.params, method="newton", tol=1e-12)
    lbfgs = ufm.polish(spec, res.params, method="lbfgs", tol=1e-9)
    assert bool(newton.converged.all()) and np.all(np.asarray(newton.iterations) <= 10)
    assert np.all(np.asarray(newton.grad_norm) <= 1e-12)
    np.testing.assert_allclose(newton.loss, lbfgs.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="method"):
        ufm.polish(spec, res.params, method="bfgs")


def test_seed_blocks_give_identical_results():
    spec = _spec(K=4, n=3, d=4, bias="none")
    p0 = ufm.init_batch(spec, jax.random.key(4), 7)
    kw = dict(optimizer=ufm.momentum(0.3), max_steps=120, tol=1e-9, chunk=40)
    plain = ufm.optimize(spec, p0, seed_block=None, **kw)
    blocked = ufm.optimize(spec, p0, seed_block=3, **kw)  # 7 = 3 + 3 + 1: a remainder block
    np.testing.assert_allclose(blocked.params.W, plain.params.W, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(blocked.trace["loss"], plain.trace["loss"], rtol=1e-13)
    assert blocked.steps.tolist() == plain.steps.tolist()
    with pytest.raises(ValueError, match="seed_block"):
        ufm.optimize(spec, p0, seed_block=0, **kw)


def test_auto_seed_block_sizes():
    """``seed_block="auto"`` on one CPU device: one vmap while the seeds' parameters fit in
    AUTO_VMAP_BYTES; else blocks of about AUTO_BLOCK_BYTES, up to AUTO_BLOCK_MAX seeds (up to
    AUTO_BLOCK_MAX_TINY for seeds under TINY_SEED_BYTES)."""
    from ufm.optim import seed_layout as opt

    def block(spec, num):
        shapes = jax.eval_shape(lambda: ufm.init_batch(spec, jax.random.key(0), num))
        params = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return opt.seed_block_size(params, "auto")

    tiny = _spec(K=4, n=5, d=4, bias="none")  # 96 float64 parameters: 768 bytes a seed
    assert block(tiny, 1000) is None  # 768 kB <= AUTO_VMAP_BYTES
    assert block(tiny, 4000) == opt.AUTO_BLOCK_BYTES // 768  # 341 seeds, under the tiny cap
    big = _spec(K=10, n=10, d=10, bias="none")  # 1100 float64 parameters: 8800 bytes
    assert block(big, 1000) == opt.AUTO_BLOCK_MAX
    assert block(big, 100) is None  # 880 kB
