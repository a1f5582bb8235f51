"""Feature collapse (Laurent, von Brecht, Bresson 2023, arXiv 2305.16162, ICLR 2024).

Sentences of ``L`` words drawn from ``n_c`` concepts of ``n_w / n_c`` words each, labelled by
their latent concept sequence; a network ``embedding -> (LayerNorm) -> linear`` is trained with
SGD and weight decay. Words that play the same role collapse onto one representation (type I:
uniform law; type II: with LayerNorm; type III: frequency-dependent norms, collapsed directions).

Modules: :mod:`.spec` (``FeatureCollapseSpec``), :mod:`.data` (the data model), :mod:`.model`
(network, loss, optimiser), :mod:`.theory` (reduced problems and the paper's constants),
:mod:`.metrics` (collapse numbers), :mod:`.presets` (``PRESETS``), :mod:`.experiment`
(``run_experiment``). The account with measured numbers is docs/feature_collapse.md.
"""

from . import metrics as metrics
from . import theory as theory
from .data import FCData as FCData
from .data import make_data as make_data
from .data import word_law as word_law
from .experiment import default_checkpoints as default_checkpoints
from .experiment import make_evaluate as make_evaluate
from .experiment import predictions as predictions
from .experiment import run_experiment as run_experiment
from .experiment import summarize as summarize
from .experiment import train_seeds as train_seeds
from .model import features as features
from .model import init_batch as init_batch
from .model import init_params as init_params
from .model import layer_norm as layer_norm
from .model import make_loss_fn as make_loss_fn
from .model import make_optimizer as make_optimizer
from .model import scores as scores
from .presets import PRESETS as PRESETS
from .spec import FeatureCollapseSpec as FeatureCollapseSpec
