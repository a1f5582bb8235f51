"""Feature collapse (Laurent, von Brecht, Bresson 2023, arXiv 2305.16162, ICLR 2024).

Sentences of ``L`` words drawn from ``n_c`` concepts of ``n_w / n_c`` words each, labelled by
their latent concept sequence; a network ``embedding -> (LayerNorm) -> linear`` is trained with
SGD and weight decay. Words that play the same role collapse onto one representation (type I:
uniform law; type II: with LayerNorm; type III: frequency-dependent norms, collapsed directions).

Modules: :mod:`.spec` (``FeatureCollapseSpec``), :mod:`.data` (the data model), :mod:`.model`
(network, loss, optimiser), :mod:`.objective` (the registry hooks: full-data objective, init),
:mod:`.theory` (reduced problems and the paper's constants), :mod:`.metrics` (collapse numbers),
:mod:`.presets` (``PRESETS``, ``JOB_PRESETS``), :mod:`.experiment` (``run_experiment``),
:mod:`.job` (``run_job``: presets into a results folder), :mod:`.summary`, :mod:`.figures`,
:mod:`.embeddings`, :mod:`.cli` (``ufm feature-collapse``). The account with measured numbers
is docs/feature_collapse.md.

This package registers the ``"feature_collapse"`` system. Its ``loss`` hook is the regularised
empirical risk that SGD minimises (:func:`.objective.fc_objective`). It is **not sweepable**
(``sweepable=False``): ``ufm sweep`` runs the generic full-batch optimiser on the ``loss`` hook,
which would silently ignore the training fields of the spec (``lr``, ``batch_size``, ``epochs``)
and replace the paper's minibatch SGD from a 1/1000-scaled start by full-batch descent; the
phenomena of the paper (which collapse SGD finds, the generalisation gap, its timing) are
properties of that training. Grids over this system are runs of ``ufm feature-collapse`` or
:func:`run_job` / :func:`run_experiment` per configuration; the objective remains available to
``ufm.optimize``, the Hessian tools and the conformance checks.
"""

from ...core.pytree import register_spec
from ...core.registry import System, register_system
from ...runs.schema import register_column_docs
from . import metrics as metrics
from . import theory as theory
from .cli import add_feature_collapse_parser
from .data import FCData as FCData
from .data import make_data as make_data
from .data import word_law as word_law
from .embeddings import load_embeddings as load_embeddings
from .experiment import default_checkpoints as default_checkpoints
from .experiment import experiment_rows as experiment_rows
from .experiment import make_evaluate as make_evaluate
from .experiment import predictions as predictions
from .experiment import run_experiment as run_experiment
from .experiment import summarize as summarize
from .experiment import train_seeds as train_seeds
from .figures import plot_curves as plot_curves
from .figures import plot_embedding_pca as plot_embedding_pca
from .figures import plot_norm_vs_frequency as plot_norm_vs_frequency
from .figures import plot_norms as plot_norms
from .figures import write_figures as write_figures
from .job import FCJob as FCJob
from .job import checkpoint_epochs as checkpoint_epochs
from .job import job_configs as job_configs
from .job import run_job as run_job
from .model import features as features
from .model import init_batch as init_batch
from .model import init_params as init_params
from .model import layer_norm as layer_norm
from .model import make_loss_fn as make_loss_fn
from .model import make_optimizer as make_optimizer
from .model import scores as scores
from .objective import cached_data as cached_data
from .objective import fc_init as fc_init
from .objective import fc_label as fc_label
from .objective import fc_objective as fc_objective
from .presets import JOB_PRESETS as JOB_PRESETS
from .presets import PRESETS as PRESETS
from .presets import JobPreset as JobPreset
from .spec import FeatureCollapseSpec as FeatureCollapseSpec
from .summary import collapse_verdict as collapse_verdict
from .summary import summary_entries as summary_entries
from .summary import summary_text as summary_text

register_spec(FeatureCollapseSpec, ())

