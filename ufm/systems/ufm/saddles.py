"""Critical points of the UFM: optimality certificate, escape directions, zero modes, saddles.

Theory.md section 3. At a critical point ``(W, H, b)`` with ``G = grad_Z g(W H + b 1^T)``:

* the convex lower bound ``f >= g(Z + b 1^T) + sqrt(lW lH) ||Z||_* + lb/2 ||b||^2`` certifies global
  optimality when ``sigma_1(G) <= sqrt(lW lH)`` (:func:`certificate`);
* otherwise, if some unit ``a`` has ``W a = 0`` and ``H^T a = 0``, moving ``W`` along ``u a^T`` and
  ``H`` along ``-a v^T`` (``(u, v)`` the top singular pair of ``G``) has negative curvature
  (:func:`negative_curvature_direction`): the point is a strict saddle;
* at a global minimum the only flat directions are rotations ``W Q, Q^T H`` (plus ``b + c 1`` for
  CE with a free bias), :func:`zero_mode_count`;
* optima of a lower-dimensional UFM, zero-padded, are such non-global critical points
  (:func:`planted_saddle`).

References: Zhu et al. 2021 (arXiv 2105.02375) and Zhou et al. 2022 (arXiv 2203.01238) for the
certificate and the negative-curvature construction (``d > K``); Shen & Gu 2024 (arXiv 2407.10702)
for ``d = K``.

Functions taking ``params`` are pure jax and vmappable over a leading seed axis, e.g.
``jax.vmap(lambda p: certificate(spec, p))(batch)``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.model import loss
from ...core.validation import SpecError
from ...kernels import singular_values
from ...landscape.facts import all_finite
from .convex import _reference
from .imbalance import imbalanced_optimum
from .objective import UFMParams, fit_grad, logits
from .spec import UFMSpec
from .theory import _concrete_lambdas, _regime

__all__ = [
    "Certificate",
    "NegativeCurvature",
    "certificate",
    "minimiser_rank",
    "negative_curvature_direction",
    "pad_params",
    "planted_saddle",
    "rank_of",
    "restrict_to_subspace",
    "saddle_dims",
    "zero_mode_count",
]


def _lams(spec, dtype):
    return tuple(jnp.asarray(getattr(spec, k), dtype) for k in ("lambda_W", "lambda_H"))


def _sqnorm(tree):
    return sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(tree))


class Certificate(NamedTuple):
    """Global-optimality certificate of a UFM point (see :func:`certificate`).

    Attributes:
        sigma_1: largest singular value of ``G = grad_Z g(Z)``.
        bound: ``sqrt(lambda_W lambda_H)``.
        gap: ``sigma_1 - bound``; ``<= 0`` (up to rounding) at a critical point proves it is a
            global minimum, ``> 0`` proves it is not.
        grad_norm: norm of the full gradient of ``f``: the certificate speaks only about critical
            points, so read ``gap`` together with it.
    """

    sigma_1: jax.Array
    bound: jax.Array
    gap: jax.Array
    grad_norm: jax.Array


@jax.jit
def certificate(spec: UFMSpec, params: UFMParams) -> Certificate:
    """Global-optimality certificate ``sigma_1(grad_Z g) <= sqrt(lW lH)`` at a critical point.

    From the convex relaxation ``f >= g(Z + b 1^T) + sqrt(lW lH) ||Z||_* + lb/2 ||b||^2``
    (``||Z||_* <= (||W||^2 + ||H||^2)/2`` after balancing the scales); its optimality condition is
    ``-G in sqrt(lW lH) d||Z||_*``, i.e. ``sigma_1(G) <= sqrt(lW lH)`` with equality on the active
    directions (Zhu et al. 2021, arXiv 2105.02375; Zhou et al. 2022, arXiv 2203.01238). Jitted
    (one compilation per shape), vmappable over ``params`` and over the spec's lambdas; the
    SciPy equivalent of ``sigma_1`` is ``scipy.linalg.svdvals(G)[0]``.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=4, n=5, d=4, loss="ce")
        >>> c = ufm.certificate(spec, ufm.optimum(spec).params)
        >>> abs(float(c.gap)) < 1e-12, float(c.grad_norm) < 1e-12
        (True, True)
    """
    W = params.W
    dtype = W.dtype
    lW, lH = _lams(spec, dtype)
    G = fit_grad(logits(params), spec.loss, spec.n)
    ok = all_finite(params, G)  # nothing non-finite reaches LAPACK (CPU svd can hang on inf)
    sigma_1 = singular_values(jnp.where(ok, G, 0.0))[0]  # no N x N workspace
    sigma_1 = jnp.where(ok, sigma_1, jnp.nan)
    bound = jnp.sqrt(lW * lH)
    g = jax.grad(loss, argnums=1)(spec, params)
    return Certificate(sigma_1, bound, sigma_1 - bound, jnp.sqrt(_sqnorm(g)))


class NegativeCurvature(NamedTuple):
    """Escape direction from a non-global critical point (see :func:`negative_curvature_direction`).

    Attributes:
        direction: unit-norm :class:`~ufm.UFMParams` (bias component zero, ``None`` without bias).
        bound: the Rayleigh quotient guaranteed when ``found``:
            ``2 (sqrt(lW lH) - sigma_1) / (sqrt(lH/lW) + sqrt(lW/lH))``, an upper bound on
            ``lambda_min`` of the Hessian.
        found: whether a common null direction ``a`` of ``W`` and ``H^T`` exists (numerically).
    """

    direction: UFMParams
    bound: jax.Array
    found: jax.Array


@functools.partial(jax.jit, static_argnames=("mix",))
def negative_curvature_direction(
    spec: UFMSpec, params: UFMParams, rtol: float = 1e-6, mix: str = "balanced"
) -> NegativeCurvature:
    """Negative-curvature direction at a non-global critical point (docs/theory.md section 3).

    Takes the unit ``a`` with ``W a = 0`` and ``H^T a = 0`` (smallest right singular vector of
    the stacked ``[W; H^T]``; ``found`` is False when its singular value exceeds ``rtol`` times
    the largest), the top singular pair ``(u, v)`` of ``G = grad_Z g``, and returns the unit-norm
    direction ``(alpha u a^T, -beta a v^T, 0) / sqrt(alpha^2 + beta^2)`` with
    ``alpha = (lH/lW)^(1/4)``, ``beta = (lW/lH)^(1/4)``. Along it ``Z`` moves by ``-t^2 u v^T``
    only, so its Rayleigh quotient is exactly
    ``bound = 2 (sqrt(lW lH) - sigma_1) / (sqrt(lH/lW) + sqrt(lW/lH))``, negative when the
    certificate fails (Zhu et al. 2021, arXiv 2105.02375; Zhou et al. 2022, arXiv 2203.01238).

    ``mix="optimal"`` instead weighs the two blocks by the bottom eigenvector of
    ``[[lW, -sigma_1], [-sigma_1, lH]]``, whose eigenvalue
    ``(lW + lH)/2 - sqrt(((lW - lH)/2)^2 + sigma_1^2)`` is then the (exact) Rayleigh quotient and
    ``bound``; it equals the balanced bound when ``lW = lH`` and is lower otherwise. At planted
    saddles the optimal-mix value is observed to be ``lambda_min`` of the Hessian to rounding
    (so the balanced bound is tight exactly when ``lW = lH``).

    At a critical point the row space of ``W`` equals the column space of ``H`` (``lW W^T W =
    lH H H^T``), so ``a`` exists exactly when ``rank W < d``: planted saddles, and points reached
    from a rank-``r < d`` start. Jitted (``mix`` static) and vmappable over ``params``.

    Returns:
        :class:`NegativeCurvature` ``(direction, bound, found)``; for a non-finite point (or one
        whose entries overflow when squared) ``nan`` and ``found=False``, computed without
        passing it to LAPACK.

    Example:
        >>> import jax.numpy as jnp, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
        >>> origin = ufm.UFMParams(jnp.zeros((3, 3)), jnp.zeros((3, 6)))
        >>> nc = ufm.negative_curvature_direction(spec, origin)
        >>> bool(nc.found), bool(nc.bound < 0)
        (True, True)
    """
    dtype = params.W.dtype
    G = fit_grad(logits(params), spec.loss, spec.n)
    # finiteness guard before any LAPACK call (jaxlib's CPU svd never returns on some inf input):
    # a non-finite point is replaced by zeros and its results by nan / found=False
    ok = all_finite(params, G)
    W, H, G = (jnp.where(ok, x, 0.0) for x in (params.W, params.H, G))
    d = W.shape[1]
    lW, lH = _lams(spec, dtype)
    stacked = jnp.concatenate([W, H.T], axis=0)  # (K + N, d)
    if stacked.shape[0] >= d:  # thin SVD already holds all d right singular vectors
        s_all, Vt = jnp.linalg.svd(stacked, full_matrices=False)[1:]
        s_min = s_all[-1]
    else:  # fewer rows than columns: a null direction exists exactly
        s_all, Vt = jnp.linalg.svd(stacked, full_matrices=True)[1:]
        s_min = jnp.zeros((), dtype)
    found = (s_min <= rtol * s_all[0]) & ok
    a = Vt[-1]
    U, sig, Vg = jnp.linalg.svd(G, full_matrices=False)
    u, v, sigma_1 = U[:, 0], Vg[0], sig[0]
    alpha = (lH / lW) ** 0.25
    beta = (lW / lH) ** 0.25
    if mix == "balanced":
        r = jnp.sqrt(lH / lW)
        bound = 2.0 * (jnp.sqrt(lW * lH) - sigma_1) / (r + 1.0 / r)
    elif mix == "optimal":
        bound = 0.5 * (lW + lH) - jnp.sqrt(0.25 * (lW - lH) ** 2 + sigma_1**2)
        # Sum of the two (possibly vanishing) forms of the bottom eigenvector; both >= 0 entrywise.
        x = sigma_1 + lH - bound
        y = lW - bound + sigma_1
        mixed = (x + y) > 0  # (not `ok`: that is the finiteness guard, used below)
        alpha, beta = jnp.where(mixed, x, alpha), jnp.where(mixed, y, beta)
    else:
        raise ValueError(f"mix must be 'balanced' or 'optimal', got {mix!r}")
    norm = jnp.sqrt(alpha**2 + beta**2)
    nan_if_bad = lambda x: jnp.where(ok, x, jnp.nan)  # noqa: E731
    dW = nan_if_bad((alpha / norm) * jnp.outer(u, a))
    dH = nan_if_bad(-(beta / norm) * jnp.outer(a, v))
    db = None if params.b is None else jnp.zeros_like(params.b)
    return NegativeCurvature(UFMParams(dW, dH, db), nan_if_bad(bound), found)


def rank_of(W, rtol: float = 1e-8):
    """Numerical rank ``#{i : sigma_i(W) > rtol * sigma_1(W)}`` (0 for the zero matrix).

    Pure jax (vmappable). ``rtol = 1e-8`` suits float64 points polished to tight gradients; use
    ``~1e-3`` for float32 or loosely converged points.

    Example:
        >>> import ufm
        >>> int(ufm.systems.ufm.rank_of(ufm.simplex_etf(4, 6)))
        3
    """
    sv = jnp.linalg.svd(jnp.asarray(W), compute_uv=False)
    return jnp.sum(sv > rtol * sv[..., :1], axis=-1)


def zero_mode_count(spec: UFMSpec, rank: int | None = None) -> int:
    """Number of zero Hessian eigenvalues at a global minimum of rank ``rank`` (docs/theory.md sec.
    3).

    The rotations ``W -> W Q``, ``H -> Q^T H`` (``Q in O(d)``) move a rank-``r`` minimiser along an
    orbit of dimension ``d(d-1)/2 - (d-r)(d-r-1)/2`` (``dim O(d)`` minus the stabiliser
    ``O(d-r)``); CE with a free bias adds the shift ``b -> b + c 1``. All other eigenvalues are
    positive. ``rank=None`` uses the rank of the closed-form minimiser (:func:`ufm.optimum`).

    Example:
        >>> import ufm
        >>> ufm.zero_mode_count(ufm.UFMSpec(K=4, n=5, d=6, loss="ce", bias="free"))
        13
    """
    d = spec.d
    if rank is None:
        rank = _regime(spec)[1]
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank <= d:
        raise ValueError(f"rank must be an integer in [0, d={d}], got {rank!r}")
    rank = int(rank)
    count = d * (d - 1) // 2 - (d - rank) * (d - rank - 1) // 2
    if spec.loss == "ce" and spec.bias == "free":
        count += 1
    return count


def pad_params(params: UFMParams, d: int) -> UFMParams:
    """Zero-pad ``W`` (columns) and ``H`` (rows) from dimension ``d'`` to ``d``; bias unchanged.

    Works on a seed batch too (leading axes are kept). Padding maps critical points of the
    ``d'``-dimensional UFM to critical points of the ``d``-dimensional one: the gradient of the
    padded coordinates is ``G H_pad^T``/``W_pad^T G``, which vanishes.

    Example:
        >>> import jax.numpy as jnp, ufm
        >>> p = ufm.systems.ufm.pad_params(ufm.UFMParams(jnp.ones((3, 1)), jnp.ones((1, 6))), 4)
        >>> p.W.shape, p.H.shape
        ((3, 4), (4, 6))
    """
    W, H = params.W, params.H
    d_small = W.shape[-1]
    if H.shape[-2] != d_small:
        raise ValueError(f"params: W has {d_small} columns but H has {H.shape[-2]} rows")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < d_small:
        raise ValueError(f"d={d!r} must be an integer >= the current dimension {d_small}")
    k = int(d) - d_small
    Wp = jnp.pad(W, [(0, 0)] * (W.ndim - 1) + [(0, k)])
    Hp = jnp.pad(H, [(0, 0)] * (H.ndim - 2) + [(0, k), (0, 0)])
    return UFMParams(Wp, Hp, params.b)


def minimiser_rank(spec: UFMSpec) -> int:
    """Rank of the UFM's global minimiser (of ``W``, of ``H`` and of the logits ``W H``; for ``d``
    at least that rank), for concrete lambdas and any class sizes.

    Balanced classes: the closed-form regime (``K - 1`` for CE and MSE with a free bias or a
    regularised bias below the threshold, ``K`` for MSE without bias or above the threshold, ``0``
    in the collapse to zero; docs/theory.md section 2). Class sizes, MSE without bias or with a
    free bias: the closed form :func:`ufm.systems.ufm.imbalanced_optimum` (the number of singular
    values of the target above ``N sqrt(lW lH)``). Class sizes otherwise (CE, MSE with a
    regularised bias): the rank of the convex program's minimiser ``X = M diag(sqrt(n))``
    (singular values above ``1e-7 sigma_1``; :func:`ufm.systems.ufm.solve_convex`, duality gap
    ``<= 1e-7``, cached per configuration), docs/theory.md sections 9-10. Minority collapse makes
    it smaller than ``K - 1`` (``K``): the minority classifiers merge (CE) or vanish (MSE).

    Example:
        >>> import ufm
        >>> from ufm.systems.ufm.saddles import minimiser_rank
        >>> spec = ufm.UFMSpec(K=3, n=(8, 8, 2), d=3, loss="mse", lambda_W=0.1, lambda_H=0.1)
        >>> minimiser_rank(spec), ufm.saddle_dims(spec)  # the minority class is at 0
        (2, (1,))
    """
    if not _concrete_lambdas(spec):
        raise ValueError("minimiser_rank needs concrete lambda_W, lambda_H, lambda_b")
    if spec.balanced:
        return _regime(spec)[1]
    if spec.loss == "mse" and spec.bias in ("none", "free"):
        return imbalanced_optimum(spec.replace(d=spec.K, f_convex=None)).rank
    _, gap, rank = _reference(spec, 1e-7, 20000, 1e-7)
    if not gap <= 1e-7:
        raise SpecError(
            f"minimiser_rank: the convex program reached a duality gap of {gap:.3g} > 1e-7, "
            "so the minimiser's rank is not known"
        )
    return rank


def saddle_dims(spec: UFMSpec) -> tuple[int, ...]:
    """Dimensions ``d'`` whose zero-padded optima are non-global critical points (strict saddles).

    ``1 <= d' < min(r*, d)`` with ``r*`` the rank of the global minimiser
    (:func:`minimiser_rank`): ``K - 1`` for CE and MSE with a free bias (or a regularised bias
    below the threshold), ``K`` for MSE without bias (or above the bias threshold), and no
    dimension at all in the collapse-to-zero regime; with class sizes, the rank of the imbalanced
    minimiser (smaller under minority collapse). The origin (``d' = 0``) is a further critical
    point, left out. Shen & Gu 2024 (arXiv 2407.10702) prove these are strict saddles for ``d =
    K`` and balanced classes. For any class sizes, a padded optimum with ``d' < r*`` has ``f >
    f*`` when no logit matrix of rank ``< r*`` minimises the convex program (MSE: the minimiser
    is unique; CE: checked numerically), so the certificate fails, and ``rank W <= d' < d``
    leaves a common null direction of ``W`` and ``H^T``: the escape direction of
    :func:`negative_curvature_direction` has negative curvature (docs/theory.md section 10).

    Example:
        >>> import ufm
        >>> ufm.saddle_dims(ufm.UFMSpec(K=4, n=5, d=4, loss="mse"))
        (1, 2, 3)
    """
    if not _concrete_lambdas(spec):
        raise ValueError("saddle_dims needs concrete lambda_W, lambda_H, lambda_b")
    return tuple(range(1, min(minimiser_rank(spec), spec.d)))


def planted_saddle(spec: UFMSpec, d_small: int, params_small: UFMParams) -> UFMParams:
    """A planted saddle: an optimum ``params_small`` in dimension ``d_small``, padded to ``spec.d``.

    ``params_small`` should be a (polished) global minimiser of ``spec.replace(d=d_small)``; the
    ``d' < K - 1`` problems have no closed form, so get it from an optimiser. The result is a
    critical point of ``spec`` with ``f > f*``, a failed :func:`certificate` and negative curvature
    along :func:`negative_curvature_direction`, whose Rayleigh quotient (the ``curvature_bound``
    of :func:`ufm.classify`) is an upper bound on ``lambda_min`` of the Hessian. The balanced bound
    is attained (``lambda_min = bound``, observed to rounding) only when ``lambda_W = lambda_H``;
    otherwise it lies strictly above ``lambda_min``, and ``mix="optimal"`` gives the value observed
    to equal ``lambda_min``. ``d_small`` must be one of :func:`saddle_dims` (``ValueError`` naming
    ``d_small`` otherwise). Accepts a seed batch of ``params_small``.
    """
    dims = saddle_dims(spec)
    if d_small not in dims:
        raise ValueError(
            f"d_small={d_small!r} does not give a saddle of this spec: padded optima are "
            "non-global "
            f"only for d_small in {dims} (below the minimiser rank and spec.d={spec.d})"
        )
    K, N = spec.K, spec.N
    W, H = params_small.W, params_small.H
    if W.shape[-2:] != (K, d_small) or H.shape[-2:] != (d_small, N):
        raise ValueError(
            f"params_small must have W of shape (..., {K}, {d_small}) and H of shape "
            f"(..., {d_small}, {N}); got {W.shape} and {H.shape}"
        )
    if (params_small.b is None) == spec.has_bias:
        raise ValueError(
            f"params_small.b must be {'an array' if spec.has_bias else 'None'} "
            f"for bias={spec.bias!r}"
        )
    return pad_params(params_small, spec.d)


def restrict_to_subspace(spec: UFMSpec, params: UFMParams, dims) -> UFMParams:
    """Zero the columns ``>= dims[i]`` of ``W[i]`` and rows ``>= dims[i]`` of ``H[i]`` (a batch).

    Gradient descent keeps those entries exactly zero, so a start restricted to ``R^{d'}``
    converges to the zero-padded ``d'``-dimensional optimum: a planted saddle for ``d'`` in
    :func:`saddle_dims` (the ``embed`` of the UFM's planted-starts hook).
    """
    d = params.W.shape[-1]
    keep = (jnp.arange(d)[None, :] < jnp.asarray(dims)[:, None]).astype(params.W.dtype)
    return params._replace(W=params.W * keep[:, None, :], H=params.H * keep[:, :, None])
