"""``ufm landscape``: the UFM's command-line job (registered through the system's ``add_cli``).

Every default shown by ``--help`` comes from :class:`LandscapeConfig` and its settings objects
(:data:`LANDSCAPE_OPTIMIZER`, :class:`ufm.StartSettings`): the flags only override them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ...core.cliargs import DefaultsHelpFormatter, floats, ints, set_cpu_devices, words
from .landscape import LandscapeConfig

__all__ = ["add_landscape_parser", "landscape_config", "class_sizes_arg"]


def add_landscape_parser(sub):
    """The ``ufm landscape`` subcommand (the system's ``add_cli`` hook)."""

    d = LandscapeConfig()
    o = d.optimizer
    p = sub.add_parser(
        "landscape",
        help="optimise many seeds of the UFM variants and check them against the theory",
        formatter_class=DefaultsHelpFormatter,
        description="Optimise many random seeds of every UFM variant (loss x bias x K x lambdas), "
        "plant saddles, polish in float64, compare with the closed-form optimum, classify every "
        "point from its Hessian, and report tables, a results folder and figures. With no "
        "options: the embedded default (d = K = 4, CE and MSE with a free bias, two lambda_W "
        "values, 42 seeds each: 168 random starts, plus planted saddles and origins); every "
        "variant: --K 3,5 --bias none,free,regularized (1008 random starts). A rerun with the "
        "same settings resumes the same folder.",
    )
    p.add_argument(
        "--K",
        type=ints,
        default=argparse.SUPPRESS,  # shown in the help text; unset means "not given"
        help=f"class counts, comma-separated (default: {','.join(map(str, d.K))})",
    )
    p.add_argument(
        "--n", type=int, default=argparse.SUPPRESS, help=f"samples per class (default: {d.n})"
    )
    p.add_argument(
        "--class-sizes",
        action="append",
        default=argparse.SUPPRESS,
        metavar="N1,N2,...",
        help="imbalanced classes: the class sizes of one configuration (K = their count), "
        "e.g. 10,10,2,2; repeat the option or separate vectors by ';' for several; instead of "
        "--K and --n (f* from the closed form or the convex program)",
    )
    p.add_argument("--d", type=int, default=None, help="feature dimension (default: d = K)")
    p.add_argument(
        "--d-offset", type=int, default=d.d_offset, help="use d = K + D_OFFSET (e.g. -2 or 2)"
    )
    losses = tuple(dict.fromkeys(v[0] for v in d.variants))
    biases = tuple(dict.fromkeys(v[1] for v in d.variants))
    p.add_argument("--loss", type=words, default=losses, help="ce,mse")
    p.add_argument("--bias", type=words, default=biases, help="none,free,regularized")
    p.add_argument("--lambda-W", type=floats, default=d.lambda_W, help="lambda_W values")
    p.add_argument("--lambda-H", type=floats, default=d.lambda_H, help="lambda_H values")
    p.add_argument(
        "--lambda-b",
        type=float,
        default=None,
        help=f"lambda_b of the regularized bias, only with --bias regularized "
        f"(default {d.lambda_b:g})",
    )
    p.add_argument("--seeds", type=int, default=d.seeds, help="random starts per configuration")
    p.add_argument(
        "--saddle-seeds",
        type=int,
        default=d.starts.planted_per_dim,
        help="planted-saddle starts per saddle dimension d'",
    )
    p.add_argument(
        "--generic-seeds",
        type=int,
        default=d.generic_seeds,
        help="starts of the generic Newton critical-point finder",
    )
    p.add_argument("--no-origin", action="store_true", help="do not add the origin as a start")
    p.add_argument("--no-hessian", action="store_true", help="skip the Hessian classification")
    p.add_argument(
        "--hessian-method", default=d.hessian_method, help="auto, dense, block_arrow or lanczos"
    )
    p.add_argument(
        "--base-seed", type=int, default=d.base_seed, help="PRNG key of the initialisations"
    )
    p.add_argument("--steps", type=int, default=o.max_steps, help="first-order step budget")
    p.add_argument("--optimizer", default=o.name, help="gd, momentum, nesterov or an optax name")
    p.add_argument("--lr", type=float, default=o.learning_rate, help="learning rate")
    p.add_argument("--tol", type=float, default=o.tol, help="first-order gradient-norm tolerance")
    p.add_argument(
        "--polish-tol",
        type=float,
        default=o.polish_tol,
        help="gradient norm of the float64 Newton polish",
    )
    p.add_argument(
        "--init-scale", type=float, default=d.init_scale, help="std of the N(0, s^2) initialisation"
    )
    p.add_argument("--dtype", default=d.dtype, help="float64 or float32")
    p.add_argument(
        "--devices", type=int, default=1, help="CPU devices to shard the seeds over (one per core)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="results folder (default: ./ufm-results/landscape-<settings hash>)",
    )
    p.add_argument(
        "--extend",
        action="store_true",
        help="allow adding these settings to a folder that holds other results",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_landscape_command)
    return p


def landscape_config(args) -> LandscapeConfig:
    """The :class:`LandscapeConfig` of parsed ``ufm landscape`` arguments (validated)."""
    from ...core.validation import SpecError
    from ...runs.starts import StartSettings

    if args.lambda_b is not None and "regularized" not in args.bias:
        raise SpecError(
            f"--lambda-b {args.lambda_b:g} is set but --bias has no 'regularized' "
            "variant; lambda_b only applies to the regularized bias"
        )
    base = LandscapeConfig()
    K, n = getattr(args, "K", None), getattr(args, "n", None)
    sizes = getattr(args, "class_sizes", None)
    if sizes is not None:
        if K is not None or n is not None:
            raise SpecError("--class-sizes sets K and n itself: do not combine it with --K or --n")
        n = class_sizes_arg(sizes)
    elif n is None:
        n = base.n
    variants = tuple((loss, b) for loss in args.loss for b in args.bias)
    optimizer = base.optimizer.replace(
        name=args.optimizer,
        learning_rate=args.lr,
        max_steps=args.steps,
        tol=args.tol,
        polish_tol=args.polish_tol,
    )
    return LandscapeConfig(
        K=K,
        n=n,
        d=args.d,
        d_offset=args.d_offset,
        variants=variants,
        lambda_W=args.lambda_W,
        lambda_H=args.lambda_H,
        lambda_b=base.lambda_b if args.lambda_b is None else args.lambda_b,
        seeds=args.seeds,
        starts=StartSettings(args.saddle_seeds, not args.no_origin),
        generic_seeds=args.generic_seeds,
        hessian=not args.no_hessian,
        hessian_method=args.hessian_method,
        base_seed=args.base_seed,
        init_scale=args.init_scale,
        optimizer=optimizer,
        dtype=args.dtype,
    )


def class_sizes_arg(values) -> tuple:
    """The class-size vectors of ``--class-sizes`` (each value ``"10,10,2,2"`` or several
    separated by ``;``), with one-line errors naming the option."""
    from ...core.validation import SpecError

    out = []
    for value in values:
        for part in str(value).split(";"):
            part = part.strip()
            try:
                sizes = tuple(int(x) for x in part.split(","))
            except ValueError:
                raise SpecError(
                    f"--class-sizes {part!r}: expected comma-separated integers, e.g. 10,10,2,2"
                ) from None
            if len(sizes) < 2:
                raise SpecError(
                    f"--class-sizes {part!r}: expected at least 2 class sizes (one per class)"
                )
            if min(sizes) < 1:
                raise SpecError(f"--class-sizes {part!r}: class sizes must be positive")
            out.append(sizes)
    return tuple(dict.fromkeys(out))


def run_landscape_command(args) -> int:
    """``ufm landscape``: run or resume, then print the tables and write the report."""
    import jax

    from ...report.folder import write_landscape_report
    from ...report.worker import FigureWorker
    from .landscape import default_landscape_out, landscape_tables, run_landscape, verdict

    config = landscape_config(args)  # every option validated before any compute
    set_cpu_devices(args.devices)  # fake CPU devices, one per core (before JAX starts)
    # the figure process imports matplotlib while the run computes (ufm.report.worker)
    worker = None if args.no_figures else FigureWorker.start()
    # 64-bit JAX in every case: a float32 run is optimised in float32 and polished and classified
    # in float64 (ufm.run_points), as the README promises
    jax.config.update("jax_enable_x64", True)
    out = Path(args.out) if args.out else default_landscape_out(config)
    print(
        f"ufm landscape: {len(config.specs())} configurations x {config.seeds} seeds "
        f"= {config.total_seeds} random starts (+ planted and origin) on {args.devices} "
        f"{jax.default_backend()} device(s) -> {out}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    try:
        result = run_landscape(
            config,
            out,
            devices=args.devices,
            progress=False if args.quiet else None,
            extend=args.extend,
        )
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    rows, traces = result.rows, result.traces
    first, classes = landscape_tables(rows)
    print("Random starts against the closed-form optimum (judged after polishing):")
    print(first)
    if classes:
        print(
            "\nHessian classification of every point (random, planted, origin"
            + (", generic finder" if config.generic_seeds else "")
            + "):"
        )
        print(classes)
    write_landscape_report(
        out,
        rows,
        traces,
        first + ("\n\n" + classes if classes else ""),
        figures=not args.no_figures,
        worker=worker,
    )
    done = (
        ""
        if result.starts_run
        else f" (all {result.starts_skipped} starts were already in the folder)"
    )
    print(
        "\n" + verdict(rows, config) + f"\n{time.perf_counter() - t0:.0f} s, of which "
        f"compilation {result.compile_seconds:.0f} s{done}; results in {out}"
    )
    return 0
