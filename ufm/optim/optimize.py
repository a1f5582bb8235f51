"""Many-seed first-order optimiser: ``jit(vmap(lax.scan))`` chunks driven by a host loop.

The seed axis is a leading batch axis of the parameter pytree. Every chunk is one compiled call of
fixed length (``lax.scan`` over ``chunk`` steps, vmapped over seeds); between chunks the host checks
per-seed status flags, reports progress, and stops early once every seed has converged or failed.
Per-seed failures (NaN, divergence) are flagged and frozen at the last finite point; the other
seeds continue. Works for every model whose spec registers :func:`ufm.loss`.

Fast paths (results agree with the plain path to rounding; ``kernel="plain"`` switches them off):

* on CPU, for a system that registers a chunk kernel (the UFM with :func:`ufm.gd` or
  :func:`ufm.momentum`, no ``record``), each chunk is one native call per device that runs every
  step of every seed with the same step and status rules (:func:`ufm.kernels.native.ufm_chunk`,
  C++ through XLA's FFI; docs/kernels.md): about 2x the XLA path on the canonical problem and the
  steps of stopped seeds skipped (``benchmarks/perf.py``); ``kernel="xla"`` keeps the XLA path;
* the objective and gradient come from :func:`ufm.kernels.value_and_grad`: a fused kernel where the
  system registers one (the UFM: one pass for value, gradient and norm, no one-hot products), else
  ``jax.value_and_grad`` of :func:`ufm.loss`;
* on CPU, seeds run in cache-sized blocks (``lax.map`` around ``vmap(scan)``, ``seed_block``);
* seeds are split over several devices with ``shard_map`` (``devices``): the seeds of an input
  sharded along the seed axis stay where they are; a single-device input is spread over the local
  devices of its platform (on CPU at most one per core). JAX has one CPU device unless told
  otherwise: set ``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before JAX starts
  (or ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` in the environment) to use every
  core (2 devices on 2 cores: about 1.6x on an idle machine, issue 15);
* the chunk's state buffers are donated (no copy per chunk), and the host reads only the status
  flags between chunks.

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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..core.jitting import adaptive_jit
from ..core.model import init_params
from ..core.progress import Progress
from ..core.registry import system_of
from ..core.trees import tree_where as _tree_where
from ..kernels import chunk_kernel
from ..kernels import value_and_grad as _kernel_value_and_grad
from ..kernels.native import unavailable_reason
from .seed_layout import SEED_AXIS, devices_of, positive_int, seed_block_size, seed_mesh, spread
from .settings import OptimizerSettings
from .status import STATUS_NAMES, Status
from .transforms import update_rule

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


KERNELS = ("auto", "native", "xla", "plain")


def _norm(tree):
    """Euclidean norm of real leaves (``sum(x * x)``: the same numbers as ``tree_norm``)."""
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(tree)))


def _value_and_grad_norm(spec, params, plain=False):
    value, grads = _kernel_value_and_grad(spec, params, plain=plain)
    return value, grads, _norm(grads)


def _records(spec, params, value, gnorm, record):
    out = {"loss": value, "grad_norm": gnorm}
    if record is not None:
        out.update(record(spec, params))
    return out


@adaptive_jit(static_argnames=("optimizer", "record", "plain", "mesh"), setup=True)
def _init_state(spec, params, optimizer, record, plain=False, mesh=None):
    """Initial state and the step-0 trace row of every seed. With ``mesh`` every leaf of the
    state is laid out along the seed axis as :func:`_run_chunk` returns it (XLA would replicate
    the constant ones, the optimiser's zero buffers and the status, and the first chunk would
    compile a second time for that layout). Once per call: ``setup=True``."""

    def one(p):
        value, _, gnorm = _value_and_grad_norm(spec, p, plain)
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

    out = jax.vmap(one)(params)
    if mesh is not None:
        out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P(SEED_AXIS)))
    return out


@functools.partial(
    jax.jit,
    static_argnames=(
        "optimizer",
        "num_records",
        "record_every",
        "record",
        "seed_block",
        "mesh",
        "plain",
        "native",
    ),
    donate_argnames=("state",),
)
def _run_chunk(
    spec,
    state,
    limits,
    *,
    optimizer,
    num_records,
    record_every,
    record,
    seed_block=None,
    mesh=None,
    plain=False,
    native=None,
):
    """``num_records * record_every`` steps for every seed; returns the new state and the
    records. ``mesh``: run ``shard_map`` over its seed axis (each device its own seeds).
    ``native``: the update rule of a registered chunk kernel (:func:`ufm.kernels.chunk_kernel`)
    that runs the whole chunk instead of the ``vmap(scan)``."""

    def local(spec, state, limits):
        if native is not None:
            return _native_chunk(spec, state, limits, native, num_records, record_every)
        return _chunk_local(
            spec, state, limits, optimizer, num_records, record_every, record, seed_block, plain
        )

    if mesh is None:
        return local(spec, state, limits)
    return jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(SEED_AXIS), P()), out_specs=P(SEED_AXIS)
    )(spec, state, limits)


def _native_chunk(spec, state, limits, rule, num_records, record_every):
    """The chunk by the spec's registered chunk kernel (the same step and status rules)."""
    run = chunk_kernel(spec, rule, jax.tree_util.tree_leaves(state.params)[0].dtype)
    momentum = rule[0] == "momentum"
    trace = state.opt_state[0].trace if momentum else None  # optax.sgd: (trace, scale) states
    params, trace, loss, gnorm, status, steps, records = run(
        spec,
        state.params,
        trace,
        state.loss,
        state.grad_norm,
        state.status,
        state.steps,
        limits,
        num_records=num_records,
        record_every=record_every,
    )
    opt_state = state.opt_state
    if momentum:
        opt_state = (opt_state[0]._replace(trace=trace),) + tuple(opt_state[1:])
    return _State(params, opt_state, loss, gnorm, status, steps), records


