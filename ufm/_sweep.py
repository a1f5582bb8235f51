"""The sweep runner: configurations x seeds, sharded, chunked, resumable.

:func:`run_sweep` expands a :class:`~ufm.SweepSpec` grid (validating every point first), then,
per configuration, runs this process's unfinished seeds in chunks. A chunk is initialised with
:func:`ufm.init_batch` (seed ``i`` starts from ``fold_in(key(base), i)``), sharded over the
local devices along the seed axis (:mod:`ufm._sharding`), optimised by :func:`ufm.optimize`
(``jit(vmap)`` running SPMD), analysed by the registered analyses, and written as one atomic
Parquet file (:mod:`ufm._store`). A rerun of the same spec skips the finished
``(config_hash, seed)`` rows.

Per-seed failures are data, not exceptions: the optimiser's status (``converged``,
``max_steps``, ``diverged``, ``nan``) is a column, and an analysis that raises fills its
chunk's ``error`` column instead of stopping the night's run.

Columns of a row: ``config_hash``, ``model``, every spec field (``K, n, d, loss, bias, ...``),
``seed``, ``status``, ``f`` (final objective), ``grad_norm``, ``steps``, the analyses' columns
(``f_star, f_gap`` for ``closed_form``; NC metrics for ``metrics``; ``class, lambda_min, ...``
for a Hessian classifier), ``error``, and provenance: ``ufm_version, jax_version, platform,
device_kind, num_devices, matmul_precision, x64, process_index, process_count, host,
timestamp, chunk_seconds, chunk_size``.

Example (``tests/test_sweep.py`` runs such sweeps on 8 fake CPU devices)::

    import ufm
    summary = ufm.run_sweep("experiments/sweeps/tiny.toml", "ufm-results/tiny")
    df = ufm.load_results("ufm-results/tiny")   # one row per configuration x seed
    df.groupby(["loss", "bias"]).f_gap.describe()
"""

from __future__ import annotations

import datetime
import functools
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pyarrow as pa

from . import _sweep_spec
from ._objective import init_batch
from ._optimize import Status, make_optimizer, optimize
from ._progress import Progress
from ._sharding import (chunk_size, pad_seeds, process_seeds, seed_mesh, shard_seeds,
                        split_chunks)
from ._spec import SpecError
from ._store import ResultStore
from ._sweep_spec import (OptimizerSettings, SweepConfig, SweepSpec, load_sweep_spec,
                          register_analysis, spec_fields)
from ._version import __version__

__all__ = ["run_sweep", "run_chunk", "SweepSummary", "STATUS_NAMES", "default_out"]

# ufm.Status codes -> the `status` column ("max_steps": the step budget ran out).
from ._optimize import STATUS_NAMES  # noqa: E402
_STATUS_LOOKUP = np.array(
    [STATUS_NAMES.get(c, f"status_{c}") for c in range(max(Status) + 1)], dtype=object)
BASE_COLUMNS = ("config_hash", "model", "seed", "status", "f", "grad_norm", "steps", "error")


class SweepSummary(NamedTuple):
    """What :func:`run_sweep` did in this process."""

    folder: Path
    num_configs: int
    invalid: list  # InvalidPoint records skipped
    seeds_run: int  # seeds computed by this process in this run
    seeds_skipped: int  # this process's seeds already in the store
    status_counts: dict  # {status: count} over the seeds run
    seconds: float


def default_out(spec: SweepSpec) -> Path:
    """The output folder: the spec's ``out``, else ``ufm-results/<name>``."""
    return Path(spec.out) if spec.out else Path("ufm-results") / spec.name


# -- one chunk -------------------------------------------------------------------------------


