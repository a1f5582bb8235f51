"""Spectrum of the forward feature operator, its Nystrom eigenfunctions and target projections.

Nam, Mingard, Lee, Hayou & Louis 2024 (arXiv 2410.04264): for a network ``f(x) = W Phi(x) + b``
with penultimate features ``Phi`` (rows of ``F``, shape ``(n, p)``), the feature operator
``T[u](x) = E_x'[Phi(x)^T Phi(x') u(x')]`` has the same non-zero spectrum as
``M = F^T F / n = V diag(rho) V^T``; its eigenfunctions on the samples are
``e_k(x) = Phi(x)^T v_k / sqrt(rho_k)`` (Nystrom), orthonormal in the empirical inner product
``<u | w> = (1/n) sum_i u(x_i) w(x_i)``.

Computation (``method``): ``"svd"`` (default) takes the thin SVD ``F = U S V^T``, so
``rho = S^2 / n`` and ``e_k = sqrt(n) U[:, k]``; this one formula covers ``n >= p`` (where it is
the eigendecomposition of ``M``) and ``n < p`` (where it is that of the ``n x n`` Gram
``F F^T / n``: the same non-zero ``rho``, and ``F v_k / sqrt(rho_k) = sqrt(n) u_k``), and avoids
squaring the condition number. ``"eigh"`` diagonalises the smaller of ``M`` (``p x p``, when
``p <= n``) and the Gram (``n x n``, when ``n < p``): cheaper for ``n >> p``, less accurate for
small eigenvalues. Directions with ``rho_k <= rtol * rho_1`` count as zero: their eigenfunctions
are set to 0 and ``valid`` is False (otherwise an arbitrary basis of the null space would
"capture" target mass that ``F`` cannot represent). The default ``rtol`` follows each method's
accuracy: ``(max(n, p) eps)^2`` for ``"svd"`` (singular values are accurate to ``eps sigma_1``)
and ``max(n, p) eps`` for ``"eigh"`` (eigenvalues of ``M`` are accurate to ``eps rho_1``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "FeatureSpectrum",
    "centred_gap",
    "cumulative_mass",
    "effective_rank",
    "eigenfunctions",
    "feature_spectrum",
    "participation_ratio",
    "projections",
]

_METHODS = ("svd", "eigh")


class FeatureSpectrum(NamedTuple):
    """The feature operator's eigen-decomposition on ``n`` samples (``q = min(n, p')``).

    Attributes:
        rho: eigenvalues ``(q,)`` of ``M = F'^T F' / n``, descending (``F'`` = ``F`` after the
            optional centring and constant column).
        vecs: eigenvectors ``v_k`` of ``M`` as columns, ``(p', q)``.
        efuns: eigenfunctions on the samples ``e_k(x_i)``, ``(n, q)``; zero where not ``valid``.
        valid: ``(q,)`` booleans, ``rho_k > rtol * rho_1``.
        mean: ``(p,)`` the subtracted feature mean (zeros without centring).
    """

    rho: jax.Array
    vecs: jax.Array
    efuns: jax.Array
    valid: jax.Array
    mean: jax.Array


def _prepare(F, centre: bool, bias: bool):
    mean = jnp.mean(F, axis=0) if centre else jnp.zeros(F.shape[1], F.dtype)
    Fp = F - mean
    if bias:
        Fp = jnp.concatenate([Fp, jnp.ones((F.shape[0], 1), F.dtype)], axis=1)
    return Fp, mean


def _check_features(F) -> jax.Array:
    F = jnp.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"F must be a 2-d (n samples, p features) array (got shape {F.shape})")
    if not jnp.issubdtype(F.dtype, jnp.floating):
        raise ValueError(f"F must be floating point (got dtype {F.dtype})")
    return F


def feature_spectrum(
    F,
    *,
    centre: bool = False,
    bias: bool = False,
    method: str = "svd",
    rtol: float | None = None,
) -> FeatureSpectrum:
    """Eigenvalues, eigenvectors and Nystrom eigenfunctions of ``M = F^T F / n``.

    Args:
        F: features ``(n, p)``, one sample per row.
        centre: subtract the feature mean over samples first (the centred operator).
        bias: append a constant feature ``1``: the operator of the readout ``W Phi + b`` (with
            ``b`` trained at the same rate as ``W``, gradient descent sees the kernel
            ``Phi(x)^T Phi(x') + 1``).
        method: ``"svd"`` (default, accurate; covers ``n >= p`` and ``n < p``) or ``"eigh"``
            (eigendecomposition of the smaller of ``F^T F / n`` and ``F F^T / n``).
        rtol: relative cut-off ``rho_k <= rtol * rho_1`` for zero eigenvalues (default
            ``(max(n, p') eps)^2`` for ``"svd"``, ``max(n, p') eps`` for ``"eigh"``).

    Example:
        >>> import jax.numpy as jnp
        >>> F = jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
        >>> s = feature_spectrum(F)
        >>> s.rho.tolist(), s.valid.tolist()  # rho = (4, 1) / n with n = 4
        ([1.0, 0.25], [True, True])
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS} (got {method!r})")
    return _spectrum(_check_features(F), centre, bias, method, rtol)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _spectrum(F, centre: bool, bias: bool, method: str, rtol) -> FeatureSpectrum:
    Fp, mean = _prepare(F, centre, bias)
    n, p = Fp.shape
    if rtol is None:
        rtol = max(n, p) * float(jnp.finfo(Fp.dtype).eps)
        rtol = rtol**2 if method == "svd" else rtol
    if method == "svd":
        U, s, Vt = jnp.linalg.svd(Fp, full_matrices=False)
        rho = s**2 / n
        V = Vt.T
        valid = rho > rtol * rho[0]
        E = jnp.where(valid, jnp.sqrt(jnp.asarray(n, Fp.dtype)) * U, 0.0)
    elif p <= n:
        rho, V = jnp.linalg.eigh(Fp.T @ Fp / n)
        rho, V = rho[::-1], V[:, ::-1]
        valid = rho > rtol * rho[0]
        E = jnp.where(valid, (Fp @ V) / jnp.sqrt(jnp.where(valid, rho, 1.0)), 0.0)
    else:
        rho, U = jnp.linalg.eigh(Fp @ Fp.T / n)
        rho, U = rho[::-1], U[:, ::-1]
        valid = rho > rtol * rho[0]
        E = jnp.where(valid, jnp.sqrt(jnp.asarray(n, Fp.dtype)) * U, 0.0)
        V = jnp.where(valid, Fp.T @ U / jnp.sqrt(n * jnp.where(valid, rho, 1.0)), 0.0)
    rho = jnp.maximum(rho, 0.0)  # eigh can return tiny negative eigenvalues
    return FeatureSpectrum(rho, V, E, valid, mean)


def eigenfunctions(spectrum: FeatureSpectrum, F_new) -> jax.Array:
    """Nystrom extension ``e_k(x) = (Phi(x) - mean)^T v_k / sqrt(rho_k)`` at new features.

    ``F_new`` is ``(m, p)``; the constant column is appended when the spectrum was computed with
    ``bias=True`` (detected from the shapes). Zero for directions that are not ``valid``. On the
    samples the spectrum was computed from this returns ``spectrum.efuns``.
    """
    F_new = jnp.asarray(F_new)
    p = spectrum.mean.shape[0]
    if F_new.ndim != 2 or F_new.shape[1] != p:
        raise ValueError(f"F_new must be (m, {p}) like the spectrum's features (got {F_new.shape})")
    F_new = F_new - spectrum.mean
    if spectrum.vecs.shape[0] == p + 1:
        F_new = jnp.concatenate([F_new, jnp.ones((F_new.shape[0], 1), F_new.dtype)], axis=1)
    root = jnp.sqrt(jnp.where(spectrum.valid, spectrum.rho, 1.0))
    return jnp.where(spectrum.valid, (F_new @ spectrum.vecs) / root, 0.0)


def projections(efuns, Y) -> jax.Array:
    """``a_{k,c} = <e_k | y_c> = (1/n) sum_i e_k(x_i) y_c(x_i)``, shape ``(q, C)``."""
    efuns, Y = jnp.asarray(efuns), jnp.asarray(Y)
    return efuns.T @ Y.astype(efuns.dtype) / efuns.shape[0]


def cumulative_mass(a, Y) -> jax.Array:
    """``Pi(k) = sum_{j<=k} sum_c a_{j,c}^2 / sum_c ||y_c||^2`` for ``k = 1..q`` (``(q,)``).

    ``||y_c||^2 = (1/n) sum_i y_c(x_i)^2``. By Bessel's inequality ``Pi`` is non-decreasing and
    at most 1; ``Pi(q) = 1`` iff ``span(F)`` contains every column of ``Y``. ``Y = 0`` gives nan.
    """
    a, Y = jnp.asarray(a), jnp.asarray(Y)
    total = jnp.sum(Y.astype(a.dtype) ** 2) / Y.shape[0]
    return jnp.cumsum(jnp.sum(a**2, axis=1)) / total


def participation_ratio(rho) -> jax.Array:
    """``(sum rho)^2 / sum rho^2``: ``r`` for ``r`` equal non-zero eigenvalues (nan if all 0)."""
    rho = jnp.maximum(jnp.asarray(rho), 0.0)
    return jnp.sum(rho) ** 2 / jnp.sum(rho**2)


def effective_rank(rho) -> jax.Array:
    """``exp(H(rho / sum rho))`` (Roy & Vetterli 2007), ``0 log 0 = 0``; ``r`` for ``r`` equal
    eigenvalues, and larger than the participation ratio for uneven spectra."""
    rho = jnp.maximum(jnp.asarray(rho), 0.0)
    q = rho / jnp.sum(rho)
    return jnp.exp(-jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0)))


def centred_gap(rho_centred, num_classes: int) -> jax.Array:
    """``rho^c_C / rho^c_{C-1}`` (1-based) of the centred spectrum: in ``[0, 1]``, 0 = a clean gap
    after ``C - 1`` directions.

    Centring over samples removes the mean direction; the ``C`` centred class means sum to zero
    (weighted by class sizes), so they span at most ``C - 1`` directions. Minimal features
    therefore put ``C - 1`` large centred eigenvalues before a gap, and the ratio of the ``C``-th
    to the ``(C-1)``-th measures that gap (its reciprocal ``rho^c_{C-1} / rho^c_C`` is the usual
    "gap" and is infinite at exact neural collapse, hence this bounded form). Missing eigenvalues
    (fewer than ``C`` directions) count as 0; nan when ``rho^c_{C-1} = 0``.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (got {num_classes!r})")
    rho = jnp.maximum(jnp.asarray(rho_centred), 0.0)
    pad = jnp.concatenate([rho, jnp.zeros(max(0, num_classes - rho.shape[0]), rho.dtype)])
    return pad[num_classes - 1] / pad[num_classes - 2]
