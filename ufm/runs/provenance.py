"""Provenance of a run: what produced a result row (versions, command line, commit, host, device).

One record for every job (``ufm landscape``, ``ufm sweep``, the trained-network systems): it goes
into every result row (the per-row columns below) and into the folder's manifest, so a row read
months later says which code, settings and machine produced it.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from .._version import __version__

__all__ = ["provenance", "ROW_PROVENANCE", "git_commit"]

#: Provenance columns written into every result row (the rest stays in the manifest).
ROW_PROVENANCE = (
    "ufm_version",
    "jax_version",
    "jaxlib_version",
    "numpy_version",
    "python_version",
    "git_commit",
    "platform",
    "device_kind",
    "num_devices",
    "matmul_precision",
    "x64",
    "process_index",
    "process_count",
    "host",
)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the ufm source tree when it is a git checkout (``+dirty`` with local
    changes), else ``""``."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return ""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "ufm"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(devices=None) -> dict:
    """The provenance record of this process (``devices``: the devices the run uses, default the
    local ones)."""
    import jaxlib

    devices = list(jax.local_devices() if devices is None else devices)
    dev = devices[0]
    prec = jax.config.jax_default_matmul_precision
    return {
        "ufm_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", ""),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "platform": dev.platform,
        "device_kind": str(getattr(dev, "device_kind", dev)),
        "num_devices": len(devices),
        "matmul_precision": "default" if prec is None else str(prec),
        "x64": bool(jax.config.jax_enable_x64),
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "host": socket.gethostname(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) if sys.argv else "",
        "pid": os.getpid(),
    }
