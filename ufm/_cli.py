"""Command-line interface: ``ufm landscape`` (the main job) and ``ufm sweep ...``.

Bad options exit with status 2 and a one-line ``ufm: error: ...`` message naming the option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time


def _floats(text: str) -> tuple:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _words(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"ufm: error: {message}\n")


def _add_landscape(sub):
    from ._landscape import LandscapeConfig

    d = LandscapeConfig()
    p = sub.add_parser(
        "landscape",
        help="optimise many seeds of the UFM variants and check them against the theory",
        description="Optimise many random seeds of every UFM variant (loss x bias x K x lambdas), "
        "polish in float64, compare with the closed-form optimum and report a table, a results "
        "folder and figures. With no options: the embedded default (d = K, CE and MSE with every "
        "bias variant, K in {3, 5}, two lambda_W values, 42 seeds each: 1008 runs).",
    )
    p.add_argument("--K", type=_ints, default=d.K, help="class counts, comma-separated (default 3,5)")
    p.add_argument("--n", type=int, default=d.n, help="samples per class (default %(default)s)")
    p.add_argument("--d", type=int, default=None, help="feature dimension (default: d = K)")
    p.add_argument("--d-offset", type=int, default=0, help="use d = K + D_OFFSET (e.g. -2 or 2)")
    p.add_argument("--loss", type=_words, default=("ce", "mse"), help="ce,mse")
    p.add_argument("--bias", type=_words, default=("none", "free", "regularized"),
                   help="none,free,regularized")
    p.add_argument("--lambda-W", type=_floats, default=d.lambda_W, help="comma-separated lambda_W values")
    p.add_argument("--lambda-H", type=_floats, default=d.lambda_H, help="comma-separated lambda_H values")
    p.add_argument("--lambda-b", type=float, default=d.lambda_b, help="lambda_b of the regularized bias")
    p.add_argument("--seeds", type=int, default=d.seeds, help="random starts per configuration (default %(default)s)")
    p.add_argument("--saddle-seeds", type=int, default=d.saddle_seeds,
                   help="planted-saddle starts per saddle dimension d' (default %(default)s)")
    p.add_argument("--generic-seeds", type=int, default=d.generic_seeds,
                   help="starts of the generic Newton critical-point finder (default %(default)s)")
    p.add_argument("--no-origin", action="store_true", help="do not add the origin as a start")
    p.add_argument("--no-hessian", action="store_true", help="skip the Hessian classification")
    p.add_argument("--hessian-method", default=d.hessian_method,
                   help="auto, dense, block_arrow or lanczos (default %(default)s)")
    p.add_argument("--base-seed", type=int, default=d.base_seed, help="PRNG key of the initialisations")
    p.add_argument("--steps", type=int, default=d.max_steps, help="first-order step budget per seed")
    p.add_argument("--optimizer", default=d.optimizer, help="gd, momentum, nesterov or an optax name")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate (default %(default)s)")
    p.add_argument("--tol", type=float, default=d.tol, help="first-order gradient-norm tolerance")
    p.add_argument("--init-scale", type=float, default=d.init_scale, help="std of the N(0, s^2) init")
    p.add_argument("--dtype", default=d.dtype, help="float64 (default) or float32")
    p.add_argument("--out", default=None, help="results folder (default ./ufm-results/landscape-<time>)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_landscape)
    return p


def _landscape_config(args):
    from ._landscape import LandscapeConfig

    variants = tuple((l, b) for l in args.loss for b in args.bias)
    return LandscapeConfig(
        K=args.K, n=args.n, d=args.d, d_offset=args.d_offset, variants=variants,
        lambda_W=args.lambda_W, lambda_H=args.lambda_H, lambda_b=args.lambda_b, seeds=args.seeds,
        saddle_seeds=args.saddle_seeds, generic_seeds=args.generic_seeds,
        include_origin=not args.no_origin, hessian=not args.no_hessian,
        hessian_method=args.hessian_method,
        base_seed=args.base_seed, optimizer=args.optimizer, learning_rate=args.lr,
        max_steps=args.steps, tol=args.tol, init_scale=args.init_scale, dtype=args.dtype,
    )


def _run_landscape(args) -> int:
    import jax

    from . import _landscape as L
    from . import _report as R
    from ._optimize import make_optimizer
    from ._progress import Progress

    config = _landscape_config(args)
    make_optimizer(config.optimizer, config.learning_rate)  # validate before any compute
    if config.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    out = R.prepare_out_dir(args.out or R.default_out_dir("landscape"))
    print(f"ufm landscape: {len(config.specs())} configurations x {config.seeds} seeds "
          f"= {config.total_seeds} runs on {jax.device_count()} {jax.default_backend()} device(s)",
          file=sys.stderr)
    t0 = time.perf_counter()
    with Progress(config.total_seeds, "landscape", unit="seeds", quiet=args.quiet) as bar:
        rows, traces = L.run_landscape(config, progress=bar.update)
    summary = L.summarize_landscape(rows)
    table = L.format_landscape_table(summary)
    print("Random starts against the closed-form optimum:")
    print(table)
    if config.hessian:
        classes = L.summarize_classes(rows)
        class_table = L.format_class_table(classes)
        print("\nHessian classification of every point (random, planted, origin"
              + (", generic finder" if config.generic_seeds else "") + "):")
        print(class_table)
        table = table + "\n\n" + class_table
    R.write_rows(out / "rows.parquet", rows)
    R.write_summary(out, summary, table)
    R.write_traces(out, traces)
    meta = R.provenance({"config": dataclasses.asdict(config), "wall_time_s": time.perf_counter() - t0})
    (out / "run.json").write_text(json.dumps(meta, indent=1, default=str))
    if not args.no_figures:
        from . import _plots as P

        R.save_figure(P.plot_gap_distribution(rows), out / "figures" / "gap_distribution.png")
        R.save_figure(P.plot_nc_traces(traces), out / "figures" / "nc_vs_iteration.png")
        if config.hessian:
            R.save_figure(P.plot_lambda_min_vs_gap(rows), out / "figures" / "lambda_min_vs_gap.png")
            R.save_figure(P.plot_negative_counts(rows), out / "figures" / "negative_counts.png")
            R.save_figure(P.plot_saddle_bound(rows), out / "figures" / "saddle_bound.png")
    print("\n" + L.verdict(rows, config) + f"\n{time.perf_counter() - t0:.0f} s; results in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = _Parser(prog="ufm", description="Unconstrained feature models and representation collapse.")
    parser.add_argument("--version", action="version", version=f"ufm {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_landscape(sub)
    try:
        from ._cli_sweep import add_sweep_parser
    except ImportError:  # pragma: no cover - sweep support missing
        pass
    else:
        add_sweep_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ufm`` console script."""
    from ._spec import SpecError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (SpecError, ValueError, OSError) as e:
        print(f"ufm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ufm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
