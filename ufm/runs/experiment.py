"""Trained-network experiments into the common result store: one row per seed x checkpoint.

The trained-network systems (feature collapse, forward-feature-map spectra, spectral
transformations) train several seeds at once and record metrics at checkpoint epochs. They write
through :func:`run_experiment_job`, which gives them what sweeps have: the folder lock, the
manifest (configuration hash -> system, spec fields, settings), refusal to mix other settings into
a folder unless ``extend=True``, resumption (seeds already stored are skipped), atomic chunk files
with the same provenance columns as every other row, and column docs in the Parquet metadata.
:func:`ufm.load_results` then reads the folder like any other.

A configuration is ``(system, spec, settings)``: ``spec`` a frozen dataclass (its fields become
columns), ``settings`` a flat dict of JSON-able values that also shape the result (method names,
evaluation options; they become columns too, and enter the hash). Rows carry ``source``
(default ``"train"``), ``seed`` and ``epoch``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from ..core.timing import CompileTimer
from ..core.validation import SpecError
from .hashing import _plain
from .provenance import provenance
from .schema import column_docs_for
from .store import ResultStore, StoreError, load_results_arrow
from .sweep import chunk_table
from .sweep_spec import SweepConfig, spec_fields

__all__ = ["run_experiment_job", "ExperimentJob", "experiment_hash"]


class ExperimentJob(NamedTuple):
    """What :func:`run_experiment_job` did."""

    folder: Path
    config_hash: str
    seeds_run: list
    seeds_skipped: list
    seconds: float
    compile_seconds: float
    rows: dict  # every stored row of this configuration (numpy columns)


def experiment_hash(system: str, spec, settings: dict) -> str:
    """16-hex-digit SHA-256 of the canonical JSON of ``(system, spec fields, settings)``."""
    doc = {"model": system, "spec": _plain(spec_fields(spec)), "settings": _plain(settings)}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _settings_columns(settings: dict) -> dict:
    out = {}
    for k, v in settings.items():
        out[k] = json.dumps(_plain(v), sort_keys=True) if isinstance(v, (dict, list, tuple)) else v
    return out


def run_experiment_job(
    folder,
    *,
    system: str,
    spec,
    seeds: Sequence[int],
    run_seeds: Callable[..., dict],
    settings: dict | None = None,
    label: str = "",
    extend: bool = False,
    log=None,
    job: str | None = None,
    source: str = "train",
) -> ExperimentJob:
    """Run (or resume) the seeds of one experiment configuration into a results folder.

    Args:
        folder: the results folder.
        system: the registered system name (the ``model`` column).
        spec: the configuration's frozen spec dataclass.
        seeds: the seeds to have in the folder; those already stored are skipped.
        run_seeds: ``fn(spec, seeds) -> {column: array}`` with one row per (seed, checkpoint):
            must contain ``seed`` and ``epoch``; called once with all missing seeds (the system
            trains them at once, vmapped and sharded as it likes).
        settings: further settings that shape the rows (JSON-able); columns and hashed.
        label: a human label for the manifest and reports.
        extend: allow adding this configuration to a folder holding other configurations.
        job: the job name in the manifest (default the system name).
        source: the ``source`` of the rows.
    """
    log = sys.stderr if log is None else log
    settings = dict(settings or {})
    t0 = time.perf_counter()
    h = experiment_hash(system, spec, settings)
    store = ResultStore(folder)
    store.prepare()
    try:
        doc = store.read_manifest() or {}
        known = doc.get("configs", {})
        if known and h not in known and not extend:
            raise StoreError(
                f"{str(store.folder)!r} already holds results of {len(known)} other "
                f"configuration(s); use --extend (extend=True) to add this one "
                f"({label or h}), or choose another --out"
            )
        seeds = sorted({int(s) for s in seeds})
        if not seeds or min(seeds) < 0:
            raise SpecError(f"seeds must be non-negative integers, got {seeds!r}")
        entry = {
            "model": system,
            "spec": _plain(spec_fields(spec)),
            "settings": _plain(settings),
            "num_seeds": len(seeds),
            "num_starts": len(seeds),
            "starts": {source: len(seeds)},
            "label": label,
        }
        old = known.get(h)
        if old is not None:
            entry["num_seeds"] = max(entry["num_seeds"], int(old.get("num_seeds", 0)))
        known[h] = entry
        prov = provenance(jax.local_devices())
        runs = doc.get("runs", [])[-49:] + [
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "job": job or system,
                "name": label or system,
                "configs": [h],
                "settings": _plain(settings),
                **{
                    k: prov[k]
                    for k in ("ufm_version", "jax_version", "git_commit", "host", "command")
                },
            }
        ]
        store.write_manifest(
            {
                "format": "ufm-results/1",
                "name": doc.get("name", label or system),
                "configs": known,
                "invalid": doc.get("invalid", []),
                "runs": runs,
            }
        )
        done = {s for src, s in store.done_keys().get(h, set()) if src == source}
        todo = [s for s in seeds if s not in done]
        compile_s = 0.0
        if todo:
            t1 = time.perf_counter()
            with CompileTimer() as ct:
                cols = run_seeds(spec, np.asarray(todo, np.int64))
            compile_s = ct.seconds
            cols = {k: np.asarray(v) for k, v in cols.items()}
            for k in ("seed", "epoch"):
                if k not in cols:
                    raise ValueError(f"run_seeds must return a {k!r} column")
            n = len(cols["seed"])
            cols = {"source": np.full(n, source, dtype=object), **cols}
            config = SweepConfig(0, system, spec, {}, h, label)
            table = chunk_table(
                config,
                cols,
                _settings_columns(settings),
                prov,
                time.perf_counter() - t1,
                compile_s,
                store.writer,
            )
            store.write_chunk(table, column_docs_for(table.column_names, spec_fields(spec)))
    finally:
        store.release()
    t = load_results_arrow(folder)
    rows = {k: t.column(k).to_numpy(zero_copy_only=False) for k in t.column_names}
    if rows:
        keep = rows["config_hash"] == h
        rows = {k: v[keep] for k, v in rows.items()}
    return ExperimentJob(
        Path(folder), h, todo, sorted(done & set(seeds)), time.perf_counter() - t0, compile_s, rows
    )


def spec_as_settings(spec) -> dict:
    """The fields of a dataclass spec as a plain dict (for labels and messages)."""
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
