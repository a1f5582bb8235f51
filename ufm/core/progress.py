"""A dependency-free progress bar on stderr with rate and ETA.

:class:`Progress` draws ``desc: 45%|#####     | 450/1000 [00:12<00:15, 36.2 seeds/s]`` in place on
a terminal, like ``tqdm`` (whose smoothed-rate estimate it follows), without the dependency. It
is used by the sweep runner, the optimiser and the landscape job.

Output policy:

* on a TTY the bar is redrawn in place at most every ``min_interval`` seconds;
* when the stream is not a TTY (a log file, a pipe, pytest capture) it is silent, unless
  ``force=True`` or the environment sets ``UFM_PROGRESS=1``: then it writes one plain line every
  ``log_interval`` seconds and at the end, which reads well in ``nohup`` logs;
* ``quiet=True`` (or ``UFM_PROGRESS=0``) silences it whatever the stream.

The rate is an exponential moving average of the time per item (smoothing 0.3, as tqdm), so
the first update, which usually includes JIT compilation, does not dominate the ETA for long.

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
import shutil
import sys
import time

__all__ = ["Progress", "format_duration"]


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


class Progress:
    """Progress bar for ``total`` items (``None``: unknown total, no percentage or ETA).

    Args:
        total: number of items expected.
        desc: label printed before the bar.
        unit: name of an item in the rate (``"it"``, ``"seeds"``, ``"steps"``).
        file: stream to draw on (default ``sys.stderr``).
        force: draw even when ``file`` is not a TTY (as plain lines every ``log_interval`` s).
        quiet: draw nothing at all (overrides ``force``).
        min_interval: minimum seconds between redraws on a TTY.
        log_interval: seconds between lines when forced on a non-TTY stream.

    Methods: ``update(k=1)``, ``write(msg)`` (a message that does not break the bar),
    ``close()``; usable as a context manager. ``n``, ``elapsed``, ``rate`` and ``eta`` are
    readable at any time, also when nothing is drawn.
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
        self.unit = unit
        self.file = sys.stderr if file is None else file
        env = os.environ.get("UFM_PROGRESS", "").strip().lower()
        quiet = quiet or env in ("0", "false", "off", "no")
        force = force or env in ("1", "true", "on", "yes")
        self._tty = _isatty(self.file)
        self.enabled = not quiet and (self._tty or force)
        self.min_interval = min_interval if self._tty else log_interval
        self.n = 0
        self._start = self._last_t = time.monotonic()
        self._last_draw = -float("inf")
        self._drawn_n = -1
        self._sec_per_item: float | None = None
        self._closed = False
        self._width = 0
        self._bar_chars = "#" if _ascii_only(self.file) else "\u2588"

    # -- measurements -------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    @property
    def rate(self) -> float | None:
        """Smoothed items per second (``None`` before the first update)."""
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
    def update(self, k: int = 1) -> None:
        """Record ``k`` more finished items and redraw if due."""
        if k <= 0:
            return
        now = time.monotonic()
        dt = now - self._last_t
        self._last_t = now
        self.n += k
        per_item = dt / k
        if self._sec_per_item is None:
            self._sec_per_item = per_item
        else:
            self._sec_per_item = 0.3 * per_item + 0.7 * self._sec_per_item
        if self.enabled and (
            now - self._last_draw >= self.min_interval
            or (self.total is not None and self.n >= self.total)
        ):
            self._draw(now)

    def write(self, msg: str) -> None:
        """Print ``msg`` on its own line (above the bar on a TTY), when the bar is enabled."""
        if not self.enabled:
            return
        if self._tty and self._width:
            self.file.write("\r" + " " * self._width + "\r")
        self.file.write(msg.rstrip("\n") + "\n")
        if self._tty and self._width:
            self._draw(time.monotonic())
        self.file.flush()

    def close(self) -> None:
        """Draw the final state and end the line. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            if self._drawn_n != self.n:
                self._draw(time.monotonic())
            if self._tty:
                self.file.write("\n")
            self.file.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------------
    def line(self) -> str:
        """The current status line (what is drawn)."""
        elapsed = format_duration(self.elapsed)
        rate = _format_rate(self.rate, self.unit)
        head = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            return f"{head}{self.n} [{elapsed}, {rate}]"
        frac = 1.0 if self.total == 0 else min(self.n / self.total, 1.0)
        stats = f" {self.n}/{self.total} [{elapsed}<{format_duration(self.eta)}, {rate}]"
        if not self._tty:
            return f"{head}{100 * frac:3.0f}%{stats}"
        cols = shutil.get_terminal_size((80, 20)).columns
        bar_w = max(cols - len(head) - len(stats) - 7, 5)
        filled = int(frac * bar_w)
        bar = self._bar_chars * filled + " " * (bar_w - filled)
        return f"{head}{100 * frac:3.0f}%|{bar}|{stats}"

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self._drawn_n = self.n
        text = self.line()
        if self._tty:
            pad = max(self._width - len(text), 0)
            self.file.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.file.write(text + "\n")
        self.file.flush()


def _isatty(f) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False


def _ascii_only(f) -> bool:
    enc = (getattr(f, "encoding", None) or "").lower().replace("-", "")
    return enc not in ("utf8", "utf16", "utf32")
