"""``ufm feature-map``: trained networks, their forward-feature-map spectra and the ETF classifier.

Registered through the system's ``add_cli`` hook. Every default shown by ``--help`` comes from
the presets (:data:`ufm.systems.feature_map.PRESETS`) and :class:`MFCriterion`; the flags only
override them.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax

from ...core.cliargs import (
    DefaultsHelpFormatter,
    add_deprecated_alias,
    add_list_option,
    add_output_options,
    set_cpu_devices,
    words,
)
from ...core.validation import SpecError
from ...report.folder import write_text
from .jobs import run_preset
from .plots import write_figures
from .presets import PRESETS
from .spec import FeatureMapSpec, spec_label
from .tables import etf_table, verdict_table
from .verdict import MFCriterion

__all__ = ["add_feature_map_parser", "run_feature_map_command", "list_presets"]


def add_feature_map_parser(sub):
    """The ``ufm feature-map`` subcommand (the system's ``add_cli`` hook)."""
    c = MFCriterion()
    p = sub.add_parser(
        "feature-map",
        help="train MLPs/CNNs over seeds: forward-feature-map spectra (MF vs EF) and the fixed "
        "ETF classifier at d = K",
        formatter_class=DefaultsHelpFormatter,
        description="Train the configurations of a preset over several seeds (vmapped; sharded "
        "with --devices), analyse the penultimate feature operator at checkpoint epochs "
        "(spectrum, Pi*(C), Pi_hat(C), centred effective rank and gap, D_LR, NC metrics, the "
        "MF/EF verdict; Nam et al. 2024, arXiv 2410.04264) and compare a learned classifier "
        "at large width with a fixed simplex-ETF classifier at d = K (test accuracy, "
        "parameters, memory). Rows go into the common result store (one per seed x "
        "checkpoint; a rerun resumes), tables are printed and figures written to DIR/figures. "
        "Presets: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    p.add_argument("--preset", default="tiny", help="preset: " + ", ".join(PRESETS))
    p.add_argument(
        "--mode", default="all", help="all, spectra (MF/EF over epochs) or etf (ETF comparison)"
    )
    p.add_argument("--configs", type=words, default=None, help="only these configurations")
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per configuration (default: the preset's)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override every configuration's epochs (default: the preset's)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="user data folder (x_train.npy, y_train.npy, x_test.npy, y_test.npy) replacing the "
        "preset's data set (required by the paper preset)",
    )
    add_deprecated_alias(p, "--data", "--data-dir", "data_dir")  # its old spelling
    p.add_argument(
        "--channels-last", action="store_true", help="--data-dir images are (n, H, W, C)"
    )
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="devices to shard the seeds over (default: 1 on CPU, all local GPUs/TPUs; on CPU, "
        "N fake devices, one per core)",
    )
    rss = p.add_mutually_exclusive_group()
    rss.add_argument(
        "--rss",
        dest="rss",
        action="store_true",
        default=None,
        help="measure peak RSS of the etf configurations (default: the preset's)",
    )
    rss.add_argument("--no-rss", dest="rss", action="store_false", help="do not measure peak RSS")
    p.add_argument("--target-mass", type=float, default=c.target_mass, help="MF: Pi*(C) >= this")
    p.add_argument(
        "--rank-factor",
        type=float,
        default=c.rank_factor,
        help="MF: centred effective rank <= this * (C - 1)",
    )
    p.add_argument(
        "--max-gap", type=float, default=c.max_gap, help="MF: rho^c_C/rho^c_{C-1} <= this"
    )
    p.add_argument("--max-d-lr", type=float, default=c.max_d_lr, help="MF: D_LR <= this")
    add_output_options(
        p,
        out_help="results folder (default: ./ufm-results/feature-map-<preset>)",
        extend_help="allow adding to a folder that holds other configurations",
    )
    add_list_option(p, "the presets and their configurations")
    p.set_defaults(func=run_feature_map_command)
    return p


def list_presets() -> str:
    """The presets, their configurations and labels (``--list``)."""
    lines = []
    for name, pre in PRESETS.items():
        lines.append(f"{name} ({pre.seeds} seeds): {pre.description}")
        for cname, role, fields in pre.configs:
            try:
                label = spec_label(FeatureMapSpec(**fields))
            except SpecError:
                label = ", ".join(f"{k}={v}" for k, v in fields.items())
            lines.append(f"    {cname:<22} {role:<8} {label}")
    return "\n".join(lines)


def run_feature_map_command(args) -> int:
    """``ufm feature-map``: run or resume a preset, print the tables, write the figures."""
    if args.list:
        print(list_presets())
        return 0
    if args.preset not in PRESETS:
        raise SpecError(f"--preset must be one of {', '.join(PRESETS)}; got {args.preset!r}")
    preset = PRESETS[args.preset]
    criterion = MFCriterion(args.target_mass, args.rank_factor, args.max_gap, args.max_d_lr)
    configs = preset.specs(
        args.mode,
        only=args.configs,
        data_path=args.data_dir,
        channels_last=args.channels_last,
        epochs=args.epochs,
    )
    set_cpu_devices(args.devices)
    if any(spec.dtype == "float64" for _, _, spec in configs):
        jax.config.update("jax_enable_x64", True)
    out = Path(args.out) if args.out else Path("ufm-results") / f"feature-map-{args.preset}"
    seeds = preset.seeds if args.seeds is None else args.seeds
    t0 = time.perf_counter()
    run = run_preset(
        preset,
        out,
        mode=args.mode,
        seeds=seeds,
        only=args.configs,
        data_path=args.data_dir,
        channels_last=args.channels_last,
        epochs=args.epochs,
        devices=args.devices,
        rss=args.rss,
        criterion=criterion,
        extend=args.extend,
        progress=False if args.quiet else None,
    )
    rows = run.rows
    roles = set(rows["role"].astype(str)) if len(rows) else set()
    text = []
    if "spectra" in roles:
        text.append(
            "MF / EF verdicts at the last checkpoint (mean ± std over seeds; criterion: "
            f"Pi*(C) >= {criterion.target_mass:g}, centred erank <= {criterion.rank_factor:g} "
            f"(C-1), gap <= {criterion.max_gap:g}, D_LR <= {criterion.max_d_lr:g}):\n"
            + verdict_table(rows[rows["role"] == "spectra"])
        )
    if "etf" in roles:
        text.append(
            "Fixed simplex-ETF classifier at d = K vs learned classifier (last checkpoint):\n"
            + etf_table(rows)
        )
    report = "\n\n".join(text)
    print(report)
    write_text(out / "summary.txt", report + "\n")
    if not args.no_figures:
        paths = write_figures(out, rows)
        print(f"\nfigures: {', '.join(str(p.name) for p in paths)} in {out / 'figures'}")
    skipped = f", {run.seeds_skipped} seed runs already stored" if run.seeds_skipped else ""
    print(
        f"{time.perf_counter() - t0:.0f} s ({run.seeds_run} seed runs trained{skipped}); "
        f"results in {out} (ufm.load_results)"
    )
    return 0
