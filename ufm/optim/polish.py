"""Float64 polishing of critical points: Newton with the exact Hessian, or L-BFGS.

First-order methods stall at gradient norms ~1e-6..1e-8 on the UFM because the curvature along the
collapse directions is O(lambda). Hessian analysis needs the gradient at ~1e-10 or below, so every
point is polished first.

* ``newton`` (default for small problems): Newton's method on ``grad f = 0`` with the dense float64
  Hessian. Each step first tries the full step of the Tikhonov-regularised system ``(H + mu I) s
  = -g`` (LU, ``mu = rtol * ||H||_inf``) and keeps it when it cuts ``||grad f||`` by
  :data:`FAST_ACCEPT`; otherwise it takes the eigenvalue pseudo-inverse step (eigenvalues with
  ``|lambda| <= rtol * max|lambda|`` are dropped: the Hessian is singular along the rotation orbit
  ``W -> W Q, H -> Q^T H``) with a step acceptance on the merit ``||grad f||`` (fixed candidate
  step lengths, no data-dependent loop), which keeps it stable. The LU step costs a fraction of
  the ``eigh`` (``96 x 96``, float64, CPU: 0.13-0.14 ms against 0.84-1.03 ms per point,
  ``python benchmarks/perf.py --parts dense``) and is meant to be the one taken near critical
  points, where the polish starts. Newton converges quadratically to the
  nearby critical point *of any index*, so it also polishes saddles.
* ``lbfgs``: ``optax.lbfgs`` with its zoom line search, for problems too large for a dense Hessian.
  It minimises, so it only polishes minima.

All variants take a batch with a leading seed axis and run as ``jit(vmap(lax.scan))`` with per-seed
convergence masking.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ..core.devices import map_points, on_cpu, seed_mesh_of, spread_points
from ..core.jitting import adaptive_jit
from ..core.model import loss as _loss
from ..core.trees import tree_norm

#: Largest parameter count for which ``method="auto"`` uses the dense Newton solver.
DENSE_NEWTON_MAX_PARAMS = 2500

_STEP_LENGTHS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01)


class PolishResult(NamedTuple):
    """Polished parameters (leading seed axis) with their loss, gradient norm and a flag."""

    params: Any
    loss: jax.Array
    grad_norm: jax.Array
    converged: jax.Array
    iterations: jax.Array


def _flat_fns(spec, template):
    x0, unravel = ravel_pytree(template)

    def f(x):
        return _loss(spec, unravel(x))

    return x0, unravel, f


def dense_newton_direction(hess, grad, rtol=1e-10):
    """Pseudo-inverse Newton direction ``-H^+ g`` via ``eigh``, dropping ``|lambda| <= rtol
    max|lambda|``."""
    evals, evecs = jnp.linalg.eigh(hess)
    cutoff = rtol * jnp.max(jnp.abs(evals))
    safe = jnp.where(jnp.abs(evals) > cutoff, evals, 1.0)
    inv = jnp.where(jnp.abs(evals) > cutoff, 1.0 / safe, 0.0)
    return -(evecs @ (inv * (evecs.T @ grad)))


def regularised_newton_direction(hess, grad, rtol=1e-10):
    """Newton direction ``-(H + mu I)^{-1} g`` by LU (``jnp.linalg.solve``), ``mu = rtol *
    max_i sum_j |H_ij|`` (an upper bound of ``max|lambda|``): a Tikhonov shift at the scale of the
    pseudo-inverse cut-off of :func:`dense_newton_direction`, so that exactly singular directions
    (symmetry orbits, the free bias along ``1`` for CE) get a rounding-sized component instead of
    a division by zero. Indefinite Hessians are fine (LU with partial pivoting)."""
    mu = rtol * jnp.max(jnp.sum(jnp.abs(hess), axis=1))
    n = hess.shape[0]
    return -jnp.linalg.solve(hess + mu * jnp.eye(n, dtype=hess.dtype), grad)


def _merit_step(grad_fn, x, g, direction):
    """Take the first of the candidate step lengths that reduces ``||grad||`` (else stay)."""
    ts = jnp.asarray(_STEP_LENGTHS, x.dtype)
    cand = x[None, :] + ts[:, None] * direction[None, :]
    gnorms = jax.vmap(lambda y: jnp.linalg.norm(grad_fn(y)))(cand)
    gnorms = jnp.where(jnp.isfinite(gnorms), gnorms, jnp.inf)
    ok = gnorms < jnp.linalg.norm(g)
    idx = jnp.argmax(ok)  # first acceptable length
    return jnp.where(jnp.any(ok), cand[idx], x)


#: The regularised LU step is taken when it cuts ``||grad f||`` at least by this factor (near a
#: critical point Newton's quadratic convergence cuts it by orders of magnitude); otherwise the
#: step is the pseudo-inverse one with the merit search.
FAST_ACCEPT = 0.25

#: Newton iterations per compiled call; the host stops once every seed has converged.
NEWTON_CHUNK = 3


@adaptive_jit(static_argnames=("length", "one_by_one", "mesh"))
def _newton_dense_chunk(spec, params, done, tol, rtol, length, one_by_one=False, mesh=None):
    def one(p, done):
        x0, unravel, f = _flat_fns(spec, p)
        grad_fn = jax.grad(f)

        def newton_step(x, g):
            hess = jax.hessian(f)(x)
            # the regularised LU step first (a fraction of the eigh's cost); the pseudo-inverse
            # step with the merit search when it does not cut ||grad f|| by FAST_ACCEPT
            x_fast = x + regularised_newton_direction(hess, g, rtol)
            gn_fast = jnp.linalg.norm(grad_fn(x_fast))
            good = jnp.isfinite(gn_fast) & (gn_fast <= FAST_ACCEPT * jnp.linalg.norm(g))
            return jax.lax.cond(
                good,
                lambda: x_fast,
                lambda: _merit_step(grad_fn, x, g, dense_newton_direction(hess, g, rtol)),
            )

        def body(carry, _):
            x, done = carry
            g = grad_fn(x)
            stop = done | (jnp.linalg.norm(g) <= tol)
            if one_by_one:  # a converged point skips the Hessian and its eigh
                x = jax.lax.cond(stop, lambda: x, lambda: newton_step(x, g))
            else:  # under vmap every point computes the step; converged ones keep x
                x = jnp.where(stop, x, newton_step(x, g))
            return (x, stop), stop

        (x, _), stops = jax.lax.scan(body, (x0, done), None, length=length)
        value, g = jax.value_and_grad(f)(x)
        gnorm = jnp.linalg.norm(g)
        return unravel(x), stops[-1] | (gnorm <= tol), jnp.sum(~stops), value, gnorm

    if one_by_one:
        return map_points(lambda a: one(*a), (params, done), mesh)
    return jax.vmap(one)(params, done)


def _newton_dense(spec, params, tol, rtol, max_iter):
    """Chunks of :data:`NEWTON_CHUNK` iterations until every seed converged. On CPU the points
    go one at a time (``lax.map``; a converged point skips the Hessian and its ``eigh``, and no
    batched LAPACK call is made: see :mod:`ufm.runs.analyses`), on every CPU device of a
    seed-sharded batch at once (:func:`ufm.core.map_points`); elsewhere as one ``vmap``. The
    iterates are the same either way (tests/optim/test_polish_paths.py)."""
    num = jax.tree_util.tree_leaves(params)[0].shape[0]
    one_by_one = on_cpu(params)
    mesh = seed_mesh_of(params) if one_by_one else None
    # bookkeeping on the host (NumPy): eager jnp ops would each compile a small XLA program
    done = np.zeros((num,), bool)
    where = getattr(jax.tree_util.tree_leaves(params)[0], "sharding", None)
    done = spread_points(done, mesh) if mesh is not None else jax.device_put(done, where)
    iters = np.zeros((num,), np.int32)
    for _ in range(-(-max_iter // NEWTON_CHUNK)):
        params, done, k, value, gnorm = _newton_dense_chunk(
            spec, params, done, tol, rtol, NEWTON_CHUNK, one_by_one, mesh
        )
        iters = iters + np.asarray(k, np.int32)
        if bool(np.all(np.asarray(done))):
            break
    return params, jnp.asarray(iters), value, gnorm


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _lbfgs(spec, params, tol, max_iter):
    opt = optax.lbfgs()

    def one(p):
        f = functools.partial(_loss, spec)
        vg = optax.value_and_grad_from_state(f)

        def body(carry, _):
            p, state, done = carry
            value, g = vg(p, state=state)
            stop = done | (tree_norm(g) <= tol)
            with jax.numpy_dtype_promotion("standard"):  # optax internals
                upd, new_state = opt.update(g, state, p, value=value, grad=g, value_fn=f)
                new_p = optax.apply_updates(p, upd)
            pick = lambda a, b: jax.tree_util.tree_map(lambda u, v: jnp.where(stop, u, v), a, b)  # noqa: E731
            return (pick(p, new_p), pick(state, new_state), stop), stop

        with jax.numpy_dtype_promotion("standard"):
            state0 = opt.init(p)
        (p, _, _), stops = jax.lax.scan(
            body, (p, state0, jnp.asarray(False)), None, length=max_iter
        )
        return p, jnp.sum(~stops)

    return jax.vmap(one)(params)


@jax.jit
def _final(spec, params):
    def one(p):
        value, g = jax.value_and_grad(_loss, argnums=1)(spec, p)
        return value, tree_norm(g)

    return jax.vmap(one)(params)


def polish(
    spec,
    params,
    *,
    method: str = "auto",
    tol: float = 1e-10,
    max_iter: int | None = None,
    rtol: float = 1e-10,
) -> PolishResult:
    """Polish a batch of near-critical points (leading seed axis) to ``||grad f|| <= tol``.

    Args:
        spec: model spec registered with :func:`ufm.loss`; use float64 for ``tol`` below ~1e-6.
        params: parameters with a leading seed axis.
        method: ``"newton"`` (dense Hessian, pseudo-inverse; any critical point), ``"lbfgs"``
            (minima only) or ``"auto"`` (Newton up to ``DENSE_NEWTON_MAX_PARAMS`` parameters).
        tol: target gradient norm (recommended 1e-10 in float64).
        max_iter: iteration budget (default 30 for Newton, 500 for L-BFGS).
        rtol: relative eigenvalue cut-off of the Newton pseudo-inverse.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
        >>> res = ufm.optimize(spec, ufm.init_batch(spec, jax.random.key(1), 2), max_steps=2000)
        >>> pol = ufm.polish(spec, res.params)
        >>> bool((pol.grad_norm < 1e-10).all())
        True
    """
    leaves = jax.tree_util.tree_leaves(params)
    per_seed = sum(int(np.prod(x.shape[1:])) for x in leaves)
    if method == "auto":
        method = "newton" if per_seed <= DENSE_NEWTON_MAX_PARAMS else "lbfgs"
    dtype = leaves[0].dtype
    if method == "newton":
        new, iters, value, gnorm = _newton_dense(
            spec, params, np.asarray(tol, dtype), np.asarray(rtol, dtype), max_iter or 30
        )
    elif method == "lbfgs":
        new, iters = _lbfgs(spec, params, np.asarray(tol, dtype), max_iter or 500)
        value, gnorm = _final(spec, new)
    else:
        raise ValueError(f"method must be auto, newton or lbfgs; got {method!r}")
    converged = jnp.asarray(np.asarray(gnorm) <= tol)  # a host array placed: nothing to compile
    return PolishResult(new, value, gnorm, converged, iters)
