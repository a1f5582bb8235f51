"""``ufm minority-collapse``: sweep the imbalance ratio and lambda, locate the minority-collapse
thresholds, compare with the closed form, write a table, CSV files and the figure.

Every default shown by ``--help`` comes from the chosen preset (:data:`MINORITY_PRESETS`); the
flags only override it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ...core.cliargs import DefaultsHelpFormatter, floats
from ...report.folder import save_figure, write_csv, write_text
from .minority import MINORITY_PRESETS, minority_collapse, plot_minority_collapse

__all__ = ["add_minority_parser", "minority_table"]


def add_minority_parser(sub):
    """The ``ufm minority-collapse`` subcommand."""
    p = sub.add_parser(
        "minority-collapse",
        help="sweep the class-imbalance ratio of the UFM and locate minority collapse",
        formatter_class=DefaultsHelpFormatter,
        description="K_major classes of n_major samples and K_minor classes of n_major/R: for "
        "every lambda (= lambda_W = lambda_H) and ratio R solve the UFM's convex program to a "
        "stated duality gap, record the minority class-mean norm and the angle between minority "
        "class means, locate where the minority means merge and where they vanish, compare with "
        "the closed form n_minor <= lambda^2 N^2 (docs/theory.md section 10), check a few ratios "
        "with the UFM optimiser, and write a table, CSV files and the figure.",
    )
    p.add_argument(
        "--preset", default="tiny", choices=sorted(MINORITY_PRESETS), help="named settings"
    )
    p.add_argument("--loss", default=None, help="ce or mse (default: the preset's)")
    p.add_argument("--bias", default=None, help="none or free (default: the preset's)")
    p.add_argument(
        "--lambdas",
        type=floats,
        default=None,
        help="lambda values, comma-separated (default: the preset's)",
    )
    p.add_argument(
        "--ratios",
        type=floats,
        default=None,
        help="imbalance ratios R >= 1 (default: the preset's)",
    )
    p.add_argument(
        "--n-major",
        type=int,
        default=None,
        help="samples per majority class (default: the preset's)",
    )
    p.add_argument(
        "--K-major",
        type=int,
        default=None,
        help="number of majority classes (default: the preset's)",
    )
    p.add_argument(
        "--K-minor",
        type=int,
        default=None,
        help="number of minority classes (default: the preset's)",
    )
    p.add_argument(
        "--check-seeds",
        type=int,
        default=None,
        help="optimiser starts per check (default: the preset's)",
    )
    p.add_argument("--out", default=None, help="results folder (default ufm-results/minority-...)")
    p.add_argument(
        "--no-figures", "--no-figure", dest="no_figure", action="store_true", help="skip the figure"
    )
    p.set_defaults(func=run_minority_command)


def _config(args):
    cfg = MINORITY_PRESETS[args.preset]
    changes = {
        k: v
        for k, v in (
            ("loss", args.loss),
            ("bias", args.bias),
            ("lambdas", args.lambdas),
            ("ratios", args.ratios),
            ("n_major", args.n_major),
            ("K_major", args.K_major),
            ("K_minor", args.K_minor),
            ("check_seeds", args.check_seeds),
        )
        if v is not None
    }
    return cfg.replace(**changes)  # validated before any compute


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def minority_table(result) -> str:
    """Plain-text table of the thresholds of a :func:`minority_collapse` result."""
    lines = [
        "lambda    merge bracket (R)        closed form   vanish bracket (R)       closed form"
        "   max gap",
    ]
    for th in result.thresholds:
        br = lambda b: "none in range" if b is None else f"({_fmt(b[0])}, {_fmt(b[1])}]"  # noqa: E731
        lines.append(
            f"{th['lam']:<9.4g} {br(th['merge']):<24} {_fmt(th['merge_closed_form']):<13} "
            f"{br(th['vanish']):<24} {_fmt(th['vanish_closed_form']):<13} {th['max_gap']:.2e}"
        )
    for c in result.checks:
        lines.append(
            f"optimiser check lambda={c['lam']:g} R={c['ratio']:g} sizes={c['sizes']}: "
            f"max f - lower bound = {c['max_f_minus_lower']:.2e}, norm ratio "
            f"{c['norm_ratio']:.6f} (convex {c['convex_norm_ratio']:.6f}), angle "
            f"{_fmt(c['angle_deg'])} deg (convex {_fmt(c['convex_angle_deg'])})"
        )
    return "\n".join(lines) + "\n"


def run_minority_command(args) -> int:
    """``ufm minority-collapse``: run, print the table, write the folder."""
    import jax

    cfg = _config(args)
    jax.config.update("jax_enable_x64", True)
    out = Path(args.out or f"ufm-results/minority-{cfg.loss}-{cfg.bias}-{args.preset}")
    print(
        f"ufm minority-collapse: {cfg.loss}, bias {cfg.bias}, {len(cfg.lambdas)} lambdas x "
        f"{len(cfg.ratios)} ratios -> {out}",
        file=sys.stderr,
    )
    result = minority_collapse(cfg)
    text = minority_table(result)
    print(text, end="")
    out.mkdir(parents=True, exist_ok=True)
    rows = result.rows
    write_csv(out / "rows.csv", [{k: rows[k][i] for k in rows} for i in range(len(rows["lam"]))])
    write_text(out / "thresholds.txt", text)
    if not args.no_figure:
        save_figure(plot_minority_collapse(result), out / "minority_collapse.png")
    return 0
