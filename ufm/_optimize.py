"""Many-seed first-order optimiser: ``jit(vmap(lax.scan))`` chunks driven by a host loop.

The seed axis is a leading batch axis of the parameter pytree. Every chunk is one compiled call of
fixed length (``lax.scan`` over ``chunk`` steps, vmapped over seeds); between chunks the host checks
per-seed status flags, reports progress, and stops early once every seed has converged or failed.
Per-seed failures (NaN, divergence) are flagged and frozen at the last finite point; the other
seeds continue. Works for every model whose spec registers :func:`ufm.loss`.

Recommended settings for the UFM (d = K, lambdas ~ 1e-3 to 1e-2): ``gd(0.5)`` to ``gd(1.0)`` or
``momentum(0.5, 0.9)``, a few thousand steps to reach the basin, then :func:`ufm.polish` (Newton)
for the last digits. The spec passes through ``jit`` as a pytree: new lambdas with the same shapes
reuse the compiled chunk.
"""

from __future__ import annotations

import enum
import functools
import math
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._objective import loss as _loss


class Status(enum.IntEnum):
    """Per-seed status codes (stored as ``int8``)."""

    MAX_STEPS = 0  #: still running, or the step budget was exhausted before meeting the tolerance
    RUNNING = 0  #: alias of ``MAX_STEPS`` (the name while a run is in progress)
    CONVERGED = 1  #: gradient norm <= tol
    DIVERGED = 2  #: loss or gradient norm above ``divergence_threshold`` (frozen at last finite point)
    NAN = 3  #: non-finite loss or gradient (frozen at last finite point)


STATUS_NAMES = {int(s): s.name.lower() for s in Status}


# -- optimisers ------------------------------------------------------------------------------
# Cached so that equal settings give the *same* transformation object: it is a static argument of
# the compiled chunk, and a new object would recompile.


@functools.lru_cache(maxsize=None)
def gd(learning_rate: float) -> optax.GradientTransformation:
    """Plain full-batch gradient descent, ``x <- x - lr grad f`` (``optax.sgd``)."""
    return optax.sgd(float(learning_rate))


@functools.lru_cache(maxsize=None)
def momentum(learning_rate: float, beta: float = 0.9, nesterov: bool = False):
    """Heavy-ball (or Nesterov) momentum gradient descent (``optax.sgd(lr, momentum=beta)``)."""
    return optax.sgd(float(learning_rate), momentum=float(beta), nesterov=bool(nesterov))


_NAMED = {
    "gd": lambda lr, **kw: gd(lr),
    "sgd": lambda lr, **kw: gd(lr),
    "momentum": lambda lr, beta=0.9, **kw: momentum(lr, beta),
    "nesterov": lambda lr, beta=0.9, **kw: momentum(lr, beta, True),
}


def make_optimizer(name: str, learning_rate: float, **kwargs) -> optax.GradientTransformation:
    """An optimiser by name: ``gd``, ``momentum``, ``nesterov`` or any optax constructor (``adam``...).

    Example:
        >>> make_optimizer("momentum", 0.5) is make_optimizer("momentum", 0.5)
        True
    """
    if not isinstance(learning_rate, (int, float)) or not learning_rate > 0 or not math.isfinite(
        learning_rate
    ):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    key = name.strip().lower()
    if key in _NAMED:
        return _NAMED[key](float(learning_rate), **kwargs)
    return _optax_by_name(key, float(learning_rate), tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=None)
def _optax_by_name(name, learning_rate, kwargs):
    ctor = getattr(optax, name, None)
    if ctor is None or not callable(ctor):
        raise ValueError(
            f"optimizer must be gd, momentum, nesterov or an optax optimiser name; got {name!r}"
        )
    return ctor(learning_rate, **dict(kwargs))


# -- state and results -----------------------------------------------------------------------


class _State(NamedTuple):
    params: Any
    opt_state: Any
    loss: jax.Array
    grad_norm: jax.Array
    status: jax.Array
    steps: jax.Array


class OptimizeResult(NamedTuple):
    """Output of :func:`optimize`; every array has a leading seed axis ``S``.

    Attributes:
        params: final parameters (last finite point for failed seeds).
        loss, grad_norm: objective value and gradient norm at ``params``.
        status: ``int8`` :class:`Status` codes.
        steps: optimiser steps taken by each seed.
        trace: ``dict`` of ``(R, S)`` numpy arrays: ``loss``, ``grad_norm`` and the ``record`` keys,
            evaluated at step 0 and every ``record_every`` steps.
        trace_steps: ``(R,)`` step index of each trace row.
        wall_time: seconds spent in the host loop (compilation included).
    """

    params: Any
    loss: jax.Array
    grad_norm: jax.Array
    status: jax.Array
    steps: jax.Array
    trace: dict
    trace_steps: np.ndarray
    wall_time: float

    @property
    def converged(self) -> np.ndarray:
        return np.asarray(self.status) == Status.CONVERGED

    def status_counts(self) -> dict:
        st = np.asarray(self.status)
        return {STATUS_NAMES[int(s)]: int(np.sum(st == s)) for s in Status}


