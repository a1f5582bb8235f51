"""Closed forms of the UFM with imbalanced classes (MSE, no bias or a free bias).

With class sizes ``n_1..n_K`` (``N = sum n_k``, ``D = diag(sqrt(n))``, ``s = sqrt(lambda_W
lambda_H)``) the UFM's global minimum for ``d >= K`` is the convex program of docs/theory.md
section 9. For MSE it is an explicit proximal problem: writing ``X = M D`` (``M`` the class
logits), the fit term is ``||X - D||_F^2 / (2N)`` without bias and, with a free bias minimised
out, ``||(X - D)(I - P)||_F^2 / (2N)`` with ``P = sqrt(n) sqrt(n)^T / N``. Hence the minimiser is
singular-value thresholding of

    Y_hat = D                         (bias "none")
    Y_hat = D - n sqrt(n)^T / N       (bias "free"; Y_hat sqrt(n) = 0),

``X* = U max(Sigma - s N, 0) V^T`` (``Y_hat = U Sigma V^T``), and

    f* = sum_i phi(sigma_i(Y_hat)),   phi(sigma) = sigma^2 / (2N)             if sigma <= s N,
                                                 = s sigma - s^2 N / 2       otherwise.

The minimiser has rank ``r = #{i: sigma_i > s N}`` (it needs ``d >= r``), classifier and class
means from the balanced factorisation ``W = (lH/lW)^(1/4) U_r S^(1/2)``, ``h_{k,i} = (lW/lH)^(1/4)
S^(1/2) V_r^T e_k / sqrt(n_k)`` (``S`` the thresholded singular values), bias ``b* = n / N``.
Without bias ``Y_hat = D`` is diagonal: the class means are orthogonal with squared norms
``sqrt(lW/lH) (sqrt(n_k) - s N)_+ / n_k``, and class ``k`` collapses to zero exactly when

    n_k <= lambda_W lambda_H N^2                                      (minority collapse).

The same number governs the merging of equal-size minority classes for CE and MSE with any bias
(:func:`minority_threshold`): at a minimiser where two classes of size ``n_B`` share one logit
vector, the gradient of the fit term in ``X`` has the exact singular pair ``(e_a - e_b)/sqrt(2)``
with singular value ``sqrt(n_B)/N`` whatever the logits (the softmax or the residual cancels), so
the merged point is optimal exactly when ``sqrt(n_B)/N <= s``.

With balanced classes both reduce to the closed forms of docs/theory.md section 2. Derivation:
docs/theory.md section 10 (this module's own; Dang et al. 2023, arXiv 2301.00437, characterise
the bias-free imbalanced MSE minimisers as a "general orthogonal frame" whose lengths depend on
the class sizes; Hong & Ling 2023, arXiv 2309.09725, treat imbalanced CE through the same
nuclear-norm program). The tests check these forms against :func:`ufm.systems.ufm.solve_convex`
and against optimiser end points.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...core.validation import SpecError, check_int, check_lambda, is_concrete
from .objective import UFMParams
from .spec import UFMSpec

__all__ = [
    "ImbalancedOptimum",
    "imbalanced_optimal_value",
    "imbalanced_optimum",
    "mse_target_svd",
    "class_mean_gram",
    "minority_threshold",
]

GENERAL_ORTHOGONAL_FRAME = "general-orthogonal-frame"  # MSE, no bias
IMBALANCED_CENTRED = "imbalanced-centred"  # MSE, free bias


def _sizes(class_sizes) -> np.ndarray:
    n = np.asarray(class_sizes, np.float64)
    if n.ndim != 1 or n.size < 2 or not np.all(np.isfinite(n)) or not np.all(n > 0):
        raise SpecError(f"class_sizes must be >= 2 positive numbers, got {class_sizes!r}")
    return n


def mse_target_svd(class_sizes, bias: str = "none"):
    """SVD ``(U, sigma, Vt)`` of ``Y_hat`` (module docstring) for ``bias`` ``"none"`` or
    ``"free"``, singular values decreasing (float64 numpy)."""
    n = _sizes(class_sizes)
    D = np.diag(np.sqrt(n))
    if bias == "none":
        Y = D
    elif bias == "free":
        Y = D - np.outer(n, np.sqrt(n)) / n.sum()
    else:
        raise SpecError(
            f"bias must be 'none' or 'free' for the imbalanced MSE closed form, got {bias!r}"
        )
    return np.linalg.svd(Y)


def _require_mse(spec: UFMSpec) -> None:
    if spec.loss != "mse" or spec.bias not in ("none", "free"):
        raise SpecError(
            f"no closed form for imbalanced classes with loss={spec.loss!r}, bias={spec.bias!r} "
            "(only MSE with bias 'none' or 'free'); use ufm.systems.ufm.solve_convex or "
            "with_convex_reference"
        )


def imbalanced_optimal_value(spec: UFMSpec):
    """``f*`` of the MSE UFM with class sizes ``spec.class_sizes`` (module docstring).

    Concrete lambdas give a Python float (``ValueError`` naming ``d`` when ``d`` is below the
    minimiser's rank); traced lambdas a jax array, ``nan`` where ``d`` is too small.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=3, n=(8, 8, 2), d=3, loss="mse", lambda_W=0.1, lambda_H=0.1)
        >>> round(ufm.optimal_value(spec), 10)    # the class of 2 collapses: 2 <= 0.01 * 18^2
        0.4412409805
    """
    _require_mse(spec)
    n = np.asarray(spec.class_sizes, np.float64)
    N = float(n.sum())
    sig = mse_target_svd(n, spec.bias)[1]
    if all(is_concrete(v) for v in (spec.lambda_W, spec.lambda_H)):
        s = math.sqrt(float(spec.lambda_W) * float(spec.lambda_H))
        rank = int(np.sum(sig > s * N))
        if rank > spec.d:
            raise ValueError(
                f"d={spec.d} is too small for the closed-form optimum of this imbalanced MSE UFM: "
                f"the minimiser has rank {rank}, so it needs d >= {rank}"
            )
        return float(np.sum(np.where(sig > s * N, s * sig - s * s * N / 2, sig**2 / (2 * N))))
    s = jnp.sqrt(jnp.asarray(spec.lambda_W) * jnp.asarray(spec.lambda_H))
    sig = jnp.asarray(sig, s.dtype)
    above = sig[None] > (s * N)[..., None] if s.ndim else sig > s * N
    sx = s[..., None] if s.ndim else s
    value = jnp.sum(jnp.where(above, sx * sig - sx * sx * N / 2, sig**2 / (2 * N)), axis=-1)
    return jnp.where(jnp.sum(above, axis=-1) <= spec.d, value, jnp.nan)


class ImbalancedOptimum(NamedTuple):
    """The closed-form global minimiser of the imbalanced MSE UFM (:func:`imbalanced_optimum`)."""

    value: float
    params: UFMParams
    regime: str  # "general-orthogonal-frame" (no bias) or "imbalanced-centred" (free bias)
    rank: int
    class_mean_norms: np.ndarray  # ||mean of class k's features||, (K,)
    classifier_norms: np.ndarray  # ||w_k||, (K,)
    logits: np.ndarray  # (K, K): column k is the logit vector of every sample of class k


def imbalanced_optimum(spec: UFMSpec) -> ImbalancedOptimum:
    """The closed-form global minimiser of the MSE UFM (bias ``"none"`` or ``"free"``) with class
    sizes ``spec.class_sizes`` and its value (module docstring); embedded in the first ``rank``
    coordinates of ``R^d``.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=3, n=(8, 8, 2), d=3, loss="mse", lambda_W=0.1, lambda_H=0.1)
        >>> opt = ufm.systems.ufm.imbalanced_optimum(spec)
        >>> opt.rank, opt.class_mean_norms.round(4).tolist()      # the minority class is at 0
        (2, [0.3585, 0.3585, 0.0])
        >>> abs(float(ufm.loss(spec, opt.params)) - opt.value) < 1e-15
        True
    """
    _require_mse(spec)
    lW, lH = float(spec.lambda_W), float(spec.lambda_H)
    for name, v in (("lambda_W", lW), ("lambda_H", lH)):
        if not v > 0:
            raise SpecError(f"{name} must be > 0 for a minimiser to exist, got {v!r}")
    value = imbalanced_optimal_value(spec)
    n = np.asarray(spec.class_sizes, np.float64)
    N, K, d = float(n.sum()), spec.K, spec.d
    s = math.sqrt(lW * lH)
    U, sig, Vt = mse_target_svd(n, spec.bias)
    S = np.maximum(sig - s * N, 0.0)
    r = int(np.sum(S > 0))
    W = np.zeros((K, d))
    W[:, :r] = (lH / lW) ** 0.25 * U[:, :r] * np.sqrt(S[:r])
    Hbar = np.zeros((d, K))  # class means
    Hbar[:r] = (lW / lH) ** 0.25 * np.sqrt(S[:r])[:, None] * Vt[:r] / np.sqrt(n)
    H = np.repeat(Hbar, spec.class_sizes, axis=1)
    dt = spec.jnp_dtype
    b = jnp.asarray(n / N, dt) if spec.bias == "free" else None
    regime = GENERAL_ORTHOGONAL_FRAME if spec.bias == "none" else IMBALANCED_CENTRED
    return ImbalancedOptimum(
        value=value,
        params=UFMParams(jnp.asarray(W, dt), jnp.asarray(H, dt), b),
        regime=regime,
        rank=r,
        class_mean_norms=np.linalg.norm(Hbar, axis=0),
        classifier_norms=np.linalg.norm(W, axis=1),
        logits=W @ Hbar + (n[:, None] / N if spec.bias == "free" else 0.0),
    )


def class_mean_gram(M, class_sizes, lambda_W, lambda_H) -> np.ndarray:
    """Gram matrix ``Hbar^T Hbar`` of the class means of the UFM minimiser whose class logits
    (without the bias) are ``M`` (``K x K``, e.g. ``solve_convex(...).M``).

    With ``X = M diag(sqrt(n)) = U S V^T`` the balanced factorisation gives ``Hbar = (lW/lH)^(1/4)
    S^(1/2) V^T diag(1/sqrt(n))``, so ``Hbar^T Hbar = sqrt(lW/lH) diag(1/sqrt(n)) (X^T X)^(1/2)
    diag(1/sqrt(n))``: any loss, any bias (docs/theory.md section 10)."""
    n = _sizes(class_sizes)
    X = np.asarray(M, np.float64) * np.sqrt(n)
    _, S, Vt = np.linalg.svd(X)
    root = (Vt.T * S) @ Vt
    return math.sqrt(float(lambda_W) / float(lambda_H)) * root / np.sqrt(np.outer(n, n))


def minority_threshold(n_major, K_major: int, K_minor: int, lambda_W, lambda_H) -> float:
    """Imbalance ratio ``R*`` of minority collapse: ``K_major`` classes of ``n_major`` samples,
    ``K_minor`` of ``n_major / R``; for ``R >= R*``, i.e. ``n_major / R <= lambda_W lambda_H
    N^2``, the minority class means of the UFM's global minimiser (``d >= K``) coincide
    (``K_minor >= 2``; CE or MSE, any bias) and, for MSE without bias, vanish (module docstring,
    docs/theory.md section 10).

    Solves ``x = c (K_major + K_minor x)^2`` for ``x = 1/R`` (smaller root, ``c = lambda_W
    lambda_H n_major``); ``inf`` when no ratio collapses the minority alone (``x* >= 1``: already
    the balanced model collapses, or the root does not exist). Real-valued sizes: the threshold
    in ``R`` is continuous.

    Example:
        >>> round(minority_threshold(100, 2, 2, 1e-2, 1e-2), 4)
        22.9564
    """
    K_major = check_int("K_major", K_major, 1)
    K_minor = check_int("K_minor", K_minor, 1)
    n_major = float(n_major)
    if not (math.isfinite(n_major) and n_major > 0):
        raise SpecError(f"n_major must be a positive number, got {n_major!r}")
    c = check_lambda("lambda_W", lambda_W) * check_lambda("lambda_H", lambda_H) * n_major
    if c == 0:
        return math.inf
    a, b, cc = c * K_minor**2, 2 * c * K_major * K_minor - 1, c * K_major**2
    disc = b * b - 4 * a * cc
    if disc < 0:
        return math.inf
    x = (-b - math.sqrt(disc)) / (2 * a)  # smaller root: collapse for 1/R <= x
    return 1.0 / x if 0 < x < 1 else math.inf
