"""A second process that renders part of a report's figures while the command renders the rest, on
a machine with two or more cores (two Python processes ran at about 1.6x one here: ``ufm
landscape``'s figure set took 3.9-4.7 s of wall time with it, together with the lighter ticks of
:mod:`ufm.report.figures`, against 5.3-6.5 s before; BENCHMARKS.md).

Matplotlib renders in Python under the GIL: the seven figures of ``ufm landscape`` cost about 6 s
of one core on the 2-core development machine, a third of a warm run (BENCHMARKS.md). A
:class:`FigureWorker` is started when a command begins (``python -m ufm.report.worker``, a fresh
interpreter: no fork of the JAX process), imports matplotlib and the figure module while the
command computes, then waits on its standard input. At the end the command sends it a list of
figure jobs (a plotting function of :mod:`ufm.report.figures` by name, its arguments, the PNG
path), renders the other figures itself meanwhile, and collects the worker's paths. Jobs are
pickled through the pipes; the worker writes its PNGs with :func:`ufm.report.folder.save_figure`
(atomic), exactly the bytes the command would have written itself (tests/report check this).

Any failure of the worker (it could not start, died, sent garbage, timed out) is recovered by the
command rendering the affected jobs itself: a figure is never lost to the worker. Off switch:
``UFM_FIGURE_WORKER=0`` (the test suite sets it, except in the test of the worker itself).
Only the command line uses it: in a notebook the user's matplotlib style applies, which a fresh
process would not see.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

__all__ = ["FigureWorker", "render_job", "split_jobs", "worker_enabled"]

#: Seconds the command waits for the worker's figures before rendering them itself.
TIMEOUT = 300.0


def worker_enabled() -> bool:
    """Whether commands may start a :class:`FigureWorker` (``UFM_FIGURE_WORKER``, default on when
    the machine has more than one core)."""
    env = os.environ.get("UFM_FIGURE_WORKER", "").strip().lower()
    if env in ("0", "off", "false", "no"):
        return False
    return (os.cpu_count() or 1) > 1


def render_job(job):
    """Render one job ``(function name, args, path)``: the path, or ``None`` when the plotting
    function made no figure (it returns ``None`` when its columns are absent)."""
    from . import figures
    from .folder import save_figure

    name, args, path = job
    fig = getattr(figures, name)(*args)
    return None if fig is None else save_figure(fig, path)


class FigureWorker:
    """The figure process of one command (module docstring). ``FigureWorker.start()`` returns
    ``None`` where it is disabled or cannot start."""

    def __init__(self, proc):
        self._proc = proc

    @classmethod
    def start(cls, *, force: bool = False):
        """Start the process (``force``: whatever :func:`worker_enabled` says)."""
        if not (force or worker_enabled()):
            return None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ufm.report.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(os.environ, MPLBACKEND="Agg"),
            )
        except OSError:
            return None
        return cls(proc)

    def submit(self, jobs) -> bool:
        """Send the jobs; ``False`` (nothing sent) when the worker is gone."""
        try:
            pickle.dump(list(jobs), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.close()
            self._proc.stdin = None  # communicate() must not flush the closed pipe
            return True
        except (OSError, pickle.PicklingError, ValueError):
            self.close()
            return False

    def collect(self, timeout: float = TIMEOUT):
        """``[(job index, path or None, error message or None)]`` of the submitted jobs, or
        ``None`` when the worker failed (then the caller renders them itself)."""
        try:
            out, _ = self._proc.communicate(timeout=timeout)
            if self._proc.returncode != 0:
                return None
            return pickle.loads(out)
        except Exception:  # noqa: BLE001 - any failure: the caller renders the jobs
            self.close()
            return None

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def _warm_up() -> None:
    """Draw a small log-scale figure once: fonts, the mathtext parser (log tick labels) and the
    Agg renderer are initialised while the command still computes, not on the first job."""
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(layout="constrained")
    ax.loglog([1e-12, 1.0], [1e-6, 1.0], label="x")
    ax.set_title("warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), dpi=60, format="png")
    plt.close(fig)


#: Rendering cost of the figure functions in units of the cheapest (~0.35 s on the development
#: machine for ``ufm landscape``'s default; measured per figure after a warm-up); unlisted: 1.
COSTS = {
    "plot_nc_traces": 4.0,
    "plot_lambda_min_vs_gap": 3.0,
    "plot_negative_counts": 1.5,
    "plot_saddle_bound": 1.5,
}

#: The command's first figure also pays for importing pyplot and initialising fonts and mathtext
#: (the worker did that while the command computed: :func:`_warm_up`, ~1.5 s).
SETUP_COST = 4.0


def split_jobs(jobs) -> list[int]:
    """Indices of the jobs for the worker: the largest first to whichever side has less work
    (the command's side starts with :data:`SETUP_COST`)."""
    order = sorted(range(len(jobs)), key=lambda i: -COSTS.get(jobs[i][0], 1.0))
    mine, theirs, load_mine, load_theirs = [], [], SETUP_COST, 0.0
    for i in order:
        cost = COSTS.get(jobs[i][0], 1.0)
        if load_theirs <= load_mine:
            theirs.append(i)
            load_theirs += cost
        else:
            mine.append(i)
            load_mine += cost
    return sorted(theirs)


def _serve() -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import figures  # noqa: F401  (the imports overlap the command's computation)
    from .folder import save_figure  # noqa: F401

    _warm_up()
    jobs = pickle.load(sys.stdin.buffer)
    results = []
    for i, job in enumerate(jobs):
        try:
            path = render_job(job)
            results.append((i, None if path is None else str(path), None))
        except Exception as exc:  # noqa: BLE001 - reported back, the command re-renders
            results.append((i, None, f"{type(exc).__name__}: {exc}"))
    sys.stdout.buffer.write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
