"""Orbit invariants of UFM points under ``W -> W Q, H -> Q^T H`` (the ``invariants`` hook)."""

from __future__ import annotations

import numpy as np

from .spec import UFMSpec

__all__ = ["ufm_invariants"]


def ufm_invariants(spec: UFMSpec, params) -> dict:
    """Per point: blocks of ``O(d)``-invariants (numpy float64), each ``(M, size)``: singular
    values of ``W``, ``W W^T``, ``W H``, ``H^T H`` (a fixed random ``N x 16`` sketch when ``N >
    64``)
    and the bias (centred for CE with a free bias). The three Grams are those of ``[W; H^T]``, so
    equal blocks imply one orbit."""
    W = np.asarray(params.W, np.float64)
    H = np.asarray(params.H, np.float64)
    M, N = W.shape[0], H.shape[-1]
    gram_w = W @ np.swapaxes(W, 1, 2)  # W W^T
    Z = W @ H  # W H
    if N <= 64:  # H^T H in full
        gram_h = np.swapaxes(H, 1, 2) @ H
    else:  # a fixed random sketch H^T (H R): equal Grams give equal sketches
        R = np.random.default_rng(0).standard_normal((N, 16))
        gram_h = np.swapaxes(H, 1, 2) @ (H @ R)
    svals = np.linalg.svd(W, compute_uv=False)
    blocks = {
        "svals_W": svals,
        "WWt": gram_w.reshape(M, -1),
        "WH": Z.reshape(M, -1),
        "HtH": gram_h.reshape(M, -1),
    }
    if params.b is not None:
        b = np.asarray(params.b, np.float64)
        if spec.loss == "ce" and spec.bias == "free":  # b -> b + c 1 is a symmetry too
            b = b - b.mean(axis=1, keepdims=True)
        blocks["bias"] = b
    return blocks
