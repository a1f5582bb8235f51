"""Run a preset (a list of specs over seeds) into one results folder, resumable; write its report.

:func:`run_preset` runs every spec of a :class:`~ufm.systems.spectral.presets.Preset` through
:func:`ufm.systems.spectral.experiment.run_spec` (one configuration per method in the common store,
one row per seed x checkpoint). A folder that already holds other configurations is refused unless
``extend=True``; a rerun with the same settings skips the stored seeds (resume), and more seeds
extend the stored ones. :func:`write_preset_report` prints nothing: it writes ``summary.txt`` (the
tables) and the figures into the folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ufm.core import Progress, SpecError, check_int
from ufm.report.folder import write_text
from ufm.runs.experiment import experiment_hash
from ufm.runs.store import refuse_new_configs
from ufm.systems.spectral.experiment import EvalSettings, run_spec
from ufm.systems.spectral.presets import Preset
from ufm.systems.spectral.spec import METHODS, SpectralSpec, spec_label
from ufm.systems.spectral.summary import (
    StabilityCriteria,
    method_table,
    power_sweep,
    power_table,
    verdict,
)


class PresetResult(NamedTuple):
    """What :func:`run_preset` did: the specs, every stored row of them (dict of arrays), seconds
    of the whole run and of compilation, and the seeds trained / skipped per spec label."""

    specs: list
    rows: dict
    seconds: float
    compile_seconds: float
    trained: dict
    skipped: dict


def select_methods(specs: list[SpectralSpec], methods) -> list[SpectralSpec]:
    """The specs whose ``method`` is in ``methods`` (``None``: all); unknown names are refused."""
    if methods is None:
        return specs
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SpecError(f"methods must be among {', '.join(METHODS)}; got {', '.join(bad)}")
    out = [s for s in specs if s.method in methods]
    if not out:
        raise SpecError(f"methods {', '.join(methods)} select no run of this preset")
    return out


def check_folder(folder, specs, settings: dict, extend: bool) -> None:
    """Refuse (``StoreError``) to add configurations to a ``folder`` that holds others, unless
    ``extend`` (:func:`ufm.runs.store.refuse_new_configs`); rerunning some of its own is a
    resume."""
    refuse_new_configs(
        folder, [experiment_hash("spectral", s, settings) for s in specs], extend=extend
    )


def run_preset(
    preset: Preset,
    folder,
    *,
    seeds: int | None = None,
    methods=None,
    settings: EvalSettings = EvalSettings(),
    extend: bool = False,
    progress: bool | None = None,
    log=None,
    **overrides,
) -> PresetResult:
    """Run (or resume) ``preset`` into ``folder``; ``overrides`` (``epochs``, ``data_dir``,
    ``dtype``, ...) apply to every spec. ``progress=None`` shows a bar on a terminal only."""
    t0 = time.perf_counter()
    n_seeds = check_int("seeds", preset.seeds if seeds is None else seeds, 1)
    specs = select_methods(preset.specs(**overrides), methods)
    check_folder(folder, specs, settings.as_settings(), extend)
    total = sum(s.epochs for s in specs)
    bar = Progress(
        total,
        f"spectral {preset.name}",
        unit="epochs",
        quiet=progress is False,
        force=bool(progress),
    )
    rows: dict[str, list] = {}
    trained, skipped, compile_s = {}, {}, 0.0
    with bar:
        for spec in specs:
            done = [0]

            def tick(epoch, _epochs, done=done):
                bar.update(epoch - done[0])
                done[0] = epoch

            job = run_spec(
                folder,
                spec,
                range(n_seeds),
                settings=settings,
                progress=tick,
                extend=True,
                log=log,
            )
            bar.update(spec.epochs - done[0])
            label = spec_label(spec)
            trained[label], skipped[label] = list(job.seeds_run), list(job.seeds_skipped)
            compile_s += job.compile_seconds
            keep = np.isin(job.rows["seed"], np.arange(n_seeds))
            for k, v in job.rows.items():
                rows.setdefault(k, []).append(np.asarray(v)[keep])
            bar.write(
                f"  {label}: {len(job.seeds_run)} seed(s) trained, "
                f"{len(job.seeds_skipped)} already stored"
            )
    cols = {k: np.concatenate(v) for k, v in rows.items() if len(v) == len(specs)}
    return PresetResult(specs, cols, time.perf_counter() - t0, compile_s, trained, skipped)


def report_text(rows, criteria: StabilityCriteria = StabilityCriteria()) -> str:
    """The tables of a comparison: per method, then the p-sweep with the stability verdict."""
    entries = power_sweep(rows, criteria)
    parts = [
        "Per method at the last checkpoint (mean +- sd over the finished seeds; Z = projector "
        "output,\nZ_hat = Z after the method's transform, H = encoder output; accuracies on the "
        "test split):",
        method_table(rows),
    ]
    if entries:
        parts += ["", "Power family g = lambda^-p (p = 1/2: whitening):", power_table(entries)]
        parts += ["", verdict(entries, criteria)]
    return "\n".join(parts)


def write_preset_report(
    folder, rows, text: str, *, figures: bool = True, criteria=StabilityCriteria()
) -> list[Path]:
    """Write ``summary.txt`` and (unless ``figures=False``) the three figures, atomically."""
    from ufm.systems.spectral.figures import write_figures

    made = [write_text(Path(folder) / "summary.txt", text + "\n")]
    if figures:
        made += write_figures(folder, rows, power_sweep(rows, criteria))
    return made
