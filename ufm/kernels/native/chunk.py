"""A chunk of the many-seed UFM optimiser as one native call per device (``ufm_chunk.cc``).

:func:`ufm_chunk` runs ``num_records * record_every`` gradient-descent or heavy-ball steps of the
UFM objective (docs/theory.md section 1) on every seed of its inputs, with the step and status
rules of :func:`ufm.optimize`'s plain path, and returns the new state and the trace rows. Each seed
runs its whole chunk while its parameters stay in cache; one pass over the columns per step gives
the logits, the softmax (or the MSE residual), the value, all gradients and the update; a seed
that has stopped costs nothing. It agrees with the XLA path to rounding (``tests/kernels``).
Measured: ``python benchmarks/perf.py`` (BENCHMARKS.md).

CPU only, float32 and float64, ``K, d <= 64``; :func:`ufm.kernels.native.build.load` compiles the
library on first use.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .build import load

__all__ = ["ufm_chunk", "MAX_SIZE", "supports"]

#: Largest K and d the kernel takes (its per-block work arrays hold 64 vectors).
MAX_SIZE = 64
_TARGETS = {np.dtype(np.float32): "ufm_chunk_f32", np.dtype(np.float64): "ufm_chunk_f64"}


@functools.cache
def _register() -> bool:
    lib = load()
    if lib is None:
        return False
    for symbol, name in (("UfmChunkF32", "ufm_chunk_f32"), ("UfmChunkF64", "ufm_chunk_f64")):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return True


def supports(K: int, d: int, dtype) -> bool:
    """Whether :func:`ufm_chunk` takes these sizes and dtype (and the library is available)."""
    return np.dtype(dtype) in _TARGETS and 1 <= K <= MAX_SIZE and 1 <= d <= MAX_SIZE and _register()


def ufm_chunk(
    W,
    H,
    b,
    trace,
    loss,
    grad_norm,
    status,
    steps,
    lambdas,
    limits,
    *,
    n: int,
    kind: str,
    bias: str,
    learning_rate: float,
    beta: float | None,
    num_records: int,
    record_every: int,
):
    """One chunk on a batch of seeds (leading axis ``S``).

    Args:
        W: ``(S, K, d)``; H: ``(S, d, n K)`` class-major; b: ``(S, K)`` or ``None`` (no bias).
        trace: ``None`` for gradient descent, else the heavy-ball traces ``(tW, tH, tb)`` (``tb``
            ``None`` without a bias).
        loss, grad_norm: ``(S,)`` last finite values; status: ``(S,)`` int8; steps: ``(S,)`` int32.
        lambdas: ``(lambda_W, lambda_H, lambda_b)`` (``lambda_b`` used when ``bias ==
            "regularized"``); limits: ``(tol, divergence_threshold, max_steps)``.
        n: samples per class; kind: ``"ce"`` or ``"mse"``; bias: ``"none"``, ``"free"`` or
            ``"regularized"``; learning_rate, beta: ``optax.sgd(learning_rate, momentum=beta)``
            (``beta=None``: plain gradient descent).
        num_records, record_every: the chunk is ``num_records`` blocks of ``record_every`` steps;
            the value and gradient norm are recorded after each block.

    Returns ``(W, H, b, trace, loss, grad_norm, status, steps, rec_loss, rec_grad_norm)``, the
    records ``(S, num_records)``.
    """
    S, K, d = W.shape
    dt = W.dtype
    if not supports(K, d, dt):
        raise ValueError(f"ufm_chunk does not take K={K}, d={d}, dtype={dt} here")
    has_b = b is not None
    momentum = trace is not None
    empty = jnp.zeros((S, 0), dt)
    bb = b if has_b else empty
    tW, tH, tb = trace if momentum else (empty, empty, None)
    tb = tb if (momentum and has_b) else empty
    tol, threshold, max_steps = limits
    args = (
        W,
        H,
        bb,
        tW,
        tH,
        tb,
        loss,
        grad_norm,
        status,
        steps,
        jnp.stack([jnp.asarray(x, dt) for x in lambdas]),
        jnp.stack([jnp.asarray(tol, dt), jnp.asarray(threshold, dt)]),
        jnp.asarray(max_steps, jnp.int32).reshape(1),
    )
    rec = jax.ShapeDtypeStruct((S, num_records), dt)
    outs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args[:10]] + [rec, rec]
    call = jax.ffi.ffi_call(
        _TARGETS[np.dtype(dt)],
        outs,
        input_output_aliases={i: i for i in range(10)},
    )
    out = call(
        *args,
        n=np.int64(n),
        ce=np.int64(kind == "ce"),
        has_b=np.int64(has_b),
        reg_b=np.int64(bias == "regularized"),
        momentum=np.int64(momentum),
        lr=np.float64(learning_rate),
        beta=np.float64(0.0 if beta is None else beta),
        num_records=np.int64(num_records),
        record_every=np.int64(record_every),
    )
    W, H, bb, tW, tH, tb, loss, grad_norm, status, steps, rec_loss, rec_gnorm = out
    b = bb if has_b else None
    trace = (tW, tH, tb if has_b else None) if momentum else None
    return W, H, b, trace, loss, grad_norm, status, steps, rec_loss, rec_gnorm
