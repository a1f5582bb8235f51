"""The sweep runner: configurations x starts, sharded, chunked, resumable.

:func:`run_sweep` expands a :class:`~ufm.runs.SweepSpec` grid (validating every point first), then,
per configuration, runs this process's unfinished starts in chunks. A configuration's starts are
``seeds.count`` random ones and, with a ``[starts]`` table, planted-saddle starts and the origin
(:func:`ufm.runs.start_keys`, :func:`ufm.make_starts`). A chunk is initialised from its start keys
(random seed ``i`` starts from ``fold_in(key(base), i)``), sharded over the local devices along
the seed axis (:mod:`ufm.runs.sharding`), and run through :func:`ufm.run_points`: optimised by
:func:`ufm.optimize` (``jit(vmap)`` running SPMD), polished (``optimizer.polish``), analysed by
the registered analyses, and written as one atomic Parquet file (:mod:`ufm.runs.store`). A rerun of
the same spec skips the finished ``(config_hash, source, seed)`` rows. ``ufm landscape`` runs the
same pipeline and writes through this runner into the same store, so both give the same rows for the
same configuration.

The starts of a configuration go in balanced chunks of one width (the last one padded by
repeating its last start, the padding dropped: :func:`ufm.runs.sharding.balanced_chunks`), so each
configuration compiles once; a configuration with at least :data:`LARGE_CONFIGURATION` starts runs
at XLA's default optimisation level (:func:`ufm.core.jitting.full_optimisation`: its thousands of
points outweigh the extra compile time), smaller ones at the quick-compiling level of small specs.

Per-seed failures are data, not exceptions: the optimiser's status (``converged``,
``max_steps``, ``diverged``, ``nan``) is a column, and an analysis that raises fills its
chunk's ``error`` column instead of stopping the night's run.

Columns of a row (docs/results.md; also in each file's Parquet metadata): ``config_hash``,
``model``, every spec field (``K, n, d, loss, bias, ...``), ``source``, ``seed``, ``dim``,
``status``, ``f`` (final objective, after polishing), ``grad_norm``, ``steps``,
``first_order_grad_norm``, ``polished``, ``polish_iterations``, the analyses' columns (``f_star,
f_gap, at_optimum`` for ``closed_form``; NC metrics for ``metrics``; ``class, lambda_min, n_neg,
..., counterexample`` for ``hessian``), ``error``, every setting (``opt_*``, ``base_seed``,
``init_scale``, ``analyses``) and provenance (:mod:`ufm.runs.provenance`, ``writer``,
``timestamp``, ``chunk_seconds``, ``compile_seconds``, ``chunk_size``).

A folder holds the configurations of one run; running a spec with other settings into it is
refused unless ``extend=True`` (``--extend``): the rows of both then coexist, each keyed and
labelled by its full settings.

Example (``tests/test_sweep.py`` runs such sweeps on 8 fake CPU devices)::

    import ufm
    summary = ufm.run_sweep("experiments/sweeps/tiny.toml", "ufm-results/tiny")
    df = ufm.load_results("ufm-results/tiny")   # one row per configuration x start
    df.groupby(["loss", "bias"]).f_gap.describe()
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pyarrow as pa

from ..core.jitting import full_optimisation
from ..core.progress import Progress
from ..core.timing import CompileTimer
from ..core.validation import SpecError
from .multihost import finish
from .pipeline import BASE_COLUMNS as _POINT_COLUMNS
from .pipeline import run_points
from .provenance import ROW_PROVENANCE, provenance
from .schema import column_docs_for
from .sharding import balanced_chunks, chunk_size, pad_seeds, seed_mesh, shard_seeds
from .starts import make_starts, start_keys
from .store import ResultStore, StoreError
from .sweep_spec import SweepConfig, SweepSpec, load_sweep_spec, spec_fields

__all__ = [
    "run_sweep",
    "run_chunk",
    "SweepSummary",
    "default_out",
    "chunk_table",
    "settings_columns",
    "BASE_COLUMNS",
]

#: A configuration with at least this many starts (random, planted and the origin: a property
#: of the sweep spec) runs its chunks under :func:`ufm.core.jitting.full_optimisation`: XLA's
#: default optimisation level instead of the quick-compiling one of small specs. Smaller
#: configurations (``ufm landscape``'s default: 42 seeds) keep the quick compilation.
LARGE_CONFIGURATION = 1024

BASE_COLUMNS = ("config_hash", "model", "source", "seed", "dim") + _POINT_COLUMNS
_RUN_COLUMNS = ("writer", "timestamp", "chunk_seconds", "compile_seconds", "chunk_size")


class SweepSummary(NamedTuple):
    """What :func:`run_sweep` did in this process."""

    folder: Path
    num_configs: int
    invalid: list  # InvalidPoint records skipped
    seeds_run: int  # starts (random, planted, origin) computed by this process in this run
    seeds_skipped: int  # this process's starts already in the store
    status_counts: dict  # {status: count} over the starts run
    seconds: float
    compile_seconds: float = 0.0
    configs: tuple = ()  # the SweepConfig records of the run


def default_out(spec: SweepSpec) -> Path:
    """The output folder: the spec's ``out``, else ``ufm-results/<name>``."""
    return Path(spec.out) if spec.out else Path("ufm-results") / spec.name


