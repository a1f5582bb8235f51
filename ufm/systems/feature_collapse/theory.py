"""Closed-form predictions of Laurent, von Brecht, Bresson (2023), "Feature collapse" (2305.16162).

The paper proves that, in the large-sample limit, global minimisers of the regularised risk are
*collapsed*: words of one concept share one representation. The collapsed configurations reduce
the risk to problems in one or a few scalars, solved here in float64 numpy.

* **Type I** (uniform law, no LayerNorm): ``w_(alpha,beta) = c_alpha`` with the ``c_alpha`` an
  equiangular simplex frame of common norm ``||w||``, and ``u_{k,l} = kappa c_{z_{k,l}}``. With
  ``gamma = n_c/(n_c-1)`` and ``CE(t) = log(1 + K((1 + (n_c-1) e^{-t})/n_c)^L)`` (the expected
  cross-entropy when the margin per disagreeing position is ``t``), ``s = ||w|| ||u||`` solves
  ``s* = argmin_s CE(gamma s) + lam sqrt(n_w K L) s`` and ``||w||* = sqrt(s* sqrt(KL/n_w))``,
  ``||u||* = s*/||w||*`` (the paper's constants: 1.42213 for K = 1000 and 0.616024 for K = 50 at
  n_c = 3, n_w = 1200, L = 15, lam = 1e-3).
* **Type II** (LayerNorm, any law): the same after LayerNorm, ``||phi(w)|| = sqrt(d)``, mean-zero
  features; ``b* = argmin_b CE(gamma sqrt(d) b) + (lam_U/2) K L b^2`` is the predicted
  ``||u||``.
* **Type III** (non-uniform law, no LayerNorm, all ``K = n_c^L`` latents):
  ``w_(alpha,beta) = r_beta chat_alpha`` (frequency-dependent norms, collapsed directions) and
  ``||u_{k,l}|| = b``. The reduced objective (derived here from the collapsed ansatz; it has
  exactly the paper's stationarity system) is
  ``E(r, b) = L sum_beta mu_beta log(1 + (n_c-1) e^{-gamma b r_beta})
  + (lam/2)(n_c sum_beta r_beta^2 + n_c^L L b^2)``; its non-zero critical point solves
  ``lam r_beta (e^{gamma b r_beta} + n_c - 1) = L mu_beta b`` and
  ``n_c sum_beta r_beta^2 = n_c^L L b^2``, and exists iff
  ``lam^2 < L n_c^{-L-1} sum_beta mu_beta^2``.

All minimisations are on convex scalar functions: the derivative is increasing and its root is
bracketed and bisected to machine precision (no scipy needed; the tests use
``scipy.optimize`` as an independent oracle).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "TypeIIISolution",
    "TypeIIOptimum",
    "TypeIOptimum",
    "gamma",
    "reduced_ce",
    "reduced_ce_grad",
    "type1_objective",
    "type1_optimum",
    "type2_objective",
    "type2_optimum",
    "type3_exists",
    "type3_objective",
    "type3_residuals",
    "type3_solve",
]


def gamma(n_c: int) -> float:
    """``n_c / (n_c - 1)``: margin per disagreeing position for unit-norm simplex vectors."""
    return n_c / (n_c - 1)


def _log_q(t, n_c):
    # log((1 + (n_c - 1) e^{-t}) / n_c), stable for large t
    return np.log1p((n_c - 1) * np.exp(-t)) - math.log(n_c)


def reduced_ce(t, n_c: int, K: int, L: int):
    """``CE(t) = log(1 + K ((1 + (n_c-1) e^{-t}) / n_c)^L)``.

    The expected cross-entropy of a collapsed network whose score drops by ``t`` at each position
    where another class's latent disagrees with the sentence's (the ``K`` competitors are
    counted with the class itself, as in the paper). ``CE(0) = log(1 + K)``.

    >>> round(float(reduced_ce(0.0, 3, 1000, 15)), 6) == round(math.log(1001), 6)
    True
    """
    t = np.asarray(t, np.float64)
    return np.logaddexp(0.0, math.log(K) + L * _log_q(t, n_c))


def reduced_ce_grad(t, n_c: int, K: int, L: int):
    """``dCE/dt = L (d log q / dt) sigmoid(log K + L log q)`` with ``q = (1+(n_c-1)e^{-t})/n_c``."""
    t = np.asarray(t, np.float64)
    e = (n_c - 1) * np.exp(-t)
    dlogq = -e / (1.0 + e)
    z = math.log(K) + L * _log_q(t, n_c)
    return L * dlogq / (1.0 + np.exp(-z))


def _root_increasing(fprime, lo=0.0, hi=1.0, iters=400):
    """Root of an increasing function with ``fprime(lo) < 0``: bracket by doubling, bisect."""
    while fprime(hi) < 0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:
            raise ArithmeticError("no sign change found while bracketing the minimiser")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if fprime(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _check_sizes(n_c, K, L):
    for name, v, m in (("n_c", n_c, 2), ("K", K, 2), ("L", L, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < m:
            raise ValueError(f"{name} must be an integer >= {m}, got {v!r}")


def _check_lam(name, v, positive=True):
    if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if positive and v == 0:
        raise ValueError(f"{name} must be > 0 (without decay the norms grow without bound)")


# -- type I ------------------------------------------------------------------------------------


class TypeIOptimum(NamedTuple):
    """Type-I collapse: ``s = ||w|| ||u||``, the norms and the reduced objective at ``s``."""

    s: float
    w_norm: float
    u_norm: float
    value: float


def type1_objective(s, n_c: int, n_w: int, K: int, L: int, lam: float, lam_u: float | None = None):
    """``CE(gamma s) + sqrt(lam_w lam_u n_w K L) s`` (``lam_w = lam``, ``lam_u = lam`` unless
    given): the regularised risk of type-I collapse at the best split of ``s`` between layers."""
    lam_u = lam if lam_u is None else lam_u
    c = math.sqrt(lam * lam_u * n_w * K * L)
    return reduced_ce(gamma(n_c) * np.asarray(s, np.float64), n_c, K, L) + c * s


def type1_optimum(
    n_c: int, n_w: int, K: int, L: int, lam: float, lam_u: float | None = None
) -> TypeIOptimum:
    """Type-I collapse (uniform law, no LayerNorm): predicted embedding and classifier norms.

    ``s* = argmin_s CE(gamma s) + lam sqrt(n_w K L) s``, ``||w||* = sqrt(s* sqrt(K L / n_w))``,
    ``||u||* = s* / ||w||*`` (paper, type-I theorem and its experiments: 1.42214 for K = 1000,
    0.61602 for K = 50). With unequal decays ``lam`` (on W) and ``lam_u`` (on U) the balance
    ``lam n_w ||w||^2 = lam_u K L ||u||^2`` gives ``||w||^2 = s sqrt(lam_u K L / (lam n_w))``.
    ``s* = 0`` (trivial minimiser) when ``lam sqrt(n_w K L) >= K L / (K + 1)``.

    >>> round(type1_optimum(3, 1200, 1000, 15, 1e-3).w_norm, 5)
    1.42213
    >>> round(type1_optimum(3, 1200, 50, 15, 1e-3).w_norm, 6)
    0.616024
    """
    _check_sizes(n_c, K, L)
    _check_lam("lam", lam)
    lam_u = lam if lam_u is None else lam_u
    _check_lam("lam_u", lam_u)
    g = gamma(n_c)
    c = math.sqrt(lam * lam_u * n_w * K * L)

    def fprime(s):
        return g * float(reduced_ce_grad(g * s, n_c, K, L)) + c

    s = 0.0 if fprime(0.0) >= 0 else _root_increasing(fprime)
    w2 = s * math.sqrt(lam_u * K * L / (lam * n_w))
    w = math.sqrt(w2)
    u = s / w if w > 0 else 0.0
    value = float(type1_objective(s, n_c, n_w, K, L, lam, lam_u))
    return TypeIOptimum(s=s, w_norm=w, u_norm=u, value=value)


# -- type II -----------------------------------------------------------------------------------


class TypeIIOptimum(NamedTuple):
    """Type-II collapse: ``b = ||u||``, ``phi_norm = sqrt(d)``, margin scale
    ``s = sqrt(d) b`` and the reduced objective."""

    b: float
    u_norm: float
    phi_norm: float
    s: float
    value: float


def type2_objective(b, n_c: int, K: int, L: int, d: int, lam_u: float):
    """``CE(gamma sqrt(d) b) + (lam_u / 2) K L b^2``."""
    b = np.asarray(b, np.float64)
    return reduced_ce(gamma(n_c) * math.sqrt(d) * b, n_c, K, L) + 0.5 * lam_u * K * L * b**2


def type2_optimum(n_c: int, K: int, L: int, d: int, lam_u: float) -> TypeIIOptimum:
    """Type-II collapse (LayerNorm): LayerNorm fixes ``||phi(w)|| = sqrt(d)`` (no decay on W is
    needed), so only ``b = ||u_{k,l}||`` is free: ``b* = argmin_b CE(gamma sqrt(d) b) +
    (lam_u/2) K L b^2`` (paper, type-II theorem).

    >>> opt = type2_optimum(3, 200, 15, 100, 1e-3)
    >>> opt.phi_norm, opt.b > 0
    (10.0, True)
    """
    _check_sizes(n_c, K, L)
    _check_lam("lam_u", lam_u)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    a = gamma(n_c) * math.sqrt(d)

    def fprime(b):
        return a * float(reduced_ce_grad(a * b, n_c, K, L)) + lam_u * K * L * b

    b = _root_increasing(fprime)
    value = float(type2_objective(b, n_c, K, L, d, lam_u))
    return TypeIIOptimum(b=b, u_norm=b, phi_norm=math.sqrt(d), s=math.sqrt(d) * b, value=value)


# -- type III ----------------------------------------------------------------------------------


class TypeIIISolution(NamedTuple):
    """Type-III collapse: ``||u_{k,l}|| = b`` and ``||w_(alpha,beta)|| = r[beta]``."""

    b: float
    r: np.ndarray
    value: float


def _check_mu(mu):
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 1 or mu.size < 1 or np.any(mu < 0) or not np.isclose(mu.sum(), 1.0):
        raise ValueError("mu must be a 1-D probability vector (non-negative, summing to 1)")
    return mu


def type3_objective(r, b, mu, n_c: int, L: int, lam: float):
    """``L sum_beta mu_beta log(1 + (n_c-1) e^{-gamma b r_beta}) + (lam/2)(n_c sum r^2 +
    n_c^L L b^2)``: the regularised risk of type-III collapse with all ``K = n_c^L`` latents
    (the sum over all latents factorises over positions)."""
    r = np.asarray(r, np.float64)
    t = gamma(n_c) * b * r
    risk = L * np.sum(mu * np.log1p((n_c - 1) * np.exp(-t)))
    return risk + 0.5 * lam * (n_c * np.sum(r**2) + float(n_c) ** L * L * b**2)


def type3_exists(mu, n_c: int, L: int, lam: float) -> bool:
    """The paper's existence condition of a non-trivial type-III critical point,
    ``lam^2 < L n_c^{-L-1} sum_beta mu_beta^2``."""
    mu = _check_mu(mu)
    return bool(lam**2 < L * float(n_c) ** (-L - 1) * np.sum(mu**2))


def type3_residuals(r, b, mu, n_c: int, L: int, lam: float):
    """Residuals of the stationarity system: ``(lam r (e^{gamma b r} + n_c - 1) - L mu b,
    n_c sum r^2 - n_c^L L b^2)`` (a vector and a scalar; zero at a solution)."""
    r = np.asarray(r, np.float64)
    g = gamma(n_c)
    first = lam * r * (np.exp(g * b * r) + n_c - 1) - L * np.asarray(mu) * b
    second = n_c * np.sum(r**2) - float(n_c) ** L * L * b**2
    return first, second


def _rho(b, mu, n_c, L, lam, iters=200):
    """``rho = r / b`` per beta: the root of ``lam rho (e^{gamma b^2 rho} + n_c - 1) = L mu``."""
    g = gamma(n_c)
    lo = np.zeros_like(mu)
    hi = L * mu / (lam * n_c)  # e^{...} >= 1 bounds rho from above
    with np.errstate(over="ignore"):
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            left = lam * mid * (np.exp(g * b * b * mid) + n_c - 1) < L * mu
            lo = np.where(left, mid, lo)
            hi = np.where(left, hi, mid)
    return 0.5 * (lo + hi)


def type3_solve(mu, n_c: int, L: int, lam: float) -> TypeIIISolution | None:
    """Solve the type-III stationarity system (paper, type-III theorem); ``None`` when the
    existence condition ``lam^2 < L n_c^{-L-1} sum mu^2`` fails.

    For fixed ``b`` each ``r_beta`` solves an increasing scalar equation; writing
    ``r_beta = b rho_beta(b)``, the balance equation becomes
    ``H(b) = n_c sum rho^2 / (n_c^L L) - 1 = 0`` with ``H`` decreasing from
    ``L sum mu^2 / (lam^2 n_c^{L+1}) - 1`` (positive exactly under the existence condition) to
    ``-1``: one root, found by bisection.

    >>> import numpy as np
    >>> sol = type3_solve(np.array([0.5, 0.3, 0.2]), n_c=3, L=2, lam=1e-2)
    >>> bool(sol.r[0] > sol.r[1] > sol.r[2] > 0)
    True
    >>> type3_solve(np.array([0.5, 0.3, 0.2]), n_c=3, L=2, lam=1.0) is None
    True
    """
    mu = _check_mu(mu)
    _check_sizes(n_c, 2, L)
    _check_lam("lam", lam)
    if not type3_exists(mu, n_c, L, lam):
        return None
    scale = float(n_c) ** L * L

    def H(b):
        return n_c * np.sum(_rho(b, mu, n_c, L, lam) ** 2) / scale - 1.0

    lo, hi = 0.0, 1.0
    while H(hi) > 0:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if H(mid) > 0:
            lo = mid
        else:
            hi = mid
    b = 0.5 * (lo + hi)
    r = b * _rho(b, mu, n_c, L, lam)
    return TypeIIISolution(b=b, r=r, value=float(type3_objective(r, b, mu, n_c, L, lam)))
