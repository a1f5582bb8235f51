"""``ufm spectral``: run a preset comparison, print its tables, write figures (``add_cli`` hook).

Every default shown by ``--help`` comes from the preset (:mod:`ufm.systems.spectral.presets`),
:class:`~ufm.systems.spectral.experiment.EvalSettings` and
:class:`~ufm.systems.spectral.summary.StabilityCriteria`; the flags only override them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ufm.core.cliargs import (
    DefaultsHelpFormatter,
    add_list_option,
    add_output_options,
    check_positive_flags,
    words,
)
from ufm.systems.spectral.experiment import EvalSettings
from ufm.systems.spectral.presets import PRESETS, get_preset
from ufm.systems.spectral.spec import SpectralSpec, spec_label
from ufm.systems.spectral.summary import StabilityCriteria

__all__ = ["add_spectral_parser", "list_presets", "run_spectral_command"]


def add_spectral_parser(sub):
    """The ``ufm spectral`` subcommand."""
    ev, crit = EvalSettings(), StabilityCriteria()
    presets = "; ".join(f"{p.name}: {p.summary} ({p.seeds} seeds)" for p in PRESETS.values())
    p = sub.add_parser(
        "spectral",
        help="self-supervised training against dimensional collapse: spectral transformations, "
        "whitening, IterNorm, INTL (Weng et al. 2024)",
        formatter_class=DefaultsHelpFormatter,
        description="Train an MLP encoder + projector with two augmented views per sample and "
        "compare plain cosine alignment, the power-family spectral transformation "
        "g = lambda^-p, exact whitening, IterNorm, INTL and W-MSE: effective rank of Z and "
        "Z_hat over training, spectra, kNN and linear-probe accuracy over seeds, and the range "
        f"of p where the power family is stable. Presets: {presets}. A rerun with the same "
        "settings resumes the folder.",
    )
    p.add_argument("--preset", default="tiny", help="named experiment: " + ", ".join(PRESETS))
    p.add_argument("--seeds", type=int, default=None, help="seeds per method (default: preset's)")
    p.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the preset's)"
    )
    p.add_argument(
        "--checkpoints",
        type=int,
        default=None,
        help="evaluations after epoch 0, evenly spaced (default: the preset's)",
    )
    p.add_argument(
        "--methods",
        type=words,
        default=None,
        help="only these methods, comma-separated: alignment,power,whiten,iternorm,intl,wmse",
    )
    p.add_argument("--data-dir", default=None, help="folder of .npy files (preset paper)")
    p.add_argument("--dtype", default=None, help="float32 or float64 (default: the preset's)")
    p.add_argument("--knn-k", type=int, default=ev.knn_k, help="neighbours of the kNN probe")
    p.add_argument("--ridge", type=float, default=ev.ridge, help="penalty of the linear probe")
    p.add_argument(
        "--rel", type=float, default=ev.rel, help="count eigenvalues above REL * lambda_max"
    )
    p.add_argument(
        "--collapse-frac",
        type=float,
        default=crit.collapse_frac,
        help="stable p: erank Z >= this fraction of the sweep's largest",
    )
    p.add_argument(
        "--acc-drop",
        type=float,
        default=crit.acc_drop,
        help="stable p: probe accuracy within this of the sweep's best",
    )
    p.add_argument(
        "--blowup",
        type=float,
        default=crit.blowup,
        help="stable p: final epoch loss <= this times the run's lowest",
    )
    add_output_options(p, out_help="results folder (default: ./ufm-results/spectral-PRESET)")
    add_list_option(p, "the presets and their runs")
    p.set_defaults(func=run_spectral_command)
    return p


def list_presets() -> str:
    """The presets with their settings and the label of every run (``--list``)."""
    lines = []
    for preset in PRESETS.values():
        base = preset.base
        lines.append(f"{preset.name}: {preset.summary}")
        lines.append(
            f"  data={base['data']}, encoder={base.get('encoder', 'mlp')} {base['widths']}, "
            f"d={base['proj_dim']}, batch={base['batch_size']}, epochs={base['epochs']}, "
            f"seeds={preset.seeds}" + (", needs --data-dir" if preset.needs_data_dir else "")
        )
        side = base.get("side", "feature")  # labels depend on the method fields only
        labels = [spec_label(SpectralSpec(**{"side": side, **v})) for v in preset.variants]
        lines.append("  runs: " + "; ".join(labels))
    return "\n".join(lines)


def _criteria(args) -> StabilityCriteria:
    check_positive_flags(args, "collapse_frac", "acc_drop", "blowup")
    return StabilityCriteria(args.collapse_frac, args.acc_drop, args.blowup)


def run_spectral_command(args) -> int:
    """``ufm spectral``: validate every option, run or resume the preset, print, write figures."""
    import jax

    from ufm.core import check_int
    from ufm.systems.spectral.runner import (
        check_folder,
        report_text,
        run_preset,
        select_methods,
        write_preset_report,
    )

    if args.list:
        print(list_presets())
        return 0
    preset = get_preset(args.preset)
    settings = EvalSettings(knn_k=args.knn_k, ridge=args.ridge, rel=args.rel)
    criteria = _criteria(args)
    overrides = {
        "epochs": args.epochs,
        "checkpoints": args.checkpoints,
        "data_dir": args.data_dir,
        "dtype": args.dtype,
    }
    # validate every option and the folder before any compute or output
    specs = select_methods(preset.specs(**overrides), args.methods)
    n_seeds = check_int("seeds", preset.seeds if args.seeds is None else args.seeds, 1)
    out = Path(args.out) if args.out else Path("ufm-results") / f"spectral-{preset.name}"
    check_folder(out, specs, settings.as_settings(), args.extend)
    if any(s.dtype == "float64" for s in specs):
        jax.config.update("jax_enable_x64", True)
    print(
        f"ufm spectral: preset {preset.name}, {len(specs)} method(s) x {n_seeds} seeds on "
        f"{jax.default_backend()} -> {out}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    result = run_preset(
        preset,
        out,
        seeds=args.seeds,
        methods=args.methods,
        settings=settings,
        extend=args.extend,
        progress=False if args.quiet else None,
        **overrides,
    )
    text = report_text(result.rows, criteria)
    print(text)
    write_preset_report(out, result.rows, text, figures=not args.no_figures, criteria=criteria)
    trained = sum(len(v) for v in result.trained.values())
    print(
        f"\n{time.perf_counter() - t0:.0f} s, of which compilation {result.compile_seconds:.0f} s; "
        f"{trained} (method, seed) run(s) trained, "
        f"{sum(len(v) for v in result.skipped.values())} already stored; results in {out}"
    )
    return 0