def _chunk_local(
    spec, state, limits, optimizer, num_records, record_every, record, seed_block, plain
):
    """The chunk on the seeds of one device (``vmap``, or ``lax.map`` over seed blocks)."""
    tol, threshold, max_steps = limits

    def one_seed(st: _State):
        def step(st: _State, _):
            value, grads, gnorm = _value_and_grad_norm(spec, st.params, plain)
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
            value, _, gnorm = _value_and_grad_norm(spec, st.params, plain)
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
    devices: int | str | None = "auto",
    kernel: str = "auto",
) -> OptimizeResult:
    """Optimise many seeds at once: ``jit(vmap(scan))`` chunks driven by a host loop.

    Args:
        spec: a model spec (e.g. :class:`ufm.UFMSpec`) registered with :func:`ufm.loss`.
        params0: initial parameters with a leading seed axis (e.g. :func:`ufm.init_batch`). Leaves
            sharded along the seed axis (``NamedSharding`` over a 1-D mesh) stay sharded: every
            device steps its own seeds (``shard_map``).
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
            K = d = 10, n = 100 on a 2-core CPU; benchmarks/perf.py). ``"auto"`` (default) does
            this on CPU devices with blocks of about ``AUTO_BLOCK_BYTES`` of parameters
            (``AUTO_BLOCK_MIN`` to ``AUTO_BLOCK_MAX`` seeds, up to ``AUTO_BLOCK_MAX_TINY`` for
            seeds under ``TINY_SEED_BYTES``; constants in :mod:`ufm.optim.seed_layout`), and
            runs one ``vmap`` when a device's seeds hold at most ``AUTO_VMAP_BYTES``; ``None``
            never does (plain ``vmap``, e.g. for GPU runs). Results are identical either way
            (tests/optim).
        devices: for an input on one device, how many devices of its platform share the seeds
            (``shard_map``; padded to a multiple by repeating the last seed, dropped afterwards):
            ``"auto"`` (default) all local devices (on CPU at most ``os.cpu_count()``), never
            fewer than ``MIN_SEEDS_PER_DEVICE`` seeds per device; an int, at most that many;
            ``None`` or 1 keeps one device. The results come back on the input's device.
            Inputs already sharded along the seed axis keep their devices.
        kernel: ``"auto"`` (default) runs each chunk as one native call where the system
            registers a chunk kernel that applies (:func:`ufm.kernels.chunk_kernel`; the UFM on
            CPU with :func:`ufm.gd` or :func:`ufm.momentum` and no ``record``:
            :func:`ufm.kernels.native.ufm_chunk`), else the XLA path with the system's fused
            value-and-gradient kernel (:func:`ufm.kernels.value_and_grad`). ``"native"``
            requires the chunk kernel (``ValueError`` saying why it does not apply), ``"xla"``
            never takes it, ``"plain"`` is the XLA path with ``jax.value_and_grad(ufm.loss)``.
            All agree to rounding; the native kernel also skips the steps of stopped seeds.

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
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    plain = kernel == "plain"
    _check_batch(spec, params0)
    native = _native_rule(spec, params0, optimizer, record, kernel)
    record_every = chunk if record_every is None else positive_int("record_every", record_every)
    if chunk % record_every:
        raise ValueError(f"chunk ({chunk}) must be a multiple of record_every ({record_every})")
    chunk = min(chunk, -(-max_steps // record_every) * record_every)
    num_records = chunk // record_every

    start = time.perf_counter()
    leaves0 = jax.tree_util.tree_leaves(params0)
    dtype = leaves0[0].dtype
    num = leaves0[0].shape[0]
    mesh, home = seed_mesh(params0, devices)
    if home is not None:  # spread a single-device batch over the mesh (padded)
        params0 = spread(params0, mesh)
    block = seed_block_size(params0, seed_block, mesh)
    state, rec0 = _init_state(spec, params0, optimizer, record, plain, mesh)
    # host-side glue (NumPy) wherever it does: every eager jnp op on a new shape is a small XLA
    # program to compile (about 0.05 s each on CPU)
    limits = (
        np.asarray(tol, dtype),
        np.asarray(divergence_threshold, dtype),
        np.asarray(max_steps, np.int32),
    )
    trace = [jax.tree_util.tree_map(lambda x: np.asarray(x)[None], rec0)]
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
            mesh=mesh,
            plain=plain,
            native=native,
        )
        trace.append(jax.tree_util.tree_map(lambda x: np.swapaxes(np.asarray(x), 0, 1), recs))
        trace_steps.append(done + record_every * np.arange(1, num_records + 1))
        done += chunk
        status = np.asarray(state.status)
        if bar is not None:
            bar(min(done, max_steps), max_steps, _counts(status[:num]))
        if not np.any(status == Status.RUNNING):
            break
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    trace = {
        k: np.concatenate([np.asarray(t[k]) for t in trace], axis=0)[:, :num] for k in trace[0]
    }
    # the last trace row is evaluated at the final parameters (no extra compiled function)
    steps = np.minimum(np.concatenate(trace_steps), max_steps)
    keep = np.concatenate([[True], np.diff(steps) > 0])  # drop rows past the step budget
    params = state.params
    status = np.asarray(state.status)
    final_status = jax.device_put(
        np.where(status == Status.RUNNING, np.int8(Status.MAX_STEPS), status), state.status.sharding
    )
    final_steps = state.steps
    if home is not None:  # back on the input's device, padding dropped
        params, final_status, final_steps = jax.device_put(
            jax.tree_util.tree_map(lambda x: x[:num], (params, final_status, final_steps)), home
        )
    return OptimizeResult(
        params=params,
        loss=trace["loss"][-1],
        grad_norm=trace["grad_norm"][-1],
        status=final_status,
        steps=final_steps,
        trace={k: v[keep] for k, v in trace.items()},
        trace_steps=steps[keep],
        wall_time=time.perf_counter() - start,
    )


def _native_rule(spec, params, optimizer, record, kernel):
    """The update rule to hand a native chunk kernel, or ``None`` for the XLA path."""
    if kernel in ("xla", "plain"):
        return None
    rule = update_rule(optimizer)
    leaves = jax.tree_util.tree_leaves(params)
    devices = devices_of(params)
    on_cpu = (
        all(d.platform == "cpu" for d in devices) if devices else jax.default_backend() == "cpu"
    )
    why = None
    if record is not None:
        why = "a record function runs in the XLA path"
    elif rule is None:
        why = "the optimiser is not ufm.gd or ufm.momentum (heavy ball)"
    elif not on_cpu:
        why = "the seeds are not on CPU devices"
    elif chunk_kernel(spec, rule, leaves[0].dtype) is None:
        why = f"no native chunk kernel applies to this {type(spec).__name__} and dtype"
    if why is None:
        return rule
    if kernel == "native":
        extra = unavailable_reason()
        raise ValueError(
            f"kernel='native' is not available: {why}" + (f" ({extra})" if extra else "")
        )
    return None


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
