"""``ufm feature-collapse``: the feature-collapse job on the command line (its ``add_cli`` hook).

Laurent, von Brecht, Bresson (2023), arXiv 2305.16162. ``--help`` shows every default; a bad
option is refused with a one-line ``ufm: error: ...`` before any training.
"""

from __future__ import annotations

import argparse
import sys

from ...core.cliargs import DefaultsHelpFormatter, add_output_options, int_at_least
from .presets import JOB_PRESETS

__all__ = ["add_feature_collapse_parser", "run_feature_collapse_command"]


def add_feature_collapse_parser(sub):
    """The ``ufm feature-collapse`` subcommand."""
    presets = "; ".join(f"{k}: {v.about}" for k, v in JOB_PRESETS.items())
    p = sub.add_parser(
        "feature-collapse",
        help="train the feature-collapse network (Laurent et al. 2023) and check the theory",
        formatter_class=DefaultsHelpFormatter,
        description="Train the embedding -> (LayerNorm) -> linear network of 'Feature "
        "collapse' (Laurent, von Brecht, Bresson, ICLR 2024) with SGD and weight decay on the "
        "concept/word data model, several seeds at once; store one row per seed x checkpoint "
        "in a results folder (ufm.load_results reads it), print measured against predicted "
        "norms and the collapse type, and draw the figures. A rerun resumes: seeds already in "
        f"the folder are skipped. Presets: {presets}.",
    )
    p.add_argument("--preset", default="tiny", choices=list(JOB_PRESETS), help="named settings")
    p.add_argument(
        "--seeds",
        type=int_at_least(1),
        default=None,
        help="seeds per configuration (default: the preset's, tiny 2, small 3, zipf-gap 2)",
    )
    p.add_argument(
        "--epochs",
        type=int_at_least(0),
        default=None,
        help="override the epochs of every configuration (default: the preset's)",
    )
    p.add_argument(
        "--layernorm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run only the configuration with (--layernorm) or without (--no-layernorm) "
        "LayerNorm, switching it in a preset that has only the other (default: all of the "
        "preset's configurations)",
    )
    p.add_argument(
        "--checkpoints",
        type=int_at_least(1),
        default=None,
        help="evenly spaced checkpoints (plus the early 1-2-5 epochs; default: the preset's)",
    )
    add_output_options(
        p,
        out_help="results folder (default: ./ufm-results/feature-collapse-<preset>-<hash>)",
        extend_help="allow adding these configurations to a folder that holds other results",
    )
    p.set_defaults(func=run_feature_collapse_command)
    return p


def run_feature_collapse_command(args) -> int:
    """Run or resume the job, print the summary, report where the results are."""
    from .job import default_out, job_configs, run_job

    configs = job_configs(args.preset, epochs=args.epochs, layernorm=args.layernorm)
    info = JOB_PRESETS[args.preset]
    seeds = info.seeds if args.seeds is None else args.seeds
    cps = info.checkpoints if args.checkpoints is None else args.checkpoints
    out = args.out if args.out else default_out(args.preset, configs, cps)
    if args.preset.startswith("paper") and not args.quiet:
        import jax

        if jax.default_backend() == "cpu":
            print(
                "note: the paper presets are the GPU path (about 35 min per seed and 1200 epochs "
                "on a 2-core CPU; docs/feature_collapse.md)",
                file=sys.stderr,
            )
    job = run_job(
        args.preset,
        seeds=seeds,
        epochs=args.epochs,
        layernorm=args.layernorm,
        checkpoints=cps,
        out=out,
        extend=args.extend,
        figures=not args.no_figures,
        quiet=args.quiet,
    )
    print(job.text)
    run = sum(len(v) for v in job.seeds_run.values())
    skipped = sum(len(v) for v in job.seeds_skipped.values())
    note = f" ({skipped} seed run(s) were already in the folder)" if skipped else ""
    print(
        f"\n{job.seconds:.0f} s, of which compilation {job.compile_seconds:.0f} s; trained "
        f"{run} seed run(s){note}; results in {job.folder}"
    )
    return 0
