"""The sweep runner: configurations x starts, sharded, chunked, resumable.

:func:`run_sweep` expands a :class:`~ufm.SweepSpec` grid (validating every point first), then,
per configuration, runs this process's unfinished starts in chunks. A configuration's starts are
``seeds.count`` random ones and, with a ``[starts]`` table, planted-saddle starts and the origin
(:func:`ufm.start_keys`, :func:`ufm.make_starts`). A chunk is initialised from its start keys
(random seed ``i`` starts from ``fold_in(key(base), i)``), sharded over the local devices along
the seed axis (:mod:`ufm._sharding`), and run through :func:`ufm.run_points`: optimised by
:func:`ufm.optimize` (``jit(vmap)`` running SPMD), polished (``optimizer.polish``), analysed by
the registered analyses, and written as one atomic Parquet file (:mod:`ufm._store`). A rerun of
the same spec skips the finished ``(config_hash, source, seed)`` rows. ``ufm landscape`` runs the
same pipeline (:func:`ufm.run_config`), so both give the same rows for the same configuration.

Per-seed failures are data, not exceptions: the optimiser's status (``converged``,
``max_steps``, ``diverged``, ``nan``) is a column, and an analysis that raises fills its
chunk's ``error`` column instead of stopping the night's run.

Columns of a row: ``config_hash``, ``model``, every spec field (``K, n, d, loss, bias, ...``),
``source``, ``seed``, ``dim``, ``status``, ``f`` (final objective, after polishing),
``grad_norm``, ``steps``, ``first_order_grad_norm``, ``polished``, ``polish_iterations``, the
analyses' columns (``f_star, f_gap`` for ``closed_form``; NC metrics for ``metrics``; ``class,
lambda_min, n_neg, ..., counterexample`` for ``hessian``), ``error``, and provenance:
``ufm_version, jax_version, platform, device_kind, num_devices, matmul_precision, x64,
process_index, process_count, host, timestamp, chunk_seconds, chunk_size``.

Example (``tests/test_sweep.py`` runs such sweeps on 8 fake CPU devices)::

    import ufm
    summary = ufm.run_sweep("experiments/sweeps/tiny.toml", "ufm-results/tiny")
    df = ufm.load_results("ufm-results/tiny")   # one row per configuration x start
    df.groupby(["loss", "bias"]).f_gap.describe()
"""

from __future__ import annotations

import datetime
import socket
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pyarrow as pa

from ._optimize import STATUS_NAMES
from ._pipeline import BASE_COLUMNS as _POINT_COLUMNS
from ._pipeline import make_starts, run_points, start_keys
from ._progress import Progress
from ._sharding import chunk_size, pad_seeds, seed_mesh, shard_seeds, split_chunks
from ._spec import SpecError
from ._store import ResultStore
from ._sweep_spec import OptimizerSettings, SweepConfig, SweepSpec, load_sweep_spec, spec_fields
from ._version import __version__

__all__ = ["run_sweep", "run_chunk", "SweepSummary", "STATUS_NAMES", "default_out"]

BASE_COLUMNS = ("config_hash", "model", "source", "seed", "dim") + _POINT_COLUMNS


class SweepSummary(NamedTuple):
    """What :func:`run_sweep` did in this process."""

    folder: Path
    num_configs: int
    invalid: list  # InvalidPoint records skipped
    seeds_run: int  # starts (random, planted, origin) computed by this process in this run
    seeds_skipped: int  # this process's starts already in the store
    status_counts: dict  # {status: count} over the starts run
    seconds: float


def default_out(spec: SweepSpec) -> Path:
    """The output folder: the spec's ``out``, else ``ufm-results/<name>``."""
    return Path(spec.out) if spec.out else Path("ufm-results") / spec.name


# -- one chunk -------------------------------------------------------------------------------


