"""Spectral transformations of SSL embeddings, IterNorm / INTL, and dimensional-collapse measures.

Weng, Ni, Song, Luo, Anwer, Khan, Khan, Huang, "Modulate Your Spectrum in Self-Supervised
Learning", ICLR 2024, arXiv 2305.16789 (official code: winci-ai/INTL). See ``docs/spectral.md``.

Layout: a batch of embeddings is ``z`` with shape ``(m, d)`` (samples in rows). Transforms act on
the covariance of one ``side``: ``"instance"`` (the ``m x m`` batch Gram, official ``axis=0``) or
``"feature"`` (the ``d x d`` feature covariance, official ``axis=1``).

The registered system ``"spectral"`` (:class:`SpectralSpec`): self-supervised training of an MLP
encoder + projector on two augmented views (digits, latent-factor data, user folders), one method
per spec; ``loss`` is the objective on one fixed batch of views, ``init`` the network's arrays.
Experiments: :func:`train_seeds`, :func:`run_spec`, :func:`run_preset` and ``ufm spectral``.
``sweepable=False``: a TOML sweep optimises the ``loss`` hook full-batch with the generic optimiser,
which for SSL is a surrogate on one fixed batch, not the experiment (fresh minibatches and views
every step); experiments run through ``ufm spectral`` / :func:`run_preset`.
"""

from ufm.systems.spectral.augment import ImageAugment as ImageAugment
from ufm.systems.spectral.augment import VectorAugment as VectorAugment
from ufm.systems.spectral.augment import image_view as image_view
from ufm.systems.spectral.augment import make_views as make_views
from ufm.systems.spectral.augment import shift_image as shift_image
from ufm.systems.spectral.augment import vector_view as vector_view
from ufm.systems.spectral.cli import add_spectral_parser as add_spectral_parser
from ufm.systems.spectral.data import SSLData as SSLData
from ufm.systems.spectral.data import spec_data as spec_data
from ufm.systems.spectral.experiment import EvalSettings as EvalSettings
from ufm.systems.spectral.experiment import Evaluator as Evaluator
from ufm.systems.spectral.experiment import checkpoint_epochs as checkpoint_epochs
from ufm.systems.spectral.experiment import rows_from_result as rows_from_result
from ufm.systems.spectral.experiment import run_spec as run_spec
from ufm.systems.spectral.experiment import train_seeds as train_seeds
from ufm.systems.spectral.figures import plot_accuracy_vs_p as plot_accuracy_vs_p
from ufm.systems.spectral.figures import plot_erank_over_training as plot_erank_over_training
from ufm.systems.spectral.figures import plot_spectra as plot_spectra
from ufm.systems.spectral.figures import write_figures as write_figures
from ufm.systems.spectral.iternorm import DEFAULT_N_ITER as DEFAULT_N_ITER
from ufm.systems.spectral.iternorm import iternorm as iternorm
from ufm.systems.spectral.iternorm import iternorm_error_growth as iternorm_error_growth
from ufm.systems.spectral.iternorm import iternorm_gain as iternorm_gain
from ufm.systems.spectral.iternorm import iternorm_matrix as iternorm_matrix
from ufm.systems.spectral.iternorm import iternorm_spectrum as iternorm_spectrum
from ufm.systems.spectral.losses import INTLTerms as INTLTerms
from ufm.systems.spectral.losses import cosine_alignment as cosine_alignment
from ufm.systems.spectral.losses import cosine_alignment_loss as cosine_alignment_loss
from ufm.systems.spectral.losses import intl_beta as intl_beta
from ufm.systems.spectral.losses import intl_loss as intl_loss
from ufm.systems.spectral.losses import intl_terms as intl_terms
from ufm.systems.spectral.losses import trace_loss as trace_loss
from ufm.systems.spectral.losses import (
    transformed_alignment_loss as transformed_alignment_loss,
)
from ufm.systems.spectral.losses import wmse_loss as wmse_loss
from ufm.systems.spectral.matfun import sym_matrix_function as sym_matrix_function
from ufm.systems.spectral.measures import CollapseMeasures as CollapseMeasures
from ufm.systems.spectral.measures import collapse_measures as collapse_measures
from ufm.systems.spectral.measures import count_above as count_above
from ufm.systems.spectral.measures import (
    covariance_eigenvalues as covariance_eigenvalues,
)
from ufm.systems.spectral.measures import effective_rank as effective_rank
from ufm.systems.spectral.measures import (
    entropy_effective_rank as entropy_effective_rank,
)
from ufm.systems.spectral.measures import normalized_spectrum as normalized_spectrum
from ufm.systems.spectral.measures import rankme as rankme
from ufm.systems.spectral.model import batch_transform as batch_transform
from ufm.systems.spectral.model import build_network as build_network
from ufm.systems.spectral.model import embed as embed
from ufm.systems.spectral.model import init_params as init_params
from ufm.systems.spectral.model import method_loss as method_loss
from ufm.systems.spectral.model import ssl_loss as ssl_loss
from ufm.systems.spectral.orientation import SIDES as SIDES
from ufm.systems.spectral.orientation import covariance as covariance
from ufm.systems.spectral.orientation import side_from_axis as side_from_axis
from ufm.systems.spectral.presets import PRESETS as PRESETS
from ufm.systems.spectral.presets import Preset as Preset
from ufm.systems.spectral.presets import get_preset as get_preset
from ufm.systems.spectral.probes import knn_accuracy as knn_accuracy
from ufm.systems.spectral.probes import ridge_probe_accuracy as ridge_probe_accuracy
from ufm.systems.spectral.runner import report_text as report_text
from ufm.systems.spectral.runner import run_preset as run_preset
from ufm.systems.spectral.runner import write_preset_report as write_preset_report
from ufm.systems.spectral.schema import COLUMN_DOCS as COLUMN_DOCS
from ufm.systems.spectral.spec import SpectralSpec as SpectralSpec
from ufm.systems.spectral.spec import spec_label as spec_label
from ufm.systems.spectral.summary import StabilityCriteria as StabilityCriteria
from ufm.systems.spectral.summary import method_entries as method_entries
from ufm.systems.spectral.summary import method_table as method_table
from ufm.systems.spectral.summary import power_sweep as power_sweep
from ufm.systems.spectral.summary import power_table as power_table
from ufm.systems.spectral.summary import stable_range as stable_range
from ufm.systems.spectral.system import SYSTEM as SYSTEM
from ufm.systems.spectral.transforms import cholesky_lower as cholesky_lower
from ufm.systems.spectral.transforms import cholesky_whiten as cholesky_whiten
from ufm.systems.spectral.transforms import forward_substitution as forward_substitution
from ufm.systems.spectral.transforms import (
    power_output_spectrum as power_output_spectrum,
)
from ufm.systems.spectral.transforms import power_transform as power_transform
from ufm.systems.spectral.transforms import spectral_transform as spectral_transform
from ufm.systems.spectral.transforms import whiten as whiten
