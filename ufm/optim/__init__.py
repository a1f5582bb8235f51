"""Many-seed optimisers: the settings object, the full-batch optimiser, polishing, status codes,
and minibatch training of networks (:func:`train`)."""

from .optimize import OptimizeResult as OptimizeResult
from .optimize import optimize as optimize
from .polish import DENSE_NEWTON_MAX_PARAMS as DENSE_NEWTON_MAX_PARAMS
from .polish import PolishResult as PolishResult
from .polish import polish as polish
from .settings import POLISH_METHODS as POLISH_METHODS
from .settings import OptimizerSettings as OptimizerSettings
from .status import STATUS_NAMES as STATUS_NAMES
from .status import Status as Status
from .training import TrainResult as TrainResult
from .training import train as train
from .transforms import gd as gd
from .transforms import make_optimizer as make_optimizer
from .transforms import momentum as momentum
