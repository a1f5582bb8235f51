"""The row schema of the result store: every column, its meaning and unit.

Written into the Parquet metadata of every chunk file (``ufm.runs.store.column_docs`` reads it back)
and documented in docs/results.md (a test keeps the two equal). Analyses register the docs of
their own columns (:func:`ufm.runs.register_analysis`, ``columns=``); the spec fields of a
configuration are columns too, documented by their system.
"""

from __future__ import annotations

import fnmatch

__all__ = [
    "BASE_DOCS",
    "column_docs_for",
    "register_column_docs",
    "all_column_docs",
    "schema_markdown",
]

#: Columns every row of a landscape or sweep folder has, and their meaning (unit).
BASE_DOCS = {
    # identity
    "config_hash": "16-hex-digit SHA-256 of the configuration: model, spec fields, optimiser "
    "settings, analyses with options, seed base and init scale",
    "model": "registered system of the configuration (ufm, deep_ufm, ...)",
    "label": "short human label of the configuration (the grid values that vary in its run)",
    "source": "kind of start: random, planted (optimum of a smaller problem, embedded), origin, "
    "newton (generic critical-point finder)",
    "seed": "index of the start within its source (random seed i starts from fold_in(key(base), "
    "i))",
    "dim": "dimension of the start's subspace: d for random starts, d' for planted, 0 for the "
    "origin, -1 where not defined",
    "class_sizes": "samples per class, K ints (a tuple in pandas), read from the UFM's n when the "
    "folder holds unequal class sizes; n is then null (<NA>) for those rows and an int for the "
    "balanced ones, whatever else shares the folder",
    # the run
    "status": "first-order optimiser status: converged (||grad f|| <= tol), max_steps (step budget "
    "used up), diverged (loss or ||grad f|| above the divergence threshold), nan",
    "steps": "first-order steps taken (count)",
    "f": "objective value of the final (polished) point",
    "grad_norm": "||grad f|| of the final (polished) point",
    "first_order_grad_norm": "||grad f|| where the first-order optimiser stopped",
    "polished": "the polish stage reached ||grad f|| <= polish tolerance (bool)",
    "polish_iterations": "Newton / L-BFGS iterations of the polish stage (count)",
    "error": "messages of analyses that failed on this chunk (null if none)",
    # settings (every setting that shaped the row)
    "opt_name": "first-order optimiser (ufm.make_optimizer name)",
    "opt_learning_rate": "learning rate of the first-order optimiser",
    "opt_max_steps": "step budget per start (count)",
    "opt_tol": "gradient-norm tolerance of the first-order optimiser",
    "opt_chunk": "steps per compiled chunk (count)",
    "opt_divergence_threshold": "loss / gradient norm above which a start is flagged diverged",
    "opt_options": "further optimiser options (JSON object)",
    "opt_polish": "polish method requested: auto, newton, lbfgs or none",
    "opt_polish_tol": "gradient-norm target of the polish stage (null: dtype default)",
    "opt_polish_max_iter": "iteration budget of the polish stage (null: method default)",
    "base_seed": "PRNG seed of the starts",
    "init_scale": "standard deviation of the random initialisation (null: the system default)",
    "analyses": "analyses run on the final points with their options (JSON object)",
    # provenance
    "ufm_version": "ufm version",
    "jax_version": "jax version",
    "jaxlib_version": "jaxlib version",
    "numpy_version": "numpy version",
    "python_version": "Python version",
    "git_commit": "git commit of the ufm source tree (+dirty with local changes; empty outside "
    "a checkout)",
    "platform": "JAX platform (cpu, gpu, tpu)",
    "device_kind": "device model",
    "num_devices": "devices the chunk was sharded over (count)",
    "matmul_precision": "jax_default_matmul_precision",
    "x64": "64-bit JAX enabled (bool)",
    "process_index": "JAX process of a multi-process run",
    "process_count": "JAX processes of the run (count)",
    "host": "host name",
    "writer": "writer id of the process or array task that wrote the row",
    "timestamp": "time the chunk was written (UTC)",
    "chunk_seconds": "wall time of the chunk, compilation included (s)",
    "compile_seconds": "of chunk_seconds, time spent compiling (s; 0 when the code was cached)",
    "chunk_size": "starts in the chunk (count)",
    "epoch": "training epoch of a checkpoint row (trained-network systems; 0 = initialisation)",
}

_ANALYSIS_DOCS: dict[str, str] = {}


def register_column_docs(docs: dict) -> None:
    """Add ``{column: meaning (unit)}`` entries (analyses and systems document their columns;
    a key may be a glob pattern, e.g. ``dnc1_pinv_*``)."""
    _ANALYSIS_DOCS.update(docs)


def all_column_docs() -> dict:
    """Every documented column: the base columns and those registered by analyses."""
    return {**BASE_DOCS, **_ANALYSIS_DOCS}


def column_docs_for(names, spec_fields=()) -> dict:
    """Docs of the columns ``names`` (spec fields are documented as such)."""
    docs = all_column_docs()
    patterns = [(k, v) for k, v in docs.items() if "*" in k]
    out = {}
    for k in names:
        if k in docs:
            out[k] = docs[k]
        elif k in spec_fields:
            out[k] = "spec field of the configuration"
        else:
            hit = next((v for pat, v in patterns if fnmatch.fnmatchcase(k, pat)), None)
            if hit is not None:
                out[k] = hit
    return out


def schema_markdown() -> str:
    """The column table of docs/results.md (a test keeps the file equal to it)."""
    lines = ["| column | meaning (unit) |", "|---|---|"]
    for k, v in all_column_docs().items():
        lines.append(f"| `{k}` | {v} |")
    return "\n".join(lines)
