"""The one progress display of every job: terminal, log file and notebook.

:class:`Progress` counts finished items (seeds, steps, epochs) with a rate and an ETA that leave
compilation out: a caller that knows how long the compute of an update took (its wall time minus
the compile time JAX reported, :class:`ufm.core.timing.CompileTimer`) passes it as ``seconds``, so
the first chunk of a configuration, which compiles, does not make the ETA swing. The current
*phase* (``compile``, ``optimise``, ``polish``, ``hessian``, ``write``, ...) and configuration are
shown in the description.

Where it draws:

* on a terminal or in a Jupyter notebook: a ``tqdm`` bar (``tqdm.auto``: a widget in notebooks),
  redrawn in place at most every ``min_interval`` seconds;
* when the stream is not a terminal (a log file, a pipe, pytest capture) it is silent, unless
  ``force=True`` or the environment sets ``UFM_PROGRESS=1``: then it writes one plain line every
  ``log_interval`` seconds and at the end, which reads well in ``nohup`` and Slurm logs;
* ``quiet=True`` (or ``UFM_PROGRESS=0``) silences it whatever the stream.

The rate is an exponential moving average of the time per item (smoothing 0.3, as tqdm).

Example:
    >>> import io
    >>> buf = io.StringIO()
    >>> with Progress(4, "seeds", unit="seeds", file=buf, force=True, log_interval=0) as bar:
    ...     bar.update(2)
    ...     bar.update(2)
    >>> print(buf.getvalue().splitlines()[-1])  # doctest: +ELLIPSIS
    seeds: 100% 4/4 [00:00<00:00, ... seeds/s]
"""

from __future__ import annotations

import os
import sys
import time

from .interrupts import raise_if_stop_requested

__all__ = ["Progress", "format_duration", "in_notebook"]


