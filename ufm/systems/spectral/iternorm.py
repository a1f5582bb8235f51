"""Iterative normalisation (IterNorm): Newton iterations towards whitening, as used by INTL.

Huang, Zhou, Zhu, Liu, Shao, "Iterative Normalization: Beyond Standardization towards Efficient
Whitening", CVPR 2019, arXiv 1904.03441; used in INTL (Weng et al., ICLR 2024, arXiv 2305.16789;
official code winci-ai/INTL ``methods/whitening.py``, class ``Whitening2dIterNorm``).

With ``Sigma`` the covariance on ``side`` (normaliser ``n_obs - 1`` as in the official code):

    Sigma_N = Sigma / tr(Sigma),   P_0 = I,   P_k = 1.5 P_{k-1} - 0.5 P_{k-1}^3 Sigma_N,
    Zhat = X P_T / sqrt(tr Sigma)                      (T = ``n_iter``, official default 4).

Spectrally, an eigenvalue ``x = lambda / tr(Sigma)`` of ``Sigma_N`` gets the gain ``p_T(x)`` with
``p_0 = 1``, ``p_{k+1} = p_k (3 - p_k^2 x) / 2``, so the output eigenvalue ``e_T = p_T^2 x``
follows ``e_0 = x``, ``e_{k+1} = e_k (3 - e_k)^2 / 4`` (:func:`iternorm_spectrum`). This map is
increasing on ``[0, 1]`` with fixed points 0 and 1; small eigenvalues grow only by ``9/4`` per step,
so at ``T = 4`` directions with ``x << 1/40`` are only partly whitened (``e_4 ~ 25.6 x``). On the
null space of ``Sigma`` the gain is ``p_T(0) = 1.5^T``: harmless for the exact null components
(they are zero) but it amplifies rounding there.

Large ``T`` is numerically unstable unless ``Sigma`` is well conditioned. Linearising the
iteration at its fixed point ``P = Sigma_N^(-1/2)``, an error component ``E_ij`` (eigenbasis of
``Sigma``) is multiplied per step by ``1 - (r + r^2) / 2`` with ``r = sqrt(lambda_j / lambda_i)``,
so rounding errors grow by ``|1 - (sqrt(kappa) + kappa) / 2|`` per step
(:func:`iternorm_error_growth`), which exceeds 1 once the condition number
``kappa > ((sqrt(17) - 1) / 2)^2 ~ 2.44``. In float64 with ``kappa = 16`` the output matches
exact whitening to 1e-12 at ``T = 10`` and is NaN by ``T = 36``; float32 breaks down sooner.
The official ``T = 4`` stops long before this regime.

``side="instance"`` (official ``axis=0``, the default of the official code) whitens the ``m x m``
batch Gram after centring each sample over its features; ``side="feature"`` (``axis=1``) whitens
the ``d x d`` feature covariance. ``tr(Sigma)`` is floored at ``sqrt(tiny)`` of the dtype (the
official code has no guard; the results agree for any batch that is not exactly constant).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ufm.core import SpecError
from ufm.systems.spectral.orientation import (
    oriented_covariance,
    safe_trace,
    unorient,
    validate,
)

#: Official default number of Newton iterations (winci-ai/INTL ``cfg.py``: ``--iters 4``).
DEFAULT_N_ITER = 4


def _check_n_iter(n_iter: int) -> None:
    if not isinstance(n_iter, int) or isinstance(n_iter, bool) or n_iter < 0:
        raise SpecError(f"n_iter must be an int >= 0 (got n_iter={n_iter!r})")


def iternorm_matrix(sigma, n_iter: int = DEFAULT_N_ITER):
    """IterNorm whitening matrix ``P_T / sqrt(tr Sigma)`` of a covariance ``sigma`` (``n x n``).

    The official ``Whitening2dIterNorm.whiten_matrix`` (one group).

    >>> import jax.numpy as jnp
    >>> w = iternorm_matrix(jnp.diag(jnp.array([0.5, 0.5])), n_iter=30)
    >>> [round(float(v), 6) for v in jnp.diag(w)]
    [1.414214, 1.414214]
    """
    _check_n_iter(n_iter)
    tr = safe_trace(sigma)
    sigma_n = sigma / tr

    def step(_, p):
        return 1.5 * p - 0.5 * (p @ p @ p) @ sigma_n

    p = lax.fori_loop(0, n_iter, step, jnp.eye(sigma.shape[-1], dtype=sigma.dtype))
    return p / jnp.sqrt(tr)


@functools.partial(jax.jit, static_argnames=("n_iter", "side", "ddof"))
def _iternorm_core(z, n_iter, side, ddof):
    x, sigma = oriented_covariance(z, side, ddof)
    return unorient(x @ iternorm_matrix(sigma, n_iter), side)


def iternorm(z, n_iter: int = DEFAULT_N_ITER, *, side: str, ddof: int = 1):
    """IterNorm of a batch ``z`` (``m x d``) on ``side``; returns ``Zhat`` (``m x d``).

    Use ``side="instance"`` to match the official INTL default (``axis=0``). Compiled once per
    shape, dtype, ``n_iter``, ``side`` and ``ddof``.

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.5, -1.5]])  # Gram diag(2/3, 3/2)
    >>> zhat = iternorm(z, 30, side="instance")  # kappa = 2.25 < 2.44: converged, stable
    >>> [round(float(v), 6) for v in jnp.var(zhat, axis=1, ddof=1)]
    [1.0, 1.0]
    """
    _check_n_iter(n_iter)
    validate(z, side, ddof)
    return _iternorm_core(z, n_iter, side, ddof)


def iternorm_gain(x, n_iter: int = DEFAULT_N_ITER):
    """Scalar gain ``p_T(x)`` of IterNorm on a normalised eigenvalue ``x = lambda / tr Sigma``.

    >>> float(iternorm_gain(0.0, 4))  # 1.5 ** 4 on the null space
    5.0625
    """
    _check_n_iter(n_iter)
    p = jnp.ones_like(jnp.asarray(x))
    for _ in range(n_iter):
        p = 0.5 * p * (3.0 - p * p * x)
    return p


def iternorm_spectrum(x, n_iter: int = DEFAULT_N_ITER):
    """Output eigenvalue ``e_T(x)``: ``e_0 = x``, ``e_{k+1} = e_k (3 - e_k)^2 / 4``.

    Eigenvalues of the output covariance (same side and ``ddof``) are ``e_T(lambda / tr Sigma)``.

    >>> [round(float(iternorm_spectrum(x, 4)), 4) for x in (1e-3, 0.1, 0.5, 1.0)]
    [0.0253, 0.9186, 1.0, 1.0]
    """
    _check_n_iter(n_iter)
    e = jnp.asarray(x)
    for _ in range(n_iter):
        e = e * (3.0 - e) ** 2 / 4.0
    return e


def iternorm_error_growth(kappa):
    """Per-step growth ``|1 - (sqrt(kappa) + kappa) / 2|`` of rounding errors near convergence.

    For a covariance with condition number ``kappa`` (ratio of extreme nonzero eigenvalues);
    above 1 (``kappa > 2.44``) the converged iteration drifts away again (see the module doc).

    >>> round(float(iternorm_error_growth(16.0)), 6), round(float(iternorm_error_growth(2.0)), 4)
    (9.0, 0.7071)
    """
    r = jnp.sqrt(jnp.asarray(kappa))
    return jnp.abs(1.0 - 0.5 * (r + r * r))
