"""Critical-point finders for the UFM (docs/theory.md section 3).

Every finder returns :class:`CriticalPoints`: a batch of float64 points (leading axis) polished by
:func:`ufm.polish` (Newton with a pseudo-inverse: it converges to the nearby critical point of any
index), with per-point provenance (``source``, ``seed``, ``dim``, ``scale``). Above
``DENSE_NEWTON_MAX_PARAMS`` parameters (dense Newton too costly) minima are polished by L-BFGS and
the planted / embedded saddles, critical by construction, only get their gradient checked; the
generic finder needs Newton and refuses such sizes. Finders:

* :func:`find_minima`: gradient descent from random initialisations to convergence, then Newton.
  By the strict-saddle theorems (Shen & Gu 2024, arXiv 2407.10702 for ``d = K``; Zhu et al. 2021,
  arXiv 2105.02375 and Zhou et al. 2022, arXiv 2203.01238 for ``d > K``) these should all be
  global minima.
* :func:`planted_saddles`: optima of the UFM in dimension ``d' < rank(W*)``, zero-padded to ``d``
  (:func:`ufm.saddle_dims`, :func:`ufm.systems.ufm.pad_params`), plus the origin: known strict
  saddles.
* :func:`rank_restricted_points`: gradient descent inside a random rank-``r`` invariant subspace.
* :func:`find_critical_points`: a generic finder of critical points of any index, damped Newton on
  ``grad f = 0`` from random starts at several scales (or ``method="gradnorm"``: minimise
  ``0.5 ||grad f||^2`` first, through the wrapper spec :class:`GradNormSpec`).

:func:`ufm.landscape.deduplicate` groups the points modulo rotations;
:func:`ufm.systems.ufm.landscape_points` runs the
finders and the classifier and returns a table.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...core.model import evaluate_points, init_batch
from ...core.validation import check_int
from ...landscape.gradnorm import GradNormSpec
from ...landscape.points import CriticalPoints, points_from_polish
from ...optim.optimize import optimize
from ...optim.polish import DENSE_NEWTON_MAX_PARAMS, PolishResult, polish
from ...optim.transforms import gd
from .objective import UFMParams, one_hot_targets
from .saddles import pad_params, saddle_dims
from .spec import UFMSpec

__all__ = [
    "find_critical_points",
    "find_minima",
    "planted_saddles",
    "rank_restricted_points",
]


def _require_x64(spec):
    if not jax.config.jax_enable_x64:
        raise ValueError(
            "critical-point finders polish in float64: enable it first with "
            "jax.config.update('jax_enable_x64', True)"
        )
    return spec if spec.dtype == "float64" else spec.replace(dtype="float64")


def _check_spec(spec):
    if not isinstance(spec, UFMSpec):
        raise TypeError(f"expected a UFMSpec, got {type(spec).__name__}")
    return _require_x64(spec)


def _polish(spec, params, tol, max_iter, *, minima: bool) -> PolishResult:
    """Newton (any index) up to ``DENSE_NEWTON_MAX_PARAMS``; above it L-BFGS for minima, and only
    a gradient check for points that are critical by construction (planted, embedded)."""
    if spec.num_params <= DENSE_NEWTON_MAX_PARAMS:
        return polish(spec, params, method="newton", tol=tol, max_iter=max_iter)
    if minima:
        return polish(spec, params, method="lbfgs", tol=tol)
    value, gnorm = evaluate_points(spec, params)
    return PolishResult(params, value, gnorm, gnorm <= tol, np.zeros(gnorm.shape, np.int32))


def _descend(spec, params0, optimizer, max_steps, tol, polish_tol, polish_iter):
    res = optimize(
        spec,
        params0,
        optimizer=optimizer or gd(0.5),
        max_steps=max_steps,
        tol=tol,
        chunk=min(500, max_steps),
    )
    return _polish(spec, res.params, polish_tol, polish_iter, minima=True)


# -- (a) minima from random initialisations ---------------------------------------------------


def find_minima(
    spec: UFMSpec,
    num_seeds: int,
    key,
    *,
    scale=None,
    optimizer=None,
    max_steps: int = 5000,
    tol: float = 1e-7,
    polish_tol: float = 1e-10,
    polish_iter: int = 30,
    seeds=None,
) -> CriticalPoints:
    """Gradient descent from ``num_seeds`` random starts to convergence, then Newton polishing.

    Starts from :func:`ufm.init_batch` (seed ``i`` uses ``fold_in(key, seeds[i])``, default
    ``seeds = arange(num_seeds)``), runs :func:`ufm.optimize` (``optimizer`` default ``gd(0.5)``,
    ``max_steps``, gradient tolerance ``tol``), then :func:`ufm.polish` (Newton,
    ``polish_tol``). All points are returned; ``converged`` marks the polished ones. Recommended:
    ``scale`` 0.1 (the model default), ``gd(0.5)``-``gd(1.0)``, a few thousand steps.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", bias="free")
        >>> pts = ufm.systems.ufm.find_minima(spec, 2, jax.random.key(0), max_steps=2000)
        >>> bool(pts.converged.all()), bool(abs(pts.loss - ufm.optimal_value(spec)).max() < 1e-12)
        (True, True)
    """
    spec = _check_spec(spec)
    seeds = np.arange(check_int("num_seeds", num_seeds, 1)) if seeds is None else np.asarray(seeds)
    p0 = init_batch(spec, key, seeds=seeds, scale=scale)
    pol = _descend(spec, p0, optimizer, max_steps, tol, polish_tol, polish_iter)
    return points_from_polish(pol.params, pol, "random", seeds, -1, 0.1 if scale is None else scale)


# -- (b) planted saddles -----------------------------------------------------------------------


def planted_saddles(
    spec: UFMSpec,
    key,
    seeds_per_dim: int = 2,
    *,
    include_origin: bool = True,
    scale=None,
    optimizer=None,
    max_steps: int = 5000,
    tol: float = 1e-7,
    polish_tol: float = 1e-10,
    polish_iter: int = 30,
) -> CriticalPoints:
    """Strict saddles planted from lower-dimensional optima (docs/theory.md section 3).

    For every ``d'`` in :func:`ufm.saddle_dims` (``1 <= d' < min(rank W*, d)``): optimise the UFM
    with ``d = d'`` from ``seeds_per_dim`` random starts (key ``fold_in(key, d')``), polish it,
    zero-pad ``W`` (columns) and ``H`` (rows) to ``spec.d`` (:func:`ufm.systems.ufm.pad_params`) and
    polish
    again at full size, which leaves an exactly critical point where it is (its gradient is
    checked: ``converged``). With ``include_origin`` the critical point ``W = H = 0`` (bias at its
    stationary value, found by Newton) is added with ``dim = 0``. All are non-global critical
    points, hence strict saddles by Shen & Gu 2024 (arXiv 2407.10702), except the origin in the
    collapse-to-zero regime, where it is the global minimum and ``saddle_dims`` is empty.
    """
    spec = _check_spec(spec)
    seeds_per_dim = check_int("seeds_per_dim", seeds_per_dim, 1)
    padded, seed, dim, scales = [], [], [], []
    for d_small in saddle_dims(spec):
        small = spec.replace(d=d_small)
        p0 = init_batch(small, jax.random.fold_in(key, d_small), seeds_per_dim, scale=scale)
        pol = _descend(small, p0, optimizer, max_steps, tol, polish_tol, polish_iter)
        padded.append(pad_params(pol.params, spec.d))
        seed.append(np.arange(seeds_per_dim))
        dim.append(np.full(seeds_per_dim, d_small))
        scales.append(np.full(seeds_per_dim, 0.1 if scale is None else scale))
    if include_origin:
        dt = spec.jnp_dtype
        padded.append(
            UFMParams(
                jnp.zeros((1, spec.K, spec.d), dt),
                jnp.zeros((1, spec.d, spec.N), dt),
                jnp.zeros((1, spec.K), dt) if spec.has_bias else None,
            )
        )
        seed.append(np.zeros(1, np.int64))
        dim.append(np.zeros(1, np.int64))
        scales.append(np.full(1, np.nan))
    if not padded:
        raise ValueError("include_origin=False and saddle_dims(spec) is empty: no saddle to plant")
    # one full-size Newton pass for all (the padded optima are already critical: a check)
    params = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *padded)
    full = _polish(spec, params, polish_tol, polish_iter, minima=False)
    return points_from_polish(
        full.params,
        full,
        "planted",
        np.concatenate(seed),
        np.concatenate(dim),
        np.concatenate(scales),
    )


# -- (c) rank-restricted starts ----------------------------------------------------------------


def _bases(key, num, d, r, dtype):
    """``num`` random ``d x r`` matrices with orthonormal columns (Haar, QR with sign fix)."""

    def one(k):
        q, rr = jnp.linalg.qr(jax.random.normal(k, (d, r), dtype))
        return q * jnp.sign(jnp.diag(rr))[None, :]

    return jax.vmap(one)(jax.random.split(key, num))


def rank_restricted_points(
    spec: UFMSpec,
    rank: int,
    num_seeds: int,
    key,
    *,
    scale=None,
    optimizer=None,
    max_steps: int = 5000,
    tol: float = 1e-7,
    polish_tol: float = 1e-10,
    polish_iter: int = 30,
    return_bases: bool = False,
):
    """Critical points reached by gradient descent from rank-``r`` starts (docs/theory.md section
    3).

    Seed ``i`` draws a random ``r``-dimensional subspace ``span(U_i)`` of ``R^d`` (``U_i`` a Haar
    ``d x r`` orthonormal basis) and a start ``W = A U_i^T``, ``H = U_i C`` (``A, C`` i.i.d.
    ``N(0, scale^2)``: rows of ``W`` and columns of ``H`` in the subspace). The subspace is
    invariant: ``grad_W f = (G C^T + lW A) U_i^T``, ``grad_H f = U_i (A^T G + lH C)``, so gradient
    descent from such a start is exactly the embedding of gradient descent on the ``d = r`` problem
    in the coordinates ``(A, C)``. It is run in those coordinates: in ``R^d`` round-off leaks out of
    the subspace and grows exponentially along the negative curvature the subspace carries, so
    long full-space runs escape it. The result is embedded, then polished at full size by Newton,
    whose pseudo-inverse step stays in the subspace (the reflection through it is a symmetry, so
    the Hessian does not couple the subspace with its complement). Points have ``rank W <= r``;
    for ``r`` below the minimiser's rank they are strict saddles.

    Returns :class:`CriticalPoints` (``source="rank_restricted"``, ``dim = r``), and the bases
    ``U`` of shape ``(num_seeds, d, r)`` when ``return_bases``.
    """
    spec = _check_spec(spec)
    num_seeds = check_int("num_seeds", num_seeds, 1)
    r = check_int("rank", rank, 1)
    if r > spec.d:
        raise ValueError(f"rank={r} must be <= d={spec.d}")
    small = spec.replace(d=r)
    k_init, k_basis = jax.random.split(key)
    p0 = init_batch(small, k_init, num_seeds, scale=scale)
    pol = _descend(small, p0, optimizer, max_steps, tol, polish_tol, polish_iter)
    U = _bases(k_basis, num_seeds, spec.d, r, spec.jnp_dtype)
    W = jnp.einsum("ska,sda->skd", pol.params.W, U)
    H = jnp.einsum("sda,san->sdn", U, pol.params.H)
    full = _polish(spec, UFMParams(W, H, pol.params.b), polish_tol, polish_iter, minima=False)
    pts = points_from_polish(
        full.params,
        full,
        "rank_restricted",
        np.arange(num_seeds),
        r,
        0.1 if scale is None else scale,
    )
    return (pts, U) if return_bases else pts


# -- (d) generic finder --------------------------------------------------------------------------


def _starts(spec, key, seeds, scale, start, noise):
    """Random starts: i.i.d. ``N(0, scale^2)``, or class-structured ``H = M Y + noise``."""
    p = init_batch(spec, key, seeds=seeds, scale=scale)
    if start == "isotropic":
        return p
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(key, s), 1 << 20))(
        jnp.asarray(seeds, dtype=jnp.uint32)
    )
    Y = jnp.asarray(one_hot_targets(spec.K, spec.n), spec.jnp_dtype)
    means = jax.vmap(lambda k: scale * jax.random.normal(k, (spec.d, spec.K), spec.jnp_dtype))(keys)
    return p._replace(H=means @ Y + noise * p.H)


def find_critical_points(
    spec: UFMSpec,
    num_seeds: int,
    key,
    *,
    scales=(0.3, 1.0, 3.0),
    start: str = "class_means",
    noise: float = 0.1,
    method: str = "newton",
    max_iter: int = 45,
    tol: float = 1e-10,
    gradnorm_steps: int = 2000,
    gradnorm_optimizer=None,
    drop_failed: bool = True,
) -> CriticalPoints:
    """Critical points of any index from random starts (a generic finder).

    Seed ``i`` starts at scale ``scales[i % len(scales)]`` (key ``fold_in(key, i)``):
    ``start="class_means"`` (default) draws ``W`` i.i.d. ``N(0, scale^2)`` and features
    ``h_{k,i} = m_k + noise * e_{k,i}`` around random class means ``m_k ~ N(0, scale^2 I)``
    (``e`` of the same scale); ``start="isotropic"`` draws everything i.i.d.
    (:func:`ufm.init_batch`).
    Isotropic starts almost all fall to the origin (``W = H = 0``) under Newton; class-structured
    ones reach the saddles where groups of classes share a direction, and some minima.

    * ``method="newton"`` (default): Newton's method on ``grad f = 0`` with the exact Hessian, an
      eigenvalue pseudo-inverse and step acceptance on the merit ``||grad f||`` (:func:`ufm.polish`
      with ``method="newton"``, ``max_iter`` iterations). Newton is attracted by critical points of
      every index, so it finds saddles as well as minima.
    * ``method="gradnorm"``: first ``gradnorm_steps`` of ``gradnorm_optimizer`` (default
      ``optax.adam(1e-3)``) on ``0.5 ||grad f||^2`` through :class:`GradNormSpec` and
      :func:`ufm.optimize`, then the same Newton polishing.

    Starts whose polished gradient exceeds ``tol`` are dropped when ``drop_failed`` (the default);
    keep them (``drop_failed=False``) to count the fraction of starts that converge. Classify the
    result with :func:`ufm.classify_batch` to split saddles from minima. Cost: dense Newton,
    ``O(p^3)`` per iteration and seed (``p`` parameters); the seeds that do not converge run all
    ``max_iter`` iterations.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
        >>> pts = ufm.systems.ufm.find_critical_points(spec, 3, jax.random.key(0))  # doctest: +SKIP
        >>> rows = ufm.classify_batch(spec, pts.params)  # doctest: +SKIP
        >>> bool((pts.grad_norm <= 1e-10).all()), "strict_saddle" in rows["class"]  # doctest: +SKIP
        (True, True)
    """
    spec = _check_spec(spec)
    num_seeds = check_int("num_seeds", num_seeds, 1)
    scales = tuple(float(s) for s in np.atleast_1d(scales))
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    if start not in ("class_means", "isotropic"):
        raise ValueError(f"start must be 'class_means' or 'isotropic', got {start!r}")
    if method not in ("newton", "gradnorm"):
        raise ValueError(f"method must be 'newton' or 'gradnorm', got {method!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    if spec.num_params > DENSE_NEWTON_MAX_PARAMS:
        raise ValueError(
            f"find_critical_points uses dense Newton: spec.num_params={spec.num_params} exceeds "
            f"ufm.optim.DENSE_NEWTON_MAX_PARAMS={DENSE_NEWTON_MAX_PARAMS}; use a smaller n or d"
        )
    seeds = np.arange(num_seeds)
    which = seeds % len(scales)
    used = [j for j in range(len(scales)) if np.any(which == j)]
    order = np.concatenate([seeds[which == j] for j in used])
    p0 = jax.tree_util.tree_map(
        lambda *xs: jnp.concatenate(xs),
        *(_starts(spec, key, seeds[which == j], scales[j], start, noise) for j in used),
    )
    if method == "gradnorm":
        opt = gradnorm_optimizer or _adam(1e-3)
        res = optimize(
            GradNormSpec(spec),
            p0,
            optimizer=opt,
            max_steps=gradnorm_steps,
            tol=0.0,
            chunk=min(500, gradnorm_steps),
        )
        p0 = res.params
    pol = polish(spec, p0, method="newton", tol=tol, max_iter=max_iter)
    pts = points_from_polish(pol.params, pol, method, order, -1, np.asarray(scales)[which[order]])
    pts = pts.select(np.argsort(order))
    return pts.select(pts.converged) if drop_failed else pts


@functools.cache
def _adam(lr):  # cached: the optimiser is a static argument of the compiled chunk
    return optax.adam(lr)
