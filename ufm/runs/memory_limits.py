"""Host-side sizes of a sweep: byte counts (``"512 MiB"``) and the host-memory limit on seeds.

:func:`parse_bytes` reads ``chunking.memory_budget``; :func:`check_seed_count` refuses seed counts
whose planning step alone would not fit in a quarter of the host memory.
"""

from __future__ import annotations

import numbers
import os
import re

from ..core.validation import SpecError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value, key: str = "memory_budget") -> int:
    """Bytes from an integer or a string such as ``"512 MiB"``, ``"2GB"`` (KB = 1e3, KiB = 1024).

    >>> parse_bytes("1.5 GiB"), parse_bytes(4096)
    (1610612736, 4096)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS and float(m.group(1)) > 0:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise SpecError(
        f"sweep spec key {key!r}: expected a positive byte count (an integer, or a string like "
        f"'512 MiB' or '2 GB'), got {value!r}"
    )


#: Host memory one start key costs in the planning step (source, seed, bookkeeping), bytes.
BYTES_PER_START = 64


def check_seed_count(key: str, count: int) -> None:
    """Refuse seed counts whose bookkeeping alone would not fit in a quarter of the host memory
    (the planning step holds every start key), naming the key and the estimate."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        total = 16 * 2**30
    need = count * BYTES_PER_START
    if need > total // 4:
        raise SpecError(
            f"{key} = {count} would need about {need / 2**30:.1f} GiB of host memory "
            f"just to plan the starts ({total / 2**30:.0f} GiB here); split the run "
            "into several sweeps (seeds.base) or Slurm array tasks"
        )
