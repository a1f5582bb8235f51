"""The UFM objective and its gradient in one pass, for the many-seed optimiser's inner loop.

``f(W, H, b) = g(W H + b 1^T) + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 (+ lambda_b/2 ||b||^2)``
with ``g`` the mean cross-entropy over class-major columns (``N = n K``) or ``1/(2N) ||Z - Y||^2``
(docs/theory.md section 1). The gradient is the closed form ``G = grad_Z g`` (softmax minus
one-hot over ``N``, or the residual over ``N``), ``grad_W = G H^T + lambda_W W``,
``grad_H = W^T G + lambda_H H``, ``grad_b = G 1 + lambda_b b``.

Why a kernel: ``jax.value_and_grad`` of the textbook objective picks the true-class logits with a
``(K, K, n)`` multiply-and-sum (a full pass over ``Z`` that the gradient does not need) and the
softmax is recomputed around ``logsumexp``; per step of the optimiser these extra passes over the
``(seeds, K, N)`` logits cost more than the products (measured 1.4x at ``K = d = 10``, ``n = 100``,
float32). Here the true-class logits are the diagonal blocks of ``Z`` (a gather of ``N`` values),
the softmax shares its max, exponentials and column sums with the log-sum-exp, and the small
products go through :func:`ufm.kernels.small_matmul`.

The arrays are those of one point (vmap over seeds); sizes and kinds are static Python values,
the lambdas may be traced. :func:`ufm_value_and_grad_reference` is ``jax.value_and_grad`` of the
textbook formula; both agree to rounding (``tests/kernels``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .contract import small_matmul

__all__ = ["ufm_value_and_grad", "ufm_value_and_grad_reference", "LOSS_KINDS"]

LOSS_KINDS = ("ce", "mse")


def _check(W, H, b, n, loss):
    if loss not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}; got {loss!r}")
    K, d = W.shape
    if H.ndim != 2 or H.shape[0] != d or H.shape[1] != K * n:
        raise ValueError(f"H must have shape (d, n K) = ({d}, {K * n}), got {H.shape}")
    if b is not None and b.shape != (K,):
        raise ValueError(f"b must have shape (K,) = ({K},), got {b.shape}")


def ufm_value_and_grad(W, H, b=None, *, n: int, loss: str, lambda_W, lambda_H, lambda_b=None):
    """``(f, (grad_W, grad_H, grad_b))`` of the UFM objective at one point (module docstring).

    Args:
        W: ``(K, d)``; H: ``(d, n K)`` class-major features; b: ``(K,)`` or ``None`` (no bias).
        n: samples per class (static); loss: ``"ce"`` or ``"mse"`` (static).
        lambda_W, lambda_H: regularisation strengths; lambda_b: ``None`` for a free bias (or no
            bias), else the bias regularisation.

    Returns ``grad_b = None`` when ``b`` is ``None``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> kw, kh = jax.random.split(jax.random.key(0))
        >>> W = jax.random.normal(kw, (3, 4)); H = jax.random.normal(kh, (4, 6))
        >>> f, g = ufm_value_and_grad(W, H, n=2, loss="ce", lambda_W=1e-2, lambda_H=1e-2)
        >>> f0, g0 = ufm_value_and_grad_reference(W, H, n=2, loss="ce", lambda_W=1e-2,
        ...                                       lambda_H=1e-2)
        >>> bool(jnp.allclose(f, f0, rtol=1e-12)), bool(jnp.allclose(g[1], g0[1], atol=1e-14))
        (True, True)
    """
    _check(W, H, b, n, loss)
    K, d = W.shape
    N = K * n
    dt = W.dtype
    c = lambda v: jnp.asarray(v, dt)  # noqa: E731
    Z = small_matmul(W, H)
    if b is not None:
        Z = Z + b[:, None]
    eye = jnp.eye(K, dtype=dt)[:, :, None]
    if loss == "ce":
        m = jnp.max(Z, axis=0)
        E = jnp.exp(Z - m)
        s = jnp.sum(E, axis=0)
        true = jnp.diagonal(Z.reshape(K, K, n), axis1=0, axis2=1)  # (n, K): z_{y_i, i}
        fit = (jnp.sum(m + jnp.log(s)) - jnp.sum(true)) / N
        G = ((E * (1.0 / s)).reshape(K, K, n) - eye).reshape(K, N) * c(1.0 / N)
    else:
        R = (Z.reshape(K, K, n) - eye).reshape(K, N)
        fit = 0.5 * jnp.sum(R * R) / N
        G = R * c(1.0 / N)
    lW, lH = c(lambda_W), c(lambda_H)
    value = fit + 0.5 * lW * jnp.sum(W * W) + 0.5 * lH * jnp.sum(H * H)
    gW = jnp.matmul(G, H.T) + lW * W
    gH = small_matmul(W.T, G) + lH * H
    gb = None
    if b is not None:
        gb = jnp.sum(G, axis=1)
        if lambda_b is not None:
            lb = c(lambda_b)
            value = value + 0.5 * lb * jnp.sum(b * b)
            gb = gb + lb * b
    return value, (gW, gH, gb)


def _reference_objective(W, H, b, n, loss, lambda_W, lambda_H, lambda_b):
    K = W.shape[0]
    N = K * n
    Z = W @ H if b is None else W @ H + b[:, None]
    Y = jnp.asarray(np.repeat(np.eye(K), n, axis=1), W.dtype)
    if loss == "ce":
        fit = jnp.mean(jax.nn.logsumexp(Z, axis=0) - jnp.sum(Y * Z, axis=0))
    else:
        fit = 0.5 * jnp.sum((Z - Y) ** 2) / N
    f = fit + 0.5 * lambda_W * jnp.sum(W**2) + 0.5 * lambda_H * jnp.sum(H**2)
    if b is not None and lambda_b is not None:
        f = f + 0.5 * lambda_b * jnp.sum(b**2)
    return f


def ufm_value_and_grad_reference(
    W, H, b=None, *, n: int, loss: str, lambda_W, lambda_H, lambda_b=None
):
    """``jax.value_and_grad`` of the textbook UFM objective (reference of
    :func:`ufm_value_and_grad`; same arguments and returns)."""
    _check(W, H, b, n, loss)
    args = (W, H) if b is None else (W, H, b)

    def f(*a):
        return _reference_objective(
            a[0], a[1], a[2] if b is not None else None, n, loss, lambda_W, lambda_H, lambda_b
        )

    value, grads = jax.value_and_grad(f, argnums=tuple(range(len(args))))(*args)
    return value, (grads[0], grads[1], grads[2] if b is not None else None)