# -- one chunk -------------------------------------------------------------------------------


def run_chunk(
    spec,
    seeds,
    mesh,
    *,
    optimizer=None,
    base_seed: int = 0,
    init_scale=None,
    analyses: tuple = (),
    sources=None,
    record: Callable | None = None,
    record_every: int | None = None,
    return_trace: bool = False,
    on_phase: Callable | None = None,
    pad_to: int | None = None,
):
    """Optimise, polish and analyse the starts of one chunk of one configuration, sharded over
    ``mesh``.

    The starts are the keys ``(sources[i], seeds[i])`` (``sources`` default: all ``"random"``;
    :func:`ufm.make_starts`). The key list is padded to a multiple of ``mesh.size``, and to
    ``pad_to`` keys if that is more (so that the chunks of a configuration share one shape and
    one compilation), by repeating the last key; the initial batch is placed with
    ``NamedSharding(mesh, P("seeds"))``, the batch goes through :func:`ufm.run_points`
    (analysis failures recorded in the ``error`` column), and the padding is dropped from the
    returned per-start columns ``{"source", "seed", "dim", "status", "f", "grad_norm", "steps",
    ..., "error", <analysis columns>}`` (NumPy arrays of length ``len(seeds)``). With
    ``return_trace`` also the trace of :func:`ufm.optimize` (``record`` every ``record_every``
    steps), padding dropped.
    """
    from ..optim.settings import OptimizerSettings

    optimizer = OptimizerSettings() if optimizer is None else optimizer
    seeds = np.asarray(seeds, dtype=np.int64)
    n = seeds.size
    sources = (
        np.full(n, "random", dtype=object) if sources is None else np.asarray(sources, dtype=object)
    )
    if sources.shape != seeds.shape:
        raise ValueError(f"sources has shape {sources.shape}, seeds {seeds.shape}")
    index = pad_seeds(np.arange(n), mesh.size)
    if pad_to is not None and pad_to > index.size:
        index = np.concatenate([index, np.full(pad_to - index.size, n - 1)])
    params0, meta = make_starts(
        spec, sources[index], seeds[index], base_seed=base_seed, init_scale=init_scale, host=True
    )
    out = run_points(
        spec,
        shard_seeds(params0, mesh),
        optimizer=optimizer,
        analyses=analyses,
        errors="record",
        record=record,
        record_every=record_every,
        on_phase=on_phase,
    )
    cols = {k: np.asarray(v)[:n] for k, v in meta.items()}
    cols.update({k: np.asarray(v)[:n] for k, v in out.columns.items()})
    if not return_trace:
        return cols
    trace = {k: np.asarray(v)[:, :n] for k, v in out.result.trace.items()}
    trace.update(
        step=np.asarray(out.result.trace_steps), seed=seeds, source=np.asarray(sources, dtype=str)
    )
    return cols, trace


# -- rows --------------------------------------------------------------------------------------


