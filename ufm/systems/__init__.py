"""Model systems, one folder each; importing this package registers them all.

Each system folder builds a :class:`ufm.core.System` (spec, objective, initialisation, and the
optional hooks the generic layers use) and calls :func:`ufm.core.register_system`. Adding a system
is one folder plus one line below (docs/adding_a_system.md).
"""

from . import deep_ufm as deep_ufm
from . import feature_collapse as feature_collapse
from . import feature_map as feature_map
from . import ufm as ufm
