"""Forward feature map (Nam, Mingard, Lee, Hayou & Louis 2024, arXiv 2410.04264).

The feature operator of a network's penultimate layer, its spectrum and Nystrom eigenfunctions,
target mass and utilisation curves, centred concentration, ``D_LR``, and the minimal- vs
extended-features verdict (:mod:`.spectrum`, :mod:`.alignment`, :mod:`.analysis`,
:mod:`.verdict`); trained networks on real data over several seeds (:mod:`.spec`,
:mod:`.model`, :mod:`.experiment`), the fixed simplex-ETF classifier at ``d = K``
(:mod:`.etf`), presets, the result store, figures and ``ufm feature-map`` (:mod:`.presets`,
:mod:`.jobs`, :mod:`.plots`, :mod:`.cli`). This package registers the ``"feature_map"`` system.
See docs/feature_map.md.
"""

from ...core.registry import System, register_system
from ...runs.schema import register_column_docs
from .alignment import cka_minimal_projection as cka_minimal_projection
from .alignment import d_lr as d_lr
from .analysis import FeatureMapAnalysis as FeatureMapAnalysis
from .analysis import analyse as analyse
from .analysis import at_k as at_k
from .cli import add_feature_map_parser
from .collapse import class_means as class_means
from .collapse import etf_error_means as etf_error_means
from .collapse import nc1_quotient as nc1_quotient
from .etf import peak_rss as peak_rss
from .etf import train_step_memory as train_step_memory
from .experiment import analyse_checkpoint as analyse_checkpoint
from .experiment import make_evaluate as make_evaluate
from .experiment import run_experiment as run_experiment
from .experiment import train_seeds as train_seeds
from .jobs import COLUMN_DOCS
from .jobs import load_rows as load_rows
from .jobs import run_preset as run_preset
from .model import data_info as data_info
from .model import dataset as dataset
from .model import fm_init as fm_init
from .model import fm_objective as fm_objective
from .model import make_loss_fn as make_loss_fn
from .model import make_model as make_model
from .model import make_optimizer as make_optimizer
from .model import param_counts as param_counts
from .plots import plot_d_lr as plot_d_lr
from .plots import plot_etf_comparison as plot_etf_comparison
from .plots import plot_pi_curves as plot_pi_curves
from .plots import plot_spectra as plot_spectra
from .presets import PRESETS as PRESETS
from .presets import Preset as Preset
from .spec import FeatureMapSpec as FeatureMapSpec
from .spec import default_checkpoints as default_checkpoints
from .spec import spec_label as spec_label
from .spectrum import FeatureSpectrum as FeatureSpectrum
from .spectrum import centred_gap as centred_gap
from .spectrum import cumulative_mass as cumulative_mass
from .spectrum import effective_rank as effective_rank
from .spectrum import eigenfunctions as eigenfunctions
from .spectrum import feature_spectrum as feature_spectrum
from .spectrum import participation_ratio as participation_ratio
from .spectrum import projections as projections
from .tables import etf_table as etf_table
from .tables import verdict_table as verdict_table
from .verdict import MFCriterion as MFCriterion
from .verdict import Verdict as Verdict
from .verdict import verdict as verdict


def _examples():
    """Two tiny float64 specs (40 digits samples) that cover the MLP and the CNN, MSE and CE,
    weight decay, the fixed ETF head, the lazy and the last-layer modes; the conformance test
    runs them (the float32 paths are run by the tests of the ``tiny`` preset)."""
    small = dict(n_train=40, batch_size=20, epochs=2, dtype="float64")
    return (
        FeatureMapSpec(
            widths=(6, 10),
            head="etf",
            feature_activation="identity",
            loss="mse",
            training="lazy",
            alpha=10.0,
            **small,
        ),
        FeatureMapSpec(
            net="cnn",
            channels=(2,),
            widths=(6,),
            loss="ce",
            weight_decay=1e-3,
            training="last_layer",
            **small,
        ),
    )


SYSTEM = register_system(
    System(
        name="feature_map",
        spec_type=FeatureMapSpec,
        loss=fm_objective,
        init=fm_init,
        examples=_examples,
        summary="trained MLP/CNN on digits or user data: forward-feature-map spectra, MF vs EF, "
        "fixed ETF classifier at d = K",
        label=spec_label,
        add_cli=add_feature_map_parser,
        presets=PRESETS,
        # Not sweepable: a sweep runs the generic full-batch optimiser and critical-point
        # analyses on the objective, which is not this system's experiment (minibatch training
        # over epochs with checkpointed spectra); `ufm feature-map` and run_preset run that.
        sweepable=False,
    )
)

register_column_docs(COLUMN_DOCS)
