"""Many-seed optimisers: the settings object, the full-batch optimiser, polishing, status codes."""

from .status import Status as Status
from .status import STATUS_NAMES as STATUS_NAMES
from .transforms import gd as gd
from .transforms import momentum as momentum
from .transforms import make_optimizer as make_optimizer
from .settings import OptimizerSettings as OptimizerSettings
from .settings import POLISH_METHODS as POLISH_METHODS
from .optimize import OptimizeResult as OptimizeResult
from .optimize import optimize as optimize
from .polish import PolishResult as PolishResult
from .polish import polish as polish
from .polish import DENSE_NEWTON_MAX_PARAMS as DENSE_NEWTON_MAX_PARAMS
