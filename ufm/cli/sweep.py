"""``ufm sweep run | submit | status | report``: the sweep command line.

``ufm.cli.main`` registers it with ``add_sweep_parser(subparsers)`` and calls ``args.func(args)``
(an exit code).

Examples::

    ufm sweep run experiments/sweeps/tiny.toml --out ufm-results/tiny
    ufm sweep run spec.toml --devices 2          # 2 devices (on CPU: one per core)
    ufm sweep status ufm-results/tiny            # done/total, failed seeds, ETA
    ufm sweep report ufm-results/tiny            # tables + DIR/figures/*.png

    # many machines: a Slurm job array of 16 tasks sharing one folder (pip install "ufm[slurm]")
    ufm sweep submit spec.toml --tasks 16 --partition gpu --gpus 1 --time 120
    # the same shares by hand (independent processes, e.g. on two hosts with a shared disk)
    ufm sweep run spec.toml --num-processes 2 --process-id 0     # on host A
    ufm sweep run spec.toml --num-processes 2 --process-id 1     # on host B
    # one program over several hosts (TPU pods): jax.distributed, process 0 hosts the coordinator
    ufm sweep run spec.toml --coordinator hostA:1234 --num-processes 2 --process-id 0
    ufm sweep run spec.toml --coordinator auto                   # SLURM / Open MPI detection

Multi-process flags default to ``UFM_COORDINATOR``, ``UFM_NUM_PROCESSES``, ``UFM_PROCESS_ID``.
Failure modes and recovery: :mod:`ufm.runs.multihost`.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..core.cliargs import DefaultsHelpFormatter, available_cores, set_cpu_devices

__all__ = ["add_sweep_parser"]


def _env_int(name):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else None


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sweep`` (``run``, ``submit``, ``status``, ``report``) on argparse subparsers."""
    fmt = DefaultsHelpFormatter
    p = subparsers.add_parser(
        "sweep",
        help="run, resume and inspect many-seed sweeps",
        description="Grids of configurations x seeds, sharded over devices, processes and "
        "Slurm array tasks, stored as resumable Parquet chunks.",
    )
    sub = p.add_subparsers(dest="sweep_command", metavar="{run,submit,status,report}")
    sub.required = True

    r = sub.add_parser("run", help="run or resume a sweep spec (TOML)", formatter_class=fmt)
    r.add_argument("spec", help="sweep spec TOML file (see experiments/sweeps/tiny.toml)")
    r.add_argument(
        "--out", help="output folder (default: the spec's `out`, else ufm-results/<name>)"
    )
    r.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="shard seeds over the first N local devices (CPU: creates N fake "
        "devices, one per core is best); default: all local devices, on CPU one per "
        "available core for a single-process run (1 per process with --coordinator or "
        "--num-processes > 1)",
    )
    r.add_argument(
        "--coordinator",
        default=os.environ.get("UFM_COORDINATOR"),
        metavar="ADDR",
        help="jax.distributed coordinator HOST:PORT of process 0, or 'auto' for "
        "cluster detection (one program over several hosts, e.g. TPU pods); "
        "without it --num-processes/--process-id run independent shares",
    )
    r.add_argument(
        "--num-processes",
        type=int,
        default=_env_int("UFM_NUM_PROCESSES"),
        metavar="P",
        help="number of processes (shares) of a multi-process run",
    )
    r.add_argument(
        "--process-id",
        type=int,
        default=_env_int("UFM_PROCESS_ID"),
        metavar="I",
        help="this process, 0..P-1 (with a coordinator, process 0 hosts it)",
    )
    r.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the other processes of a jax.distributed run",
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
        help="draw progress lines even when stderr is not a terminal",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)

    m = sub.add_parser(
        "submit", help="run a sweep as a Slurm job array (submitit)", formatter_class=fmt
    )
    m.add_argument("spec", help="sweep spec TOML file")
    m.add_argument(
        "--out",
        help="output folder shared by the tasks (default: the spec's "
        "`out`, else ufm-results/<name>)",
    )
    m.add_argument("--tasks", type=int, required=True, help="array tasks (seed %% N == task)")
    m.add_argument(
        "--executor",
        default="slurm",
        choices=("slurm", "local"),
        help="slurm, or local processes on this machine",
    )
    m.add_argument("--partition", default=None, help="Slurm partition")
    m.add_argument(
        "--time",
        type=int,
        default=60,
        metavar="MIN",
        help="time limit per task in minutes (requeued and resumed when hit)",
    )
    m.add_argument("--cpus", type=int, default=2, help="CPUs per task")
    m.add_argument("--gpus", type=int, default=0, help="GPUs per task")
    m.add_argument("--mem", type=float, default=8.0, metavar="GB", help="memory per task")
    m.add_argument(
        "--retries",
        type=int,
        default=1,
        help="resubmissions of a failed task (it resumes from the folder)",
    )
    m.add_argument(
        "--no-wait",
        action="store_true",
        help="return after submitting (no resubmission of failed tasks)",
    )
    m.set_defaults(func=_cmd_submit)

    s = sub.add_parser(
        "status", help="done/total per configuration, failed seeds, ETA", formatter_class=fmt
    )
    s.add_argument("dir", help="results folder")
    s.set_defaults(func=_cmd_status)

    rep = sub.add_parser(
        "report", help="summary tables and figures (DIR/figures)", formatter_class=fmt
    )
    rep.add_argument("dir", help="results folder")
    rep.add_argument("--no-figures", action="store_true", help="tables only")
    rep.add_argument(
        "--gap-tol", type=float, default=1e-6, help="|f - f*| counted as the global optimum"
    )
    rep.set_defaults(func=_cmd_report)
    return p


