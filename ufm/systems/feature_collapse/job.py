"""The feature-collapse job: presets into a results folder, a summary table, collapse verdicts.

Feature collapse: Laurent, von Brecht, Bresson (2023), arXiv 2305.16162 (ICLR 2024).

:func:`run_job` runs the configurations of a :data:`.presets.JOB_PRESETS` entry (e.g.
``zipf-gap``: the Zipf data set without and with LayerNorm) through
:func:`ufm.runs.run_experiment_job`: one row per seed x checkpoint with every metric of
:func:`.experiment.make_evaluate` and the predictions of :func:`.experiment.predictions` as
columns, the folder lock, the manifest and resumption (seeds already stored are skipped). The
final embeddings ``W`` of every seed are kept in ``DIR/embeddings/<config_hash>/seed-<s>.npz``
for the figures. The summary compares measured and predicted norms and names the collapse type
the numbers show (:func:`collapse_verdict`); :mod:`.figures` draws the figure set.

Example (the configurations of a preset; ``run_job("zipf-gap")`` trains them):
    >>> [fc_label(c) for c in job_configs("zipf-gap")]
    ['K=200 nspl=5 zipf', 'K=200 nspl=5 zipf +LN']
    >>> [(fc_label(c), c.epochs) for c in job_configs("small", layernorm=True, epochs=50)]
    [('K=50 nspl=100 uniform +LN', 50)]
"""

from __future__ import annotations

import hashlib
import json
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
from ...report.tables import format_table
from ...runs.experiment import experiment_hash, run_experiment_job
from ...runs.store import ResultStore, StoreError, load_results
from .embeddings import save_embeddings
from .experiment import default_checkpoints, experiment_rows, train_seeds
from .figures import write_figures
from .objective import fc_label
from .presets import JOB_PRESETS
from .spec import FeatureCollapseSpec

__all__ = [
    "DIR_TOL",
    "CV_TOL",
    "RHO_TOL",
    "NORM_TOL",
    "FCJob",
    "check_folder",
    "checkpoint_epochs",
    "collapse_verdict",
    "default_out",
    "job_configs",
    "run_job",
    "summary_entries",
    "summary_text",
    "entries_json",
]

SYSTEM_NAME = "feature_collapse"

#: Directions are collapsed when the mean ``1 - cos(phi(w), concept mean)`` is below this.
DIR_TOL = 0.1
#: Norms are equal (type I) when the spread ``std / mean`` of ``||w||`` is below this.
CV_TOL = 0.2
#: Norms follow the frequency (type III) when Spearman(``||w||``, ``mu``) is above this.
RHO_TOL = 0.5
#: A measured norm "matches" its prediction within this relative error (the issue's 5%).
NORM_TOL = 0.05


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
    if extend or not (Path(folder) / "manifest.json").exists():
        return
    known = set((ResultStore(folder).read_manifest() or {}).get("configs", {}))
    ours = {experiment_hash(SYSTEM_NAME, c, _settings(c, num_checkpoints)) for c in configs}
    if known and ours - known:
        raise StoreError(
            f"{str(folder)!r} already holds results of {len(known)} other configuration(s); "
            "use --extend (extend=True) to add these, or choose another --out"
        )


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


# -- summaries ----------------------------------------------------------------------------------


def collapse_verdict(entry: dict) -> str:
    """The collapse type the final numbers of one configuration show: ``"I"``, ``"II"``,
    ``"III"``, ``"none"`` (directions not collapsed) or ``"?"`` (collapsed directions, but the
    norms neither equal nor ordered by frequency).

    Rules (thresholds :data:`DIR_TOL`, :data:`RHO_TOL`, :data:`CV_TOL`): directions collapse
    when the mean ``1 - cos`` of ``phi(w)`` to its concept mean is below ``DIR_TOL``; then
    with LayerNorm it is type II (``phi`` has equal norms by construction); without, type III
    when the Spearman correlation of ``||w||`` with the word law exceeds ``RHO_TOL`` (norms
    ordered by frequency; NaN for the uniform law), type I when the spread ``std/mean`` of
    ``||w||`` is below ``CV_TOL``.

    >>> collapse_verdict({"layernorm": False, "w_dir_collapse": 0.07, "w_norm_cv": 2.3,
    ...                   "w_norm_mu_spearman": 0.74})
    'III'
    """
    if not entry["w_dir_collapse"] < DIR_TOL:
        return "none"
    if entry["layernorm"]:
        return "II"
    rho = entry["w_norm_mu_spearman"]
    if rho is not None and rho > RHO_TOL:
        return "III"
    if entry["w_norm_cv"] < CV_TOL:
        return "I"
    return "?"


_ROMAN = {1: "I", 2: "II", 3: "III"}


