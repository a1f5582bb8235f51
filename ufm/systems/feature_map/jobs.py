"""Run a preset's configurations into a results folder (the common store) and read them back.

Each configuration goes through :func:`ufm.runs.run_experiment_job` (folder lock, manifest,
resume: seeds already stored are skipped, provenance, column docs): one row per seed x
checkpoint with the columns of :func:`ufm.systems.feature_map.run_experiment`, the settings
``config`` (the preset's name of the configuration), ``role`` (``spectra`` or ``etf``),
``mf_criterion`` (the verdict's thresholds, JSON) and ``rss_epochs``, and for ``etf``
configurations the memory columns of :func:`train_step_memory` and, when ``rss_epochs > 0``,
:func:`peak_rss`. Full spectra and mass curves are *list columns* (``rho``, ``rho_centred``,
``pi_star``, ``pi_hat``: one float64 array per row), so the folder alone holds everything the
figures need; :func:`ufm.load_results` returns them as arrays in the cells.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from ...core.progress import Progress
from ...core.validation import SpecError
from ...runs.experiment import experiment_hash, run_experiment_job
from ...runs.store import load_results, refuse_new_configs
from .etf import peak_rss, train_step_memory
from .experiment import criterion_settings, run_experiment
from .model import data_info
from .presets import Preset
from .spec import spec_label
from .verdict import MFCriterion

__all__ = ["COLUMN_DOCS", "PresetRun", "run_preset", "load_rows", "SYSTEM_NAME"]

SYSTEM_NAME = "feature_map"

#: Docs of the row columns (registered with ufm.runs.schema when the system is imported).
COLUMN_DOCS = {
    "config": "name of the configuration within its preset (feature_map: mlp-mse, etf-10, ...)",
    "role": "feature_map: spectra (MF/EF over epochs) or etf (fixed ETF classifier comparison)",
    "mf_criterion": "feature_map: thresholds of the MF/EF verdict (JSON: target_mass, "
    "rank_factor, max_gap, max_d_lr)",
    "rss_epochs": "feature_map: epochs of the peak-RSS subprocess (0: not measured)",
    "epoch_loss": "mean minibatch loss of the epoch ending at the checkpoint, as trained "
    "(lazy runs: divided by alpha^2; NaN at epoch 0)",
    "train_loss": "data loss (MSE or CE, unscaled) on the full training split at the checkpoint",
    "train_acc": "accuracy on the full training split at the checkpoint",
    "test_loss": "data loss (MSE or CE, unscaled) on the test split at the checkpoint",
    "test_acc": "accuracy on the test split at the checkpoint",
    "pi_star_C": "feature_map: target mass Pi*(C) of the first C eigenfunctions of the readout's "
    "feature operator",
    "pi_hat_C": "feature_map: utilisation Pi_hat(C) (the same for the network's outputs)",
    "k_target": "feature_map: eigenfunctions needed for target_mass of the targets (inf: more "
    "than all of them)",
    "effective_rank": "feature_map: exp(entropy) of the centred feature spectrum",
    "participation_ratio": "feature_map: (sum rho^c)^2 / sum (rho^c)^2 of the centred spectrum",
    "centred_gap": "feature_map: rho^c_C / rho^c_{C-1} of the centred spectrum (0 = clean gap)",
    "d_lr": "feature_map: D_LR = 1 - CKA(centred feature kernel, projection onto the outputs)",
    "feature_rank": "feature_map: eigenvalues of the readout operator above rtol * rho_1 (count)",
    "verdict": "feature_map: MF (minimal features), EF (extended) or mixed (docs/feature_map.md)",
    "verdict_failed": "feature_map: the verdict's failed checks (comma-separated; empty for MF)",
    "nc2_etf_means": "NC2 simplex-ETF error of the centred class means",
    "nc2_etf_weights": "NC2 simplex-ETF error of the classifier rows (0 for a fixed ETF head)",
    "rho": "feature_map: eigenvalues of the readout's feature operator (list, descending)",
    "rho_centred": "feature_map: eigenvalues of the centred feature operator (list, descending)",
    "pi_star": "feature_map: target-mass curve Pi*(k), k = 1..q (list)",
    "pi_hat": "feature_map: utilisation curve Pi_hat(k), k = 1..q (list)",
    "num_classes": "classes of the data set (count)",
    "params_trainable": "trained scalar parameters of the network (count)",
    "params_total": "scalar parameters of the network, frozen ones included (count)",
    "wall_time_s": "wall time of the training call of the seeds run together (s)",
    "compile_time_s": "of wall_time_s, ahead-of-time compilation (s)",
    "step_bytes": "feature_map: XLA memory of one compiled training step of one seed: arguments "
    "+ outputs + temporaries - aliased (bytes)",
    "step_temp_bytes": "feature_map: temporaries of that step (bytes)",
    "param_bytes": "feature_map: parameter bytes of one seed",
    "opt_state_bytes": "feature_map: optimiser-state bytes of one seed",
    "rss_peak_bytes": "feature_map: peak RSS of a process training one seed for rss_epochs epochs "
    "(bytes; includes compilation and the runtime)",
    "rss_delta_bytes": "feature_map: rss_peak_bytes minus the RSS before training (bytes)",
}


class PresetRun(NamedTuple):
    """What :func:`run_preset` did: the folder, ``[(name, role, spec, config_hash)]``, the
    rows of these configurations (a pandas DataFrame), seeds run and skipped, seconds."""

    folder: Path
    configs: list
    rows: object
    seeds_run: int
    seeds_skipped: int
    seconds: float


def _memory_columns(spec, n: int, rss_epochs: int) -> dict:
    m = train_step_memory(spec)
    cols = {
        "step_bytes": m["step_bytes"],
        "step_temp_bytes": m["temp_bytes"],
        "param_bytes": m["param_bytes"],
        "opt_state_bytes": m["opt_state_bytes"],
    }
    if rss_epochs:
        r = peak_rss(spec, epochs=rss_epochs)
        cols.update(rss_peak_bytes=r["rss_peak_bytes"], rss_delta_bytes=r["rss_delta_bytes"])
    return {k: np.full(n, v, np.int64) for k, v in cols.items()}


def run_preset(
    preset: Preset,
    folder,
    *,
    mode: str = "all",
    seeds: int | None = None,
    only=None,
    data_path: str | None = None,
    channels_last: bool = False,
    epochs: int | None = None,
    devices: int | None = None,
    rss: bool | None = None,
    criterion: MFCriterion = MFCriterion(),
    extend: bool = False,
    progress: bool | None = None,
    log=None,
) -> PresetRun:
    """Run (or resume) the configurations of ``preset`` into ``folder``.

    Args: ``mode``/``only``/``data_path``/``channels_last``/``epochs`` select and adapt the
    configurations (:meth:`Preset.specs`); ``seeds`` per configuration (default: the
    preset's); ``devices`` to shard the seeds over; ``rss`` measures peak RSS for the ``etf``
    configurations (default: the preset's ``rss_epochs > 0``); ``extend`` allows a folder that
    holds other configurations; ``progress``: ``None`` = a bar on a terminal, ``False`` = none.
    Every spec is built and its data loaded before any training, so a bad option fails first.
    """
    t0 = time.perf_counter()
    log = sys.stderr if log is None else log
    folder = Path(folder)
    configs = preset.specs(
        mode, only=only, data_path=data_path, channels_last=channels_last, epochs=epochs
    )
    seeds = preset.seeds if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpecError(f"seeds must be an integer >= 1, got {seeds!r}")
    rss_epochs = preset.rss_epochs if rss is None or rss else 0
    if rss and not rss_epochs:
        rss_epochs = 2
    planned = []
    for name, role, spec in configs:
        data_info(spec)  # loads and checks the data: errors before any training
        settings = {
            "config": name,
            "role": role,
            "mf_criterion": criterion_settings(criterion),
            "rss_epochs": rss_epochs if role == "etf" else 0,
        }
        planned.append((name, role, spec, settings, experiment_hash(SYSTEM_NAME, spec, settings)))
    refuse_new_configs(folder, [p[-1] for p in planned], extend=extend)
    ndev = devices or (1 if jax.default_backend() == "cpu" else jax.local_device_count())
    print(
        f"feature-map: preset {preset.name!r}, {len(planned)} configuration(s) x {seeds} seeds "
        f"on {ndev} {jax.default_backend()} device(s) -> {folder}",
        file=log,
    )
    total = sum(spec.epochs for _, _, spec, _, _ in planned)
    bar = Progress(total, "feature-map", unit="epochs", quiet=progress is False)
    ran = skipped = 0
    try:
        for i, (name, role, spec, settings, _h) in enumerate(planned):
            bar.write(
                f"[{i + 1}/{len(planned)}] {name} ({role}): {seeds} seeds x "
                f"{spec.epochs} epochs, {spec_label(spec)}"
            )
            done = [0]

            def tick(d, _total, done=done):
                bar.update(d - done[0])
                done[0] = d

            def run_seeds(spec, todo, role=role, settings=settings, tick=tick):
                rows = run_experiment(
                    spec, todo, criterion=criterion, devices=devices, progress=tick
                )
                if role == "etf":
                    rows.update(_memory_columns(spec, len(rows["seed"]), settings["rss_epochs"]))
                return rows

            job = run_experiment_job(
                folder,
                system=SYSTEM_NAME,
                spec=spec,
                seeds=range(seeds),
                run_seeds=run_seeds,
                settings=settings,
                label=name,
                extend=True,
                log=log,
                job="feature-map",
            )
            ran += len(job.seeds_run)
            skipped += len(job.seeds_skipped)
            bar.update(spec.epochs - done[0])
    finally:
        bar.close()
    hashes = [p[-1] for p in planned]
    rows = load_rows(folder)
    if len(rows):
        order = {h: i for i, h in enumerate(hashes)}
        rows = rows[rows["config_hash"].isin(hashes)]
        rank = rows["config_hash"].map(order)
        rows = rows.assign(_rank=rank).sort_values(["_rank", "seed", "epoch"], kind="stable")
        rows = rows.drop(columns="_rank").reset_index(drop=True)
    out = [(n, r, s, h) for n, r, s, _, h in planned]
    return PresetRun(folder, out, rows, ran, skipped, time.perf_counter() - t0)


def load_rows(folder):
    """The rows of a feature-map results folder (``ufm.load_results`` restricted to this
    system), sorted by configuration, seed and epoch."""
    rows = load_results(folder)
    if not len(rows):
        return rows
    rows = rows[rows["model"] == SYSTEM_NAME]
    return rows.sort_values(["config", "seed", "epoch"], kind="stable").reset_index(drop=True)
