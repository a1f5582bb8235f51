"""ufm: the unconstrained feature model and representation collapse in JAX.

A small flat front door for everyday use (``ufm.UFMSpec``, ``ufm.optimize``, ``ufm.classify_batch``,
``ufm.run_sweep``, ``ufm.load_results``, the closed forms) and namespaces for the rest, one per
layer
of the package (imports only go down this list):

* ``ufm.core``: validation, the system registry and its hooks, generic model entry points;
* ``ufm.metrics``: neural-collapse metrics on arrays;
* ``ufm.hessian``: dense, Lanczos and block-arrow Hessian spectra, Newton steps;
* ``ufm.optim``: the many-seed optimiser, its settings, polishing;
* ``ufm.landscape``: classification of critical points, deduplication;
* ``ufm.runs``: starts, the per-configuration pipeline, analyses, sweeps, sharding, the store;
* ``ufm.report``: tables, figures, results folders;
* ``ufm.systems``: one package per model system (``ufm.systems.ufm``, ``ufm.systems.deep_ufm``, ...;
  ``ufm.deep`` is the deep UFM's namespace).

The package's own account of the theory it implements is in docs/ (docs/theory.md).

``import ufm`` registers every system. It sets ``OPENBLAS_NUM_THREADS=1`` in the environment
unless the variable is already set: jaxlib's CPU LAPACK kernels (eigh, svd, cholesky) go through
OpenBLAS, whose thread pool made this toolkit's small batched decompositions 10-100x slower on few
cores (a 100 x 100 eigh took 0.16 s instead of 1 ms on a busy 2-core machine). It only takes
effect if OpenBLAS was not loaded before (e.g. by numpy); set the variable yourself to choose.
"""

import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import core as core  # noqa: E402
from . import hessian as hessian  # noqa: E402
from . import landscape as landscape  # noqa: E402
from . import metrics as metrics  # noqa: E402
from . import optim as optim  # noqa: E402
from . import report as report  # noqa: E402
from . import runs as runs  # noqa: E402
from . import systems as systems  # noqa: E402
from ._version import __version__ as __version__  # noqa: E402

# -- specs, parameters, objectives -------------------------------------------------------------
from .core import SpecError as SpecError  # noqa: E402
from .core import grad_norm as grad_norm  # noqa: E402
from .core import init_batch as init_batch  # noqa: E402
from .core import init_params as init_params  # noqa: E402
from .core import loss as loss  # noqa: E402
from .core import nc_metrics as nc_metrics  # noqa: E402
from .core import objective as objective  # noqa: E402

# -- classification of critical points ---------------------------------------------------------
from .landscape import CLASS_NAMES as CLASS_NAMES  # noqa: E402
from .landscape import CounterexampleWarning as CounterexampleWarning  # noqa: E402
from .landscape import PointClass as PointClass  # noqa: E402
from .landscape import classify as classify  # noqa: E402
from .landscape import classify_batch as classify_batch  # noqa: E402
from .metrics import NC_METRIC_NAMES as NC_METRIC_NAMES  # noqa: E402

# -- optimisation ------------------------------------------------------------------------------
from .optim import OptimizeResult as OptimizeResult  # noqa: E402
from .optim import OptimizerSettings as OptimizerSettings  # noqa: E402
from .optim import PolishResult as PolishResult  # noqa: E402
from .optim import Status as Status  # noqa: E402
from .optim import gd as gd  # noqa: E402
from .optim import make_optimizer as make_optimizer  # noqa: E402
from .optim import momentum as momentum  # noqa: E402
from .optim import optimize as optimize  # noqa: E402
from .optim import polish as polish  # noqa: E402

# -- runs, sweeps, results ---------------------------------------------------------------------
from .runs import StartSettings as StartSettings  # noqa: E402
from .runs import load_results as load_results  # noqa: E402
from .runs import load_sweep_spec as load_sweep_spec  # noqa: E402
from .runs import make_starts as make_starts  # noqa: E402
from .runs import run_points as run_points  # noqa: E402
from .runs import run_sweep as run_sweep  # noqa: E402
from .systems import deep_ufm as deep  # noqa: E402,F401
from .systems.deep_ufm import DeepUFMParams as DeepUFMParams  # noqa: E402
from .systems.deep_ufm import DeepUFMSpec as DeepUFMSpec  # noqa: E402
from .systems.ufm import LandscapeConfig as LandscapeConfig  # noqa: E402

# -- closed forms and certificates of the UFM (docs/theory.md sections 2-3) --------------------
from .systems.ufm import Optimum as Optimum  # noqa: E402
from .systems.ufm import UFMParams as UFMParams  # noqa: E402
from .systems.ufm import UFMSpec as UFMSpec  # noqa: E402
from .systems.ufm import certificate as certificate  # noqa: E402
from .systems.ufm import negative_curvature_direction as negative_curvature_direction  # noqa: E402
from .systems.ufm import optimal_value as optimal_value  # noqa: E402
from .systems.ufm import optimum as optimum  # noqa: E402
from .systems.ufm import orthogonal_frame as orthogonal_frame  # noqa: E402
from .systems.ufm import run_landscape as run_landscape  # noqa: E402
from .systems.ufm import saddle_dims as saddle_dims  # noqa: E402
from .systems.ufm import simplex_etf as simplex_etf  # noqa: E402
from .systems.ufm import zero_mode_count as zero_mode_count  # noqa: E402