def settings_columns(spec: SweepSpec) -> dict:
    """The run settings of every row (``opt_*``, ``base_seed``, ``init_scale``, ``analyses``)."""
    o = spec.optimizer
    return {
        "opt_name": o.name,
        "opt_learning_rate": float(o.learning_rate),
        "opt_max_steps": int(o.max_steps),
        "opt_tol": float(o.tol),
        "opt_chunk": int(o.chunk),
        "opt_divergence_threshold": float(o.divergence_threshold),
        "opt_options": json.dumps(dict(o.options), sort_keys=True),
        "opt_polish": o.polish,
        "opt_polish_tol": None if o.polish_tol is None else float(o.polish_tol),
        "opt_polish_max_iter": None if o.polish_max_iter is None else int(o.polish_max_iter),
        "base_seed": int(spec.base_seed),
        "init_scale": None if spec.init_scale is None else float(spec.init_scale),
        "analyses": json.dumps({k: dict(v) for k, v in spec.analyses}, sort_keys=True),
    }


_TYPES = {
    "opt_polish_tol": pa.float64(),
    "opt_polish_max_iter": pa.int64(),
    "init_scale": pa.float64(),
}
_STRINGS = ("source", "status", "error", "class")


def chunk_table(
    config: SweepConfig,
    cols: dict,
    run: dict,
    prov: dict,
    seconds: float,
    compile_seconds: float = 0.0,
    writer: str = "p0",
) -> pa.Table:
    """The Parquet table of one chunk: identity, spec fields, result columns, settings (``run``,
    :func:`settings_columns`), provenance and chunk timing, one row per start."""
    n = len(cols["seed"])
    fields = spec_fields(config.spec)
    reserved = set(BASE_COLUMNS) | set(run) | set(prov) | set(_RUN_COLUMNS)
    for k in fields:
        if k in reserved or k in cols:
            raise ValueError(
                f"spec field {k!r} of model {config.model!r} clashes with a "
                "result column; rename the field"
            )
    for k in cols:
        if k in ("config_hash", "model") or k in run or k in prov or k in _RUN_COLUMNS:
            raise ValueError(f"result column {k!r} clashes with a sweep column")
    data = {
        "config_hash": pa.array([config.hash] * n, pa.string()),
        "model": pa.array([config.model] * n, pa.string()),
    }
    data.update({k: pa.array([v] * n) for k, v in fields.items()})
    for k, v in cols.items():
        data[k] = pa.array(
            v.tolist() if v.dtype == object else v, type=pa.string() if k in _STRINGS else None
        )
    data.update({k: pa.array([v] * n, type=_TYPES.get(k)) for k, v in run.items()})
    data.update({k: pa.array([prov[k]] * n) for k in ROW_PROVENANCE})
    data["writer"] = pa.array([writer] * n, pa.string())
    now = datetime.datetime.now(datetime.timezone.utc)
    data["timestamp"] = pa.array([now] * n, pa.timestamp("us", tz="UTC"))
    data["chunk_seconds"] = pa.array(np.full(n, seconds))
    data["compile_seconds"] = pa.array(np.full(n, compile_seconds))
    data["chunk_size"] = pa.array(np.full(n, n, dtype=np.int64))
    return pa.table(data)


# -- the manifest -------------------------------------------------------------------------------


def _config_entry(c: SweepConfig, spec: SweepSpec) -> dict:
    src, _ = start_keys(c.spec, spec.num_seeds, spec.starts)
    return {
        "model": c.model,
        "point": c.point,
        "spec": spec_fields(c.spec),
        "settings": settings_columns(spec),
        "num_seeds": spec.num_seeds,
        "num_starts": int(src.size),
        "starts": {k: int(np.sum(src == k)) for k in dict.fromkeys(src.tolist())},
        "label": c.label,
    }


