"""The convex program behind the UFM, solved in JAX to a stated duality gap: global certificates
for any class sizes.

For ``d >= K`` the UFM's global minimum equals the value of the convex program (docs/theory.md
section 9; Zhu et al. 2021, arXiv 2105.02375, for balanced classes; Hong & Ling 2023, arXiv
2309.09725, for imbalanced CE)

    P = min_{M, b} sum_k w_k l(m_k + b, k) + s ||M diag(sqrt(n))||_* + (lb/2) ||b||^2,

with ``M = [m_1 .. m_K]`` the (identical) logits of the samples of each class, ``n_k`` the class
sizes, ``w_k = n_k / N``, ``s = sqrt(lambda_W lambda_H)`` and ``l`` the CE or MSE loss of one
sample. In ``X = M diag(sqrt(n))`` it is a smooth loss plus ``s ||X||_*``, solved by accelerated
proximal gradient (FISTA with adaptive restart, step ``N / L_l``) with singular-value
thresholding, the bias minimised exactly at every iterate (closed form for MSE, Newton for CE).

Lower bound (Fenchel duality). With ``u_k = m_k + b`` and multipliers ``lambda_k`` the dual is

    D(Lambda) = - sum_k w_k l*(lambda_k / w_k, k) - beta(Lambda)
    subject to ||Lambda diag(1/sqrt(n))||_2 <= s,

``l*`` the conjugate of the loss (MSE: ``<mu, e_k> + ||mu||^2 / 2``; CE: the negative entropy of
``p = mu + e_k`` on the simplex), ``beta = ||sum_k lambda_k||^2 / (2 lb)`` for a regularised bias,
``0`` with ``sum_k lambda_k = 0`` for a free one (exact: the bias is minimised at every iterate),
``0`` without bias. The dual point is the primal gradient (``lambda_k = w_k grad l(u_k, k)``)
scaled into the spectral-norm ball, which keeps it feasible for CE (a convex combination of
``softmax(u_k)`` and ``e_k``). Every ``D`` is a certified lower bound of ``P`` and hence of the
UFM's global minimum. Near the optimum the gap ``F - D`` is first order in the distance to it while
``F - P`` is second order: the primal value is far more accurate than the gap says (typically
``1e-15`` against a gap of ``1e-9`` to ``1e-8`` after 20 000 iterations for ``K <= 10``).

Use: a UFM point with objective ``f`` and ``f - D <= tol`` is within ``tol`` of the global minimum,
whatever the class sizes and whether or not a closed form exists. For balanced classes ``P`` equals
the closed forms of docs/theory.md section 2 (the tests check it). Everything is pure jax:
``jax.vmap`` over class sizes and lambdas certifies many configurations at once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.validation import SpecError, check_choice, check_int, check_lambda
from .theory import optimal_value

__all__ = [
    "ConvexSolution",
    "solve_convex",
    "convex_bounds",
    "solve_convex_spec",
    "with_convex_reference",
    "ufm_prepare_spec",
]

_NEWTON_STEPS = 30


class ConvexSolution(NamedTuple):
    """Result of :func:`solve_convex` (arrays; a leading axis when vmapped)."""

    value: jax.Array  # primal objective F at the returned point (an upper bound of P)
    lower_bound: jax.Array  # dual value D (a certified lower bound of P and of the UFM minimum)
    gap: jax.Array  # value - lower_bound >= 0
    M: jax.Array  # (K, K) class logits without the bias: column k for class k
    b: jax.Array  # (K,) bias (zeros for bias = "none")


def _loss_grad(U, loss, w):
    """``sum_k w_k l(u_k, k)`` and its gradient in ``U`` (columns are classes)."""
    K = U.shape[0]
    eye = jnp.eye(K, dtype=U.dtype)
    if loss == "ce":
        lse = jax.nn.logsumexp(U, axis=0)
        val = jnp.sum(w * (lse - jnp.diag(U)))
        G = (jax.nn.softmax(U, axis=0) - eye) * w
    else:
        R = U - eye
        val = 0.5 * jnp.sum(w * jnp.sum(R**2, axis=0))
        G = R * w
    return val, G


def _best_bias(M, loss, bias, lb, w, b0):
    """``argmin_b sum_k w_k l(m_k + b, k) + (lb/2)||b||^2``: closed form (MSE), Newton (CE)."""
    K = M.shape[0]
    dtype = M.dtype
    if bias == "none":
        return jnp.zeros(K, dtype)
    eye = jnp.eye(K, dtype=dtype)
    if loss == "mse":  # sum_k w_k (m_k + b - e_k) + lb b = 0
        return (eye - M) @ w / (jnp.sum(w) + lb)

    def step(b, _):
        P = jax.nn.softmax(M + b[:, None], axis=0)
        g = (P - eye) @ w + lb * b
        Hm = jnp.diag(P @ w) - (P * w) @ P.T + lb * eye
        if bias == "free":  # b -> b + c 1 is flat: fix the mean of b (pseudo-inverse)
            Hm = Hm + jnp.ones((K, K), dtype) / K
            g = g + jnp.mean(b)
        return b - jnp.linalg.solve(Hm, g), None

    b, _ = jax.lax.scan(step, b0, None, length=_NEWTON_STEPS)
    return b


def _svt(X, tau):
    U, S, Vt = jnp.linalg.svd(X)
    return (U * jnp.maximum(S - tau, 0.0)) @ Vt


def _objective(X, b, loss, lb, w, sq, s):
    val, _ = _loss_grad(X / sq + b[:, None], loss, w)
    return val + s * jnp.sum(jnp.linalg.svd(X, compute_uv=False)) + 0.5 * lb * (b @ b)


def _lower_bound(X, b, loss, bias, lb, w, sq, s):
    K = X.shape[0]
    _, G = _loss_grad(X / sq + b[:, None], loss, w)  # lambda_k = w_k grad l(u_k, k)
    spec = jnp.linalg.norm(G / sq, ord=2)
    theta = jnp.where(spec > s, s / jnp.maximum(spec, 1e-300), 1.0)
    Lam = theta * G
    mu = Lam / w
    eye = jnp.eye(K, dtype=X.dtype)
    if loss == "ce":
        P = jnp.clip(mu + eye, 0.0, 1.0)  # a probability vector per column
        conj = jnp.sum(jnp.where(P > 0, P * jnp.log(jnp.where(P > 0, P, 1.0)), 0.0), axis=0)
    else:
        conj = jnp.diag(mu) + 0.5 * jnp.sum(mu**2, axis=0)
    D = -jnp.sum(w * conj)
    total = jnp.sum(Lam, axis=1)
    if bias == "regularized":
        D = D - (total @ total) / (2 * lb)
    elif bias == "free":  # dual feasible only with sum_k lambda_k = 0 (the bias is exact)
        D = jnp.where(jnp.linalg.norm(total) <= 1e-12 * jnp.max(jnp.abs(Lam)) + 1e-300, D, -jnp.inf)
    return D


@functools.partial(jax.jit, static_argnames=("loss", "bias", "iterations", "check_every"))
def _solve(n, lW, lH, lb, *, loss, bias, iterations, check_every):
    K = n.shape[0]
    dtype = n.dtype
    w = n / jnp.sum(n)
    sq = jnp.sqrt(n)
    s = jnp.sqrt(lW * lH)
    lipschitz = (0.5 if loss == "ce" else 1.0) / jnp.sum(n)  # Hessian in X: l'' / N
    step = 1.0 / lipschitz
    X0 = jnp.zeros((K, K), dtype)
    b0 = _best_bias(X0 / sq, loss, bias, lb, w, jnp.zeros(K, dtype))
    F0 = _objective(X0, b0, loss, lb, w, sq, s)
    D0 = _lower_bound(X0, b0, loss, bias, lb, w, sq, s)

    def body(i, carry):
        X, Y, b, t, F, best = carry
        bY = _best_bias(Y / sq, loss, bias, lb, w, b)
        _, G = _loss_grad(Y / sq + bY[:, None], loss, w)
        Xn = _svt(Y - step * G / sq, step * s)
        bn = _best_bias(Xn / sq, loss, bias, lb, w, bY)
        Fn = _objective(Xn, bn, loss, lb, w, sq, s)
        up = Fn > F  # adaptive restart: drop the momentum, keep the iterate
        tn = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
        Yn = Xn + ((t - 1) / tn) * (Xn - X)
        X_, b_, F_ = (jnp.where(up, X, Xn), jnp.where(up, b, bn), jnp.where(up, F, Fn))
        Y_ = jnp.where(up, X, Yn)
        t_ = jnp.where(up, 1.0, tn)

        def check(best):
            D = _lower_bound(X_, b_, loss, bias, lb, w, sq, s)
            better = F_ - D < best[0] - best[1]
            return jax.tree_util.tree_map(
                lambda a, c: jnp.where(better, a, c), (F_, D, X_, b_), best
            )

        best = jax.lax.cond((i + 1) % check_every == 0, check, lambda b_: b_, best)
        return X_, Y_, b_, t_, F_, best

    init = (X0, X0, b0, jnp.asarray(1.0, dtype), F0, (F0, D0, X0, b0))
    *_, best = jax.lax.fori_loop(0, iterations, body, init)
    F, D, X, b = best
    return ConvexSolution(F, D, F - D, X / sq, b)


def solve_convex(
    K: int,
    class_sizes,
    *,
    loss: str = "ce",
    bias: str = "none",
    lambda_W=5e-3,
    lambda_H=5e-3,
    lambda_b=0.0,
    iterations: int = 20000,
    check_every: int = 10,
) -> ConvexSolution:
    """Solve the convex program ``P`` (module docstring); returns the best primal point seen with
    its certified lower bound and duality gap.

    Args:
        K: number of classes.
        class_sizes: ``(K,)`` samples per class (positive), or a batch ``(B, K)`` (then the
            lambdas may be ``(B,)`` arrays too: one compiled, vmapped solve).
        loss, bias: as :class:`ufm.UFMSpec`.
        lambda_W, lambda_H, lambda_b: regularisation strengths (``lambda_b`` only with a
            regularised bias).
        iterations: FISTA iterations (the gap is checked every ``check_every``).

    Example:
        >>> import ufm
        >>> sol = ufm.systems.ufm.solve_convex(4, [5] * 4, lambda_W=5e-3, lambda_H=5e-3)
        >>> round(float(sol.value), 9), bool(sol.gap <= 1e-7)    # the CE closed form 0.18369...
        (0.183691996, True)
    """
    K = check_int("K", K, 2)
    loss = check_choice("loss", loss, ("ce", "mse"))
    bias = check_choice("bias", bias, ("none", "free", "regularized"))
    iterations = check_int("iterations", iterations, 1)
    check_every = check_int("check_every", check_every, 1)
    n = np.asarray(class_sizes, np.float64)
    if n.shape[-1:] != (K,) or n.ndim > 2 or not np.all(n > 0) or not np.all(np.isfinite(n)):
        raise SpecError(
            f"class_sizes must be {K} positive numbers (or a (B, {K}) batch), got "
            f"{np.shape(class_sizes)}"
        )
    lams = [
        np.asarray(check_lambda(k, v), np.float64)
        for k, v in (("lambda_W", lambda_W), ("lambda_H", lambda_H), ("lambda_b", lambda_b))
    ]
    if bias == "regularized" and not np.all(lams[2] > 0):
        raise SpecError("lambda_b must be > 0 for bias='regularized'")
    if bias != "regularized":
        lams[2] = np.zeros_like(lams[2])
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    args = [jnp.asarray(n, dtype)] + [jnp.asarray(x, dtype) for x in lams]
    fn = functools.partial(
        _solve, loss=loss, bias=bias, iterations=iterations, check_every=check_every
    )
    if n.ndim == 1:
        return fn(*args)
    axes = (0,) + tuple(0 if a.ndim else None for a in args[1:])
    return jax.vmap(fn, in_axes=axes)(*args)


def convex_bounds(f, solution: ConvexSolution):
    """``(f - lower_bound)``: how far a UFM point with objective ``f`` can be from the global
    minimum (a certificate when it is below your tolerance; ``f`` itself is >= the minimum)."""
    return jnp.asarray(f) - solution.lower_bound


def solve_convex_spec(spec, *, iterations: int = 20000, check_every: int = 10) -> ConvexSolution:
    """:func:`solve_convex` for the class sizes, loss, bias and (concrete) lambdas of a
    :class:`ufm.UFMSpec` (host side)."""
    return solve_convex(
        spec.K,
        spec.class_sizes,
        loss=spec.loss,
        bias=spec.bias,
        lambda_W=float(spec.lambda_W),
        lambda_H=float(spec.lambda_H),
        lambda_b=float(spec.lambda_b),
        iterations=iterations,
        check_every=check_every,
    )


def with_convex_reference(
    spec, *, gap_tol: float = 1e-7, iterations: int = 20000, rank_rtol: float = 1e-7
):
    """``spec`` with ``f_convex`` set to the convex program's value, for the classifier.

    Solves the program once on the host (:func:`solve_convex_spec`), checks that its duality gap
    is at most ``gap_tol`` and that ``d`` is at least the rank of its minimiser ``X = M
    diag(sqrt(n))`` (singular values above ``rank_rtol sigma_1``; then the UFM attains the
    program's value, docs/theory.md section 9), and returns ``spec.replace(f_convex=value)``.
    :func:`ufm.classify` then treats ``f_convex`` as ``f*`` wherever no closed form exists: a
    critical point without negative curvature, meeting the certificate, with ``|f - f_convex|
    <= f_tol`` is a global minimum (``f - lower_bound <= f_tol + gap_tol``), one with
    ``f - f_convex > f_tol`` a spurious minimum (docs/theory.md section 10). Specs with a closed
    form are returned unchanged. ``SpecError`` when the gap or ``d`` does not allow it.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=4, n=(6, 6, 2, 1), d=4, loss="ce", lambda_W=5e-3, lambda_H=5e-3)
        >>> round(ufm.systems.ufm.with_convex_reference(spec).f_convex, 6)
        0.156748
    """
    try:
        optimal_value(spec)
        return spec
    except ValueError:
        pass
    value, gap, rank = _reference(spec, gap_tol, iterations, rank_rtol)
    if not gap <= gap_tol:
        raise SpecError(
            f"the convex program reached a duality gap of {gap:.3g} > gap_tol={gap_tol:g}; "
            "raise iterations"
        )
    if rank > spec.d:
        raise SpecError(
            f"d={spec.d} is below the rank {rank} of the convex minimiser: the program's value is "
            "only a lower bound of this UFM's minimum"
        )
    return spec.replace(f_convex=value)


def _reference(spec, gap_tol: float, iterations: int, rank_rtol: float) -> tuple:
    """``(value, gap, rank)`` of the convex program of ``spec`` (host side, cached per class
    sizes, loss, bias and lambdas: a sweep solves each configuration once per process)."""
    return _solve_cached(
        spec.K,
        tuple(spec.class_sizes),
        spec.loss,
        spec.bias,
        float(spec.lambda_W),
        float(spec.lambda_H),
        float(spec.lambda_b),
        iterations,
        rank_rtol,
    )


@functools.lru_cache(maxsize=512)
def _solve_cached(K, sizes, loss, bias, lW, lH, lb, iterations, rank_rtol) -> tuple:
    sol = solve_convex(
        K,
        sizes,
        loss=loss,
        bias=bias,
        lambda_W=lW,
        lambda_H=lH,
        lambda_b=lb,
        iterations=iterations,
    )
    sv = np.linalg.svd(np.asarray(sol.M) * np.sqrt(np.asarray(sizes, float)), compute_uv=False)
    rank = int(np.sum(sv > rank_rtol * max(sv[0], 1e-300)))
    return max(float(sol.value), 0.0), float(sol.gap), rank


def ufm_prepare_spec(spec):
    """The UFM's ``prepare_spec`` hook (sweeps and ``ufm landscape``, once per configuration on
    the host): :func:`with_convex_reference` with its defaults where the spec has no closed form,
    so that the classifier certifies global minima against ``f_convex``. A spec whose ``d`` is
    below the rank of the convex minimiser is returned unchanged (no reference value: its end
    points are judged by the Hessian alone); a duality gap above ``gap_tol`` raises
    ``SpecError`` (the grid point is reported as invalid)."""
    if spec.f_convex is not None:
        return spec
    try:
        optimal_value(spec)
        return spec
    except ValueError:
        pass
    if _reference(spec, 1e-7, 20000, 1e-7)[2] > spec.d:
        return spec
    return with_convex_reference(spec)


def ufm_reference_value(spec) -> float:
    """The UFM's ``reference_value`` hook (the ``closed_form`` analysis of :func:`ufm.run_points`):
    the closed form :func:`ufm.optimal_value` where one exists, else the convex program's value
    attached by :func:`with_convex_reference` (``spec.f_convex``), else (imbalanced classes) that
    value computed now (cached), else the closed form's or the convex check's
    ``SpecError``/``ValueError``."""
    try:
        return optimal_value(spec)
    except ValueError:
        if spec.f_convex is not None:
            return float(spec.f_convex)
        if spec.balanced:
            raise
    return with_convex_reference(spec).f_convex  # cached; SpecError when d or the gap fails
