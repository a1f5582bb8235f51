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

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core.devices import single_cpu_device
from ..core.model import init_params
from ..core.model import loss as _loss
from ..core.progress import Progress
from ..core.registry import system_of
from ..core.trees import tree_norm
from ..core.trees import tree_where as _tree_where
from .settings import OptimizerSettings
from .status import STATUS_NAMES, Status

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


@functools.partial(
    jax.jit, static_argnames=("optimizer", "num_records", "record_every", "record", "seed_block")
)
def _run_chunk(
    spec, state, limits, *, optimizer, num_records, record_every, record, seed_block=None
):
    """``num_records * record_every`` steps for every seed; returns the new state and the
    records."""
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
    settings: OptimizerSettings | None = None,
    *,
    optimizer: optax.GradientTransformation | None = None,
    max_steps: int | None = None,
    tol: float | None = None,
    chunk: int | None = None,
    record_every: int | None = None,
    record: Callable | None = None,
    divergence_threshold: float | None = None,
    progress: bool | Callable = False,
    seed_block: int | str | None = "auto",
) -> OptimizeResult:
    """Optimise many seeds at once: ``jit(vmap(scan))`` chunks driven by a host loop.

    Args:
        spec: a model spec (e.g. :class:`ufm.UFMSpec`) registered with :func:`ufm.loss`.
        params0: initial parameters with a leading seed axis (e.g. :func:`ufm.init_batch`). Leaves
            sharded along the seed axis (``NamedSharding``) stay sharded: the chunk runs SPMD.
        settings: :class:`ufm.OptimizerSettings` (default ``OptimizerSettings()``: ``gd(0.5)``,
            10000 steps, ``tol = 1e-8``, chunks of 500 steps, divergence at ``1e10``); the
            keyword arguments below override single fields.
        optimizer: an optax ``GradientTransformation`` instead of ``settings``' name and learning
            rate. Reuse the same object (``gd``/``momentum``/``make_optimizer`` cache them) to
            avoid recompilation.
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
    settings = OptimizerSettings() if settings is None else settings
    if not isinstance(settings, OptimizerSettings):
        raise TypeError(f"settings must be an OptimizerSettings, got {type(settings).__name__}")
    overrides = {
        k: v
        for k, v in dict(
            max_steps=max_steps, tol=tol, chunk=chunk, divergence_threshold=divergence_threshold
        ).items()
        if v is not None
    }
    if overrides:
        settings = settings.replace(**overrides)  # validated (SpecError naming the field)
    optimizer = settings.transform() if optimizer is None else optimizer
    max_steps, tol, chunk = settings.max_steps, settings.tol, settings.chunk
    divergence_threshold = settings.divergence_threshold
    _check_batch(spec, params0)
    record_every = chunk if record_every is None else _positive_int("record_every", record_every)
    if chunk % record_every:
        raise ValueError(f"chunk ({chunk}) must be a multiple of record_every ({record_every})")
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
        status=jnp.where(state.status == Status.RUNNING, jnp.int8(Status.MAX_STEPS), state.status),
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
    if not single_cpu_device(params) or per_seed * num <= AUTO_BLOCK_BYTES:
        return None
    return max(1, min(num, (AUTO_BLOCK_BYTES // 4) // per_seed))


def _counts(status: np.ndarray) -> dict:
    return {STATUS_NAMES[int(s)]: int(np.sum(status == s)) for s in Status}


def _check_batch(spec, params0) -> None:
    """A leading seed axis on every leaf, consistent with one seed of ``spec``'s system."""
    system_of(spec)
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves:
        raise ValueError("params0 has no arrays")
    shapes = jax.eval_shape(lambda: init_params(spec, jax.random.key(0)))
    want = jax.tree_util.tree_leaves(shapes)
    if len(want) != len(leaves) or any(
        x.ndim != w.ndim + 1 or x.shape[1:] != w.shape for x, w in zip(leaves, want)
    ):
        got = [tuple(x.shape) for x in leaves]
        one = [tuple(w.shape) for w in want]
        raise ValueError(
            f"params0 must hold a batch of points with a leading seed axis: leaf "
            f"shapes {got}, expected (S,) + {one} (use ufm.init_batch, or add an "
            "axis with jax.tree_util.tree_map(lambda x: x[None], params))"
        )


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _StepBar:
    """``progress=True``: the shared progress bar (:class:`ufm.core.progress.Progress`) in steps."""

    def __init__(self, total):
        self.bar = Progress(total, "optimize", unit="steps", force=True)

    def __call__(self, done, total, counts):
        self.bar.update(done - self.bar.n)

    def close(self):
        self.bar.close()


def _make_progress(progress, total):
    if progress is True:
        return _StepBar(total)
    if callable(progress):
        return progress
    return None
