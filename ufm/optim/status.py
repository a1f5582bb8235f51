"""Per-seed status codes of the many-seed optimisers (stored as ``int8``)."""

from __future__ import annotations

import enum

__all__ = ["Status", "STATUS_NAMES"]


class Status(enum.IntEnum):
    """Per-seed status codes (stored as ``int8``)."""

    MAX_STEPS = 0  #: the step budget was used up before the tolerance was met
    CONVERGED = 1  #: gradient norm <= tol
    #: loss or gradient norm above ``divergence_threshold`` (frozen at the last finite point)
    DIVERGED = 2
    NAN = 3  #: non-finite loss or gradient (frozen at the last finite point)
    RUNNING = 4  #: still moving (only while a run is in progress; never in a final result)


STATUS_NAMES = {int(s): s.name.lower() for s in Status}