def format_duration(seconds: float | None) -> str:
    """``[h:]mm:ss`` for a number of seconds; ``?`` when unknown.

    >>> format_duration(75), format_duration(3725), format_duration(None)
    ('01:15', '1:02:05', '?')
    """
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _format_rate(rate: float | None, unit: str) -> str:
    if rate is None or rate <= 0:
        return f"? {unit}/s"
    if rate >= 1:
        return f"{rate:.3g} {unit}/s" if rate < 1000 else f"{rate:,.0f} {unit}/s"
    return f"{1 / rate:.3g} s/{unit.rstrip('s') or unit}"


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (tqdm then draws a widget)."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """Progress of ``total`` items (``None``: unknown total, no percentage or ETA).

    Args:
        total: number of items expected.
        desc: label printed before the bar (e.g. the job and configuration).
        unit: name of an item in the rate (``"it"``, ``"seeds"``, ``"steps"``).
        file: stream to draw on (default ``sys.stderr``).
        force: draw even when ``file`` is not a terminal (as plain lines every ``log_interval`` s).
        quiet: draw nothing at all (overrides ``force``).
        min_interval: minimum seconds between redraws on a terminal.
        log_interval: seconds between lines when forced on a non-terminal stream.

    Methods: ``update(k=1, seconds=None)`` (``seconds``: the compute time of those ``k`` items,
    compilation excluded; default the wall time since the last update), ``set_phase(name)``,
    ``set_description(desc)``, ``write(msg)``, ``close()``; usable as a context manager. ``n``,
    ``elapsed``, ``rate`` and ``eta`` are readable at any time, also when nothing is drawn.
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        *,
        unit: str = "it",
        file=None,
        force: bool = False,
        quiet: bool = False,
        min_interval: float = 0.1,
        log_interval: float = 30.0,
    ):
        if total is not None and (isinstance(total, bool) or int(total) != total or total < 0):
            raise ValueError(f"total must be an integer >= 0 or None, got {total!r}")
        self.total = None if total is None else int(total)
        self.desc = desc
        self.phase = ""
        self.unit = unit
        self.file = sys.stderr if file is None else file
        env = os.environ.get("UFM_PROGRESS", "").strip().lower()
        quiet = quiet or env in ("0", "false", "off", "no")
        force = force or env in ("1", "true", "on", "yes")
        notebook = file is None and in_notebook()
        self._tty = _isatty(self.file) or notebook
        self.enabled = not quiet and (self._tty or force)
        self.log_interval = log_interval
        self.n = 0
        self._start = self._last_t = time.monotonic()
        self._last_line = -float("inf")
        self._drawn_n = -1
        self._sec_per_item: float | None = None
        self._closed = False
        self._bar = None
        if self.enabled and self._tty:
            self._bar = _make_tqdm(
                self.total, desc, unit, self.file if not notebook else None, min_interval
            )

    # -- measurements -------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    @property
    def rate(self) -> float | None:
        """Smoothed items per second, compilation excluded (``None`` before the first update)."""
        if not self._sec_per_item:
            return None
        return 1.0 / self._sec_per_item

    @property
    def eta(self) -> float | None:
        """Estimated seconds left (``None`` without a total or a rate)."""
        if self.total is None or self.rate is None:
            return None
        return max(self.total - self.n, 0) / self.rate

    # -- updates -------------------------------------------------------------------------------
    def update(self, k: int = 1, seconds: float | None = None) -> None:
        """Record ``k`` more finished items; ``seconds`` is their compute time (see class)."""
        raise_if_stop_requested()  # a chunk boundary: a swallowed Ctrl-C stops the job here
        if k <= 0:
            return
        now = time.monotonic()
        dt = now - self._last_t if seconds is None else max(float(seconds), 0.0)
        self._last_t = now
        self.n += k
        per_item = dt / k
        if self._sec_per_item is None:
            self._sec_per_item = per_item
        else:
            self._sec_per_item = 0.3 * per_item + 0.7 * self._sec_per_item
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(k)
        elif now - self._last_line >= self.log_interval or (
            self.total is not None and self.n >= self.total
        ):
            self._write_line(now)

    def set_phase(self, phase: str) -> None:
        """Show the current phase (``compile``, ``optimise``, ``polish``, ``hessian``, ...)."""
        self.phase = phase
        if self._bar is not None:
            self._bar.set_description_str(self._desc(), refresh=True)

    def set_description(self, desc: str) -> None:
        """Change the label (e.g. the configuration being run)."""
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description_str(self._desc(), refresh=True)

    def write(self, msg: str) -> None:
        """Print ``msg`` on its own line (above the bar on a terminal), when enabled."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(msg.rstrip("\n"), file=self.file)
        else:
            self.file.write(msg.rstrip("\n") + "\n")
            self.file.flush()

    def close(self) -> None:
        """Draw the final state and end the line. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
        elif self._drawn_n != self.n:
            self._write_line(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------------
    def _desc(self) -> str:
        return self.desc + (f" [{self.phase}]" if self.phase else "")

    def _postfix(self) -> str:
        return (
            f"ETA {format_duration(self.eta)}, {_format_rate(self.rate, self.unit)}"
            if self.total is not None
            else _format_rate(self.rate, self.unit)
        )

    def line(self) -> str:
        """The current status as one plain line (what a log file gets)."""
        elapsed = format_duration(self.elapsed)
        rate = _format_rate(self.rate, self.unit)
        head = f"{self._desc()}: " if self._desc() else ""
        if self.total is None:
            return f"{head}{self.n} [{elapsed}, {rate}]"
        frac = 1.0 if self.total == 0 else min(self.n / self.total, 1.0)
        return (
            f"{head}{100 * frac:3.0f}% {self.n}/{self.total} "
            f"[{elapsed}<{format_duration(self.eta)}, {rate}]"
        )

    def _write_line(self, now: float) -> None:
        self._last_line = now
        self._drawn_n = self.n
        self.file.write(self.line() + "\n")
        self.file.flush()


def _make_tqdm(total, desc, unit, file, min_interval):
    from tqdm.auto import tqdm

    fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {postfix}]"
    if total is None:
        fmt = "{desc}: {n_fmt} [{elapsed}, {postfix}]"
    kw = dict(
        total=total,
        desc=desc,
        unit=unit,
        mininterval=min_interval,
        bar_format=fmt,
        dynamic_ncols=True,
        leave=True,
    )
    if file is not None:
        kw["file"] = file
        kw["ascii"] = _ascii_only(file)
    return tqdm(**kw)


def _isatty(f) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False


def _ascii_only(f) -> bool:
    enc = (getattr(f, "encoding", None) or "").lower().replace("-", "")
    return enc not in ("utf8", "utf16", "utf32")
