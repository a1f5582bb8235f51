"""Independent NumPy references for the spectral tests (not collected: no ``test_`` prefix).

The IterNorm / trace-loss / INTL / W-MSE functions restate the official PyTorch code step by step
(winci-ai/INTL ``methods/whitening.py``, ``methods/intl.py``, ``methods/base.py``;
htdt/self-supervised ``methods/whitening.py``, ``methods/w_mse.py``) with its batched-matrix
layout, so they share no code or layout conventions with the package.
"""

from __future__ import annotations

import math

import numpy as np


def batch_with_spectrum(lam, n_obs, rng):
    """``X`` (``n_obs x len(lam)``), columns centred, with ``X^T X / (n_obs - 1) = V diag(lam)
    V^T``.

    Returns ``(X, V)``; needs ``len(lam) <= n_obs - 1``.
    """
    lam = np.asarray(lam, dtype=float)
    k = lam.size
    a = rng.standard_normal((n_obs, k))
    a -= a.mean(axis=0)
    q, _ = np.linalg.qr(a)  # orthonormal columns, each orthogonal to the ones vector
    v, _ = np.linalg.qr(rng.standard_normal((k, k)))
    x = q * np.sqrt(lam * (n_obs - 1)) @ v.T
    return x, v


def official_iternorm(x, axis, iterations):
    """``Whitening2d.forward`` + ``Whitening2dIterNorm.whiten_matrix`` (one group, no gather)."""
    x = np.asarray(x, dtype=float)
    w_dim = x.shape[-1]
    m = x.mean(0 if axis == 1 else 1)
    m = m.reshape(1, -1) if axis == 1 else m.reshape(-1, 1)
    xn = x - m
    if axis == 1:
        eye = np.eye(w_dim)[None]
        xn_g = xn.reshape(-1, 1, w_dim).transpose(1, 0, 2)
    else:
        eye = np.eye(x.shape[0])[None]
        xn_g = xn.reshape(-1, 1, w_dim).transpose(1, 2, 0)
    sigma = np.matmul(xn_g.transpose(0, 2, 1), xn_g) / (xn_g.shape[1] - 1)
    trace = np.trace(sigma, axis1=-2, axis2=-1).reshape(sigma.shape[0], 1, 1)
    sigma_norm = sigma / trace
    projection = eye
    for _ in range(iterations):
        p3 = np.matmul(np.matmul(projection, projection), projection)
        projection = 1.5 * projection - 0.5 * np.matmul(p3, sigma_norm)
    wm = projection / np.sqrt(trace)
    decorrelated = np.matmul(xn_g, wm)
    if axis == 1:
        return decorrelated.transpose(1, 0, 2).reshape(-1, w_dim)
    return decorrelated.transpose(2, 0, 1).reshape(-1, w_dim)


def official_trace_loss(x, axis):
    """``TL(x, axis)`` of winci-ai/INTL ``methods/intl.py``."""
    x = np.asarray(x, dtype=float)
    if axis == 0:
        x = x.T
    n = x.shape[0]
    x = x - x.mean(axis=0)
    d = (x**2).sum(axis=0) / (n - 1)
    return ((d - 1.0) ** 2).sum()


def norm_mse_loss(x0, x1):
    """``norm_mse_loss`` (F.normalize with eps 1e-12, then 2 - 2 mean cosine)."""
    x0 = x0 / np.maximum(np.linalg.norm(x0, axis=1, keepdims=True), 1e-12)
    x1 = x1 / np.maximum(np.linalg.norm(x1, axis=1, keepdims=True), 1e-12)
    return 2.0 - 2.0 * (x0 * x1).sum(axis=-1).mean()


def official_intl(samples, axis, iterations, bs, emb):
    """``INTL.forward`` on already-projected views ``samples`` (list of ``(bs, emb)`` arrays)."""
    trade_off = (math.log2(bs) - 3) * 0.01 if axis == 0 else (math.log2(emb) - 3) * 0.01
    t = [official_iternorm(x, axis, iterations) for x in samples]
    tl = [official_trace_loss(x, axis) for x in t]
    loss = 0.0
    for i in range(1, len(samples)):
        loss += norm_mse_loss(t[i], t[0]) + trade_off * (tl[i] + tl[0])
    return loss / (len(samples) - 1)


def wmse_whitening(x, eps=0.0):
    """htdt/self-supervised ``Whitening2d.forward`` (training mode, no running stats)."""
    xn = x - x.mean(axis=0, keepdims=True)
    f_cov = xn.T @ xn / (xn.shape[0] - 1)
    eye = np.eye(x.shape[1])
    shrinked = (1 - eps) * f_cov + eps * eye
    inv_sqrt = np.linalg.solve(np.linalg.cholesky(shrinked), eye)  # L^{-1}
    return xn @ inv_sqrt.T


def official_wmse(samples, eps=0.0, norm=True):
    """``WMSE.forward`` with ``w_iter = 1`` and ``w_size = bs`` on projected views."""
    z = [wmse_whitening(x, eps) for x in samples]
    loss = 0.0
    for i in range(len(samples) - 1):
        for j in range(i + 1, len(samples)):
            if norm:
                loss += norm_mse_loss(z[i], z[j])
            else:
                loss += ((z[i] - z[j]) ** 2).mean()
    return loss / sum(range(len(samples)))
