"""Spectral transformations of SSL embeddings, IterNorm / INTL, and dimensional-collapse measures.

Weng, Ni, Song, Luo, Anwer, Khan, Khan, Huang, "Modulate Your Spectrum in Self-Supervised
Learning", ICLR 2024, arXiv 2305.16789 (official code: winci-ai/INTL). See ``docs/spectral.md``.

Layout: a batch of embeddings is ``z`` with shape ``(m, d)`` (samples in rows). Transforms act on
the covariance of one ``side``: ``"instance"`` (the ``m x m`` batch Gram, official ``axis=0``) or
``"feature"`` (the ``d x d`` feature covariance, official ``axis=1``).
"""

from ufm.systems.spectral.augment import ImageAugment as ImageAugment
from ufm.systems.spectral.augment import VectorAugment as VectorAugment
from ufm.systems.spectral.augment import image_view as image_view
from ufm.systems.spectral.augment import make_views as make_views
from ufm.systems.spectral.augment import shift_image as shift_image
from ufm.systems.spectral.augment import vector_view as vector_view
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
from ufm.systems.spectral.orientation import SIDES as SIDES
from ufm.systems.spectral.orientation import covariance as covariance
from ufm.systems.spectral.orientation import side_from_axis as side_from_axis
from ufm.systems.spectral.probes import knn_accuracy as knn_accuracy
from ufm.systems.spectral.probes import ridge_probe_accuracy as ridge_probe_accuracy
from ufm.systems.spectral.transforms import cholesky_whiten as cholesky_whiten
from ufm.systems.spectral.transforms import (
    power_output_spectrum as power_output_spectrum,
)
from ufm.systems.spectral.transforms import power_transform as power_transform
from ufm.systems.spectral.transforms import spectral_transform as spectral_transform
from ufm.systems.spectral.transforms import whiten as whiten
