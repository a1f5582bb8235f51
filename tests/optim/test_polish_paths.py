"""The dense Newton polish one point at a time (CPU: lax.map, converged points skip their step)
gives the iterates of the vmapped path (every point computes every step, converged ones keep
theirs), in float64, on a batch that mixes converged, unconverged, saddle and failed points."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np

import ufm

P = importlib.import_module("ufm.optim.polish")


def _batch(spec):
    res = ufm.optimize(
        spec, ufm.init_batch(spec, jax.random.key(3), 5), max_steps=400, tol=1e-7, chunk=200
    )
    opt = ufm.optimum(spec).params
    origin = jax.tree_util.tree_map(jnp.zeros_like, opt)
    extra = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), opt, origin)
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), res.params, extra)


def test_one_by_one_equals_vmap():
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free", lambda_W=5e-3, lambda_H=5e-3)
    params = _batch(spec)
    num = params.W.shape[0]
    tol, rtol = jnp.asarray(1e-10), jnp.asarray(1e-10)
    done = jnp.zeros((num,), bool).at[num - 1].set(True)  # one point marked converged already
    outs = [
        P._newton_dense_chunk(spec, params, done, tol, rtol, 3, one_by_one)
        for one_by_one in (False, True)
    ]
    (pv, dv, kv, fv, gv), (pm, dm, km, fm, gm) = outs
    np.testing.assert_array_equal(np.asarray(dv), np.asarray(dm))
    np.testing.assert_array_equal(np.asarray(kv), np.asarray(km))
    assert int(km[num - 1]) == 0 and bool(dm[num - 1])
    for a, b in zip(jax.tree_util.tree_leaves(pv), jax.tree_util.tree_leaves(pm)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(fv), np.asarray(fm), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gv), np.asarray(gm), rtol=1e-6, atol=1e-16)


def test_polish_on_cpu_converges_saddles_and_minima():
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", lambda_W=5e-3, lambda_H=5e-3)
    pol = ufm.polish(spec, _batch(spec))
    assert bool(np.all(np.asarray(pol.converged)))
    assert np.all(np.asarray(pol.grad_norm) <= 1e-10)
    f_star = ufm.optimum(spec).value
    # the random starts and the optimum end at f*, the origin stays a critical point above it
    np.testing.assert_allclose(np.asarray(pol.loss)[:-1], f_star, rtol=1e-10)
    assert float(pol.loss[-1]) > f_star + 1e-3


def test_regularised_direction_is_the_pseudo_inverse_one_on_the_range():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    lam = np.array([-2.0, -0.3, 1e-3, 0.5, 1.0, 3.0, 0.0, 0.0])  # indefinite, two null modes
    H = (Q * lam) @ Q.T
    g = Q[:, :6] @ rng.normal(size=6)  # in the range of H, as a gradient is at a symmetry orbit
    fast = np.asarray(P.regularised_newton_direction(jnp.asarray(H), jnp.asarray(g)))
    pinv = np.asarray(P.dense_newton_direction(jnp.asarray(H), jnp.asarray(g)))
    # the Tikhonov shift mu biases the component of eigenvalue lam by the factor mu / lam
    mu = 1e-10 * np.abs(H).sum(axis=1).max()
    bound = 2 * mu / 1e-3 * np.linalg.norm(pinv) + 1e-9
    assert np.linalg.norm(fast - pinv) <= bound
    assert np.linalg.norm(fast + np.linalg.pinv(H) @ g) <= bound


def test_fast_step_and_pseudo_inverse_step_reach_the_same_points(monkeypatch):
    # FAST_ACCEPT = 0 rejects every LU step: the pseudo-inverse path alone must reach the same
    # critical points (minima and the origin saddle), to the polish tolerance
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free", lambda_W=5e-3, lambda_H=5e-3)
    params = _batch(spec)
    fast = ufm.polish(spec, params)
    monkeypatch.setattr(P, "FAST_ACCEPT", 0.0)
    jax.clear_caches()  # FAST_ACCEPT is read when the step is traced
    slow = ufm.polish(spec, params)
    for res in (fast, slow):
        assert bool(np.all(np.asarray(res.converged)))
        assert np.all(np.asarray(res.grad_norm) <= 1e-10)
    np.testing.assert_allclose(np.asarray(fast.loss), np.asarray(slow.loss), rtol=1e-12)
    assert not np.array_equal(np.asarray(fast.params.H), np.asarray(slow.params.H))  # both ran
    jax.clear_caches()
