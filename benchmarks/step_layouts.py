"""Data layouts for the many-seed UFM gradient step on XLA:CPU (issue 15, item 1): a measurement.

One block of ``B`` seeds of the canonical problem (UFM CE, ``K = d = 10``, ``n = 100``, no bias,
``lambda = 5e-3``, GD ``lr = 0.5``, float32) runs ``--steps`` steps of ``lax.scan`` with the same
per-step status bookkeeping as :func:`ufm.optimize` (finite / converged, frozen seeds), ``lax.map``
over the blocks, on one CPU device (one core). Layouts (``--variants``, ``B:layout[:ablation...]``):

* ``major``: seed axis first, ``W (B, K, d)``, ``H (B, d, N)``; the three products are batched
  ``dot``s (XLA hands them to its YNNPACK library fusion), the softmax reduces over the ``K`` axis.
  This is the arithmetic of ``ufm.kernels.ufm_value_and_grad`` under ``vmap``.
* ``last``: seed axis last inside the block, ``W (K, d, B)``, ``H (d, N, B)`` (one AVX2 vector of
  float32 seeds for ``B = 8``), products as unrolled broadcast multiply-adds over the static inner
  dimension, the softmax max / sum over ``K`` unrolled over slices, every per-seed reduction
  (``N``-sums, norms, ``G H^T``) an elementwise tree of slice additions, ``optimization_barrier`` at
  ``Z``, ``E``, ``G``; transposes only at block entry and exit.
* ``feat``: seed axis first, features transposed, ``H^T (B, N, d)`` (softmax over the minor axis).

Ablations and alternatives (``major`` only): ``noZ``, ``nogW``, ``nogH`` replace that product by
an elementwise stand-in, ``noexp`` drops the exponential (wrong numbers: for the cost breakdown);
``gWrow`` (multiply and row-reduce over the samples), ``gWHG`` (``(H G^T)^T``), ``gWT`` (``H^T``
materialised, then a plain product) are other ways of writing ``G H^T``.

Measured 2026-12-01 on the 2-core AMD EPYC (``/proc/cpuinfo``: family 25 model 1, i.e. Zen 3,
AVX2 and FMA, no AVX-512), jax 0.10.2, default XLA flags, 256 seeds x 100 steps, interleaved, best
of 3-5, load average 2-4 (other engineers: +-20% per figure, ratios within a run hold better).
Seed-steps/s on one core:

* ``8:major`` 1.2e4-1.65e4 (the rate of ``ufm.optimize`` on 1 device); ``16:major`` the same
  within noise. Unrolled products or an unrolled softmax inside ``major`` were 10-50% slower.
  ``gWrow``, ``gWHG``, ``gWT``: 0.87-0.99x of ``major`` (no gain).
* ``8:last`` 7e2-1.2e3: 10-20x slower. The unrolled ``Z = W H`` alone is fast (about 9 us per seed
  against 20 us for the batched ``dot``), but XLA's reductions that keep the minor seed axis
  (``N``-sums, norms, ``G H^T``, even written as slice trees) and its recomputation of fused
  producers across the unrolled ``K`` slices cost far more than that; without ``G H^T`` the
  layout is still 2x slower than ``major``.
* ``8:feat`` 7.6e3-8.2e3: about 2x slower than ``major``.
* Breakdown of ``8:major``: the full step costs 60-80 us per seed; with the three products
  removed 22-30 us remain (softmax, exponential, norms, status, update), ``G H^T`` alone
  12-35 us, the exponential about 7 us. The elementwise part alone caps 2 cores at 7e4-9e4
  seed-steps/s, about 35-45% of the quiet-machine roofline (2.01e5).

Conclusion: with XLA:CPU's generated loops and its YNNPACK ``dot`` fusions the 40%-of-roofline
target (8e4 seed-steps/s on 2 cores) is not reachable by a layout change: even free products
would leave the step at the target. It needs a hand-written fused loop (one pass over the samples
per step: a ``Z`` column, its softmax, the ``G H^T`` accumulation and the ``H`` update in
registers), e.g. a C++ kernel behind ``jax.ffi``. Usage::

    python benchmarks/step_layouts.py [--variants 8:major,8:last,8:feat,8:major:nogW]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

K = D = 10
LAM = 5e-3
LR = 0.5
bar = jax.lax.optimization_barrier


def _usum(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _tree_sum(x, axis, fan=10):
    """Sum over ``axis`` by elementwise additions of ``fan`` slices per level (zero-padded)."""
    while x.shape[axis] > 1:
        f = min(fan, x.shape[axis])
        c = -(-x.shape[axis] // f)
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, c * f - x.shape[axis])
        x = jnp.pad(x, pad)
        x = _usum([jax.lax.slice_in_dim(x, t * c, (t + 1) * c, axis=axis) for t in range(f)])
    return jnp.squeeze(x, axis)


def step_major(W, H, n, opts):
    """Seed-major: ``W (B, K, d)``, ``H (B, d, N)``; returns value, grads, grad norm."""
    N, dt = K * n, W.dtype
    Y = jnp.asarray(np.repeat(np.eye(K), n, axis=1), dt)
    Z = H * W[:, :, :1] if "noZ" in opts else W @ H
    m = jnp.max(Z, axis=1)
    E = Z - m[:, None] if "noexp" in opts else jnp.exp(Z - m[:, None])
    s = jnp.sum(E, axis=1)
    G = (E * (1.0 / s)[:, None] - Y) * jnp.asarray(1.0 / N, dt)
    true = jnp.sum(jnp.diagonal(Z.reshape(-1, K, K, n), axis1=1, axis2=2), axis=(1, 2))
    fit = (jnp.sum(m + jnp.log(s), axis=1) - true) / N
    value = fit + 0.5 * LAM * (jnp.sum(W * W, axis=(1, 2)) + jnp.sum(H * H, axis=(1, 2)))
    if "nogW" in opts:
        gW = W * G[:, :, :D]
    elif "gWrow" in opts:  # multiply and row-reduce over the samples (minor axis)
        gW = jnp.sum(G[:, :, None, :] * H[:, None, :, :], axis=-1)
    elif "gWHG" in opts:  # (H G^T)^T
        gW = jnp.swapaxes(H @ jnp.swapaxes(G, 1, 2), 1, 2)
    elif "gWT" in opts:  # H^T materialised, then a plain NN product
        gW = G @ bar(jnp.swapaxes(H, 1, 2))
    else:
        gW = G @ jnp.swapaxes(H, 1, 2)
    gW = gW + LAM * W
    gH = (G * W[:, :, :1] if "nogH" in opts else jnp.swapaxes(W, 1, 2) @ G) + LAM * H
    gn = jnp.sqrt(jnp.sum(gW * gW, axis=(1, 2)) + jnp.sum(gH * gH, axis=(1, 2)))
    return value, gW, gH, gn


def step_last(W, H, n, opts):
    """Seed-last: ``W (K, d, B)``, ``H (d, N, B)``; unrolled products, slice-tree reductions."""
    N, dt = K * n, W.dtype
    Z = bar(_usum([W[:, j, None, :] * H[None, j] for j in range(D)]))
    m = Z[0]
    for k in range(1, K):
        m = jnp.maximum(m, Z[k])
    E = bar(jnp.exp(Z - m))
    s = _usum([E[k] for k in range(K)])
    true = _usum([Z[k, k * n : (k + 1) * n] for k in range(K)])
    fit = (_tree_sum(m + jnp.log(s), 0) - _tree_sum(true, 0)) / N
    Y = (np.arange(N) // n)[None, :] == np.arange(K)[:, None]
    G = bar((E * (1.0 / s) - jnp.asarray(Y, dt)[:, :, None]) * jnp.asarray(1.0 / N, dt))
    c = N // 10
    P = bar(
        _usum(
            [G[:, None, t * c : (t + 1) * c] * H[None, :, t * c : (t + 1) * c] for t in range(10)]
        )
    )
    gW = _tree_sum(P, 2) + LAM * W
    gH = _usum([W[k, :, None, :] * G[k][None] for k in range(K)]) + LAM * H

    def sq(x):
        return _tree_sum(_tree_sum(x * x, 0), 0)

    value = fit + 0.5 * LAM * (sq(W) + sq(H))
    return value, gW, gH, jnp.sqrt(sq(gW) + sq(gH))


def step_feat(W, Ht, n, opts):
    """Seed-major, features transposed: ``W (B, K, d)``, ``H^T (B, N, d)``."""
    N, dt = K * n, W.dtype
    Yt = jnp.asarray(np.repeat(np.eye(K), n, axis=1).T, dt)
    Z = jnp.einsum("bnj,bkj->bnk", Ht, W)
    m = jnp.max(Z, axis=2, keepdims=True)
    E = jnp.exp(Z - m)
    s = jnp.sum(E, axis=2, keepdims=True)
    G = (E * (1.0 / s) - Yt) * jnp.asarray(1.0 / N, dt)
    fit = (jnp.sum(m[..., 0] + jnp.log(s[..., 0]), axis=1) - jnp.sum(Z * Yt, axis=(1, 2))) / N
    value = fit + 0.5 * LAM * (jnp.sum(W * W, axis=(1, 2)) + jnp.sum(Ht * Ht, axis=(1, 2)))
    gW = jnp.einsum("bnk,bnj->bkj", G, Ht) + LAM * W
    gH = G @ W + LAM * Ht
    gn = jnp.sqrt(jnp.sum(gW * gW, axis=(1, 2)) + jnp.sum(gH * gH, axis=(1, 2)))
    return value, gW, gH, gn


def make(B, layout, opts, n, steps):
    """``jit`` of ``lax.map`` over blocks of ``B`` seeds of ``lax.scan`` of the step."""
    fn = {"major": step_major, "last": step_last, "feat": step_feat}[layout]
    enter = {
        "major": lambda W, H: (W, H),
        "last": lambda W, H: (jnp.moveaxis(W, 0, -1), jnp.moveaxis(H, 0, -1)),
        "feat": lambda W, H: (W, jnp.swapaxes(H, 1, 2)),
    }[layout]
    leave = {
        "major": lambda W, H: (W, H),
        "last": lambda W, H: (jnp.moveaxis(W, -1, 0), jnp.moveaxis(H, -1, 0)),
        "feat": lambda W, H: (W, jnp.swapaxes(H, 1, 2)),
    }[layout]
    mask = (lambda m: m) if layout == "last" else (lambda m: m[:, None, None])

    def block(p):
        W, H = enter(*p)

        def step(c, _):
            W, H, st, loss, gn = c
            v, gW, gH, g = fn(W, H, n, opts)
            finite = jnp.isfinite(v) & jnp.isfinite(g)
            status = jnp.where(~finite, jnp.int8(3), jnp.where(g <= 0.0, jnp.int8(1), jnp.int8(0)))
            active = st == 0
            status = jnp.where(active, status, st)
            mv = mask(status == 0)
            W, H = jnp.where(mv, W - LR * gW, W), jnp.where(mv, H - LR * gH, H)
            keep = active & finite
            return (W, H, status, jnp.where(keep, v, loss), jnp.where(keep, g, gn)), None

        z = jnp.zeros((B,), W.dtype)
        init = (W, H, jnp.zeros((B,), jnp.int8), z, z)
        (W, H, _, loss, _), _ = jax.lax.scan(step, init, None, length=steps)
        return (*leave(W, H), loss)

    def run(W, H):
        S = W.shape[0]
        out = jax.lax.map(
            block, (W.reshape(S // B, B, *W.shape[1:]), H.reshape(S // B, B, *H.shape[1:]))
        )
        return out[0].reshape(W.shape), out[1].reshape(H.shape), out[2].reshape(-1)

    return jax.jit(run)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="8:major,8:last,8:feat")
    ap.add_argument("--seeds", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    dt = jnp.dtype(a.dtype)
    S, N = a.seeds, K * a.n
    W0 = 0.3 * jax.random.normal(jax.random.key(0), (S, K, D), dt)
    H0 = 0.3 * jax.random.normal(jax.random.key(1), (S, D, N), dt)
    fns = {}
    for v in a.variants.split(","):
        B, layout, *opts = v.split(":")
        f = make(int(B), layout, set(opts), a.n, a.steps)
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(W0, H0))
        fns[v] = (f, np.asarray(out[2]))
        print(f"{v}: compile + first run {time.perf_counter() - t0:.1f} s", flush=True)
    best = dict.fromkeys(fns, np.inf)
    for _ in range(a.repeats):  # interleaved: the machine's load hits every variant alike
        for v, (f, _) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(W0, H0))
            best[v] = min(best[v], time.perf_counter() - t0)
    ref = next(iter(fns.values()))[1]
    for v, (_, loss) in fns.items():
        dev = float(np.max(np.abs(loss - ref) / np.abs(ref)))
        print(
            f"{v:28s} {S * a.steps / best[v]:.3g} seed-steps/s (1 core); final-loss diff {dev:.1e}"
        )
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
