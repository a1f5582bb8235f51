"""The bottom layer: validation, spec pytrees, the system registry and its hooks, generic model
entry points, devices, progress."""

from .devices import map_points as map_points
from .devices import on_cpu as on_cpu
from .devices import on_one_cpu_device as on_one_cpu_device
from .devices import seed_mesh_of as seed_mesh_of
from .devices import spread_points as spread_points
from .model import evaluate_points as evaluate_points
from .model import grad_norm as grad_norm
from .model import init_batch as init_batch
from .model import init_params as init_params
from .model import loss as loss
from .model import nc_metrics as nc_metrics
from .model import objective as objective
from .model import spec_label as spec_label
from .progress import Progress as Progress
from .pytree import register_spec as register_spec
from .registry import OPTIONAL_HOOKS as OPTIONAL_HOOKS
from .registry import PlantedStarts as PlantedStarts
from .registry import System as System
from .registry import get_system as get_system
from .registry import register_system as register_system
from .registry import registered_systems as registered_systems
from .registry import system_of as system_of
from .trees import tree_norm as tree_norm
from .validation import SpecError as SpecError
from .validation import check_choice as check_choice
from .validation import check_int as check_int
from .validation import check_lambda as check_lambda
from .validation import require_x64 as require_x64
