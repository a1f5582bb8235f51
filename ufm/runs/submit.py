"""Sweeps over many machines: Slurm job arrays through submitit, one shared results folder.

``ufm sweep submit SPEC --tasks N`` (or :func:`submit_sweep`) submits a job array of ``N`` tasks;
task ``i`` runs the starts with ``seed % N == i`` of every configuration (a static share: the tasks
never talk to each other) and writes them into the results folder as writer ``t<i>``, through the
same atomic, resumable store as every other job. A task that fails (an exception, a killed node)
is resubmitted up to ``retries`` times and resumes: the starts it had finished are in the folder
and are skipped. A task that hits the Slurm time limit is requeued by submitit's checkpointing
and resumes the same way. ``executor="local"`` runs the same array as local processes (submitit's
``LocalExecutor``): that is how the tests run it, and a way to use the cores of one machine.

submitit is an optional dependency (``pip install "ufm[slurm]"``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..core.validation import SpecError, check_int

__all__ = ["submit_sweep", "run_task", "SubmitSummary", "EXECUTORS"]

EXECUTORS = ("slurm", "local")


class SubmitSummary(NamedTuple):
    """What :func:`submit_sweep` did."""

    folder: Path
    tasks: int
    job_ids: list  # the submitit job ids of the last attempt of every task
    attempts: dict  # {task: number of submissions}
    failed: list  # tasks that failed after every retry (empty on success)


def run_task(spec_text: str, out: str, task: int, num_tasks: int, x64: bool = True) -> dict:
    """One array task: the share ``(task, num_tasks)`` of the sweep ``spec_text`` into ``out``.

    Runs in the task's own process (a Slurm node or a local subprocess); returns the task's
    status counts."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    from ..core.cache import enable_compilation_cache
    from .sweep import run_sweep
    from .sweep_spec import load_sweep_spec

    enable_compilation_cache()
    spec = load_sweep_spec(spec_text)
    summary = run_sweep(
        spec, out, share=(task, num_tasks), writer=f"t{task}", progress=False, lock_timeout=120.0
    )
    return dict(summary.status_counts)


class _Task:
    """A checkpointable submitit callable: requeued as is when Slurm preempts or times it out."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __call__(self):
        return self.fn(*self.args)

    def checkpoint(self, *args, **kwargs):  # submitit's requeue hook
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _executor(kind: str, folder: Path, slurm: dict | None):
    try:
        import submitit
    except ImportError:
        raise ImportError("ufm sweep submit needs submitit: pip install 'ufm[slurm]'") from None
    if kind == "local":
        return submitit.LocalExecutor(folder=str(folder))
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    ex.update_parameters(**(slurm or {}))
    return ex


def submit_sweep(
    spec,
    out=None,
    *,
    tasks: int,
    executor: str = "slurm",
    slurm: dict | None = None,
    retries: int = 1,
    wait: bool = True,
    poll: float = 2.0,
    task_fn: Callable = run_task,
    log=None,
) -> SubmitSummary:
    """Submit a sweep as a job array of ``tasks`` tasks (module docstring).

    Args:
        spec: a :class:`~ufm.runs.SweepSpec` (with its TOML text) or the path of a TOML spec.
        out: the results folder (default: the spec's ``out``, else ``ufm-results/<name>``).
        tasks: number of array tasks (each runs ``seed % tasks == i``).
        executor: ``"slurm"`` or ``"local"``.
        slurm: submitit Slurm parameters (``slurm_partition``, ``timeout_min``,
            ``cpus_per_task``, ``gpus_per_node``, ``mem_gb``, ...).
        retries: resubmissions of a failed task (it resumes from the folder).
        wait: wait for the array and resubmit failed tasks; with ``False`` return after
            submitting (check progress with ``ufm sweep status DIR``).
        poll: seconds between checks while waiting.
        task_fn: the task body (default :func:`run_task`; tests inject faults here).
    """
    from .store import ResultStore
    from .sweep import default_out
    from .sweep_spec import SweepSpec, load_sweep_spec

    log = sys.stderr if log is None else log
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    if not spec.text:
        raise SpecError("submit_sweep needs the spec's TOML text (load it with load_sweep_spec)")
    tasks = check_int("tasks", tasks, 1)
    retries = check_int("retries", retries, 0)
    if executor not in EXECUTORS:
        raise SpecError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    folder = Path(out) if out is not None else default_out(spec)
    spec.expand()  # invalid grids fail here, before anything is queued
    probe = ResultStore(folder, writer="submit")
    probe.prepare()  # an unwritable folder fails here, before anything is queued
    probe.release()
    ex = _executor(executor, folder / "submitit", slurm)
    x64 = any(str(getattr(c.spec, "dtype", "")) == "float64" for c in spec.expand()[0])

    def submit(task):
        return ex.submit(_Task(task_fn, spec.text, str(folder), task, tasks, x64))

    jobs = {t: submit(t) for t in range(tasks)}
    attempts = {t: 1 for t in range(tasks)}
    print(
        f"ufm sweep submit: {tasks} {executor} task(s) -> {folder} "
        f"(jobs {', '.join(str(j.job_id) for j in jobs.values())})",
        file=log,
    )
    failed = []
    if wait:
        pending = set(jobs)
        while pending:
            time.sleep(poll)
            for t in sorted(pending):
                job = jobs[t]
                if not job.done():
                    continue
                try:
                    job.result()
                except Exception as err:  # the task failed: resubmit, it resumes
                    if attempts[t] <= retries:
                        print(
                            f"ufm sweep submit: task {t} failed ({type(err).__name__}); "
                            f"resubmitting (attempt {attempts[t] + 1})",
                            file=log,
                        )
                        jobs[t] = submit(t)
                        attempts[t] += 1
                        continue
                    failed.append(t)
                pending.discard(t)
    return SubmitSummary(
        folder, tasks, [jobs[t].job_id for t in range(tasks)], attempts, sorted(failed)
    )