def run_chunk(spec, seeds, mesh, *, optimizer: OptimizerSettings = OptimizerSettings(),
              base_seed: int = 0, init_scale=None, analyses: tuple = ()) -> dict:
    """Optimise and analyse the seeds of one chunk of one configuration, sharded over ``mesh``.

    The seed list is padded to a multiple of ``mesh.size`` (repeating the last seed), the
    initial batch is placed with ``NamedSharding(mesh, P("seeds"))``, and the padding is
    dropped from the returned per-seed columns ``{"seed", "status", "f", "grad_norm",
    "steps", "error", <analysis columns>}`` (NumPy arrays of length ``len(seeds)``).
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    n = seeds.size
    padded = pad_seeds(seeds, mesh.size)
    params0 = init_batch(spec, jax.random.key(base_seed), seeds=padded, scale=init_scale)
    params0 = shard_seeds(params0, mesh)
    res = optimize(spec, params0,
                   optimizer=make_optimizer(optimizer.name, optimizer.learning_rate,
                                            **dict(optimizer.options)),
                   max_steps=optimizer.max_steps, tol=optimizer.tol, chunk=optimizer.chunk,
                   divergence_threshold=optimizer.divergence_threshold, progress=False)
    if mesh.size > 1 and mesh.devices.flat[0].platform == "cpu":
        # jaxlib's CPU LAPACK kernels (SVD, eigh) split a batch over the shared intra-op thread
        # pool and block until it is done; several CPU devices running them at once can occupy
        # every pool thread and deadlock (seen with jax 0.10.2: ufm.nc_metrics on 2048 seeds over
        # 2 devices, 2 cores). So on CPU the analyses run on one device (results are identical).
        res = res._replace(params=jax.device_put(res.params, mesh.devices.flat[0]))
    cols = {
        "seed": seeds,
        "status": _STATUS_LOOKUP[np.asarray(res.status)[:n].astype(np.int64)],
        "f": np.asarray(res.loss, dtype=np.float64)[:n],
        "grad_norm": np.asarray(res.grad_norm, dtype=np.float64)[:n],
        "steps": np.asarray(res.steps).astype(np.int64)[:n],
        "error": np.full(n, None, dtype=object),
    }
    registry = _sweep_spec.analysis_registry()
    for name, options in analyses:
        try:
            out = dict(registry[name](spec, res, **dict(options)))
            out = {k: _column(name, k, v, padded.size)[:n] for k, v in out.items()}
        except Exception as err:  # a failing analysis must not end an overnight sweep
            msg = f"analysis {name!r} failed: {type(err).__name__}: {err}"
            warnings.warn(msg + " (recorded in the `error` column)", RuntimeWarning,
                          stacklevel=2)
            cols["error"] = np.array([msg if e is None else f"{e}; {msg}"
                                      for e in cols["error"]], dtype=object)
            continue
        for k, v in out.items():
            if k in cols or k in BASE_COLUMNS:
                raise ValueError(f"analysis {name!r} returns column {k!r}, which is taken")
            cols[k] = v
    return cols


def _column(analysis: str, key: str, value, size: int) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim == 0:  # one value for the whole chunk
        v = np.full(size, v.item())
    if v.shape != (size,):
        raise ValueError(f"analysis {analysis!r} column {key!r} has shape {v.shape}; "
                         f"expected one value per seed, ({size},)")
    return v


# -- builtin analyses ------------------------------------------------------------------------


def _check_closed_form(spec):
    from ._theory import optimal_value

    optimal_value(spec)  # raises ValueError naming d (or TypeError) where no closed form applies


@register_analysis("closed_form", check=_check_closed_form)
def closed_form_gap(spec, result):
    """``f_star = ufm.optimal_value(spec)`` (theory.md section 2) and ``f_gap = f - f_star``."""
    from ._theory import optimal_value

    f_star = float(optimal_value(spec))
    f = np.asarray(result.loss, dtype=np.float64)
    return {"f_star": np.full(f.shape, f_star), "f_gap": f - f_star}


def _check_metrics(spec):
    from ._metrics import nc_metrics

    if nc_metrics.dispatch(type(spec)) is nc_metrics.dispatch(object):
        raise TypeError(f"no neural-collapse metrics registered for {type(spec).__name__}")


@functools.partial(jax.jit, static_argnames=("options",))
def _nc_batch(spec, params, options):
    from ._metrics import nc_metrics

    return jax.vmap(lambda p: nc_metrics(spec, p, **dict(options)))(params)


@register_analysis("metrics", check=_check_metrics)
def nc_metric_columns(spec, result, **options):
    """Neural-collapse metrics of the final parameters (``ufm.nc_metrics(spec, p, **options)``,
    e.g. ``tau``, ``rtol``), one column each; compiled once per spec shape."""
    out = _nc_batch(spec, result.params, tuple(sorted(options.items())))
    out = out._asdict() if hasattr(out, "_asdict") else dict(out)
    return {k: np.asarray(v) for k, v in out.items()}


# -- the sweep -------------------------------------------------------------------------------


def _provenance(mesh) -> dict:
    dev = mesh.devices.flat[0]
    prec = jax.config.jax_default_matmul_precision
    return {
        "ufm_version": __version__, "jax_version": jax.__version__,
        "platform": dev.platform, "device_kind": dev.device_kind,
        "num_devices": int(mesh.size),
        "matmul_precision": "default" if prec is None else str(prec),
        "x64": bool(jax.config.jax_enable_x64),
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "host": socket.gethostname(),
    }


def _chunk_table(config: SweepConfig, cols: dict, prov: dict, seconds: float) -> pa.Table:
    n = len(cols["seed"])
    fields = spec_fields(config.spec)
    for k in fields:
        if k in BASE_COLUMNS or k in prov or k in cols:
            raise ValueError(f"spec field {k!r} of model {config.model!r} clashes with a "
                             "result column; rename the field")
    data = {"config_hash": pa.array([config.hash] * n, pa.string()),
            "model": pa.array([config.model] * n, pa.string())}
    data.update({k: pa.array([v] * n) for k, v in fields.items()})
    for k, v in cols.items():
        data[k] = pa.array(v.tolist() if v.dtype == object else v,
                           type=pa.string() if k in ("status", "error") else None)
    data.update({k: pa.array([v] * n) for k, v in prov.items()})
    now = datetime.datetime.now(datetime.timezone.utc)
    data["timestamp"] = pa.array([now] * n, pa.timestamp("us", tz="UTC"))
    data["chunk_seconds"] = pa.array(np.full(n, seconds))
    data["chunk_size"] = pa.array(np.full(n, n, dtype=np.int64))
    return pa.table(data)


def _manifest(store: ResultStore, spec: SweepSpec, configs, invalid, mesh) -> dict:
    doc = store.read_manifest() or {}
    known = doc.get("configs", {})
    for c in configs:
        known[c.hash] = {"model": c.model, "point": c.point, "spec": spec_fields(c.spec),
                         "num_seeds": spec.num_seeds, "label": c.label}
    runs = doc.get("runs", [])[-49:] + [{
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "process_count": jax.process_count(), "devices_per_process": int(mesh.size),
        "configs": [c.hash for c in configs], "ufm_version": __version__,
        "jax_version": jax.__version__,
    }]
    return {"format": "ufm-sweep/1", "name": spec.name, "settings": spec.settings_dict(),
            "spec_toml": spec.text, "configs": known, "invalid": [str(p) for p in invalid],
            "runs": runs}


def run_sweep(spec, out=None, *, devices=None, progress: bool | None = None,
              strict: bool = False, log=None) -> SweepSummary:
    """Run (or resume) a sweep; returns a :class:`SweepSummary` of this process's work.

    Args:
        spec: a :class:`~ufm.SweepSpec` or the path of a TOML sweep spec.
        out: output folder (default: the spec's ``out``, else ``ufm-results/<name>``).
        devices: local devices to shard seeds over: ``None`` (all), a count, or a list.
        progress: ``None`` draws a bar on a TTY, ``True`` forces it, ``False`` silences it.
        strict: raise on invalid grid points instead of reporting and skipping them.
        log: stream for messages (default ``sys.stderr``).

    Multi-process: call ``ufm.initialize_distributed(...)`` (``jax.distributed``) first;
    each process then runs its share of the seeds (see :mod:`ufm._sharding`).
    """
    log = sys.stderr if log is None else log
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    folder = Path(out) if out is not None else default_out(spec)

    configs, invalid = spec.expand()
    pid, nproc = jax.process_index(), jax.process_count()
    if invalid and pid == 0:
        for p in invalid:
            print(f"ufm sweep: skipping invalid {p}", file=log)
    if invalid and strict:
        raise SpecError(f"{len(invalid)} invalid grid point(s); first: {invalid[0]}")
    if not configs:
        raise SpecError("the sweep grid has no valid point: " + str(invalid[0]))
    if any(str(getattr(c.spec, "dtype", "")) == "float64" for c in configs) and \
            not jax.config.jax_enable_x64:
        raise SpecError("dtype 'float64' needs 64-bit JAX: call "
                        "jax.config.update('jax_enable_x64', True) first (the CLI does)")

    store = ResultStore(folder, pid, nproc)
    store.prepare()  # clear error on an unwritable folder, before any compute
    mesh = seed_mesh(devices)
    if pid == 0:
        store.write_manifest(_manifest(store, spec, configs, invalid, mesh))
    done = store.done_seeds()

    plan, skipped = [], 0
    mine = process_seeds(np.arange(spec.num_seeds), pid, nproc)  # static ownership
    for c in configs:
        finished = done.get(c.hash, set())
        todo = np.array([s for s in mine.tolist() if s not in finished], dtype=np.int64)
        skipped += mine.size - todo.size
        if todo.size:
            size = chunk_size(c.spec, mesh.size, seeds_per_chunk=spec.seeds_per_chunk,
                              memory_budget=spec.memory_budget, num_seeds=todo.size)
            plan.append((c, split_chunks(todo, size)))

    prov = _provenance(mesh)
    counts: dict[str, int] = {}
    total = sum(ch.size for _, chunks in plan for ch in chunks)
    desc = spec.name + (f" [process {pid}/{nproc}]" if nproc > 1 else "")
    with Progress(total, desc, unit="seeds", file=log, force=bool(progress),
                  quiet=progress is False) as bar:
        for config, chunks in plan:
            for seeds in chunks:
                t0 = time.perf_counter()
                cols = run_chunk(config.spec, seeds, mesh, optimizer=spec.optimizer,
                                 base_seed=spec.base_seed, init_scale=spec.init_scale,
                                 analyses=spec.analyses)
                table = _chunk_table(config, cols, prov, time.perf_counter() - t0)
                store.write_chunk(table)
                for s in cols["status"]:
                    counts[s] = counts.get(s, 0) + 1
                bar.update(seeds.size)
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("ufm-sweep-finished")
    return SweepSummary(folder, len(configs), invalid, total, skipped, counts,
                        time.perf_counter() - t_start)
