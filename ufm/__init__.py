"""ufm: the unconstrained feature model and representation collapse in JAX.

The public API is flat: ``import ufm; ufm.UFMSpec(...)``. Private modules (``ufm._*``) are not
part of the API. See README.md for a tour.
"""

from ._version import __version__ as __version__

# -- problem specs and objectives ------------------------------------------------------------
from ._spec import SpecError as SpecError
from ._spec import UFMSpec as UFMSpec
from ._objective import UFMParams as UFMParams
from ._objective import fit_grad as fit_grad
from ._objective import fit_term as fit_term
from ._objective import grad_norm as grad_norm
from ._objective import init_batch as init_batch
from ._objective import init_params as init_params
from ._objective import labels as labels
from ._objective import logits as logits
from ._objective import loss as loss
from ._objective import objective as objective
from ._objective import one_hot_targets as one_hot_targets

# -- theory oracles --------------------------------------------------------------------------

# -- optimisation ----------------------------------------------------------------------------
from ._optimize import OptimizeResult as OptimizeResult
from ._optimize import Status as Status
from ._optimize import gd as gd
from ._optimize import make_optimizer as make_optimizer
from ._optimize import momentum as momentum
from ._optimize import optimize as optimize
from ._optimize import tree_norm as tree_norm
from ._polish import PolishResult as PolishResult
from ._polish import polish as polish

# -- neural-collapse metrics -----------------------------------------------------------------

# -- Hessians, critical points, classification -----------------------------------------------

# -- deep UFM --------------------------------------------------------------------------------

# -- sweeps and result store -----------------------------------------------------------------

# -- landscape job, plots --------------------------------------------------------------------