def run_chunk(spec, seeds, mesh, *, optimizer: OptimizerSettings = OptimizerSettings(),
              base_seed: int = 0, init_scale=None, analyses: tuple = (),
              sources=None) -> dict:
    """Optimise, polish and analyse the starts of one chunk of one configuration, sharded over
    ``mesh``.

    The starts are the keys ``(sources[i], seeds[i])`` (``sources`` default: all ``"random"``;
    :func:`ufm.make_starts`). The key list is padded to a multiple of ``mesh.size`` (repeating
    the last key), the initial batch is placed with ``NamedSharding(mesh, P("seeds"))``, the
    batch goes through :func:`ufm.run_points` (analysis failures recorded in the ``error``
    column), and the padding is dropped from the returned per-start columns ``{"source",
    "seed", "dim", "status", "f", "grad_norm", "steps", ..., "error", <analysis columns>}``
    (NumPy arrays of length ``len(seeds)``).
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    n = seeds.size
    sources = (np.full(n, "random", dtype=object) if sources is None
               else np.asarray(sources, dtype=object))
    if sources.shape != seeds.shape:
        raise ValueError(f"sources has shape {sources.shape}, seeds {seeds.shape}")
    index = pad_seeds(np.arange(n), mesh.size)
    params0, meta = make_starts(spec, sources[index], seeds[index], base_seed=base_seed,
                                init_scale=init_scale)
    out = run_points(spec, shard_seeds(params0, mesh), optimizer=optimizer, analyses=analyses,
                     errors="record")
    cols = {k: np.asarray(v)[:n] for k, v in meta.items()}
    cols.update({k: np.asarray(v)[:n] for k, v in out.columns.items()})
    return cols


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
    for k in cols:
        if k in ("config_hash", "model") or k in prov or k in ("timestamp", "chunk_seconds",
                                                                 "chunk_size"):
            raise ValueError(f"result column {k!r} clashes with a sweep column")
    data = {"config_hash": pa.array([config.hash] * n, pa.string()),
            "model": pa.array([config.model] * n, pa.string())}
    data.update({k: pa.array([v] * n) for k, v in fields.items()})
    for k, v in cols.items():
        strings = k in ("source", "status", "error", "class")
        data[k] = pa.array(v.tolist() if v.dtype == object else v,
                           type=pa.string() if strings else None)
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
        src, _ = start_keys(c.spec, spec.num_seeds, spec.starts)
        known[c.hash] = {"model": c.model, "point": c.point, "spec": spec_fields(c.spec),
                         "num_seeds": spec.num_seeds, "num_starts": int(src.size),
                         "starts": {k: int(np.sum(src == k)) for k in dict.fromkeys(src.tolist())},
                         "label": c.label}
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
    done = store.done_keys()

    plan, skipped = [], 0
    for c in configs:
        sources, seeds = start_keys(c.spec, spec.num_seeds, spec.starts)
        mine = seeds % nproc == pid  # static ownership (the origin, seed 0, is process 0's)
        finished = done.get(c.hash, set())
        todo = np.array([i for i in np.flatnonzero(mine)
                         if (sources[i], int(seeds[i])) not in finished], dtype=np.int64)
        skipped += int(mine.sum()) - todo.size
        if todo.size:
            size = chunk_size(c.spec, mesh.size, seeds_per_chunk=spec.seeds_per_chunk,
                              memory_budget=spec.memory_budget, num_seeds=todo.size)
            plan.append((c, [(sources[ch], seeds[ch]) for ch in split_chunks(todo, size)]))

    prov = _provenance(mesh)
    counts: dict[str, int] = {}
    total = sum(ch[1].size for _, chunks in plan for ch in chunks)
    desc = spec.name + (f" [process {pid}/{nproc}]" if nproc > 1 else "")
    with Progress(total, desc, unit="seeds", file=log, force=bool(progress),
                  quiet=progress is False) as bar:
        for config, chunks in plan:
            for sources, seeds in chunks:
                t0 = time.perf_counter()
                cols = run_chunk(config.spec, seeds, mesh, optimizer=spec.optimizer,
                                 base_seed=spec.base_seed, init_scale=spec.init_scale,
                                 analyses=spec.analyses, sources=sources)
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