def _differences(a: dict, b: dict) -> list[str]:
    """Settings and spec fields in which two manifest entries differ."""
    out = []
    for part in ("spec", "settings"):
        x, y = a.get(part, {}), b.get(part, {})
        out += [k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
    return out


def _check_mixing(doc: dict, configs, spec: SweepSpec, folder: Path, extend: bool) -> None:
    known = doc.get("configs", {})
    new = [c for c in configs if c.hash not in known]
    if not known or not new or extend:
        return
    entry = _config_entry(new[0], spec)
    nearest = min(known.values(), key=lambda e: len(_differences(e, entry)))
    diff = ", ".join(_differences(nearest, entry)[:6]) or "settings"
    raise StoreError(
        f"{str(folder)!r} already holds results of {len(known)} other configuration(s); this run "
        f"would add {len(new)} new one(s) (e.g. {new[0].label or new[0].hash}, differing in "
        f"{diff}). Use --extend (extend=True) to add them to this folder (every row keeps its "
        f"settings and config_hash), or choose another --out"
    )


def _manifest(doc: dict, spec: SweepSpec, configs, invalid, mesh, prov: dict, job: str) -> dict:
    known = doc.get("configs", {})
    for c in configs:
        entry = _config_entry(c, spec)
        old = known.get(c.hash)
        if old is not None:  # a resume may raise the seed count: keep the larger
            entry["num_seeds"] = max(entry["num_seeds"], int(old.get("num_seeds", 0)))
            entry["num_starts"] = max(entry["num_starts"], int(old.get("num_starts", 0)))
            entry["starts"] = {
                k: max(v, int(old.get("starts", {}).get(k, 0)))
                for k, v in {**old.get("starts", {}), **entry["starts"]}.items()
            }
        known[c.hash] = entry
    runs = doc.get("runs", [])[-49:] + [
        {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "job": job,
            "name": spec.name,
            "process_count": jax.process_count(),
            "devices_per_process": int(mesh.size),
            "configs": [c.hash for c in configs],
            "settings": spec.settings_dict(),
            "spec_toml": spec.text,
            **{k: prov[k] for k in ("ufm_version", "jax_version", "git_commit", "host", "command")},
        }
    ]
    return {
        "format": "ufm-results/1",
        "name": doc.get("name", spec.name),
        "configs": known,
        "invalid": [str(p) for p in invalid],
        "runs": runs,
    }


# -- the sweep ---------------------------------------------------------------------------------


def run_sweep(
    spec,
    out=None,
    *,
    devices=None,
    progress: bool | None = None,
    strict: bool = False,
    log=None,
    extend: bool = False,
    record: Callable | None = None,
    record_every: int | None = None,
    share: tuple | None = None,
    writer: str | None = None,
    job: str = "sweep",
    lock_timeout: float = 0.0,
) -> SweepSummary:
    """Run (or resume) a sweep; returns a :class:`SweepSummary` of this process's work.

    Args:
        spec: a :class:`~ufm.runs.SweepSpec` or the path of a TOML sweep spec.
        out: output folder (default: the spec's ``out``, else ``ufm-results/<name>``).
        devices: local devices to shard seeds over: ``None`` (all), a count, or a list.
        progress: ``None`` draws a bar on a TTY, ``True`` forces it, ``False`` silences it.
        strict: raise on invalid grid points instead of reporting and skipping them.
        log: stream for messages (default ``sys.stderr``).
        extend: allow adding configurations with other settings to a folder that holds results
            (module docstring); otherwise that is refused with a ``StoreError``.
        record, record_every: a trace of :func:`ufm.optimize` per chunk (e.g. NC metrics every
            50 steps), written to ``DIR/traces`` (:func:`ufm.runs.load_traces`).
        share: ``(index, count)``: run only the starts with ``seed % count == index`` (default:
            this process of a ``jax.distributed`` run; the Slurm array tasks of ``ufm sweep
            submit`` pass their task id).
        writer: the writer id of this process in the store (default ``p<index>`` or ``t<index>``).
        job: the job name recorded in the manifest's run list.
        lock_timeout: seconds to wait for this writer's lock (default: refuse at once).

    Multi-process: call ``ufm.runs.initialize_distributed(...)`` (``jax.distributed``) first;
    each process then runs its share of the seeds (see :mod:`ufm.runs.sharding`).
    """
    log = sys.stderr if log is None else log
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    folder = Path(out) if out is not None else default_out(spec)

    configs, invalid = spec.expand()
    pid, nproc = share if share is not None else (jax.process_index(), jax.process_count())
    writer = writer or (f"t{pid}" if share is not None else f"p{pid}")
    if invalid and pid == 0:
        for p in invalid:
            print(f"ufm sweep: skipping invalid {p}", file=log)
    if invalid and strict:
        raise SpecError(f"{len(invalid)} invalid grid point(s); first: {invalid[0]}")
    if not configs:
        raise SpecError("the sweep grid has no valid point: " + str(invalid[0]))
    if (
        any(str(getattr(c.spec, "dtype", "")) == "float64" for c in configs)
        and not jax.config.jax_enable_x64
    ):
        raise SpecError(
            "dtype 'float64' needs 64-bit JAX: call "
            "jax.config.update('jax_enable_x64', True) first (the CLI does)"
        )

    store = ResultStore(folder, pid, nproc, writer=writer, lock_timeout=lock_timeout)
    store.prepare()  # unwritable folder or a live writer with our id: an error, before compute
    try:
        mesh = seed_mesh(devices)
        prov = provenance(list(mesh.devices.flat))
        doc = store.read_manifest() or {}
        _check_mixing(doc, configs, spec, store.folder, extend)
        if pid == 0:
            store.write_manifest(_manifest(doc, spec, configs, invalid, mesh, prov, job))
        done = store.done_keys()

        plan, skipped = [], 0
        for c in configs:
            sources, seeds = start_keys(c.spec, spec.num_seeds, spec.starts)
            mine = seeds % nproc == pid  # static ownership (the origin, seed 0, is share 0's)
            finished = done.get(c.hash, set())
            todo = np.array(
                [i for i in np.flatnonzero(mine) if (sources[i], int(seeds[i])) not in finished],
                dtype=np.int64,
            )
            skipped += int(mine.sum()) - todo.size
            large = seeds.size >= LARGE_CONFIGURATION  # of the spec, not of this share
            if todo.size:
                size = chunk_size(
                    c.spec,
                    mesh.size,
                    seeds_per_chunk=spec.seeds_per_chunk,
                    memory_budget=spec.memory_budget,
                    num_seeds=todo.size,
                )
                chunks, width = balanced_chunks(todo, size, mesh.size)
                plan.append((c, [(sources[ch], seeds[ch]) for ch in chunks], width, large))

        run_cols = settings_columns(spec)
        counts: dict[str, int] = {}
        total = sum(ch[1].size for _, chunks, _, _ in plan for ch in chunks)
        desc = spec.name + (f" [{store.writer}/{nproc}]" if nproc > 1 else "")
        compile_total = 0.0
        with Progress(
            total, desc, unit="seeds", file=log, force=bool(progress), quiet=progress is False
        ) as bar:
            for config, chunks, width, large in plan:
                bar.set_description(f"{desc} {config.label}" if len(plan) > 1 else desc)
                for sources, seeds in chunks:
                    t0 = time.perf_counter()
                    with CompileTimer() as ct, full_optimisation(large):
                        out = run_chunk(
                            config.spec,
                            seeds,
                            mesh,
                            optimizer=spec.optimizer,
                            base_seed=spec.base_seed,
                            init_scale=spec.init_scale,
                            analyses=spec.analyses,
                            sources=sources,
                            record=record,
                            record_every=record_every,
                            return_trace=record is not None,
                            on_phase=bar.set_phase,
                            pad_to=width,
                        )
                    bar.set_phase("write")
                    cols, trace = out if record is not None else (out, None)
                    compile_total += ct.seconds
                    table = chunk_table(
                        config,
                        cols,
                        run_cols,
                        prov,
                        time.perf_counter() - t0,
                        ct.seconds,
                        store.writer,
                    )
                    docs = column_docs_for(table.column_names, spec_fields(config.spec))
                    if trace is not None:
                        store.write_trace(config.hash, int(seeds[0]), trace)
                    store.write_chunk(table, docs)
                    for s in cols["status"]:
                        counts[s] = counts.get(s, 0) + 1
                    seconds = time.perf_counter() - t0
                    bar.update(seeds.size, seconds=max(seconds - ct.seconds, 1e-9))
        if jax.process_count() > 1:
            finish()  # a barrier with a timeout: a partner that died is reported, not waited for
        return SweepSummary(
            store.folder,
            len(configs),
            invalid,
            total,
            skipped,
            counts,
            time.perf_counter() - t_start,
            compile_total,
            tuple(configs),
        )
    finally:
        store.release()
