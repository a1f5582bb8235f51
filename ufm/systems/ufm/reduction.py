"""The UFM's class reduction of the block-arrow Hessian (the ``class_reduction`` hook).

At a critical point with ``lambda_H > 0`` each ``h_i`` minimises the strongly convex
``ell(W h + b, y_i) / N + lambda_H ||h||^2 / 2``, so the features of a class coincide
(docs/theory.md section 3.9). With the class means ``h'_k`` and the orthonormal embedding
``h_i = h'_k + v_k / sqrt(n_k)`` (``i`` in class ``k``) the objective restricted to class-symmetric
features is

    g(W, b, V) = sum_k (n_k / N) ell(W u_k + b, k) + lambda_W/2 ||W||^2
                 + lambda_H/2 sum_k n_k ||u_k||^2 + lambda_b/2 ||b||^2,
    u_k = h'_k + v_k / sqrt(n_k)

(``ell`` the per-sample CE ``logsumexp(z) - z_k`` or MSE ``||z - e_k||^2 / 2``), whose Hessian at
``V = 0`` is the reduced matrix: ``P + K d`` rows, ``P = K d (+ K)``. The bounds on the distance
to the structure at the point itself (per sample, ``O(N K d)`` in all; ``Hz_i = diag(p_i) - p_i
p_i^T`` for CE, ``I`` for MSE, ``P_i = Hz_i W / N``, ``B_i = [P_i (x) h_i + g_i (x) I_d ; P_i]``,
``D_i = W^T P_i + lambda_H I``):

* ``||Hz_i - Hz'_i||_F <= ||dp_i|| (1 + ||p_i|| + ||p'_i||)`` (as ``pp^T - p'p'^T = dp p^T +
  p' dp^T``);
* ``||D_i - D'_i||_2 <= ||W||_2^2 ||Hz_i - Hz'_i||_F / N``;
* ``||B_i - B'_i||_F <= ||dP_i||_F (||h_i|| + [bias]) + ||P'_i||_F ||dh_i|| + sqrt(d) ||dg_i||``
  with ``||dP_i||_F <= ||W||_2 ||dHz_i||_F / N`` and ``||P'_i||_F = ||Hz'_k W||_F / N`` computed
  once per class (CE; MSE: ``dP_i = 0``, ``P'_i = W / N``),

all free of cancellation (a difference of nearly equal products is never formed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...hessian.reduction import ReducedParts
from .objective import UFMParams, fit_grad, logits
from .spec import UFMSpec
from .structure import _colsum

__all__ = ["ufm_class_reduction"]


def _class_means(H, sizes):
    """``(d, K)`` means of the class-major column blocks of ``H`` (static sizes)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return jnp.stack(
        [jnp.mean(H[:, offsets[k] : offsets[k + 1]], axis=1) for k in range(len(sizes))], axis=1
    )


def _column_norms(X):
    """Euclidean norms of the columns of ``X (r, N)``."""
    return jnp.sqrt(_colsum(X * X))


def ufm_class_reduction(spec: UFMSpec, params: UFMParams) -> ReducedParts:
    """Reduced Hessian at the class means and the bounds of the module docstring."""
    W, H, b = params.W, params.H, params.b
    K, d = W.shape
    N = spec.N
    dtype = W.dtype
    sizes = np.asarray(spec.class_sizes)
    has_bias = spec.has_bias
    P = K * d + (K if has_bias else 0)
    Hm = _class_means(H, sizes)
    w = jnp.asarray(sizes / N, dtype)
    root = jnp.asarray(np.sqrt(sizes), dtype)
    counts = jnp.asarray(sizes, dtype)
    eye = jnp.eye(K, dtype=dtype)

    def reduced(x):
        Wx = x[: K * d].reshape(K, d)
        U = Hm + (x[P:].reshape(K, d) / root[:, None]).T  # (d, K)
        Z = Wx @ U
        if has_bias:
            Z = Z + x[K * d : P][:, None]
        if spec.loss == "ce":
            per = jax.nn.logsumexp(Z, axis=0) - jnp.diagonal(Z)
        else:
            per = 0.5 * jnp.sum((Z - eye) ** 2, axis=0)
        f = jnp.sum(w * per) + 0.5 * spec.lambda_W * jnp.sum(Wx**2)
        f = f + 0.5 * spec.lambda_H * jnp.sum(counts * jnp.sum(U**2, axis=0))
        if spec.bias == "regularized":
            f = f + 0.5 * spec.lambda_b * jnp.sum(x[K * d : P] ** 2)
        return f

    parts = [W.reshape(-1)] + ([b] if has_bias else []) + [jnp.zeros((K * d,), dtype)]
    matrix = jax.hessian(reduced)(jnp.concatenate(parts))

    # distance to the structure at the point itself (module docstring); the quantities at the
    # means are computed once per class and broadcast to its samples
    def expand(X):  # (r, K) -> (r, N), class-major
        if spec.balanced:
            return jnp.broadcast_to(X[:, :, None], (*X.shape, spec.n)).reshape(X.shape[0], N)
        return jnp.repeat(X, sizes, axis=1, total_repeat_length=N)

    Zk = logits(UFMParams(W, Hm, b))  # (K, K): column k holds the logits of class k
    Z, Zm = logits(params), expand(Zk)
    dG = fit_grad(Z, spec.loss, spec.n) - fit_grad(Zm, spec.loss, spec.n)
    dh = _column_norms(H - expand(Hm))
    w2 = jnp.linalg.norm(W, 2)
    if spec.loss == "ce":
        pk = jax.nn.softmax(Zk, axis=0)  # column k: p'_k
        p, pm = jax.nn.softmax(Z, axis=0), expand(pk)
        np_, npm = _column_norms(p), _column_norms(pm)
        dhz = _column_norms(p - pm) * (1.0 + np_ + npm)
        dP = w2 * dhz / N
        # ||P'_k||_F = ||Hz'_k W||_F / N exactly, once per class (near a one-hot softmax Hz'_k is
        # small, and a norm bound such as ||p'|| + ||p'||^2 would be 100x too large)
        Hzk = jax.vmap(jnp.diag)(pk.T) - pk.T[:, :, None] * pk.T[:, None, :]
        Pk = jnp.sqrt(jnp.sum((Hzk @ W) ** 2, axis=(1, 2))) / N
        Pm = expand(Pk[None])[0]
        diag_bound = w2**2 * jnp.max(dhz) / N
    else:
        dP = jnp.zeros((N,), dtype)
        Pm = jnp.linalg.norm(W) / N
        diag_bound = jnp.zeros((), dtype)
    hn = _column_norms(H) + (1.0 if has_bias else 0.0)
    per_sample = dP * hn + Pm * dh + jnp.sqrt(jnp.asarray(d, dtype)) * _column_norms(dG)
    return ReducedParts(
        matrix=matrix,
        theta_size=P,
        block_dim=d,
        multiplicity=jnp.asarray(sizes - 1, jnp.int32),
        offdiag_bound=jnp.sqrt(jnp.sum(per_sample**2)),
        diag_bound=diag_bound,
    )