def summary_entries(rows, configs, hashes) -> list[dict]:
    """One dict per configuration: means (and standard deviations) over seeds at the last
    epoch, the peak of the seed-mean test accuracy over the checkpoints, predictions, relative
    errors and the collapse verdicts (``collapse_measured``, ``collapse_predicted``)."""
    out = []
    for spec, h in zip(configs, hashes):
        sel = rows[rows["config_hash"] == h]
        if sel.empty:
            continue
        last = sel[sel["epoch"] == sel["epoch"].max()]
        curve = sel.groupby("epoch")["test_acc"].mean()

        def m(name, frame=last):
            return float(frame[name].mean()) if name in frame else float("nan")

        def s(name, frame=last):
            return float(frame[name].std(ddof=0)) if name in frame else float("nan")

        e = {
            "label": fc_label(spec),
            "config_hash": h,
            "layernorm": spec.layernorm,
            "ln_eps": spec.ln_eps,
            "seeds": int(last["seed"].nunique()),
            "epochs": int(last["epoch"].max()),
            "failed": int((last["status"].isin(["diverged", "nan"])).sum()),
            "train_acc": m("train_acc"),
            "test_acc": m("test_acc"),
            "test_acc_std": s("test_acc"),
            "test_acc_peak": float(curve.max()),
            "test_acc_peak_epoch": int(curve.idxmax()),
            "w_dir_collapse": m("w_dir_collapse"),
            "w_norm_cv": float((last["w_norm_std"] / last["w_norm_mean"]).mean()),
            "w_norm_mu_spearman": m("w_norm_mu_spearman"),
            "collapse_predicted": _ROMAN[spec.collapse_type],
        }
        for q in ("w", "u", "phi"):
            e[f"{q}_norm"] = m(f"{q}_norm_mean")
            e[f"{q}_norm_std"] = s(f"{q}_norm_mean")
            e[f"predicted_{q}_norm"] = m(f"predicted_{q}_norm")
            e[f"{q}_norm_relerr"] = e[f"{q}_norm"] / e[f"predicted_{q}_norm"] - 1.0
        if "w_norm_type3_relerr" in last and last["w_norm_type3_relerr"].notna().any():
            e["w_norm_type3_relerr"] = m("w_norm_type3_relerr")
        e["collapse_measured"] = collapse_verdict(e)
        out.append(e)
    return out


def _pm(mean, std, digits=4):
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def summary_text(entries: list[dict]) -> str:
    """The printed summary: accuracies and collapse verdicts, measured vs predicted norms with
    relative errors, and the LayerNorm comparison when a job has both variants."""
    first = format_table(
        [
            "configuration",
            "seeds",
            "epochs",
            "train acc",
            "test acc",
            "peak test acc (epoch)",
            "collapse measured",
            "predicted",
        ],
        [
            [
                e["label"],
                e["seeds"],
                e["epochs"],
                f"{e['train_acc']:.3f}",
                _pm(e["test_acc"], e["test_acc_std"], 3),
                f"{e['test_acc_peak']:.3f} ({e['test_acc_peak_epoch']})",
                e["collapse_measured"],
                e["collapse_predicted"],
            ]
            for e in entries
        ],
    )
    norm_rows = []
    names = {"w": "||w||", "u": "||u||", "phi": "||phi(w)||"}
    for e in entries:
        for q in ("w", "u", "phi"):
            if not np.isfinite(e[f"predicted_{q}_norm"]) or (q == "phi" and not e["layernorm"]):
                continue
            err = e[f"{q}_norm_relerr"]
            norm_rows.append(
                [
                    e["label"],
                    names[q],
                    _pm(e[f"{q}_norm"], e[f"{q}_norm_std"]),
                    f"{e[f'predicted_{q}_norm']:.6f}",
                    f"{100 * err:+.1f}%",
                    "yes" if abs(err) <= NORM_TOL else "no",
                ]
            )
        if "w_norm_type3_relerr" in e:
            norm_rows.append(
                [
                    e["label"],
                    "||w|| per word vs r_beta",
                    "-",
                    "-",
                    f"{100 * e['w_norm_type3_relerr']:.1f}%",
                    "yes" if e["w_norm_type3_relerr"] <= NORM_TOL else "no",
                ]
            )
    parts = ["Accuracy and collapse type at the last epoch (mean ± std over seeds):", first]
    if norm_rows:
        parts += [
            "",
            f"Norms at the last epoch against the collapse theory (within {NORM_TOL:.0%}?):",
            format_table(
                ["configuration", "norm", "measured", "predicted", "rel. err", "match"],
                norm_rows,
            ),
        ]
    for e in entries:
        if e["layernorm"] and abs(e["phi_norm_relerr"]) > NORM_TOL:
            parts.append(
                f"note ({e['label']}): ||phi(w)|| = sqrt(d var/(var + eps)) stays below sqrt(d) "
                f"while the raw embeddings are small (mean ||w|| = {e['w_norm']:.3g}, "
                f"LayerNorm eps = {e['ln_eps']:g}; no weight decay on W with LayerNorm)."
            )
    by_ln = {e["layernorm"]: e for e in entries}
    if len(by_ln) == 2:
        a, b = by_ln[False], by_ln[True]
        parts += [
            "",
            f"LayerNorm: test accuracy {b['test_acc']:.3f} with vs {a['test_acc']:.3f} without "
            f"(gap {b['test_acc'] - a['test_acc']:+.3f}; peak without "
            f"{a['test_acc_peak']:.3f} at epoch {a['test_acc_peak_epoch']}).",
        ]
    parts += [
        "",
        f"Collapse verdict rules: directions collapsed if 1 - cos < {DIR_TOL}; then II with "
        f"LayerNorm, else III if Spearman(||w||, mu) > {RHO_TOL}, I if std/mean of ||w|| < "
        f"{CV_TOL}, ? otherwise.",
    ]
    return "\n".join(parts)


def entries_json(entries: list[dict]) -> str:
    """The summary entries as JSON (``summary.json`` of the results folder; NaN as null)."""
    clean = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in e.items()}
        for e in entries
    ]
    return json.dumps(clean, indent=1)