def tree_norm(tree) -> jax.Array:
    """Euclidean norm of all leaves of a pytree together."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves))


def _tree_where(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _value_and_grad_norm(spec, params):
    value, grads = jax.value_and_grad(_loss, argnums=1)(spec, params)
    return value, grads, tree_norm(grads)


def _records(spec, params, value, gnorm, record):
    out = {"loss": value, "grad_norm": gnorm}
    if record is not None:
        out.update(record(spec, params))
    return out


@functools.partial(jax.jit, static_argnames=("optimizer", "record"))
def _init_state(spec, params, optimizer, record):
    """Initial state and the step-0 trace row of every seed."""

    def one(p):
        value, _, gnorm = _value_and_grad_norm(spec, p)
        with jax.numpy_dtype_promotion("standard"):
            opt_state = optimizer.init(p)
        state = _State(
            p,
            opt_state,
            value,
            gnorm,
            jnp.asarray(Status.RUNNING, jnp.int8),
            jnp.asarray(0, jnp.int32),
        )
        return state, _records(spec, p, value, gnorm, record)

    return jax.vmap(one)(params)


@functools.partial(jax.jit, static_argnames=("optimizer", "num_records", "record_every", "record",
                                             "seed_block"))
def _run_chunk(spec, state, limits, *, optimizer, num_records, record_every, record, seed_block=None):
    """``num_records * record_every`` steps for every seed; returns the new state and the records."""
    tol, threshold, max_steps = limits

    def one_seed(st: _State):
        def step(st: _State, _):
            value, grads, gnorm = _value_and_grad_norm(spec, st.params)
            active = st.status == Status.RUNNING
            finite = jnp.isfinite(value) & jnp.isfinite(gnorm)
            status = jnp.where(
                ~finite,
                jnp.int8(Status.NAN),
                jnp.where(
                    (jnp.abs(value) > threshold) | (gnorm > threshold),
                    jnp.int8(Status.DIVERGED),
                    jnp.where(gnorm <= tol, jnp.int8(Status.CONVERGED), jnp.int8(Status.RUNNING)),
                ),
            )
            status = jnp.where(active, status, st.status)
            move = (status == Status.RUNNING) & (st.steps < max_steps)
            with jax.numpy_dtype_promotion("standard"):  # optax internals mix int counts and floats
                updates, opt_state = optimizer.update(grads, st.opt_state, st.params)
                new_params = optax.apply_updates(st.params, updates)
            return (
                _State(
                    _tree_where(move, new_params, st.params),
                    _tree_where(move, opt_state, st.opt_state),
                    jnp.where(active & finite, value, st.loss),
                    jnp.where(active & finite, gnorm, st.grad_norm),
                    status,
                    st.steps + move.astype(jnp.int32),
                ),
                None,
            )

        def block(st: _State, _):
            st, _ = jax.lax.scan(step, st, None, length=record_every)
            value, _, gnorm = _value_and_grad_norm(spec, st.params)
            return st, _records(spec, st.params, value, gnorm, record)

        return jax.lax.scan(block, st, None, length=num_records)

    if seed_block is None:
        return jax.vmap(one_seed)(state)
    # blocks of seeds run the whole chunk one after the other: their parameters stay in cache
    return jax.lax.map(one_seed, state, batch_size=seed_block)


def optimize(
    spec,
    params0,
    *,
    optimizer: optax.GradientTransformation | None = None,
    max_steps: int = 10_000,
    tol: float = 1e-8,
    chunk: int = 500,
    record_every: Optional[int] = None,
    record: Optional[Callable] = None,
    divergence_threshold: float = 1e10,
    progress: bool | Callable = False,
    seed_block: int | str | None = "auto",
) -> OptimizeResult:
    """Optimise many seeds at once: ``jit(vmap(scan))`` chunks driven by a host loop.

    Args:
        spec: a model spec (e.g. :class:`ufm.UFMSpec`) registered with :func:`ufm.loss`.
        params0: initial parameters with a leading seed axis (e.g. :func:`ufm.init_batch`). Leaves
            sharded along the seed axis (``NamedSharding``) stay sharded: the chunk runs SPMD.
        optimizer: an optax ``GradientTransformation``; default ``gd(0.5)``. Reuse the same object
            (``gd``/``momentum``/``make_optimizer`` cache them) to avoid recompilation.
        max_steps: step budget per seed.
        tol: a seed converges when its gradient norm is ``<= tol`` (then it stops moving).
        chunk: steps per compiled call (a multiple of ``record_every``); the host checks status,
            reports progress and may stop early between chunks.
        record_every: steps between trace rows (default ``chunk``).
        record: optional ``fn(spec, params) -> dict`` of scalars recorded in the trace (e.g.
            :func:`ufm.nc_metrics`); it must be a stable function object (it is a static argument).
        divergence_threshold: loss or gradient norm above this flags a seed ``DIVERGED``.
        progress: ``True`` for a progress bar on stderr, or a callable
            ``fn(steps_done, max_steps, status_counts)`` called after every chunk.
        seed_block: run the chunk over blocks of this many seeds one after the other
            (``lax.map`` with ``batch_size``) instead of all seeds in lock-step (``vmap``): each
            block's parameters stay in cache for the whole chunk (3x faster for 1000 seeds of
            K = d = 10, n = 100 on a 2-core CPU; BENCHMARKS.md). ``"auto"`` (default) does this on
            a single CPU device when the batch exceeds ``AUTO_BLOCK_BYTES``; ``None`` never does
            (plain ``vmap``, e.g. for sharded or GPU runs). Results are identical either way.

    Returns:
        :class:`OptimizeResult`.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse", bias="free")
        >>> p0 = ufm.init_batch(spec, jax.random.key(0), 4)
        >>> res = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=3000, tol=1e-7)
        >>> res.status_counts()["converged"]
        4
    """
    optimizer = gd(0.5) if optimizer is None else optimizer
    max_steps = _positive_int("max_steps", max_steps)
    chunk = _positive_int("chunk", chunk)
    record_every = chunk if record_every is None else _positive_int("record_every", record_every)
    if chunk % record_every:
        raise ValueError(f"chunk ({chunk}) must be a multiple of record_every ({record_every})")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    chunk = min(chunk, -(-max_steps // record_every) * record_every)
    num_records = chunk // record_every

    start = time.perf_counter()
    dtype = jax.tree_util.tree_leaves(params0)[0].dtype
    block = _seed_block(params0, seed_block)
    state, rec0 = _init_state(spec, params0, optimizer, record)
    limits = (
        jnp.asarray(tol, dtype),
        jnp.asarray(divergence_threshold, dtype),
        jnp.asarray(max_steps, jnp.int32),
    )
    trace = [jax.tree_util.tree_map(lambda x: x[None], rec0)]
    trace_steps = [np.zeros(1, np.int64)]
    bar = _make_progress(progress, max_steps)
    done = 0
    while done < max_steps:
        state, recs = _run_chunk(
            spec,
            state,
            limits,
            optimizer=optimizer,
            num_records=num_records,
            record_every=record_every,
            record=record,
            seed_block=block,
        )
        trace.append(jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), recs))
        trace_steps.append(done + record_every * np.arange(1, num_records + 1))
        done += chunk
        status = np.asarray(state.status)
        if bar is not None:
            bar(min(done, max_steps), max_steps, _counts(status))
        if not np.any(status == Status.RUNNING):
            break
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    trace = {k: np.concatenate([np.asarray(t[k]) for t in trace], axis=0) for k in trace[0]}
    # the last trace row is evaluated at the final parameters (no extra compiled function)
    steps = np.minimum(np.concatenate(trace_steps), max_steps)
    keep = np.concatenate([[True], np.diff(steps) > 0])  # drop rows past the step budget
    return OptimizeResult(
        params=state.params,
        loss=trace["loss"][-1],
        grad_norm=trace["grad_norm"][-1],
        status=state.status,
        steps=state.steps,
        trace={k: v[keep] for k, v in trace.items()},
        trace_steps=steps[keep],
        wall_time=time.perf_counter() - start,
    )


#: ``seed_block="auto"`` blocks the seeds when the parameters of all seeds exceed this many bytes;
#: a block then holds about ``AUTO_BLOCK_BYTES / 4`` bytes of parameters (cache-sized).
AUTO_BLOCK_BYTES = 8 << 20


def _seed_block(params, seed_block):
    if seed_block is None:
        return None
    leaves = jax.tree_util.tree_leaves(params)
    num = leaves[0].shape[0]
    if seed_block != "auto":
        return min(_positive_int("seed_block", seed_block), num)
    per_seed = sum(x.size // num * x.dtype.itemsize for x in leaves)
    single_cpu = all(
        getattr(x, "sharding", None) is None
        or (len(x.sharding.device_set) == 1 and next(iter(x.sharding.device_set)).platform == "cpu")
        for x in leaves
    )
    if not single_cpu or per_seed * num <= AUTO_BLOCK_BYTES:
        return None
    return max(1, min(num, (AUTO_BLOCK_BYTES // 4) // per_seed))


def _counts(status: np.ndarray) -> dict:
    return {STATUS_NAMES[int(s)]: int(np.sum(status == s)) for s in Status}


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _TextProgress:
    """Minimal stderr progress line (steps, rate, ETA, status counts)."""

    def __init__(self, total):
        self.total, self.start = total, time.perf_counter()

    def __call__(self, done, total, counts):
        import sys

        el = time.perf_counter() - self.start
        rate = done / el if el > 0 else float("nan")
        eta = (total - done) / rate if rate > 0 else float("nan")
        c = " ".join(f"{k}={v}" for k, v in counts.items() if v)
        sys.stderr.write(f"\r  step {done}/{total}  {rate:,.0f} steps/s  eta {eta:5.1f}s  {c}   ")
        sys.stderr.flush()

    def close(self):
        import sys

        sys.stderr.write("\n")


def _make_progress(progress, total):
    if progress is True:
        return _TextProgress(total)
    if callable(progress):
        return progress
    return None