def default_cpu_devices(devices, coordinator, num_processes) -> int | None:
    """The CPU device count ``ufm sweep run`` asks JAX for when ``--devices`` is not given: one
    per available core for a single-process run (issue 15: the optimiser, the polish and the
    analyses then use every core), ``None`` (JAX's default, one) for a multi-process run, whose
    processes share the cores, and when ``--devices`` is given (it sets the count itself)."""
    if devices is not None or coordinator or (num_processes or 1) != 1:
        return None
    return available_cores()


def _fail(msg: str, code: int) -> int:
    print(f"ufm sweep: error: {msg}", file=sys.stderr)
    return code


def _cmd_run(args) -> int:
    # JAX settings must precede any backend use: fake CPU devices, 64-bit, distributed.
    import jax

    from ..core.validation import SpecError
    from ..runs.multihost import MultiHostError, initialize_distributed, parse_coordinator
    from ..runs.store import StoreError
    from ..runs.sweep import default_out, run_sweep
    from ..runs.sweep_spec import load_sweep_spec

    try:
        spec = load_sweep_spec(args.spec)  # validate before touching any device
        if args.coordinator:
            parse_coordinator(args.coordinator)
    except SpecError as err:
        return _fail(str(err), 2)
    out = args.out if args.out is not None else default_out(spec)
    # one CPU device per core (issue 15); a no-op for GPU/TPU runs and once JAX has started
    set_cpu_devices(default_cpu_devices(args.devices, args.coordinator, args.num_processes))
    if args.devices is not None:
        if args.devices < 1:
            return _fail(f"--devices must be >= 1, got {args.devices}", 2)
        try:  # fake CPU devices; a no-op for GPU/TPU runs
            jax.config.update("jax_num_cpu_devices", args.devices)
        except RuntimeError:  # backends already started (in-process use): keep what exists
            pass
    jax.config.update("jax_enable_x64", True)
    try:
        share = initialize_distributed(
            args.coordinator,
            args.num_processes,
            args.process_id,
            folder=out,
            run_key=spec.text or spec.name,
            timeout=args.connect_timeout,
        )
    except (ValueError, MultiHostError) as err:
        return _fail(str(err), 2)
    progress = False if args.quiet else (True if args.progress else None)
    try:
        summary = run_sweep(
            spec,
            out,
            devices=args.devices,
            progress=progress,
            strict=args.strict,
            extend=args.extend,
            share=share,
            writer=None if share is None else f"p{share[0]}",
        )
    except (SpecError, StoreError) as err:
        return _fail(str(err), 2)
    except MultiHostError as err:  # results are safe; leave without JAX's shutdown barrier
        _fail(str(err), 3)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(3)
    if jax.process_index() == 0:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.status_counts.items()))
        who = "process 0" if jax.process_count() > 1 else "ufm sweep"
        print(
            f"{who}: {summary.seeds_run} seeds run ({counts or 'none'}), "
            f"{summary.seeds_skipped} already done, {summary.num_configs} configurations, "
            f"{summary.seconds:.1f} s -> {summary.folder}",
            file=sys.stderr,
        )
        if jax.process_count() > 1:  # run_sweep ended at a barrier: the store is complete
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


def _cmd_submit(args) -> int:
    from ..core.validation import SpecError
    from ..runs.store import StoreError
    from ..runs.submit import submit_sweep
    from ..runs.sweep_spec import load_sweep_spec

    try:
        spec = load_sweep_spec(args.spec)
    except SpecError as err:
        return _fail(str(err), 2)
    slurm = {"timeout_min": args.time, "cpus_per_task": args.cpus, "mem_gb": args.mem}
    if args.partition:
        slurm["slurm_partition"] = args.partition
    if args.gpus:
        slurm["gpus_per_node"] = args.gpus
    try:
        summary = submit_sweep(
            spec,
            args.out,
            tasks=args.tasks,
            executor=args.executor,
            slurm=slurm,
            retries=args.retries,
            wait=not args.no_wait,
        )
    except (SpecError, StoreError, ImportError) as err:
        return _fail(str(err), 2)
    if summary.failed:
        return _fail(
            f"task(s) {summary.failed} failed after {args.retries} resubmission(s); "
            f"their finished starts are in {summary.folder}: submit again to resume "
            "(logs in DIR/submitit)",
            1,
        )
    print(f"ufm sweep submit: {summary.tasks} task(s) done -> {summary.folder}", file=sys.stderr)
    return 0
