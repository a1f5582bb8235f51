"""Per-seed status codes of the many-seed optimisers (stored as ``int8``)."""

from __future__ import annotations

import enum

__all__ = ["Status", "STATUS_NAMES"]


class Status(enum.IntEnum):
    """Per-seed status codes (stored as ``int8``)."""

    MAX_STEPS = 0  #: still running, or the step budget was exhausted before meeting the tolerance
    RUNNING = 0  #: alias of ``MAX_STEPS`` (the name while a run is in progress)
    CONVERGED = 1  #: gradient norm <= tol
    DIVERGED = (
        2  #: loss or gradient norm above ``divergence_threshold`` (frozen at last finite point)
    )
    NAN = 3  #: non-finite loss or gradient (frozen at last finite point)


STATUS_NAMES = {int(s): s.name.lower() for s in Status}
