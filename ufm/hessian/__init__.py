"""Hessian spectra of any registered objective: dense oracle, Lanczos, exact block-arrow inertia.

Dense (autodiff + ``eigh``, the oracle), Lanczos on Hessian-vector products, the block-arrow
structure of objectives with per-sample features and its exact inertia by Haynsworth's Schur
complement (docs/theory.md section 3), its class reduction near collapse (Weyl-certified counts,
section 3.9), and Newton steps for polishing critical points of any
index."""

from .dense import flat_objective as flat_objective
from .dense import hessian_dense as hessian_dense
from .dense import hessian_spectrum_dense as hessian_spectrum_dense
from .inertia import BlockArrowResult as BlockArrowResult
from .inertia import block_arrow_inertia as block_arrow_inertia
from .inertia import block_arrow_spectrum as block_arrow_spectrum
from .inertia import spectrum_of_structure as spectrum_of_structure
from .lanczos import LanczosResult as LanczosResult
from .lanczos import lanczos_extremes as lanczos_extremes
from .newton import newton_step as newton_step
from .reduction import ClassReduction as ClassReduction
from .reduction import certified_count as certified_count
from .reduction import class_reduction as class_reduction
from .structure import BlockArrow as BlockArrow
from .structure import FeatureSplit as FeatureSplit
from .structure import block_arrow as block_arrow
from .structure import block_arrow_matvec as block_arrow_matvec
from .structure import has_split as has_split
from .structure import split_features as split_features
