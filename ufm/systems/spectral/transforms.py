"""Explicit spectral transformations (ST) of a batch of embeddings: power family, whitening.

Weng, Ni, Song, Luo, Anwer, Khan, Khan, Huang, "Modulate Your Spectrum in Self-Supervised
Learning", ICLR 2024, arXiv 2305.16789 (official code: winci-ai/INTL).

Layout: ``z`` is ``(m, d)`` (samples in rows); ``side`` selects the covariance that is reshaped
(see :mod:`ufm.systems.spectral.orientation`; ``side`` is required, there is no default). With the
centred variables-in-columns matrix ``X`` (``n_obs x n_var``) and
``Sigma = X^T X / (n_obs - ddof) = U Lambda U^T``, a spectral transformation is

    Zhat = X U g(Lambda) U^T            (returned in the (m, d) layout),

whose covariance (same side, same ``ddof``) is ``U diag(lambda g(lambda)^2) U^T``: the output
spectrum is ``lambda g(lambda)^2`` with the eigenvectors unchanged.

Power family ``g(lambda) = lambda^(-p)``: output spectrum ``lambda^(1 - 2p)``. ``p = 0`` leaves
the (centred) batch alone, ``0 < p < 1/2`` compresses the spectrum but keeps its order (a collapsed
direction stays collapsed), ``p = 1/2`` is exact (ZCA) whitening (flat spectrum on the support), and
``p > 1/2`` reverses the order and amplifies the smallest directions, which are the noisiest.

Guard (our choice; the paper states none): before the power, eigenvalues are floored at
``eps * tr(Sigma)``, i.e. the transform works on ``Sigma_N = Sigma / tr(Sigma)`` (the normalisation
IterNorm uses) with ``g_N(x) = max(x, eps)^(-p)`` and rescales by ``tr(Sigma)^(-p)``. For
``lambda >= eps tr(Sigma)`` the output eigenvalue is exactly ``lambda^(1 - 2p)``; below it the gain
is capped at ``(eps tr Sigma)^(-p)``, so null directions stay (numerically) null and gradients
are finite. The floor is scale-invariant (``ST_p(c z) = c^(1-2p) ST_p(z)`` exactly) and depends
smoothly on ``z``; ``eps`` defaults to ``1e-5`` (above float32 eigensolver noise, ~1e-7 of the
trace). ``tr(Sigma)`` itself is floored at ``sqrt(tiny)`` of the dtype, so an exactly constant
batch returns zeros (with finite gradients) for ``p <= 1``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ufm.core import SpecError
from ufm.systems.spectral.matfun import sym_matrix_function
from ufm.systems.spectral.orientation import (
    oriented_covariance,
    safe_trace,
    unorient,
    validate,
)


def _check_eps(eps: float) -> None:
    if not isinstance(eps, (int, float)) or not 0.0 < eps < 1.0:
        raise SpecError(f"eps must be a float in (0, 1) (got eps={eps!r})")


def _check_p(p: float) -> None:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not math.isfinite(p):
        raise SpecError(f"p must be a finite real number (got p={p!r})")


@functools.partial(jax.jit, static_argnames=("g", "side", "ddof"))
def _spectral_core(z, g, side, ddof):
    x, sigma = oriented_covariance(z, side, ddof)
    return unorient(x @ sym_matrix_function(sigma, g), side)


def spectral_transform(z, g, *, side: str, ddof: int = 1):
    """Spectral transformation ``Zhat = X U g(Lambda) U^T`` of a batch ``z`` (``m x d``).

    ``g`` is an elementwise, differentiable, hashable callable applied to the raw eigenvalues of
    the covariance on ``side``; it must be finite on them (no guard is added: use
    :func:`power_transform` for the guarded power family). Output spectrum ``lambda g(lambda)^2``.
    Gradients use the Daleckii-Krein formula (finite at repeated eigenvalues when ``g`` is smooth).
    Compiled once per shape, dtype, ``g``, ``side`` and ``ddof``.
    """
    validate(z, side, ddof)
    return _spectral_core(z, g, side, ddof)


def guarded_power(x, p, eps):
    """Elementwise ``max(x, eps)^(-p)`` on trace-normalised eigenvalues ``x``."""
    return jnp.maximum(x, eps) ** (-p)


@functools.partial(jax.jit, static_argnames=("side", "ddof"))
def _power_core(z, p, eps, side, ddof):
    x, sigma = oriented_covariance(z, side, ddof)
    tr = safe_trace(sigma)
    w = sym_matrix_function(sigma / tr, guarded_power, p, eps)
    return unorient(x @ (w * tr ** (-p)), side)


def power_transform(z, p: float, *, side: str, eps: float = 1e-5, ddof: int = 1):
    """Power-family ST ``g(lambda) = max(lambda, eps tr Sigma)^(-p)`` (output ``lambda^(1-2p)``).

    ``p = 0.5`` is exact ZCA whitening (:func:`whiten`). See the module docstring for the guard.
    Compiled once per shape, dtype, ``side`` and ``ddof`` (``p`` and ``eps`` are traced).

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # variances 8/3, 2/3
    >>> out = power_transform(z, 0.25, side="feature")
    >>> [round(float(v), 6) for v in jnp.var(out, axis=0, ddof=1)]  # sqrt of the variances
    [1.632993, 0.816497]
    """
    _check_p(p)
    _check_eps(eps)
    validate(z, side, ddof)
    dtype = jnp.result_type(z)
    return _power_core(z, jnp.asarray(p, dtype), jnp.asarray(eps, dtype), side, ddof)


def whiten(z, *, side: str, eps: float = 1e-5, ddof: int = 1):
    """Exact (ZCA) whitening: :func:`power_transform` with ``p = 1/2``.

    The output covariance is the orthogonal projector onto the range of ``Sigma`` (the identity
    when ``Sigma`` has full rank), up to directions with ``lambda < eps tr(Sigma)``.
    """
    return power_transform(z, 0.5, side=side, eps=eps, ddof=ddof)


def power_output_spectrum(lam, p: float, eps: float = 1e-5):
    """Output eigenvalues of :func:`power_transform` given the input covariance eigenvalues ``lam``.

    ``lam * max(lam, eps * sum(lam))^(-2p)`` (``lam^(1-2p)`` above the floor).

    >>> import jax.numpy as jnp
    >>> [round(float(v), 6) for v in power_output_spectrum(jnp.array([4.0, 1.0]), 0.25)]
    [2.0, 1.0]
    """
    _check_p(p)
    _check_eps(eps)
    lam = jnp.asarray(lam)
    floor = eps * jnp.maximum(jnp.sum(lam), jnp.sqrt(jnp.finfo(lam.dtype).tiny))
    return lam * jnp.maximum(lam, floor) ** (-2.0 * p)


def cholesky_lower(a):
    """Lower Cholesky factor ``L`` of a symmetric positive definite ``a`` (``a = L L^T``),
    right-looking outer-product algorithm in plain array operations (``lax.fori_loop`` over the
    ``d`` columns, ``O(d^3)``); NaN where ``a`` is not positive definite, as LAPACK's ``potrf``
    through ``jnp.linalg.cholesky``.

    Written without LAPACK on purpose: a batched ``potrf`` / ``trsm`` custom call inside the
    seed-vmapped, scanned training step deadlocked jaxlib's CPU thread pool (W-MSE on digits,
    5 seeds; docs/spectral.md), as batched ``gesdd`` did in the Hessian analyses. At the sizes of
    the experiments (``d <= 512``) the loop costs little next to the network.

    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 2.0], [2.0, 3.0]])
    >>> L = cholesky_lower(a)
    >>> bool(jnp.allclose(L @ L.T, a)), bool(L[0, 1] == 0.0)
    (True, True)
    """
    d = a.shape[-1]
    idx = jnp.arange(d)

    def column(j, carry):
        rest, low = carry
        pivot = jnp.sqrt(rest[j, j])
        col = jnp.where(idx >= j, rest[:, j] / pivot, 0.0)
        return rest - jnp.outer(col, col), low.at[:, j].set(col)

    return jax.lax.fori_loop(0, d, column, (a, jnp.zeros_like(a)))[1]


def forward_substitution(low, b):
    """``L^{-1} b`` for lower-triangular ``low`` (``(d, d)``) and ``b`` (``(d, m)``), row by row in
    plain array operations (see :func:`cholesky_lower` for why not LAPACK's ``trsm``)."""

    def row(i, y):
        return y.at[i].set((b[i] - low[i] @ y) / low[i, i])

    return jax.lax.fori_loop(0, low.shape[0], row, jnp.zeros_like(b))


@functools.partial(jax.jit, static_argnames=("ddof",))
def _cholesky_core(z, eps, ddof):
    x, sigma = oriented_covariance(z, "feature", ddof)
    eye = jnp.eye(sigma.shape[0], dtype=sigma.dtype)
    chol = cholesky_lower((1.0 - eps) * sigma + eps * eye)
    return forward_substitution(chol, x.T).T


def cholesky_whiten(z, *, eps: float = 0.0, ddof: int = 1):
    """Cholesky whitening of the feature covariance, as in W-MSE (Ermolov et al. 2021).

    Ermolov, Siarohin, Sangineto, Sebe, "Whitening for Self-Supervised Representation Learning",
    ICML 2021, arXiv 2007.06346 (code: htdt/self-supervised, ``methods/whitening.py``):
    ``X = z - mean``, ``Sigma_s = (1 - eps) Sigma + eps I = L L^T``, ``Zhat = X L^{-T}``. The output
    covariance is the identity; unlike ZCA the whitening matrix is not symmetric. ``eps = 0`` is
    the official default; a singular ``Sigma`` (``m <= d``) then gives NaN (use ``eps > 0``).
    """
    if not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
        raise SpecError(f"eps must be a float in [0, 1) (got eps={eps!r})")
    validate(z, "feature", ddof)
    return _cholesky_core(z, jnp.asarray(eps, jnp.result_type(z)), ddof)
