"""Plain-text tables: the one formatter every report uses (terminal, report.md, summary.txt)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["format_table", "fmt"]


def fmt(value, spec: str = ".2e") -> str:
    """A table cell: integers as is, floats with ``spec`` (``-`` for ``nan``/``None``), text as is.

    >>> fmt(3), fmt(0.000123), fmt(float("nan")), fmt("ce")
    ('3', '1.23e-04', '-', 'ce')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "-" if math.isnan(value) else format(value, spec)
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.integer):
            return str(int(value))
        if isinstance(value, np.floating):
            return fmt(float(value), spec)
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence], *, align: str = "right") -> str:
    """Columns padded to a common width, a rule under the header; ``align`` is ``"right"`` or
    ``"left"`` (the first column is always left-aligned: it names the row).

    >>> print(format_table(["config", "runs"], [["ce-none", 3], ["mse-free", 12]]))
    config    runs
    --------  ----
    ce-none      3
    mse-free    12
    """
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        out = []
        for i, (c, w) in enumerate(zip(r, widths)):
            out.append(c.ljust(w) if i == 0 or align == "left" else c.rjust(w))
        return "  ".join(out).rstrip()

    return "\n".join(
        [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    )
