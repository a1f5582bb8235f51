"""``ufm sweep run | status | report``: the sweep command line.

``ufm.cli.main`` registers it with ``add_sweep_parser(subparsers)`` and calls ``args.func(args)``
(an exit code).

Examples::

    ufm sweep run experiments/sweeps/tiny.toml --out ufm-results/tiny
    ufm sweep run spec.toml --devices 8          # 8 devices (on CPU: 8 fake devices)
    ufm sweep status ufm-results/tiny
    ufm sweep report ufm-results/tiny            # tables + DIR/figures/*.png

    # two processes (hosts) sharing a folder; JAX's coordinator on host A:
    ufm sweep run spec.toml --coordinator hostA:1234 --num-processes 2 --process-id 0
    ufm sweep run spec.toml --coordinator hostA:1234 --num-processes 2 --process-id 1
    # or under SLURM / Open MPI: ufm sweep run spec.toml --coordinator auto

Multi-process flags default to ``UFM_COORDINATOR``, ``UFM_NUM_PROCESSES``, ``UFM_PROCESS_ID``.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_sweep_parser"]


def _env_int(name):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else None


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sweep`` (with ``run``, ``status``, ``report``) on an argparse subparsers."""
    p = subparsers.add_parser(
        "sweep",
        help="run, resume and inspect many-seed sweeps",
        description="Grids of configurations x seeds, sharded over devices and hosts, "
        "stored as resumable Parquet chunks.",
    )
    sub = p.add_subparsers(dest="sweep_command", metavar="{run,status,report}")
    sub.required = True

    r = sub.add_parser("run", help="run or resume a sweep spec (TOML)")
    r.add_argument("spec", help="sweep spec TOML file (see experiments/sweeps/tiny.toml)")
    r.add_argument(
        "--out", help="output folder (default: the spec's `out`, else ufm-results/<name>)"
    )
    r.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="shard seeds over the first N local devices (CPU: creates N fake "
        "devices); default all",
    )
    r.add_argument(
        "--coordinator",
        default=os.environ.get("UFM_COORDINATOR"),
        metavar="ADDR",
        help="jax.distributed coordinator host:port of process 0, or 'auto' for "
        "cluster detection (SLURM, Open MPI)",
    )
    r.add_argument(
        "--num-processes",
        type=int,
        default=_env_int("UFM_NUM_PROCESSES"),
        metavar="P",
        help="number of processes of a multi-process run",
    )
    r.add_argument(
        "--process-id",
        type=int,
        default=_env_int("UFM_PROCESS_ID"),
        metavar="I",
        help="this process, 0..P-1 (process 0 hosts the coordinator)",
    )
    r.add_argument(
        "--strict", action="store_true", help="fail on invalid grid points instead of skipping them"
    )
    r.add_argument(
        "--extend",
        action="store_true",
        help="allow adding configurations with other settings to a folder that "
        "already holds results (rows keep their settings and config_hash)",
    )
    g = r.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="draw the progress bar even when stderr is not a terminal",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("status", help="done/total per configuration, failed seeds, ETA")
    s.add_argument("dir", help="sweep output folder")
    s.set_defaults(func=_cmd_status)

    rep = sub.add_parser("report", help="summary tables and figures (DIR/figures)")
    rep.add_argument("dir", help="sweep output folder")
    rep.add_argument("--no-figures", action="store_true", help="tables only")
    rep.add_argument(
        "--gap-tol",
        type=float,
        default=1e-6,
        help="|f - f*| counted as the global optimum (default 1e-6)",
    )
    rep.set_defaults(func=_cmd_report)
    return p


def _fail(msg: str, code: int) -> int:
    print(f"ufm sweep: error: {msg}", file=sys.stderr)
    return code


def _cmd_run(args) -> int:
    # JAX settings must precede any backend use: fake CPU devices, 64-bit, distributed.
    import jax

    from ..core.validation import SpecError
    from ..runs.sharding import initialize_distributed
    from ..runs.store import StoreError
    from ..runs.sweep import run_sweep
    from ..runs.sweep_spec import load_sweep_spec

    try:
        spec = load_sweep_spec(args.spec)  # validate before touching any device
    except SpecError as err:
        return _fail(str(err), 2)
    if args.devices is not None:
        if args.devices < 1:
            return _fail(f"--devices must be >= 1, got {args.devices}", 2)
        try:  # fake CPU devices; a no-op for GPU/TPU runs
            jax.config.update("jax_num_cpu_devices", args.devices)
        except RuntimeError:  # backends already started (in-process use): keep what exists
            pass
    jax.config.update("jax_enable_x64", True)
    try:
        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    except ValueError as err:
        return _fail(str(err), 2)
    progress = False if args.quiet else (True if args.progress else None)
    try:
        summary = run_sweep(
            spec,
            args.out,
            devices=args.devices,
            progress=progress,
            strict=args.strict,
            extend=args.extend,
        )
    except (SpecError, StoreError) as err:
        return _fail(str(err), 2)
    if jax.process_index() == 0:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.status_counts.items()))
        who = "process 0" if jax.process_count() > 1 else "ufm sweep"
        print(
            f"{who}: {summary.seeds_run} seeds run ({counts or 'none'}), "
            f"{summary.seeds_skipped} already done, {summary.num_configs} configurations, "
            f"{summary.seconds:.1f} s -> {summary.folder}",
            file=sys.stderr,
        )
        if jax.process_count() > 1:  # run_sweep ended on a barrier: the store is complete
            from ..report.sweep import sweep_status

            st = sweep_status(summary.folder)
            print(
                f"all processes: {st.done}/{st.total} seeds done, {st.failed} failed",
                file=sys.stderr,
            )
    return 0


def _cmd_status(args) -> int:
    from ..report.sweep import sweep_status
    from ..runs.store import StoreError

    try:
        print(sweep_status(args.dir).text)
    except StoreError as err:
        return _fail(str(err), 2)
    return 0


def _cmd_report(args) -> int:
    from ..report.sweep import sweep_report
    from ..runs.store import StoreError

    try:
        print(sweep_report(args.dir, figures=not args.no_figures, gap_tol=args.gap_tol))
    except StoreError as err:
        return _fail(str(err), 2)
    return 0
