"""The feature-collapse job: presets into a results folder, a summary table, collapse verdicts.

Feature collapse: Laurent, von Brecht, Bresson (2023), arXiv 2305.16162 (ICLR 2024).

:func:`run_job` runs the configurations of a :data:`.presets.JOB_PRESETS` entry (e.g.
``zipf-gap``: the Zipf data set without and with LayerNorm) through
:func:`ufm.runs.run_experiment_job`: one row per seed x checkpoint with every metric of
:func:`.experiment.make_evaluate` and the predictions of :func:`.experiment.predictions` as
columns, the folder lock, the manifest and resumption (seeds already stored are skipped). The
final embeddings ``W`` of every seed are kept in ``DIR/embeddings/<config_hash>/seed-<s>.npz``
for the figures. The summary compares measured and predicted norms and names the collapse type
the numbers show (:func:`.summary.collapse_verdict`); :mod:`.figures` draws the figure set.

Example (the configurations of a preset; ``run_job("zipf-gap")`` trains them):
    >>> [fc_label(c) for c in job_configs("zipf-gap")]
    ['K=200 nspl=5 zipf', 'K=200 nspl=5 zipf +LN']
    >>> [(fc_label(c), c.epochs) for c in job_configs("small", layernorm=True, epochs=50)]
    [('K=50 nspl=100 uniform +LN', 50)]
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...core.progress import Progress
from ...core.timing import CompileTimer
from ...core.validation import SpecError, check_int
from ...optim.status import STATUS_NAMES
from ...report.folder import write_text
from ...runs.experiment import experiment_hash, run_experiment_job
from ...runs.store import load_results, refuse_new_configs
from .embeddings import save_embeddings
from .experiment import default_checkpoints, experiment_rows, train_seeds
from .figures import write_figures
from .objective import fc_label
from .presets import JOB_PRESETS
from .spec import FeatureCollapseSpec
from .summary import entries_json, summary_entries, summary_text

__all__ = [
    "FCJob",
    "check_folder",
    "checkpoint_epochs",
    "default_out",
    "job_configs",
    "run_job",
]

SYSTEM_NAME = "feature_collapse"


class FCJob(NamedTuple):
    """What :func:`run_job` did.

    Attributes:
        folder: the results folder.
        preset: the preset name.
        configs: the configurations run (specs, in preset order).
        hashes: their configuration hashes (the ``config_hash`` column).
        rows: every stored row of these configurations (a pandas DataFrame).
        seeds_run, seeds_skipped: per configuration hash, the seeds trained now / found stored.
        entries: :func:`summary_entries` of ``rows``.
        text: the printed summary (:func:`summary_text`).
        figures: paths of the figures written.
        seconds, compile_seconds: wall time of the job and its compilation part.
    """

    folder: Path
    preset: str
    configs: tuple
    hashes: tuple
    rows: object
    seeds_run: dict
    seeds_skipped: dict
    entries: list
    text: str
    figures: list
    seconds: float
    compile_seconds: float


def checkpoint_epochs(epochs: int, num: int) -> list[int]:
    """``num`` evenly spaced checkpoints plus the 1-2-5 epochs below the first one (so that the
    early phase, e.g. delayed generalisation, is resolved).

    >>> checkpoint_epochs(3000, 30)[:8]
    [0, 1, 2, 5, 10, 20, 50, 100]
    >>> checkpoint_epochs(4, 2)
    [0, 1, 2, 4]
    """
    epochs = check_int("epochs", epochs, 0)
    num = check_int("checkpoints", num, 1)
    linear = default_checkpoints(epochs, num)
    first = epochs / num
    early = [m * 10**e for e in range(12) for m in (1, 2, 5) if m * 10**e < first]
    return sorted(set(linear) | {e for e in early if e <= epochs})


def job_configs(preset: str, *, epochs=None, layernorm=None) -> tuple:
    """The configurations of ``preset`` with the command-line overrides applied.

    ``epochs`` replaces every configuration's epochs. ``layernorm=True`` / ``False`` keeps the
    preset's configuration with that setting, or switches LayerNorm on / off in its first
    configuration when it has none (``weight_decay_w`` then follows the paper's rule).
    """
    if preset not in JOB_PRESETS:
        raise SpecError(f"preset must be one of {', '.join(JOB_PRESETS)}; got {preset!r}")
    configs = JOB_PRESETS[preset].configs
    if layernorm is not None:
        if not isinstance(layernorm, bool):
            raise SpecError(f"layernorm must be True, False or None, got {layernorm!r}")
        same = [c for c in configs if c.layernorm == layernorm]
        configs = tuple(same[:1]) or (configs[0].replace(layernorm=layernorm),)
    if epochs is not None:
        configs = tuple(c.replace(epochs=check_int("epochs", epochs, 0)) for c in configs)
    return configs


def check_folder(folder, configs, num_checkpoints: int, *, extend: bool = False) -> None:
    """Refuse, before any training, to add new configurations to a folder that holds results
    of others (unless ``extend``): the :class:`ufm.runs.StoreError` that the store would raise
    later. Rerunning some or all of the folder's own configurations is fine (resume)."""
    ours = [experiment_hash(SYSTEM_NAME, c, _settings(c, num_checkpoints)) for c in configs]
    refuse_new_configs(folder, ours, extend=extend)


def _settings(spec: FeatureCollapseSpec, num_checkpoints: int) -> dict:
    return {"checkpoints": checkpoint_epochs(spec.epochs, num_checkpoints)}


def default_out(preset: str, configs, num_checkpoints: int) -> Path:
    """``./ufm-results/feature-collapse-<preset>-<8 hex digits of the configurations>``."""
    hashes = [experiment_hash(SYSTEM_NAME, c, _settings(c, num_checkpoints)) for c in configs]
    tag = hashlib.sha256(",".join(hashes).encode()).hexdigest()[:8]
    return Path("ufm-results") / f"feature-collapse-{preset}-{tag}"


# -- the job ------------------------------------------------------------------------------------


def _store_rows(spec, seeds, res, data) -> dict:
    rows = experiment_rows(spec, seeds, res, data)
    rows["status"] = np.array([STATUS_NAMES.get(int(s), f"status_{s}") for s in rows["status"]])
    rows["status"] = rows["status"].astype(object)
    return rows


def run_job(
    preset: str = "tiny",
    *,
    configs=None,
    seeds=None,
    epochs=None,
    layernorm=None,
    checkpoints=None,
    out=None,
    extend: bool = False,
    figures: bool = True,
    quiet: bool = False,
    log=None,
) -> FCJob:
    """Run (or resume) the configurations of ``preset`` into a results folder.

    Args:
        preset: a :data:`.presets.JOB_PRESETS` name.
        configs: run these :class:`FeatureCollapseSpec` instead of the preset's (the preset
            still gives the default seeds and checkpoints, and names the default folder);
            ``epochs`` and ``layernorm`` must then be ``None``.
        seeds: number of seeds (``range(seeds)``; default: the preset's); seeds already in the
            folder are skipped, so raising it extends a finished run.
        epochs: override the epochs of every configuration.
        layernorm: ``True`` / ``False``: run only the configuration with / without LayerNorm
            (:func:`job_configs`); ``None``: all of the preset's.
        checkpoints: number of evenly spaced checkpoints (default: the preset's; early 1-2-5
            epochs are added, :func:`checkpoint_epochs`).
        out: the results folder (default :func:`default_out`).
        extend: allow adding these configurations to a folder that holds other results.
        figures: write the figure set into ``out/figures``.
        quiet: no progress bar and no status lines.
        log: stream of the status lines (default ``sys.stderr``).
    """
    log = sys.stderr if log is None else log
    if configs is None:
        configs = job_configs(preset, epochs=epochs, layernorm=layernorm)
    else:
        job_configs(preset)  # validates the name
        if epochs is not None or layernorm is not None:
            raise SpecError("epochs and layernorm apply to a preset's configurations, not configs")
        configs = tuple(configs)
        if not configs or not all(isinstance(c, FeatureCollapseSpec) for c in configs):
            raise SpecError("configs must be a non-empty sequence of FeatureCollapseSpec")
        if len({fc_label(c) for c in configs}) < len(configs):
            raise SpecError("configs must have distinct labels (fc_label)")
    info = JOB_PRESETS[preset]
    num_seeds = check_int("seeds", info.seeds if seeds is None else seeds, 1)
    num_cps = check_int("checkpoints", info.checkpoints if checkpoints is None else checkpoints, 1)
    folder = Path(out) if out is not None else default_out(preset, configs, num_cps)
    check_folder(folder, configs, num_cps, extend=extend)
    if not quiet:
        import jax

        print(
            f"feature-collapse {preset}: {len(configs)} configuration(s) x {num_seeds} seed(s) "
            f"on {jax.default_backend()} -> {folder}",
            file=log,
        )
    t0 = time.perf_counter()
    bar = Progress(
        sum(c.epochs for c in configs),
        f"feature-collapse {preset}",
        unit="epochs",
        quiet=quiet,
    )
    hashes, seeds_run, seeds_skipped, compile_s = [], {}, {}, 0.0
    with bar:
        for i, spec in enumerate(configs):
            settings = _settings(spec, num_cps)
            h = experiment_hash(SYSTEM_NAME, spec, settings)
            label = fc_label(spec)

            def run_seeds(spec, todo, *, _h=h, _cps=settings["checkpoints"]):
                bar.write(f"{fc_label(spec)}: training seeds {list(map(int, todo))}")
                bar.set_description(f"{preset} {fc_label(spec)}")
                bar.set_phase("compile")
                last = {"done": 0, "t": time.perf_counter(), "compile": 0.0}

                def progress(done, total):
                    # seconds of compute, compilation left out, so that the ETA does not swing
                    now = time.perf_counter()
                    secs = (now - last["t"]) - (timer.seconds - last["compile"])
                    bar.set_phase("train")
                    bar.update(done - last["done"], seconds=max(secs, 0.0))
                    last.update(done=done, t=now, compile=timer.seconds)

                with CompileTimer() as timer:
                    res, data = train_seeds(spec, todo, checkpoints=_cps, progress=progress)
                save_embeddings(folder, _h, todo, res.params["W"])
                return _store_rows(spec, todo, res, data)

            job = run_experiment_job(
                folder,
                system=SYSTEM_NAME,
                spec=spec,
                seeds=range(num_seeds),
                run_seeds=run_seeds,
                settings=settings,
                label=label,
                extend=extend or i > 0,
                log=log,
                job="feature-collapse",
            )
            if not job.seeds_run:
                bar.update(spec.epochs)
            hashes.append(h)
            seeds_run[h], seeds_skipped[h] = list(job.seeds_run), list(job.seeds_skipped)
            compile_s += job.compile_seconds
    rows = load_results(folder)
    rows = rows[rows["config_hash"].isin(hashes) & rows["seed"].isin(range(num_seeds))]
    rows = rows.reset_index(drop=True)
    entries = summary_entries(rows, configs, hashes)
    text = summary_text(entries)
    made = []
    if figures:
        made = write_figures(folder, rows, configs, hashes)
    write_text(folder / "summary.txt", text + "\n")
    write_text(folder / "summary.json", entries_json(entries) + "\n")
    return FCJob(
        folder=folder,
        preset=preset,
        configs=configs,
        hashes=tuple(hashes),
        rows=rows,
        seeds_run=seeds_run,
        seeds_skipped=seeds_skipped,
        entries=entries,
        text=text,
        figures=made,
        seconds=time.perf_counter() - t0,
        compile_seconds=compile_s,
    )