register_column_docs(
    {
        "epoch_loss": "feature collapse: mean minibatch loss of the epoch ending at the checkpoint "
        "(NaN at epoch 0)",
        "train_loss": "feature collapse: mean cross-entropy on the whole training set",
        "train_acc": "feature collapse: accuracy on the whole training set (fraction)",
        "test_loss": "feature collapse: mean cross-entropy on the test set (n_test fresh sentences "
        "per latent)",
        "test_acc": "feature collapse: accuracy on the test set (fraction)",
        "w_norm_mean": "feature collapse: mean ||w|| of the raw embeddings of the words seen in "
        "training",
        "w_norm_std": "feature collapse: standard deviation of ||w|| over the seen words",
        "phi_norm_mean": "feature collapse: mean ||phi(w)|| (after LayerNorm when it is on) over "
        "the seen words",
        "u_norm_mean": "feature collapse: mean ||u_{k,l}|| over all classifier vectors",
        "u_norm_std": "feature collapse: standard deviation of ||u_{k,l}||",
        "w_norm_mu_spearman": "feature collapse: Spearman correlation of ||w|| with the word law "
        "mu_beta over the seen words (NaN for the uniform law)",
        "w_trace_ratio": "feature collapse: tr(Sigma_W)/tr(Sigma_B) of phi(w) grouped by concept "
        "(0 at collapse)",
        "u_trace_ratio": "feature collapse: tr(Sigma_W)/tr(Sigma_B) of u_{k,l} grouped by "
        "z_{k,l} (0 at collapse)",
        "w_dir_collapse": "feature collapse: mean 1 - cos(phi(w), its concept mean) over the seen "
        "words (0 when directions collapse)",
        "u_dir_collapse": "feature collapse: mean 1 - cos(u_{k,l}, its concept mean)",
        "w_etf_error": "feature collapse: distance of the normalised Gram matrix of the centred "
        "concept means of phi(w) to the simplex ETF's",
        "u_etf_error": "feature collapse: the same for the concept means of u_{k,l}",
        "w_pca_ratio": "feature collapse: sigma_{n_c}/sigma_{n_c-1} of the centred phi(w) "
        "(0 at collapse onto the simplex)",
        "u_pca_ratio": "feature collapse: sigma_{n_c}/sigma_{n_c-1} of the centred u_{k,l}",
        "collapse_type": "feature collapse: the type the theory predicts (1 uniform, 2 LayerNorm, "
        "3 non-uniform law)",
        "predicted_w_norm": "feature collapse: predicted mean ||w|| over seen words (type I, "
        "type III with all latents; NaN otherwise)",
        "predicted_u_norm": "feature collapse: predicted ||u_{k,l}|| (types I, II, III; NaN where "
        "no closed form applies)",
        "predicted_phi_norm": "feature collapse: predicted ||phi(w)|| (sqrt(d) with LayerNorm)",
        "w_norm_relerr": "feature collapse: w_norm_mean / predicted_w_norm - 1",
        "u_norm_relerr": "feature collapse: u_norm_mean / predicted_u_norm - 1",
        "w_norm_type3_relerr": "feature collapse: ||(||w|| - r_beta)|| / ||r_beta|| over seen "
        "words (type III with all latents)",
        "checkpoints": "trained-network jobs: epochs at which the seeds were evaluated (JSON list)",
    }
)


def _examples():
    """Tiny specs for the conformance checks: uniform float64, LayerNorm + Zipf float64, and
    a float32 one."""
    base = FeatureCollapseSpec(n_w=12, L=3, K=6, d=4, nspl=2, n_test=1, batch_size=4, epochs=2)
    return (
        base.replace(dtype="float64"),
        base.replace(dtype="float64", law="zipf", layernorm=True, init_scale_divisor=1.0),
        base.replace(L=2, K=9, latents="all", law="zipf"),
    )


SYSTEM = register_system(
    System(
        name="feature_collapse",
        spec_type=FeatureCollapseSpec,
        loss=fc_objective,
        init=fc_init,
        examples=_examples,
        summary="feature collapse (Laurent et al. 2023): embedding -> (LayerNorm) -> linear, SGD",
        label=fc_label,
        add_cli=add_feature_collapse_parser,
        presets=JOB_PRESETS,
        sweepable=False,
    )
)
