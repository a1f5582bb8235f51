"""The convex program behind the UFM, solved to a stated duality gap: global certificates for any
class sizes.

For ``d >= K`` the UFM's global minimum equals the value of the convex program (docs/theory.md
section 7; Zhu et al. 2021, arXiv 2105.02375, for balanced classes; Hong & Ling 2023, arXiv
2309.09725, for imbalanced CE)

    P = min_{M, b} sum_k w_k l(m_k + b, k) + s ||M diag(sqrt(n))||_* + (lb/2) ||b||^2,

with ``M = [m_1 .. m_K]`` the (identical) logits of the samples of each class, ``n_k`` the class
sizes, ``w_k = n_k / N``, ``s = sqrt(lambda_W lambda_H)`` and ``l`` the CE or MSE loss of one
sample. In ``X = M diag(sqrt(n))`` it is a smooth loss plus ``s ||X||_*``, solved here by
accelerated proximal gradient (FISTA with backtracking and restarts) with singular-value
thresholding, the bias minimised exactly at every iterate (Newton; none, free or regularised).

Lower bound (Fenchel duality). With ``u_k = m_k + b`` and multipliers ``lambda_k`` the dual is

    D(Lambda) = - sum_k w_k l*(lambda_k / w_k, k) - beta(Lambda)
    subject to ||Lambda diag(1/sqrt(n))||_2 <= s,

``l*`` the conjugate of the loss (MSE: ``<mu, e_k> + ||mu||^2 / 2``; CE: the negative entropy of
``p = mu + e_k`` on the simplex), ``beta = ||sum_k lambda_k||^2 / (2 lb)`` for a regularised bias,
``0`` with ``sum_k lambda_k = 0`` for a free one, ``0`` without bias. The dual point is built from
the primal gradient (``lambda_k = w_k grad l(u_k, k)``, exact stationarity in ``b``) scaled into the
spectral-norm ball, which keeps it feasible for CE (a convex combination with ``e_k``). Every
``D`` is a certified lower bound of ``P`` and so of the UFM's global minimum; :func:`solve_convex`
stops when ``F - D <= gap_tol``.

Use: a UFM point with objective ``f`` and ``f - D <= tol`` is within ``tol`` of the global minimum,
whatever the class sizes and whether or not a closed form exists. For balanced classes ``P`` equals
the closed forms of docs/theory.md section 2 (the tests check it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...core.validation import SpecError, check_choice, check_lambda

__all__ = ["ConvexSolution", "solve_convex", "convex_lower_bound"]


class ConvexSolution(NamedTuple):
    """Result of :func:`solve_convex` (float64 numpy)."""

    value: float  # primal objective F at the returned point (an upper bound of P)
    lower_bound: float  # dual value D (a certified lower bound of P and of the UFM minimum)
    gap: float  # value - lower_bound >= 0
    M: np.ndarray  # (K, K) class logits without the bias: column k for class k
    b: np.ndarray  # (K,) bias (zeros for bias = "none")
    iterations: int
    converged: bool  # gap <= gap_tol


def _lse(U):
    m = U.max(axis=0)
    return m + np.log(np.exp(U - m).sum(axis=0))


def _softmax(U):
    E = np.exp(U - U.max(axis=0))
    return E / E.sum(axis=0)


def _loss_grad(U, loss, w):
    """``sum_k w_k l(u_k, k)`` and its gradient in ``U`` (columns are classes)."""
    K = U.shape[0]
    eye = np.eye(K)
    if loss == "ce":
        val = float(np.sum(w * (_lse(U) - np.diag(U))))
        G = (_softmax(U) - eye) * w
    else:
        R = U - eye
        val = float(0.5 * np.sum(w * np.sum(R**2, axis=0)))
        G = R * w
    return val, G


def _best_bias(M, loss, bias, lb, w, b0, iters=50):
    """``argmin_b sum_k w_k l(m_k + b, k) + (lb/2)||b||^2`` by Newton (exact for MSE)."""
    K = M.shape[0]
    if bias == "none":
        return np.zeros(K)
    b = np.array(b0, float)
    for _ in range(iters):
        U = M + b[:, None]
        if loss == "ce":
            P = _softmax(U)
            g = (P - np.eye(K)) @ w + lb * b
            Hm = sum(w[k] * (np.diag(P[:, k]) - np.outer(P[:, k], P[:, k])) for k in range(K))
        else:
            g = (U - np.eye(K)) @ w + lb * b
            Hm = np.eye(K) * w.sum()
        Hm = Hm + lb * np.eye(K)
        step = np.linalg.lstsq(Hm, g, rcond=None)[0]  # CE with a free bias: b + c 1 is flat
        b = b - step
        if np.linalg.norm(g) < 1e-15:
            break
    return b


def _svt(X, tau):
    U, S, Vt = np.linalg.svd(X)
    return (U * np.maximum(S - tau, 0.0)) @ Vt


def _primal(X, b, loss, bias, lb, w, sq, s):
    M = X / sq
    val, _ = _loss_grad(M + b[:, None], loss, w)
    return val + s * float(np.linalg.svd(X, compute_uv=False).sum()) + 0.5 * lb * float(b @ b)


def convex_lower_bound(M, b, loss, bias, lb, w, sq, s) -> float:
    """The dual value ``D`` at the dual point built from the primal ``(M, b)`` (module
    docstring): a certified lower bound of ``P``."""
    K = M.shape[0]
    U = M + b[:, None]
    _, G = _loss_grad(U, loss, w)  # lambda_k = w_k grad l(u_k, k): columns of G
    Lam = G  # with b minimised exactly, sum_k lambda_k = grad_b = 0 for a free bias
    spec = np.linalg.norm(Lam / sq, ord=2)
    theta = min(1.0, s / spec) if spec > 0 else 1.0
    Lam = theta * Lam
    mu = Lam / w  # columns mu_k
    eye = np.eye(K)
    if loss == "ce":
        P = mu + eye  # a probability vector per column (convex combination of p and e_k)
        P = np.clip(P, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(P > 0, P * np.log(P), 0.0).sum(axis=0)
        conj = ent
    else:
        conj = np.diag(mu) + 0.5 * np.sum(mu**2, axis=0)
    D = -float(np.sum(w * conj))
    total = Lam.sum(axis=1)
    if bias == "regularized":
        D -= float(total @ total) / (2 * lb)
    elif bias == "free" and np.linalg.norm(total) > 1e-12 * max(1.0, np.abs(Lam).max()):
        return -np.inf  # not dual feasible: no certificate from this point
    return D


def solve_convex(
    K: int,
    class_sizes,
    *,
    loss: str = "ce",
    bias: str = "none",
    lambda_W: float = 5e-3,
    lambda_H: float = 5e-3,
    lambda_b: float = 0.0,
    gap_tol: float = 1e-10,
    max_iter: int = 20000,
) -> ConvexSolution:
    """Solve the convex program ``P`` (module docstring) to a duality gap ``<= gap_tol``.

    Args:
        K: number of classes.
        class_sizes: ``(K,)`` samples per class (any positive numbers).
        loss, bias: as :class:`ufm.UFMSpec`.
        lambda_W, lambda_H, lambda_b: the regularisation strengths (``lambda_b`` only for
            ``bias = "regularized"``).
        gap_tol: target duality gap (absolute).
        max_iter: iteration budget of the accelerated proximal gradient.

    Example:
        >>> import ufm
        >>> sol = ufm.systems.ufm.solve_convex(4, [5] * 4, lambda_W=5e-3, lambda_H=5e-3)
        >>> round(sol.value, 9), sol.gap <= 1e-10     # the CE closed form 0.1836919957
        (0.183691996, True)
    """
    check_choice("loss", loss, ("ce", "mse"))
    check_choice("bias", bias, ("none", "free", "regularized"))
    lW, lH = check_lambda("lambda_W", lambda_W), check_lambda("lambda_H", lambda_H)
    lb = check_lambda("lambda_b", lambda_b) if bias == "regularized" else 0.0
    if bias == "regularized" and not lb > 0:
        raise SpecError("lambda_b must be > 0 for bias='regularized'")
    n = np.asarray(class_sizes, float)
    if n.shape != (K,) or not np.all(n > 0) or not np.all(np.isfinite(n)):
        raise SpecError(f"class_sizes must be {K} positive numbers, got {class_sizes!r}")
    w = n / n.sum()
    sq = np.sqrt(n)
    s = float(np.sqrt(lW * lH))
    # Lipschitz constant of the smooth part in X (per column w_k / n_k * L_l = L_l / N), L_l = 1
    L = 1.0 / n.sum()
    X = np.zeros((K, K))
    Y = X.copy()
    b = _best_bias(X / sq, loss, bias, lb, w, np.zeros(K))
    t = 1.0
    F_old = np.inf
    best = (np.inf, -np.inf, X, b)
    it = 0
    for it in range(1, max_iter + 1):
        bY = _best_bias(Y / sq, loss, bias, lb, w, b)
        _, G = _loss_grad(Y / sq + bY[:, None], loss, w)
        GX = G / sq  # gradient in X
        X_new = _svt(Y - GX / L, s / L)
        b_new = _best_bias(X_new / sq, loss, bias, lb, w, bY)
        F = _primal(X_new, b_new, loss, bias, lb, w, sq, s)
        if F > F_old:  # restart the momentum (adaptive restart keeps FISTA monotone)
            t = 1.0
            Y = X.copy()
            continue
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        Y = X_new + ((t - 1) / t_new) * (X_new - X)
        X, b, t, F_old = X_new, b_new, t_new, F
        if it % 10 == 0 or it == 1:
            D = convex_lower_bound(X / sq, b, loss, bias, lb, w, sq, s)
            if F - D < best[0] - best[1]:
                best = (F, D, X, b)
            if F - D <= gap_tol:
                break
    D = convex_lower_bound(X / sq, b, loss, bias, lb, w, sq, s)
    if F_old - D < best[0] - best[1]:
        best = (F_old, D, X, b)
    F, D, X, b = best
    return ConvexSolution(float(F), float(D), float(F - D), X / sq, b, it, bool(F - D <= gap_tol))
