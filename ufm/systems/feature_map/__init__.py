"""Forward feature map (Nam, Mingard, Lee, Hayou & Louis 2024, arXiv 2410.04264).

The feature operator of a network's penultimate layer, its spectrum and Nystrom eigenfunctions,
target mass and utilisation curves, centred concentration, ``D_LR``, and the minimal- vs
extended-features verdict. See docs/feature_map.md.
"""

from .alignment import cka_minimal_projection as cka_minimal_projection
from .alignment import d_lr as d_lr
from .analysis import FeatureMapAnalysis as FeatureMapAnalysis
from .analysis import analyse as analyse
from .analysis import at_k as at_k
from .collapse import class_means as class_means
from .collapse import etf_error_means as etf_error_means
from .collapse import nc1_quotient as nc1_quotient
from .spectrum import FeatureSpectrum as FeatureSpectrum
from .spectrum import centred_gap as centred_gap
from .spectrum import cumulative_mass as cumulative_mass
from .spectrum import effective_rank as effective_rank
from .spectrum import eigenfunctions as eigenfunctions
from .spectrum import feature_spectrum as feature_spectrum
from .spectrum import participation_ratio as participation_ratio
from .spectrum import projections as projections
from .verdict import MFCriterion as MFCriterion
from .verdict import Verdict as Verdict
from .verdict import verdict as verdict
